"""The data contract every encoder and model shares.

An encoder turns a piece into `tokens` (1-D integer ids over a vocabulary fitted on the training split)
or `frames` (2-D binary, time x feature) and decodes a model's output back into a music21 Score.
Every model accepts both kinds, so any encoder pairs with any model.

Nothing here imports TensorFlow, Keras or music21: plugins import those inside their methods.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np

if TYPE_CHECKING:
    from music21.stream import Score

DataKind = Literal["tokens", "frames"]
DATA_KINDS: tuple[DataKind, ...] = ("tokens", "frames")
PieceFormat = Literal["abc", "midi", "musicxml", "audio"]  # audio: a recording, transcribed to midi on import


class EncodeError(Exception):
    """A piece that an encoder cannot turn into model input; the message says which and why."""

    def __init__(self, piece: str, reason: str) -> None:
        super().__init__(f"{piece}: {reason}")
        self.piece = piece
        self.reason = reason


@dataclass(frozen=True)
class Piece:
    """One piece of a corpus: a single ABC tune, a MIDI file or a MusicXML file."""

    key: str  # unique and stable within its corpus, e.g. "0001-0050.abc#12"
    title: str
    format: PieceFormat
    path: Path
    text: str | None = None  # the ABC text of this one tune; None for binary formats

    def content(self) -> bytes:
        """The bytes that define this piece (hashed for cache keys)."""
        if self.text is not None:
            return self.text.encode("utf-8")
        return self.path.read_bytes()

    def digest(self) -> str:
        return hashlib.sha256(self.content()).hexdigest()


@dataclass(frozen=True)
class DataSpec:
    """What a model needs to know about its input: the kind and size, and the special token ids."""

    kind: DataKind
    size: int  # vocabulary size for tokens, features per frame for frames
    bos: int | None = None  # begin-of-tune id (tokens only)
    eos: int | None = None  # end-of-tune id (tokens only)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "size": self.size, "bos": self.bos, "eos": self.eos}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DataSpec:
        return cls(kind=data["kind"], size=int(data["size"]), bos=data.get("bos"), eos=data.get("eos"))


class Vocabulary:
    """Symbols <-> ids, fitted on the training split, with begin, end and unknown tokens."""

    BOS = "<bos>"
    EOS = "<eos>"
    UNK = "<unk>"
    SPECIALS = (BOS, EOS, UNK)

    def __init__(self, symbols: Iterable[str]) -> None:
        ordered = list(self.SPECIALS) + [s for s in symbols if s not in self.SPECIALS]
        self.symbols: list[str] = list(dict.fromkeys(ordered))
        self._ids = {s: i for i, s in enumerate(self.symbols)}

    @classmethod
    def fit(cls, sequences: Iterable[Sequence[str]]) -> Vocabulary:
        seen: set[str] = set()
        for sequence in sequences:
            seen.update(sequence)
        return cls(sorted(seen))

    def __len__(self) -> int:
        return len(self.symbols)

    @property
    def bos(self) -> int:
        return self._ids[self.BOS]

    @property
    def eos(self) -> int:
        return self._ids[self.EOS]

    @property
    def unk(self) -> int:
        return self._ids[self.UNK]

    def id(self, symbol: str) -> int:
        return self._ids.get(symbol, self.unk)

    def encode(self, symbols: Sequence[str]) -> np.ndarray:
        """bos, the symbols' ids, eos."""
        ids = [self.bos, *(self.id(s) for s in symbols), self.eos]
        return np.asarray(ids, dtype=np.int32)

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Symbols up to the first eos, without specials; unknown and out-of-range ids are dropped."""
        out: list[str] = []
        for i in ids:
            i = int(i)
            if i == self.eos:
                break
            if 0 <= i < len(self.symbols) and self.symbols[i] not in self.SPECIALS:
                out.append(self.symbols[i])
        return out

    def to_json(self) -> list[str]:
        return list(self.symbols)

    @classmethod
    def from_json(cls, symbols: Sequence[str]) -> Vocabulary:
        return cls(symbols)


class Encoder(ABC):
    """Turns pieces into model input and model output back into music.

    Lifecycle, driven by the host: `read` every piece (parallel, cached per piece: it must depend only
    on the piece and the parameters), `fit` on the training split's readings, then `encode` readings
    into arrays. `state`/`load_state` save what `fit` learned with the run.

    Required: `read`, `encode`, `decode`, `data_spec`. Optional, with defaults that hold for a stateless
    encoder: `fit`, `state`/`load_state`, `constraint` (None), `encode_primer` (reads the primer as a
    tune), `to_abc` (writes the decoded Score) and `symbols_text`. A piece that can't be used raises
    EncodeError, which is cached with the piece; anything else `read` raises is a bug, reported as a
    PluginError naming the encoder and its plugin, and never cached. Bump `EncoderSpec.version` when
    the readings change, so cached ones are read again.
    """

    kind: ClassVar[DataKind]

    def __init__(self, **params: Any) -> None:
        self.params = params

    @abstractmethod
    def read(self, piece: Piece) -> Any:
        """The piece as symbols (tokens: a list of str) or frames (a 2-D uint8 array).

        Raises EncodeError naming the piece and the reason when the piece can't be used.
        """

    def fit(self, readings: Sequence[Any]) -> None:  # noqa: B027 - optional for stateless encoders
        """Learn what depends on the training split (vocabulary, pitch range)."""

    @abstractmethod
    def encode(self, reading: Any) -> np.ndarray:
        """A reading as model input: int32 ids (tokens) or a uint8 time x feature array (frames)."""

    @abstractmethod
    def decode(self, array: np.ndarray) -> Score:
        """Model output (ids or frames) back into a music21 Score."""

    def to_abc(self, array: np.ndarray) -> str:
        """Model output as ABC text; the default writes the decoded Score with the ABC writer."""
        from tui_composer.music.abc_writer import score_to_abc

        return score_to_abc(self.decode(array))

    @abstractmethod
    def data_spec(self) -> DataSpec:
        """Kind, size and special ids of what `encode` produces (after `fit`)."""

    def state(self) -> dict[str, Any]:
        """JSON-serialisable state learned by `fit`."""
        return {}

    def load_state(self, state: Mapping[str, Any]) -> None:  # noqa: B027 - optional for stateless encoders
        """Restore what `state` returned."""

    def constraint(self) -> TokenConstraint | None:
        """Optional capability: a checker that says which next tokens can still lead to a valid piece."""
        return None

    def encode_primer(self, text: str) -> np.ndarray:
        """ABC text as the start of every sample: what `SampleRequest.primer` holds.

        The default reads the text as a tune (an `X:1` line is put first when it has none; the tune must
        hold notes, e.g. `M:6/8\\nK:G\\nGAB cBA|`) and encodes it; for tokens the bos and eos are left
        out (the model starts every sample with bos itself, and the primer goes on). An encoder whose
        tokens are characters overrides it to continue the text itself. Raises EncodeError("primer",
        reason) when the text can't start a sample.
        """
        tune = text if text.startswith("X:") else "X:1\n" + text
        piece = Piece(key="primer", title="primer", format="abc", path=Path("primer.abc"), text=tune)
        try:
            array = np.asarray(self.encode(self.read(piece)))
        except (EncodeError, ValueError) as error:
            reason = error.reason if isinstance(error, EncodeError) else str(error)
            raise EncodeError("primer", f"the primer is not a tune this run's encoder can read: {reason}") from None
        if self.kind != "tokens":
            return array
        data = self.data_spec()
        ids = array.astype(np.int32)
        if len(ids) and ids[0] == data.bos:
            ids = ids[1:]
        if len(ids) and ids[-1] == data.eos:
            ids = ids[:-1]
        return ids

    def symbols_text(self, array: np.ndarray) -> str:
        """A sample as plain text, for one that can't be written as ABC: ids as numbers, frames as rows
        of 0 and 1. Token encoders write their symbols instead."""
        if array.ndim == 2:
            return "\n".join("".join(str(int(v)) for v in row) for row in array)
        return " ".join(str(int(i)) for i in array)


class TokenEncoder(Encoder):
    """An encoder whose readings are lists of symbols, encoded over a Vocabulary fitted on the training split.

    Subclasses implement `read` and `decode`, and set `name` for messages.
    """

    kind: ClassVar[DataKind] = "tokens"
    name: ClassVar[str] = "tokens"
    vocabulary: Vocabulary | None = None

    def fit(self, readings: Sequence[Sequence[str]]) -> None:
        self.vocabulary = Vocabulary.fit(readings)

    def fitted_vocabulary(self) -> Vocabulary:
        if self.vocabulary is None:
            raise RuntimeError(f"{self.name}: fit the encoder (or load its state) before encoding or decoding")
        return self.vocabulary

    def encode(self, reading: Sequence[str]) -> np.ndarray:
        return self.fitted_vocabulary().encode(reading)

    def data_spec(self) -> DataSpec:
        vocabulary = self.fitted_vocabulary()
        return DataSpec(kind="tokens", size=len(vocabulary), bos=vocabulary.bos, eos=vocabulary.eos)

    def state(self) -> dict[str, Any]:
        return {"vocabulary": self.fitted_vocabulary().to_json()}

    def load_state(self, state: Mapping[str, Any]) -> None:
        self.vocabulary = Vocabulary.from_json(state["vocabulary"])

    def symbols_text(self, array: np.ndarray) -> str:
        """The sample's symbols up to eos, separated by spaces (ids when no vocabulary is fitted)."""
        if self.vocabulary is None:
            return super().symbols_text(array)
        return " ".join(self.vocabulary.decode(array))


