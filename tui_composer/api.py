"""The public API for plugin authors: everything a third-party plugin imports comes from here.

    from tui_composer.api import hookimpl, EncoderSpec, Encoder, Param

The built-in plugins (`tui_composer_plugins`, `tui_composer_corpora`) import nothing else from
tui-composer; an import-linter contract in pyproject.toml checks it (`make lint`). Importing this
module imports neither TensorFlow nor music21: the helpers that need them import them when called.

- the contract: `Encoder`, `TokenEncoder`, `Model`, `DataSpec`, `Piece`, `SampleRequest`, ...;
- registration: `hookimpl`, `EncoderSpec`, `ModelSpec`, `CorpusSpec`, `RunSpec`, `Param`;
- pieces and music: `parse_piece`, `parse_abc`, `piece_abc`, `score_to_midi`, `score_to_abc`,
  `split_abc_tunes`, `pieces_from`, and the note helpers of `tui_composer.music.notes`;
- models trained with Keras: `KerasModel` (write the layers; batching, files and sampling come with it),
  `KERAS_PARAMS`, `stream_batches`;
- sampling: the core decoder (`decode`, `DecodingStep`, `StepContext`) and its noise and primer helpers;
- distribution strategies: `scope_of`, `splits_batches`, `check_divisible`, `per_replica`, ...;
- commands: `StudioContext`, what a plugin command gets from `@click.pass_obj` (`.studio`, with its
  `.registry`, `.catalogue` and `.runs`).
"""

from tui_composer.cli.context import StudioContext
from tui_composer.music.abc_writer import score_to_abc
from tui_composer.music.export import ExportError, parse_abc, parse_piece, piece_abc, score_to_midi
from tui_composer.music.notes import (
    DEFAULT_VELOCITY,
    DRUM_CHANNEL,
    MAX_BAR_QUARTERS,
    MAX_NOTE_QUARTERS,
    MAX_PIECE_QUARTERS,
    MAX_PIECE_STEPS,
    MAX_REST_QUARTERS,
    TICKS_PER_QUARTER,
    GridNote,
    Note,
    check_abc_lengths,
    check_length,
    check_lengths,
    check_steps,
    exclusive,
    midi_bars,
    midi_bytes,
    midi_notes,
    midi_to_score,
    notes_to_midi,
    notes_to_score,
    piece_notes,
    piece_notes_and_bars,
    quantise,
    score_notes,
)
from tui_composer.plugin.contract import (
    DATA_KINDS,
    DataKind,
    DataSpec,
    DecodingStep,
    EncodeError,
    Encoder,
    EpochProgress,
    Evaluation,
    Model,
    Piece,
    SampleRequest,
    StepContext,
    TokenConstraint,
    TokenEncoder,
    Vocabulary,
)
from tui_composer.plugin.decoding import checked_primer, decode, frame_noise, temperature_of, token_noise
from tui_composer.plugin.hookspecs import hookimpl
from tui_composer.plugin.host import Registry
from tui_composer.plugin.keras_model import KERAS_PARAMS, KerasModel, StreamBatches, stream_batches
from tui_composer.plugin.params import Param, ParamError
from tui_composer.plugin.specs import CorpusSpec, EncoderSpec, ModelSpec, PluginError, RunSpec
from tui_composer.services.corpora import Catalogue, Corpus, Skipped, pieces_from, split_abc_tunes
from tui_composer.services.distribute import (
    StrategyError,
    check_divisible,
    per_replica,
    per_replica_from,
    replica_count,
    scope_of,
    splits_batches,
)
from tui_composer.services.studio import Studio

__all__ = [
    "DATA_KINDS",
    "DEFAULT_VELOCITY",
    "DRUM_CHANNEL",
    "KERAS_PARAMS",
    "MAX_BAR_QUARTERS",
    "MAX_NOTE_QUARTERS",
    "MAX_PIECE_QUARTERS",
    "MAX_PIECE_STEPS",
    "MAX_REST_QUARTERS",
    "TICKS_PER_QUARTER",
    "Catalogue",
    "Corpus",
    "CorpusSpec",
    "DataKind",
    "DataSpec",
    "DecodingStep",
    "EncodeError",
    "Encoder",
    "EncoderSpec",
    "EpochProgress",
    "Evaluation",
    "ExportError",
    "GridNote",
    "KerasModel",
    "Model",
    "ModelSpec",
    "Note",
    "Param",
    "ParamError",
    "Piece",
    "PluginError",
    "Registry",
    "RunSpec",
    "SampleRequest",
    "Skipped",
    "StepContext",
    "StrategyError",
    "StreamBatches",
    "Studio",
    "StudioContext",
    "TokenConstraint",
    "TokenEncoder",
    "Vocabulary",
    "check_abc_lengths",
    "check_divisible",
    "check_length",
    "check_lengths",
    "check_steps",
    "checked_primer",
    "decode",
    "exclusive",
    "frame_noise",
    "hookimpl",
    "midi_bars",
    "midi_bytes",
    "midi_notes",
    "midi_to_score",
    "notes_to_midi",
    "notes_to_score",
    "parse_abc",
    "parse_piece",
    "per_replica",
    "per_replica_from",
    "piece_abc",
    "piece_notes",
    "piece_notes_and_bars",
    "pieces_from",
    "quantise",
    "replica_count",
    "scope_of",
    "score_notes",
    "score_to_abc",
    "score_to_midi",
    "split_abc_tunes",
    "splits_batches",
    "stream_batches",
    "temperature_of",
    "token_noise",
]
