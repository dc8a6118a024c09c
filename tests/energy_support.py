"""Tiny real data for the rbm and rnn-rbm tests: a repeating frame pattern, token tunes, encoded ABC tunes."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import mido
import numpy as np
from encoders_support import JIG, REEL, abc_piece

from tui_composer.contract import DataSpec, Encoder, EpochProgress, Model, SampleRequest

FEATURES = 8
# Four frames of two notes each; the pattern repeats, so each frame determines the next.
PATTERN = np.zeros((4, FEATURES), np.uint8)
for _row, _notes in enumerate([[0, 4], [1, 5], [2, 6], [3, 7]]):
    PATTERN[_row, _notes] = 1
FRAMES = DataSpec("frames", FEATURES)


def pattern_sequences(count: int = 8, length: int = 24) -> list[np.ndarray]:
    """Sequences of the repeating pattern, starting at every phase."""
    return [np.tile(PATTERN, (length // 4 + 2, 1))[i % 4 : i % 4 + length] for i in range(count)]


def bay_accuracy(predicted: np.ndarray, actual: np.ndarray) -> float:
    """Frame-level accuracy of Bay et al. (2009): TP / (TP + FP + FN) over all frames."""
    predicted, actual = predicted.astype(bool), actual.astype(bool)
    tp = np.sum(predicted & actual)
    return float(tp / max(tp + np.sum(predicted & ~actual) + np.sum(~predicted & actual), 1))


TOKENS = DataSpec("tokens", 7, bos=0, eos=1)  # ids 0 bos, 1 eos, 2 unk, 3..6 the tune's symbols


def token_sequences(count: int = 8, repeats: int = 6) -> list[np.ndarray]:
    return [np.array([0, *([3, 4, 5, 6] * repeats), 1], np.int32) for _ in range(count)]


@dataclass
class EncodedTunes:
    """An encoder fitted on two ABC tunes and the tunes' encodings (repeated, so a tiny model learns them)."""

    name: str
    encoder: Encoder
    sequences: list[np.ndarray]

    @property
    def data(self) -> DataSpec:
        return self.encoder.data_spec()


def encoded_tunes(name: str) -> EncodedTunes:
    from tui_composer_plugins.abc.encoder import AbcEncoder
    from tui_composer_plugins.midi_events.encoder import MidiEventEncoder
    from tui_composer_plugins.piano_roll.encoder import PianoRollEncoder

    encoders: dict[str, Any] = {
        "abc": AbcEncoder,
        "midi-events": MidiEventEncoder,
        "piano-roll": lambda: PianoRollEncoder(fit_range=True),
    }
    encoder = encoders[name]()
    readings = [encoder.read(abc_piece(text, key=f"tunes.abc#{i}")) for i, text in enumerate((REEL, JIG))]
    encoder.fit(readings)
    return EncodedTunes(name, encoder, [encoder.encode(r) for r in readings] * 4)


def abc_primer(tunes: EncodedTunes) -> np.ndarray:
    """The first tune's ids (one per character) up to the end of its first line of notes."""
    text = tunes.encoder.text(tunes.sequences[0])
    first_line_end = text.index("\n", text.index("\n", text.index("K:")) + 1)
    return tunes.sequences[0][1 : first_line_end + 2]  # + 1 for bos, + 1 to keep the newline


def assert_midi_has_notes(midi: bytes, what: str) -> None:
    tracks = mido.MidiFile(file=io.BytesIO(midi)).tracks
    notes = [m for track in tracks for m in track if m.type == "note_on" and m.velocity > 0]
    assert notes, f"{what}: the MIDI file holds no notes"


class OnlyEvenTokens:
    """A TokenConstraint that allows ids 4 and 6, and eos after three tokens."""

    def start(self) -> int:
        return 0

    def allowed(self, state: int) -> np.ndarray:
        mask = np.zeros(TOKENS.size, bool)
        mask[[4, 6]] = True
        mask[TOKENS.eos] = state >= 3
        return mask

    def advance(self, state: int, token: int) -> int:
        return state + 1


def assert_same_after_reload(model: Model, loaded: Model, sequences: list[np.ndarray], request: SampleRequest) -> None:
    """Same samples and evaluation; training on from the file matches training on in memory (optimizer,
    chains and random stream restored)."""
    assert all(np.array_equal(a, b) for a, b in zip(model.sample(request), loaded.sample(request), strict=True))
    assert model.evaluate(sequences[:2]) == loaded.evaluate(sequences[:2])
    model.train_epoch(sequences, 2, EpochProgress())
    loaded.train_epoch(sequences, 2, EpochProgress())
    for a, b in zip(model.network.get_weights(), loaded.network.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def train(model: Model, sequences: list[np.ndarray], epochs: int) -> list[float]:
    """Mean training loss of each epoch."""
    return [model.train_epoch(sequences, epoch, EpochProgress()) for epoch in range(epochs)]