class TokenConstraint(ABC):
    """Incremental validity check for token samplers (one state per sequence being sampled).

    Subclass it and write `start`, `allowed` and `advance`; the two optional capabilities have defaults
    that are always correct, and a constraint overrides them only to be faster or to steer:

    - `allows(state, token)`: whether one token may come next. The decoder draws from the unmasked
      distribution first and asks this; only a refused draw builds the whole mask (and draws again from
      the masked distribution, which keeps it exact). Override it when one token is cheaper to check
      than a whole mask.
    - `bounded(max_length)`: a constraint that also finishes every piece within `max_length` tokens,
      eos and primer included. The default returns the constraint itself (no steering: a piece that
      reaches the length limit is cut there).

    The decoder calls `allowed` or `allows` once per sampled token and sequence: cache masks per state.
    States are the constraint's own: `advance` returns a new one and never changes the one it is given.
    """

    @abstractmethod
    def start(self) -> Any:
        """A fresh state at the beginning of a piece (after bos)."""

    @abstractmethod
    def allowed(self, state: Any) -> np.ndarray:
        """A boolean mask over the vocabulary: the tokens that may come next (eos only where the piece
        is complete; never all False)."""

    @abstractmethod
    def advance(self, state: Any, token: int) -> Any:
        """The state after `token`."""

    def allows(self, state: Any, token: int) -> bool:
        """Whether `token` may come next: `allowed(state)[token]`."""
        return bool(self.allowed(state)[token])

    def bounded(self, max_length: int) -> TokenConstraint:
        """This constraint, steering every piece to its end within `max_length` tokens where it can."""
        return self


