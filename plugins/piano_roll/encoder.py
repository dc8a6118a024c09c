"""Piano-roll frames: time steps x (play bits, then onset bits) over a pitch range.

The onset bit marks where a note is struck, so a repeated note is not merged into a held one.
`read` gives the roll over the full range (`low`..`high`), so a cached reading never depends on what
`fit` learns; `fit` may crop the range to the training split's pitches and `encode` applies the crop.
Repeats are kept as written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from tui_composer.api import (
    DataSpec,
    EncodeError,
    Encoder,
    GridNote,
    Piece,
    check_steps,
    notes_to_score,
    piece_notes,
    quantise,
    score_notes,
)

if TYPE_CHECKING:
    from music21.stream import Score


class PianoRollEncoder(Encoder):
    kind = "frames"

    def __init__(
        self, steps_per_quarter: int = 4, low: int = 21, high: int = 108, fit_range: bool = False, **params: Any
    ) -> None:
        super().__init__(steps_per_quarter=steps_per_quarter, low=low, high=high, fit_range=fit_range, **params)
        if high < low:
            raise ValueError(f"piano-roll: high={high} is below low={low}")
        self.steps_per_quarter = steps_per_quarter
        self.low, self.high = low, high
        self.fit_range = fit_range
        self.range = (low, high)  # what encode keeps; fit may narrow it

    @property
    def pitches(self) -> int:
        return self.range[1] - self.range[0] + 1

    # --- reading ---------------------------------------------------------------------------------------

    def read(self, piece: Piece) -> np.ndarray:
        notes = quantise(piece_notes(piece), self.steps_per_quarter, piece.key)
        kept = [n for n in notes if self.low <= n.pitch <= self.high]
        if not kept:
            raise EncodeError(piece.key, f"no notes between MIDI pitches {self.low} and {self.high}")
        return self.roll(kept, self.low, self.high, piece.key, steps_per_quarter=self.steps_per_quarter)

    @staticmethod
    def roll(
        notes: Sequence[GridNote], low: int, high: int, name: str = "piece", *, steps_per_quarter: int = 4
    ) -> np.ndarray:
        """Grid notes as frames: columns [play low..high, onset low..high]; at most MAX_PIECE_STEPS frames."""
        width = high - low + 1
        length = max(n.end for n in notes)
        check_steps(length, steps_per_quarter, name)
        frames = np.zeros((length, 2 * width), dtype=np.uint8)
        for n in notes:
            column = n.pitch - low
            frames[n.start : n.end, column] = 1
            frames[n.start, width + column] = 1
        return frames

    def fit(self, readings: Sequence[np.ndarray]) -> None:
        if not self.fit_range:
            self.range = (self.low, self.high)
            return
        width = self.high - self.low + 1
        used = np.zeros(width, dtype=bool)
        for frames in readings:
            used |= frames[:, :width].any(axis=0)
        if not used.any():
            raise ValueError("piano-roll: the training split has no notes to fit the pitch range on")
        columns = np.flatnonzero(used)
        self.range = (self.low + int(columns[0]), self.low + int(columns[-1]))

    def encode(self, reading: np.ndarray) -> np.ndarray:
        width = self.high - self.low + 1
        first, last = self.range[0] - self.low, self.range[1] - self.low + 1
        return np.ascontiguousarray(
            np.concatenate([reading[:, first:last], reading[:, width + first : width + last]], axis=1), dtype=np.uint8
        )

    # --- decoding --------------------------------------------------------------------------------------

    def frames_notes(self, frames: np.ndarray) -> list[GridNote]:
        """Notes in frames: a note starts at an onset or where play begins, and lasts while play is on.

        Accepts model output as it comes: probabilities (cut at 0.5), or only the play half (onsets then
        come from where play begins). With both halves a note needs both bits where it starts, as every
        note of the training data has them: a sampled frame draws each bit on its own, and a lone play or
        onset bit would add a one-step note to every chord.
        """
        array = np.asarray(frames)
        if array.ndim != 2 or array.shape[1] not in (self.pitches, 2 * self.pitches):
            raise EncodeError("sample", f"expected frames of width {2 * self.pitches}, got shape {array.shape}")
        on = array >= 0.5 if array.dtype.kind == "f" else array > 0
        play = on[:, : self.pitches]
        before = np.vstack([np.zeros((1, self.pitches), dtype=bool), play[:-1]])
        starts = play & ~before
        if on.shape[1] == 2 * self.pitches:
            after = np.vstack([play[1:], np.zeros((1, self.pitches), dtype=bool)])
            # Struck, or played on for two steps or more; a lone onset or a one-step play bit is noise.
            starts = (on[:, self.pitches :] & play) | (starts & after)
        notes: list[GridNote] = []
        for column in np.flatnonzero(play.any(axis=0)):
            start = None
            for step in range(play.shape[0] + 1):
                sounding = step < play.shape[0] and play[step, column]
                struck = sounding and starts[step, column]
                if start is not None and (not sounding or struck):
                    notes.append(GridNote(start, step, self.range[0] + int(column)))
                    start = None
                if struck:
                    start = step
        return sorted(notes)

    def decode(self, array: np.ndarray) -> Score:
        notes = self.frames_notes(array)
        if not notes:
            raise EncodeError("sample", "the frames hold no notes")
        return notes_to_score(notes, self.steps_per_quarter)

    def score_frames(self, score: Score) -> np.ndarray:
        """A Score as encoded frames (the inverse of decode, for tests and primers)."""
        notes = [n for n in quantise(score_notes(score), self.steps_per_quarter) if self.low <= n.pitch <= self.high]
        if not notes:
            raise EncodeError("score", "no notes in range")
        return self.encode(self.roll(notes, self.low, self.high, steps_per_quarter=self.steps_per_quarter))

    def data_spec(self) -> DataSpec:
        return DataSpec(kind="frames", size=2 * self.pitches)

    def state(self) -> dict[str, Any]:
        return {"low": self.range[0], "high": self.range[1]}

    def load_state(self, state: Mapping[str, Any]) -> None:
        self.range = (int(state["low"]), int(state["high"]))
