"""Piano-roll frames: time steps x (play bits, then onset bits) over a pitch range.

The onset bit marks where a note is struck, so a repeated note is not merged into a held one.
`read` gives the roll over the full range (`low`..`high`), so a cached reading never depends on what
`fit` learns; `fit` may crop the range to the training split's pitches and `encode` applies the crop.
Repeats are kept as written.

`fit` also learns the texture of the training split: how many notes sound at once (`voices`: the fewest
that cover 99% of its frames) and the share of frames where nothing sounds (`silence`). Decoding a sample
keeps to that texture (`frames_notes`): a model draws each bit of a frame on its own, so a melody comes
out with notes held into the next one and scattered one-step rests that its training data never had.
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

# A sample keeps to the voices that cover this share of the training frames: the rare chord of a
# monophonic corpus (0.5% of O'Neill's frames) does not make it a two-voice one.
VOICES_COVER = 0.99
# Where fewer training frames than this are silent, a sampled gap is the draw's miss, not a rest
# (O'Neill's: 0.7%, the chorales: 0.8%, while samples drew 17% silent frames).
RARE_SILENCE = 0.02


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
        # The training split's texture; None (runs fitted before it was learned): samples decode as drawn.
        self.voices: int | None = None
        self.silence: float | None = None

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
        width = self.high - self.low + 1
        used = np.zeros(width, dtype=bool)
        counts = np.zeros(width + 1, dtype=np.int64)  # frames by the number of notes sounding in them
        for frames in readings:
            play = frames[:, :width]
            used |= play.any(axis=0)
            counts += np.bincount(play.sum(axis=1), minlength=width + 1)
        if not used.any():
            raise ValueError("piano-roll: the training split has no notes to fit the pitch range on")
        self.voices, self.silence = texture(counts)
        if not self.fit_range:
            self.range = (self.low, self.high)
            return
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

        Fitted on a split (`voices`, `silence`), the notes keep to its texture: at most `voices` sound at
        once, the notes struck in a frame before those held from earlier, higher before lower (a struck note
        ends the one held into it, as in a melody); and where the split hardly ever rests, a frame with
        nothing struck or held lets the notes before it ring on instead of leaving a rest, a ringing note
        whose play resumes without an onset bit goes on (it is not struck again), and the silent frames
        before the first note are dropped.
        """
        array = np.asarray(frames)
        if array.ndim != 2 or array.shape[1] not in (self.pitches, 2 * self.pitches):
            raise EncodeError("sample", f"expected frames of width {2 * self.pitches}, got shape {array.shape}")
        on = array >= 0.5 if array.dtype.kind == "f" else array > 0
        play = on[:, : self.pitches]
        before = np.vstack([np.zeros((1, self.pitches), dtype=bool), play[:-1]])
        starts = play & ~before
        struck_bits = starts
        if on.shape[1] == 2 * self.pitches:
            after = np.vstack([play[1:], np.zeros((1, self.pitches), dtype=bool)])
            struck_bits = on[:, self.pitches :] & play
            # Struck, or played on for two steps or more; a lone onset or a one-step play bit is noise.
            starts = struck_bits | (starts & after)
        voices = self.voices if self.voices is not None else self.pitches
        ring_on = self.silence is not None and self.silence < RARE_SILENCE
        notes: list[GridNote] = []
        sounding: dict[int, int] = {}  # column -> the step its note started
        for step in range(play.shape[0]):
            # A note that rang on through a gap goes on where its play resumes without an onset bit.
            restarts = (starts[step] & ~np.isin(np.arange(self.pitches), list(sounding))) | struck_bits[step]
            struck = np.flatnonzero(restarts)[::-1]
            held = [c for c in sorted(sounding, reverse=True) if play[step, c] and not restarts[c]]
            kept = [int(c) for c in struck][:voices]
            kept += held[: voices - len(kept)]
            if not kept and ring_on:
                continue  # nothing struck or held: what sounded rings on through the gap
            for column in [c for c in sounding if c not in kept or restarts[c]]:
                notes.append(GridNote(sounding.pop(column), step, self.range[0] + column))
            for column in kept:
                sounding.setdefault(column, step)
        end = play.shape[0]
        notes += [GridNote(start, end, self.range[0] + column) for column, start in sounding.items()]
        notes.sort()
        if ring_on and notes and notes[0].start:
            # and it starts with its first note: a model that learned pickups placed late in their first bar
            # began 3% of its samples (rbm x piano-roll on oneills) with a rest the corpus never has
            first = notes[0].start
            notes = [GridNote(n.start - first, n.end - first, n.pitch, n.velocity) for n in notes]
        return notes

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
        return {"low": self.range[0], "high": self.range[1], "voices": self.voices, "silence": self.silence}

    def load_state(self, state: Mapping[str, Any]) -> None:
        self.range = (int(state["low"]), int(state["high"]))
        # Runs fitted before the texture was learned have none: their samples decode as they always did.
        voices, silence = state.get("voices"), state.get("silence")
        self.voices = None if voices is None else int(voices)
        self.silence = None if silence is None else float(silence)


def texture(counts: np.ndarray) -> tuple[int, float]:
    """(voices, silence) of frames counted by notes sounding: the fewest notes that cover `VOICES_COVER` of
    the frames (at least 1), and the share of frames with none."""
    total = max(int(counts.sum()), 1)
    covered = np.cumsum(counts) / total
    voices = max(1, int(np.searchsorted(covered, VOICES_COVER - 1e-9)))
    return voices, float(counts[0] / total)