@dataclass(frozen=True)
class Evaluation:
    """A held-out split's cross-entropy, a mean over every predicted step of its sequences.

    - `loss`, in nats: per token (each id after bos, eos included) for tokens; per frame for frames, or per
      feature (per frame / features) for a model whose loss is a mean over features, as char-lstm's is.
      The host compares a run's losses only with each other: the lowest picks `model.keras`, and
      `--patience` epochs without a lower one stop the training.
    - `bits`: the same cross-entropy in bits per token (loss / ln 2) or per frame (the sum over a frame's
      features); `valid_bits` in metrics.jsonl, the number that compares runs, encoders and models.
      Energy models (rbm, rnn-rbm) estimate a frame's by annealed importance sampling.

    NaN for a split with nothing to predict. The same weights and sequences give the same Evaluation.
    """

    loss: float
    bits: float


@dataclass
class EpochProgress:
    """What a model reports while it trains one epoch, and how the host asks it to stop early.

    - `on_batch(done, total, loss)` after every batch: done = 1, 2 ... total, in order, and `loss` the
      epoch's running mean so far (the host shows it, and writes it to status.json and metrics.jsonl at
      most once a second).
    - `stop_requested()` answers True once the user asked to stop (Ctrl-C, SIGTERM, the TUI), or once the
      run's `--time-limit` has passed. Poll it before every batch; once it says yes, start no further
      batch and return the mean loss so far. Save nothing. After a user's stop the host writes
      `checkpoints/interrupted.keras` and marks the run stopped; the epoch does not count: `--resume`
      repeats it from the last finished epoch's checkpoint. At the time limit the host validates the
      epoch so far and keeps it like any other (it has trained at least one batch).
    """

    on_batch: Callable[[int, int, float], None] = lambda done, total, loss: None
    stop_requested: Callable[[], bool] = lambda: False


