"""MIDI events as tokens, in the style of performance RNN.

Tokens are `on:P` and `off:P` for MIDI pitch P, `shift:N` to move time on by N grid steps (at most
`max_shift_quarters` quarter notes per token), and with `velocity_bins` > 0 `vel:B`, the velocity bin of
the notes struck after it. At one instant the order is fixed (releases, then strikes, each by pitch), so
a piece has exactly one token sequence. MIDI files are read and written with mido; decoding builds a
mido MidiFile and reads it into music21. Repeats are kept as written.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from tui_composer.api import (
    DEFAULT_VELOCITY,
    EncodeError,
    GridNote,
    Piece,
    TokenEncoder,
    check_lengths,
    midi_notes,
    notes_to_midi,
    piece_notes,
    quantise,
)

if TYPE_CHECKING:
    import mido
    from music21.stream import Score


class MidiEventEncoder(TokenEncoder):
    name = "midi-events"

    def __init__(
        self, steps_per_quarter: int = 4, max_shift_quarters: int = 4, velocity_bins: int = 0, **params: Any
    ) -> None:
        super().__init__(
            steps_per_quarter=steps_per_quarter,
            max_shift_quarters=max_shift_quarters,
            velocity_bins=velocity_bins,
            **params,
        )
        self.steps_per_quarter = steps_per_quarter
        self.max_shift = steps_per_quarter * max_shift_quarters
        self.velocity_bins = velocity_bins
        self.vocabulary = None

    # --- events <-> notes ------------------------------------------------------------------------------

    def velocity_bin(self, velocity: int) -> int:
        return min(self.velocity_bins - 1, max(0, velocity) * self.velocity_bins // 128)

    def bin_velocity(self, velocity_bin: int) -> int:
        """The middle velocity of a bin (it falls back into the same bin)."""
        return min(127, max(1, int((velocity_bin + 0.5) * 128 / self.velocity_bins)))

    def events(self, notes: Iterable[GridNote]) -> list[str]:
        """The one token sequence of grid notes (which must not overlap per pitch; see notes.exclusive)."""
        moments: dict[int, tuple[list[int], list[GridNote]]] = {}
        for n in notes:
            moments.setdefault(n.end, ([], []))[0].append(n.pitch)
            moments.setdefault(n.start, ([], []))[1].append(n)
        tokens: list[str] = []
        now = 0
        velocity: int | None = None
        for time in sorted(moments):
            gap = time - now
            while gap > 0:
                step = min(gap, self.max_shift)
                tokens.append(f"shift:{step}")
                gap -= step
            now = time
            releases, strikes = moments[time]
            tokens.extend(f"off:{p}" for p in sorted(releases))
            for n in sorted(strikes, key=lambda n: n.pitch):
                if self.velocity_bins:
                    wanted = self.velocity_bin(n.velocity)
                    if wanted != velocity:
                        tokens.append(f"vel:{wanted}")
                        velocity = wanted
                tokens.append(f"on:{n.pitch}")
        return tokens

    def notes(self, tokens: Iterable[str]) -> list[GridNote]:
        """Grid notes played by tokens; forgiving, for model output: a strike of a sounding pitch releases it
        first, releases of silent pitches and unknown tokens are ignored, notes still on at the end stop there."""
        now = 0
        velocity = DEFAULT_VELOCITY
        sounding: dict[int, tuple[int, int]] = {}
        played: list[GridNote] = []

        def release(pitch: int) -> None:
            start, struck = sounding.pop(pitch)
            if now > start:
                played.append(GridNote(start, now, pitch, struck))

        for token in tokens:
            kind, _, value = token.partition(":")
            try:
                number = int(value)
            except ValueError:
                continue
            if kind == "shift" and number > 0:
                now += number
            elif kind == "vel" and self.velocity_bins and 0 <= number < self.velocity_bins:
                velocity = self.bin_velocity(number)
            elif kind == "on" and 0 <= number < 128:
                if number in sounding:
                    release(number)
                sounding[number] = (now, velocity if self.velocity_bins else DEFAULT_VELOCITY)
            elif kind == "off" and number in sounding:
                release(number)
        end = now
        for pitch, (start, struck) in sounding.items():
            played.append(GridNote(start, max(end, start + 1), pitch, struck))
        return sorted(played)

    def midi_events(self, midi: mido.MidiFile, name: str = "MIDI file") -> list[str]:
        """The tokens of a mido MidiFile (drums left out); EncodeError past the bounds of tui_composer.music.notes."""
        notes = midi_notes(midi, name)
        check_lengths(notes, name)
        return self.events(self._velocities(quantise(notes, self.steps_per_quarter, name)))

    def _velocities(self, notes: list[GridNote]) -> list[GridNote]:
        if self.velocity_bins:
            return notes
        return [GridNote(n.start, n.end, n.pitch, DEFAULT_VELOCITY) for n in notes]

    def to_midi(self, tokens: Sequence[str]) -> mido.MidiFile:
        notes = self.notes(tokens)
        if not notes:
            raise EncodeError("sample", "the events play no notes")
        return notes_to_midi(notes, self.steps_per_quarter)

    # --- the encoder lifecycle -------------------------------------------------------------------------

    def read(self, piece: Piece) -> list[str]:
        notes = self._velocities(quantise(piece_notes(piece), self.steps_per_quarter, piece.key))
        if not notes:
            raise EncodeError(piece.key, "no notes")
        return self.events(notes)

    def tokens(self, ids: Iterable[int]) -> list[str]:
        """Ids (with or without bos and eos) as tokens; unknown ids are dropped."""
        vocabulary = self.fitted_vocabulary()
        return vocabulary.decode(i for i in ids if int(i) != vocabulary.bos)

    def decode(self, array: np.ndarray) -> Score:
        from tui_composer.api import midi_to_score

        midi = self.to_midi(self.tokens(np.asarray(array).ravel()))
        return midi_to_score(midi, self.steps_per_quarter)
