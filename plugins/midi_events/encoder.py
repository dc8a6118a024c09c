"""MIDI events as tokens, in the style of performance RNN.

Tokens are `on:P` and `off:P` for MIDI pitch P, `shift:N` to move time on by N grid steps (at most
`max_shift_quarters` quarter notes per token), with `bar_lines` a `bar` where a written bar begins, and
with `velocity_bins` > 0 `vel:B`, the velocity bin of the notes struck after it. At one instant the order
is fixed (the bar line, releases, then strikes, each by pitch), so a piece has exactly one token
sequence. MIDI files are read and written with mido. Repeats are kept as written.

The bar lines are what lets a model count: without them a char-lstm trained 10 minutes on O'Neill's tunes
ended 34% of its tunes within 8 bars (the corpus: none), with no sense of where a tune stands. Decoding
takes the meter from where the model put them.

Decoding is forgiving, and learns from the training split how notes behave (`Texture`, fitted with the
vocabulary and saved with it): a model that forgets an `off:` holds a note through everything after it, so
a held note is cut when a later strike would sound more notes at once than the training pieces do, when it
lasts longer than their longest note, and a silence longer than their longest is shortened; where they
hardly rest, a silence the model leaves between notes is its miss, and the notes before it ring on. Grid notes
become a Score with `notes_to_score`, which infers the meter and the key. A run saved before the texture
existed decodes as before (nothing cut).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from tui_composer.api import (
    DEFAULT_VELOCITY,
    EncodeError,
    GridNote,
    Note,
    Piece,
    TokenConstraint,
    TokenEncoder,
    Vocabulary,
    check_lengths,
    midi_bars,
    midi_notes,
    notes_to_midi,
    notes_to_score,
    piece_notes_and_bars,
    quantise,
)

if TYPE_CHECKING:
    import mido
    from music21.stream import Score

# The polyphony a decoded sample may keep: the notes sounding at this share of the training pieces' strikes.
# 0.95 ignores a tune's closing chord or a double stop (O'Neill's: 98% of strikes sound alone; Bach: four).
VOICES_QUANTILE = 0.95
BAR = "bar"
# Where the training pieces are silent less than this share of their time, a sampled gap between a release
# and the next strike is the model's miss, not a rest: the notes before it ring on (O'Neill's training split
# is silent 0.57% of its time, while a char-lstm's samples rested 1.1%, nearly all in gaps of one or two
# sixteenths). As the piano roll does.
RARE_SILENCE = 0.02


@dataclass(frozen=True)
class Texture:
    """How the training pieces' notes behave, in grid steps: what a decoded sample is held to."""

    voices: int  # notes sounding at once, just after a strike, at VOICES_QUANTILE of the strikes
    longest_note: int
    longest_rest: int  # a silence between notes (or before the first)
    silence: float | None = None  # the share of the pieces' time with nothing sounding (None: runs before it)

    @property
    def rings_on(self) -> bool:
        return self.silence is not None and self.silence < RARE_SILENCE

    @classmethod
    def of(cls, pieces: Iterable[Sequence[GridNote]]) -> Texture | None:
        """The texture of grid notes of several pieces; None when they hold no notes."""
        sounding_at_strikes: Counter[int] = Counter()
        longest_note = longest_rest = 0
        silent = heard = 0
        for notes in pieces:
            sounding_at_strikes.update(_sounding_at(notes, sorted({n.start for n in notes})))
            heard_until = 0
            for n in sorted(notes):
                longest_rest = max(longest_rest, n.start - heard_until)
                longest_note = max(longest_note, n.end - n.start)
                silent += max(0, n.start - heard_until) if heard_until else 0
                heard_until = max(heard_until, n.end)
            heard += heard_until - min((n.start for n in notes), default=0)
        total = sum(sounding_at_strikes.values())
        if not total:
            return None
        covered = 0
        voices = max(sounding_at_strikes)
        for sounding, count in sorted(sounding_at_strikes.items()):
            covered += count
            if covered >= VOICES_QUANTILE * total:
                voices = sounding
                break
        silence = round(silent / heard, 4) if heard else None
        return cls(voices=voices, longest_note=longest_note, longest_rest=longest_rest, silence=silence)


def _sounding_at(notes: Sequence[GridNote], onsets: Sequence[int]) -> list[int]:
    """How many notes sound just after each onset (a sweep: ends before starts at one step)."""
    changes = sorted([(n.start, 1) for n in notes] + [(n.end, -1) for n in notes], key=lambda c: (c[0], c[1]))
    counts, sounding, index = [], 0, 0
    for onset in onsets:
        while index < len(changes) and changes[index][0] <= onset:
            sounding += changes[index][1]
            index += 1
        counts.append(sounding)
    return counts