@dataclass(frozen=True)
class SampleRequest:
    """What the host asks of `Model.sample`; the core decoder (`tui_composer.plugin.decoding`) gives it meaning.

    - `max_length`: steps per sample, the primer included. For tokens the end-of-tune is a step too (it
      is not returned), so a sample holds at most `max_length` ids; a primer longer than that is
      returned whole, with nothing after it. Frames samples are exactly max(max_length, primer) long.
    - `temperature` T: the model's scores are divided by T before the draw. Tokens: p(id) ∝ exp(logit / T).
      Frames: each feature is on with probability sigmoid(logit / T); a Gibbs-sampling model also runs
      its chain at T (both conditionals take input / T, so p ∝ exp(-E / T)).
    - `top_k` (0: off). Tokens: after the constraint's mask, only the k likeliest allowed ids may be
      drawn (mask first, then top-k, then the draw: never an empty choice, never NaN). Frames: at most
      k features on per frame (only the k with the largest logits may be on; each draws its Bernoulli).
    - `seed`: every random number of a sample comes from one `np.random.default_rng(seed)`: the same
      request gives the same samples. The host seeds nothing else for sampling: a model must not draw
      from NumPy's, Python's or TensorFlow's global generators there.
    - `primer`: ids without bos (the model starts with bos itself) or frames [P, features], made by
      `Encoder.encode_primer`; it opens every sample, and the constraint's state is advanced over it.
    - `constraint`: masks every token drawn after the primer (ignored for frames).
    - `extra`: options of one model's own (the host sets none).
    - `on_finished(i, sample)`: called by the core decoder (`tui_composer.plugin.decoding`) as token sample i
      ends, while the others are still sampled, so a caller can write it meanwhile (the TUI's sampling
      worker does); it may raise to stop the sampling. A model with its own loop need not call it: the
      returned list is always the whole result.
    """

    n: int = 10
    max_length: int = 1000  # tokens or frames per sample, primer included
    temperature: float = 1.0
    top_k: int = 0  # 0: no top-k filter
    seed: int = 0
    primer: np.ndarray | None = None  # ids (without bos: the model adds it) or frames to continue
    constraint: TokenConstraint | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    on_finished: Callable[[int, np.ndarray], None] | None = None


@dataclass(frozen=True)
class StepContext:
    """What the decoder hands `DecodingStep.scores` at every step."""

    temperature: float
    rng: np.random.Generator  # the request's one generator: a model that draws (a Gibbs chain) draws from it
    mask: np.ndarray | None = None  # [rows, vocabulary] bool: the allowed ids, for steps with `wants_mask`


class DecodingStep(ABC):
    """A model's part of sampling: one step for a batch of sequences. `tui_composer.plugin.decoding.decode`
    does the rest, the same for every model: the primer, the constraint's mask, temperature, top-k,
    the draw, end-of-tune, finished sequences leaving the batch, `max_length` and the seed.

    A state is the model's own (an LSTM's h and c, an RNN-RBM's recurrent u, an RBM's last window) and
    holds one row per sequence still being written, in order. Scores are logits, before temperature:
    for tokens one per id (log-probabilities up to a constant per row: the decoder draws from
    softmax(logits / T)); for frames one Bernoulli logit log(p / (1 - p)) per feature. A Gibbs-sampling
    model runs its chain in `scores` (its draws at `context.temperature`, from `context.rng`) and
    returns the logits of the chain's last visible conditional: the decoder makes that last draw.

    Capability: `wants_mask = True` (on the class or the instance) asks for the constraint's masks in
    `StepContext.mask` (a Gibbs chain over a token's softmax group masks every visible draw with it).
    Otherwise the decoder may skip building masks (it draws first and asks `TokenConstraint.allows`).
    The decoder calls `scores` once per state, before `advance`: a step that works out several steps at
    once (an RBM's window) may keep the rest in its state.
    """

    wants_mask: bool = False

    @abstractmethod
    def prime(self, primer: np.ndarray, n: int) -> Any:
        """The state of n sequences after bos (tokens) and the primer: ids [P] or frames [P, features]
        (P may be 0)."""

    @abstractmethod
    def scores(self, state: Any, context: StepContext) -> np.ndarray:
        """The next step's logits for every row: [rows, vocabulary] (tokens) or [rows, features] (frames)."""

    @abstractmethod
    def advance(self, state: Any, chosen: np.ndarray) -> Any:
        """The state after the chosen ids [rows] (int32) or frames [rows, features] (uint8), one per row."""

    @abstractmethod
    def select(self, state: Any, rows: np.ndarray) -> Any:
        """The state of these rows only, in this order (finished sequences leave the batch)."""


class Model(ABC):
    """One run's model, built from its hyperparameters and the encoder's DataSpec.

    The host drives training epoch by epoch (checkpoints, metrics, early stopping and resume are the
    host's job); the model owns its batching, its Keras model(s) and its sampler. A model for Keras can
    start from `tui_composer.api.KerasModel`, which writes all but the layers.

    Methods: `train_epoch`, `evaluate`, `save` and `load` are required; for sampling write
    `decoding_step` (the core decoder does the rest) or override `sample`. `ModelSpec.takes` says which
    kinds of data it learns (both by default: then it must handle tokens and frames).

    Seeds: before building a model the host seeds Python's, NumPy's and TensorFlow's global generators
    (`keras.utils.set_random_seed`) from the run's seed, and again before every `train_epoch`, from (seed,
    epoch). Draw everything random in training from them (shuffling included) and resume reproduces the
    uninterrupted run: the host loads the last finished epoch's file and seeds the next epoch as before.

    Strategies: `strategy` is None (TensorFlow's default device: the first GPU when there is one),
    a `tf.distribute.OneDeviceStrategy` (`--strategy single`), or a MirroredStrategy or
    MultiWorkerMirroredStrategy (`mirrored`, `multi-worker`, and `auto` with several GPUs). Build, compile
    and load inside `scope_of(strategy)`. Where `splits_batches(strategy)`, each batch must be split
    across the replicas by the model (`per_replica`, `check_divisible`); a model that can't raises
    StrategyError saying to train with `--strategy single`. Every worker of a cluster trains, and only the
    chief's files are written. Sampling always loads with no strategy.

    Errors: what the model raises in `train_epoch`, `evaluate` or `sample` reaches the user as a
    PluginError naming the model, its plugin and its version (the traceback goes to the run's log),
    except EncodeError, ParamError, StrategyError and WorkspaceError, which are shown as they are: their
    message must say what to do.
    """

    def __init__(self, params: Mapping[str, Any], data: DataSpec, strategy: Any = None) -> None:
        """`params` are resolved (every key of the model's schema, each checked); `strategy` see above."""
        self.params = dict(params)
        self.data = data
        self.strategy = strategy

    @abstractmethod
    def train_epoch(self, sequences: Sequence[np.ndarray], epoch: int, progress: EpochProgress) -> float:
        """Train one epoch over the training split; returns the epoch's mean training loss.

        `sequences` are the encoded pieces, in the same order every epoch: int32 ids from bos to eos, or
        uint8 frames [T, features]. `epoch` counts the epochs done before this one (0 first; a resumed run
        goes on from where it was), for schedules. Report and stop as `EpochProgress` says.

        The loss is in the units of `Evaluation.loss` where the model can compute them (char-lstm and
        KerasModel: the same cross-entropy, dropout on, over the batches that ran); a model without a
        tractable likelihood returns its own objective (rbm, rnn-rbm: the mean reconstruction error per
        step). The host records it as `train_loss`, and picks `model.keras` by it when there is no
        validation split. NaN when nothing was trained.
        """

    @abstractmethod
    def evaluate(self, sequences: Sequence[np.ndarray]) -> Evaluation:
        """The cross-entropy of held-out sequences (see Evaluation for the units); trains nothing."""

    @abstractmethod
    def save(self, path: Path) -> None:
        """Write the model, optimizer state included, as one `.keras` file at `path`.

        The host calls it after every epoch and on a stop (into a temporary file it then renames); what a
        resumed epoch needs to train as the uninterrupted one must be in the file.
        """

    @classmethod
    @abstractmethod
    def load(cls, path: Path, params: Mapping[str, Any], data: DataSpec, strategy: Any = None) -> Model:
        """Read what `save` wrote, with Keras safe mode on (`keras.saving.load_model(path,
        safe_mode=True)`, inside `scope_of(strategy)`); nothing in a run folder is unpickled. The host
        turns what it raises into a ModelFileError naming the file."""

    def decoding_step(self) -> DecodingStep:
        """The model's sampling step, for the core decoder (see DecodingStep)."""
        raise NotImplementedError(f"model {type(self).__name__}: write decoding_step() (or sample())")

    def sample(self, request: SampleRequest) -> list[np.ndarray]:
        """`request.n` new sequences, each opening with the primer: int32 ids without bos and eos (tokens)
        or uint8 frames [steps, features], at most `request.max_length` steps (see SampleRequest).

        The default runs the core decoder over `decoding_step()`. A model may keep a fused fast path of
        its own, as long as it gives the same samples for the same request.
        """
        from tui_composer.plugin.decoding import decode

        return decode(self.decoding_step(), request, self.data, model=type(self).__name__)