def _ringing_on(notes: Sequence[GridNote]) -> list[GridNote]:
    """The notes with every silence closed: the notes that ended where one begins last until the next strike."""
    ringing = sorted(notes)
    heard_until = 0  # when the music last fell silent
    last: list[int] = []  # the indexes of the notes that ended there
    for index, n in enumerate(ringing):
        if last and n.start > heard_until:
            for held in last:
                ringing[held] = GridNote(ringing[held].start, n.start, ringing[held].pitch, ringing[held].velocity)
            heard_until = n.start
        if n.end > heard_until:
            heard_until, last = n.end, [index]
        elif n.end == heard_until:
            last.append(index)
    return sorted(ringing)


class MidiEventEncoder(TokenEncoder):
    name = "midi-events"

    def __init__(
        self,
        steps_per_quarter: int = 4,
        max_shift_quarters: int = 4,
        velocity_bins: int = 0,
        bar_lines: bool = True,
        **params: Any,
    ) -> None:
        super().__init__(
            steps_per_quarter=steps_per_quarter,
            max_shift_quarters=max_shift_quarters,
            velocity_bins=velocity_bins,
            bar_lines=bar_lines,
            **params,
        )
        self.steps_per_quarter = steps_per_quarter
        self.max_shift = steps_per_quarter * max_shift_quarters
        self.velocity_bins = velocity_bins
        self.bar_lines = bar_lines
        self.vocabulary = None
        self.texture: Texture | None = None  # fitted: what decoding holds samples to (None: nothing cut)

    # --- events <-> notes ------------------------------------------------------------------------------

    def velocity_bin(self, velocity: int) -> int:
        return min(self.velocity_bins - 1, max(0, velocity) * self.velocity_bins // 128)

    def bin_velocity(self, velocity_bin: int) -> int:
        """The middle velocity of a bin (it falls back into the same bin)."""
        return min(127, max(1, int((velocity_bin + 0.5) * 128 / self.velocity_bins)))

    def events(self, notes: Iterable[GridNote], bars: Iterable[int] = ()) -> list[str]:
        """The one token sequence of grid notes (which must not overlap per pitch; see notes.exclusive), with
        a `bar` at each of the grid steps `bars` inside the music when `bar_lines` is on."""
        moments: dict[int, tuple[list[int], list[GridNote]]] = {}
        for n in notes:
            moments.setdefault(n.end, ([], []))[0].append(n.pitch)
            moments.setdefault(n.start, ([], []))[1].append(n)
        last = max(moments, default=0)
        bar_steps = {b for b in bars if 0 < b < last} if self.bar_lines else set()
        for step in bar_steps:
            moments.setdefault(step, ([], []))
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
            if time in bar_steps:
                tokens.append(BAR)
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
        """Grid notes played by tokens (see `play`)."""
        return self.play(tokens)[0]

    def play(self, tokens: Iterable[str]) -> tuple[list[GridNote], list[int]]:
        """Grid notes played by tokens, and the steps of their bar lines; forgiving, for model output: a
        strike of a sounding pitch releases it first, releases of silent pitches and unknown tokens are
        ignored, notes still on at the end stop there.

        With a fitted texture, a note struck earlier is released where a strike would sound more notes than
        `texture.voices` (oldest first; notes struck together stay a chord), a note stops after
        `texture.longest_note` steps, and a silence lasts at most `texture.longest_rest` steps; where the
        training pieces hardly rest (`texture.rings_on`), the notes before a silence ring on through it.
        """
        texture = self.texture
        now = 0
        heard_until = 0  # when the last release happened: a silence is measured from there
        velocity = DEFAULT_VELOCITY
        sounding: dict[int, tuple[int, int]] = {}
        played: list[GridNote] = []
        bars: list[int] = []

        def release(pitch: int, at: int) -> None:
            nonlocal heard_until
            start, struck = sounding.pop(pitch)
            if at > start:
                played.append(GridNote(start, at, pitch, struck))
            heard_until = max(heard_until, at)

        def advance(steps: int) -> int:
            later = now + steps
            if texture is None:
                return later
            for pitch, (start, _) in list(sounding.items()):
                if later - start > texture.longest_note:
                    release(pitch, start + texture.longest_note)
            if not sounding:
                later = min(later, max(now, heard_until + texture.longest_rest))
            return later

        for token in tokens:
            if token == BAR:
                bars.append(now)
                continue
            kind, _, value = token.partition(":")
            try:
                number = int(value)
            except ValueError:
                continue
            if kind == "shift" and number > 0:
                now = advance(number)
            elif kind == "vel" and self.velocity_bins and 0 <= number < self.velocity_bins:
                velocity = self.bin_velocity(number)
            elif kind == "on" and 0 <= number < 128:
                if number in sounding:
                    release(number, now)
                if texture is not None:
                    held = sorted((start, pitch) for pitch, (start, _) in sounding.items() if start < now)
                    while held and len(sounding) >= texture.voices:
                        release(held.pop(0)[1], now)
                sounding[number] = (now, velocity if self.velocity_bins else DEFAULT_VELOCITY)
            elif kind == "off" and number in sounding:
                release(number, now)
        end = now
        for pitch, (start, struck) in sounding.items():
            stop = max(end, start + 1) if texture is None else min(max(end, start + 1), start + texture.longest_note)
            played.append(GridNote(start, stop, pitch, struck))
        if texture is not None and texture.rings_on:
            return _ringing_on(played), bars
        return sorted(played), bars

    def midi_events(self, midi: mido.MidiFile, name: str = "MIDI file") -> list[str]:
        """The tokens of a mido MidiFile (drums left out); EncodeError past the bounds of tui_composer.music.notes."""
        notes = midi_notes(midi, name)
        check_lengths(notes, name)
        return self._read(notes, midi_bars(midi, max(n.end for n in notes)), name)

    def _read(self, notes: Sequence[Note], bars: Sequence[float], name: str) -> list[str]:
        """The tokens of notes and bar lines in quarter notes, on this encoder's grid."""
        grid = self._velocities(quantise(notes, self.steps_per_quarter, name))
        if not grid:
            raise EncodeError(name, "no notes")
        return self.events(grid, (round(b * self.steps_per_quarter) for b in bars))

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
        return self._read(*piece_notes_and_bars(piece), piece.key)

    def fit(self, readings: Sequence[Sequence[str]]) -> None:
        super().fit(readings)
        self.texture = None  # the readings are the training pieces as they are: nothing cut
        self.texture = Texture.of([self.notes(reading) for reading in readings])

    def state(self) -> dict[str, Any]:
        state = super().state()
        if self.texture is not None:
            state["texture"] = asdict(self.texture)
        return state

    def load_state(self, state: Mapping[str, Any]) -> None:
        super().load_state(state)
        # a run saved before bar lines has none in its vocabulary: its primers are read without them too
        self.bar_lines = self.bar_lines and BAR in self.fitted_vocabulary().symbols
        texture = state.get("texture")  # runs saved before it have none: their samples decode as before
        self.texture = Texture(**texture) if isinstance(texture, Mapping) else None

    def constraint(self) -> StrikesFirst:
        return StrikesFirst(self.fitted_vocabulary())

    def tokens(self, ids: Iterable[int]) -> list[str]:
        """Ids (with or without bos and eos) as tokens; unknown ids are dropped."""
        vocabulary = self.fitted_vocabulary()
        return vocabulary.decode(i for i in ids if int(i) != vocabulary.bos)

    def decode(self, array: np.ndarray) -> Score:
        """Ids as a one-part Score of the notes they play (chords where notes sound together), in an inferred
        meter and key; EncodeError when they play none."""
        notes, bars = self.play(self.tokens(np.asarray(array).ravel()))
        if not notes:
            raise EncodeError("sample", "the events play no notes")
        return notes_to_score(notes, self.steps_per_quarter, bars=bars)


class StrikesFirst(TokenConstraint):
    """Constrained sampling of events: the piece may end only once it plays a note, i.e. while a note
    sounds or after time passed with one sounding (`on:60 off:60` alone plays nothing). 2 of 100 samples of
    a char-lstm trained 10 minutes on O'Neill's tunes played nothing and could not be written as tunes;
    nothing else is forbidden, so the lengths stay the model's. A state: (played, pitches sounding)."""

    def __init__(self, vocabulary: Vocabulary) -> None:
        self.eos = vocabulary.eos
        self.moves: list[tuple[str, int]] = []  # per id: ("on" | "off", pitch), ("shift", 0) or ("", 0)
        for symbol in vocabulary.symbols:
            kind, _, value = symbol.partition(":")
            number = int(value) if value.isdigit() else 0
            self.moves.append((kind, number) if kind in ("on", "off") or (kind == "shift" and number) else ("", 0))
        self.anything = np.ones(len(vocabulary), bool)
        self.no_end = self.anything.copy()
        self.no_end[self.eos] = False

    def start(self) -> tuple[bool, frozenset[int]]:
        return False, frozenset()

    def allowed(self, state: tuple[bool, frozenset[int]]) -> np.ndarray:
        played, sounding = state
        return self.anything if played or sounding else self.no_end

    def allows(self, state: tuple[bool, frozenset[int]], token: int) -> bool:
        return token != self.eos or state[0] or bool(state[1])

    def advance(self, state: tuple[bool, frozenset[int]], token: int) -> tuple[bool, frozenset[int]]:
        played, sounding = state
        kind, number = self.moves[token]
        if kind == "on":
            return played, sounding | {number}
        if kind == "off":
            return played, sounding - {number}
        if kind == "shift":
            return played or bool(sounding), sounding
        return state
