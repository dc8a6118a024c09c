"""Notes as plain numbers: the common ground of the event and piano-roll encoders.

A piece becomes a list of `Note(start, end, pitch, velocity)` with times in quarter notes and tied notes
joined. MIDI files are read with mido (exact and fast); ABC and MusicXML through music21. Repeats are
kept as written, not played out. Going back, `notes_to_score` builds a music21 Score from notes on a
grid, and `notes_to_midi` a mido MidiFile.

Every encoder bounds what it reads with the limits below (`check_lengths`, `check_length`, and `quantise`
for grid steps): a hostile 60-byte tune with one note of a billion quarters must be refused before
anything the size of its music is built. The limits are in quarter notes, not seconds: a grid and a
token sequence grow with quarters whatever the tempo.
"""

from __future__ import annotations

import io
import itertools
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from tui_composer.plugin.contract import EncodeError, Piece

if TYPE_CHECKING:
    import mido
    from music21.stream import Score

DRUM_CHANNEL = 9  # MIDI channel 10: percussion, no pitches
DEFAULT_VELOCITY = 80
TICKS_PER_QUARTER = 480

# Bounds on what an encoder reads (public: tui_composer.api re-exports them). Real music stays far inside.
MAX_NOTE_QUARTERS = 64  # one note, tied notes joined: sixteen 4/4 bars
MAX_REST_QUARTERS = 64  # one silence, in every part at once
MAX_BAR_QUARTERS = 256  # one written ABC bar: music21 re-bars an overfull one in 0.5 s at 256, 11 s at 512
MAX_PIECE_QUARTERS = 16_384  # a whole piece: over two hours at 120 beats per minute
MAX_PIECE_STEPS = 200_000  # a piece on an encoder's grid: 200,000 frames of a piano roll are 35 MB
_LIMITS = {
    "note": ("MAX_NOTE_QUARTERS", MAX_NOTE_QUARTERS),
    "rest": ("MAX_REST_QUARTERS", MAX_REST_QUARTERS),
    "bar": ("MAX_BAR_QUARTERS", MAX_BAR_QUARTERS),
    "piece": ("MAX_PIECE_QUARTERS", MAX_PIECE_QUARTERS),
}


@dataclass(frozen=True, order=True)
class Note:
    start: float  # quarter notes from the beginning
    end: float
    pitch: int  # MIDI pitch
    velocity: int = DEFAULT_VELOCITY


# --- bounds ----------------------------------------------------------------------------------------------


def _quarters(value: float) -> str:
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def check_length(kind: str, quarters: float, name: str, *, at: float | None = None) -> None:
    """EncodeError naming the bound when a `kind` ("note", "rest", "bar" or "piece") of `quarters` is over its
    limit."""
    constant, limit = _LIMITS[kind]
    if quarters <= limit:
        return
    where = f" at quarter {_quarters(at)}" if at is not None else ""
    raise EncodeError(
        name,
        f"a {kind} of {_quarters(quarters)} quarters{where} is longer than the {limit:,}-quarter limit "
        f"(tui_composer.api.{constant}); shorten it or leave the piece out",
    )


def check_lengths(notes: Iterable[Note], name: str) -> None:
    """EncodeError unless every note, every silence between notes (and before the first) and the whole piece
    are within MAX_NOTE_QUARTERS, MAX_REST_QUARTERS and MAX_PIECE_QUARTERS."""
    heard_until = 0.0
    for n in sorted(notes):
        check_length("rest", n.start - heard_until, name, at=heard_until)
        check_length("note", n.end - n.start, name, at=n.start)
        heard_until = max(heard_until, n.end)
    check_length("piece", heard_until, name)


def check_abc_lengths(tokens: Iterable[Any], name: str) -> None:
    """The bounds on an ABC tune's music21 tokens (`ABCHandler.tokens`, after `process`), per voice, before
    music21 builds a stream: its reader re-bars an overfull measure into a meter as long as the bar, so
    `C9999|D8|E8|` (or 300 `C8` in one bar) runs for minutes and a billion quarters run out of memory.
    Lengths are as written (a triplet's notes count their written length)."""
    from music21 import abcFormat

    voice = ""
    written: dict[str, float] = {}  # quarters written so far in each voice
    bar_start: dict[str, float] = {}  # where each voice's current bar began
    for token in tokens:
        if isinstance(token, abcFormat.ABCMetadata) and token.isVoice():
            voice = (token.data.split() or [""])[0]
        elif isinstance(token, abcFormat.ABCBar):
            bar_start[voice] = written.get(voice, 0.0)
        elif isinstance(token, abcFormat.ABCNote) and not token.inGrace:
            length = float(token.quarterLength)
            at = written.get(voice, 0.0)
            check_length("rest" if token.isRest else "note", length, name, at=at)
            written[voice] = at + length
            check_length("bar", written[voice] - bar_start.get(voice, 0.0), name, at=bar_start.get(voice, 0.0))
            check_length("piece", written[voice], name)


def check_steps(steps: int, steps_per_quarter: int, name: str) -> None:
    """EncodeError when a piece spans more than MAX_PIECE_STEPS steps of a `steps_per_quarter` grid."""
    if steps > MAX_PIECE_STEPS:
        raise EncodeError(
            name,
            f"{steps:,} steps of 1/{steps_per_quarter} quarter are more than the {MAX_PIECE_STEPS:,}-step limit "
            "(tui_composer.api.MAX_PIECE_STEPS); use a coarser steps_per_quarter or a shorter piece",
        )


def piece_notes(piece: Piece) -> list[Note]:
    """The notes of any piece, sorted by start and pitch; EncodeError (naming the piece) when there are none
    or when they are longer than the bounds above allow."""
    return piece_notes_and_bars(piece)[0]


def piece_notes_and_bars(piece: Piece) -> tuple[list[Note], list[float]]:
    """The notes of any piece (as `piece_notes`) and where its bars begin, in quarter notes: every bar line
    as written before the last note ends, the start left out (a pickup's bar line is its first)."""
    if piece.format == "midi":
        midi = _open_midi(piece)
        notes = midi_notes(midi, piece.key)
        check_lengths(notes, piece.key)
        return notes, midi_bars(midi, max(n.end for n in notes))
    from tui_composer.music.export import parse_piece

    score = parse_piece(piece)
    notes = score_notes(score)
    if not notes:
        raise EncodeError(piece.key, "no pitched notes")
    check_lengths(notes, piece.key)
    return notes, score_bars(score, max(n.end for n in notes))


def _open_midi(piece: Piece) -> mido.MidiFile:
    import mido

    try:
        return mido.MidiFile(piece.path)
    except (OSError, EOFError, ValueError, KeyError, IndexError, TypeError) as error:
        raise EncodeError(piece.key, f"truncated or invalid MIDI file ({_short(error)})") from None


def _short(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text}"[:200] if text else type(error).__name__


def midi_notes(midi: mido.MidiFile, name: str = "MIDI file") -> list[Note]:
    """Notes of a mido MidiFile (every track, drums left out), times in quarter notes."""
    per_quarter = midi.ticks_per_beat or TICKS_PER_QUARTER
    notes: list[Note] = []
    drums = 0
    for track in midi.tracks:
        tick = 0
        sounding: dict[tuple[int, int], list[tuple[int, int]]] = {}  # (channel, pitch) -> [(start, velocity)]
        for message in track:
            tick += message.time
            if message.type not in ("note_on", "note_off"):
                continue
            if message.channel == DRUM_CHANNEL:
                drums += message.type == "note_on" and message.velocity > 0
                continue
            key = (message.channel, message.note)
            if message.type == "note_on" and message.velocity > 0:
                sounding.setdefault(key, []).append((tick, message.velocity))
            elif sounding.get(key):
                start, velocity = sounding[key].pop(0)  # first in, first out: overlapping same pitches
                notes.append(Note(start / per_quarter, tick / per_quarter, message.note, velocity))
        for (_, pitch), starts in sounding.items():  # never released: end at the track's end
            notes.extend(Note(start / per_quarter, max(tick, start + 1) / per_quarter, pitch, v) for start, v in starts)
    if not notes:
        raise EncodeError(name, "only drums (channel 10), no pitched notes" if drums else "no notes")
    return sorted(notes)


def midi_bars(midi: mido.MidiFile, end: float) -> list[float]:
    """Where the bars of a mido MidiFile begin before `end` (quarter notes), the start left out: from its
    time signatures, 4/4 where it has none (as MIDI means); a signature met inside a bar starts a bar.
    A bar is at least a sixteenth long, so a piece within MAX_PIECE_QUARTERS has at most 65,536."""
    per_quarter = midi.ticks_per_beat or TICKS_PER_QUARTER
    shortest = max(1, per_quarter // 4)
    changes: list[tuple[int, int]] = []  # (tick, ticks per bar)
    for track in midi.tracks:
        tick = 0
        for message in track:
            tick += message.time
            if message.type == "time_signature":
                bar = message.numerator * per_quarter * 4 // max(1, message.denominator)
                changes.append((tick, max(shortest, bar)))
    changes.sort()
    end_tick = end * per_quarter
    bars: list[float] = []
    position, length, index = 0, 4 * per_quarter, 0
    while True:
        while index < len(changes) and changes[index][0] <= position:
            length = changes[index][1]
            index += 1
        following = position + length
        if index < len(changes) and changes[index][0] < following:
            following = changes[index][0]
        if following >= end_tick:
            return bars
        bars.append(following / per_quarter)
        position = following


def score_bars(score: Any, end: float) -> list[float]:
    """Where the measures of a music21 score's first part begin before `end`, the start left out."""
    from music21 import stream

    parts = list(score.parts) or [score]
    offsets = {float(m.offset) for m in parts[0].getElementsByClass(stream.Measure)}
    return sorted(o for o in offsets if 0 < o < end)


def score_notes(score: Any) -> list[Note]:
    """Notes of a music21 stream with tied notes joined; grace notes, chord symbols and drums left out."""
    from music21 import harmony

    notes: list[Note] = []
    open_ties: dict[int, int] = {}  # pitch -> index in `notes` of a note whose tie goes on
    for element in score.flatten().notes:
        if element.duration.isGrace or isinstance(element, harmony.Harmony) or not hasattr(element, "pitches"):
            continue
        start = float(element.offset)
        end = start + float(element.duration.quarterLength)
        velocity = DEFAULT_VELOCITY
        if element.hasVolumeInformation() and element.volume.velocity is not None:
            velocity = int(element.volume.velocity)
        members = element.notes if element.isChord else [element]
        for member in members:
            pitch = member.pitch.midi
            tie = member.tie.type if member.tie is not None else None  # a chord's own .tie is any member's
            index = open_ties.pop(pitch, None)
            if index is not None and tie in ("continue", "stop") and abs(notes[index].end - start) < 1e-6:
                held = notes[index]
                notes[index] = Note(held.start, end, pitch, held.velocity)
            else:
                index = len(notes)
                notes.append(Note(start, end, pitch, velocity))
            if tie in ("start", "continue"):
                open_ties[pitch] = index
    return sorted(notes)


# --- the grid ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class GridNote:
    """A note on a grid of `steps_per_quarter` steps: integer start and end steps, end > start."""

    start: int
    end: int
    pitch: int
    velocity: int = DEFAULT_VELOCITY


def quantise(notes: Iterable[Note], steps_per_quarter: int, name: str = "piece") -> list[GridNote]:
    """Notes snapped to the grid; a note shorter than a step lasts one step, and overlapping notes of one
    pitch are cut where the next one starts (a piano key can't be struck twice at once). EncodeError
    (naming `name`) when they reach past MAX_PIECE_STEPS."""
    notes = list(notes)
    check_steps(round(max((n.end for n in notes), default=0.0) * steps_per_quarter), steps_per_quarter, name)
    snapped = sorted(
        GridNote(s, max(s + 1, round(n.end * steps_per_quarter)), n.pitch, n.velocity)
        for n in notes
        for s in [round(n.start * steps_per_quarter)]
    )
    return exclusive(snapped)


def exclusive(notes: Sequence[GridNote]) -> list[GridNote]:
    """Per pitch, no two notes overlap: the earlier one ends where the later starts; same start: the longer."""
    by_pitch: dict[int, list[GridNote]] = {}
    for note in sorted(notes, key=lambda n: (n.pitch, n.start, -n.end)):
        kept = by_pitch.setdefault(note.pitch, [])
        if kept and kept[-1].start == note.start:
            continue
        if kept and kept[-1].end > note.start:
            previous = kept[-1]
            kept[-1] = GridNote(previous.start, note.start, previous.pitch, previous.velocity)
        kept.append(note)
    return sorted(n for kept in by_pitch.values() for n in kept)


# Meters a score of grid notes may be given: bar, beat and the metric levels below, in quarter notes (a
# position on more levels is stronger). Listed by preference: a near tie goes to the earlier one.
METERS: dict[str, tuple[Fraction, ...]] = {
    "4/4": (Fraction(4), Fraction(1), Fraction(2), Fraction(1, 2), Fraction(1, 4)),
    "6/8": (Fraction(3), Fraction(3, 2), Fraction(1, 2), Fraction(1, 4)),
    "3/4": (Fraction(3), Fraction(1), Fraction(1, 2), Fraction(1, 4)),
    "2/4": (Fraction(2), Fraction(1), Fraction(1, 2), Fraction(1, 4)),
    "9/8": (Fraction(9, 2), Fraction(3, 2), Fraction(1, 2), Fraction(1, 4)),
    "12/8": (Fraction(6), Fraction(3, 2), Fraction(3), Fraction(1, 2), Fraction(1, 4)),
}
METER_TIE = 0.03  # a meter whose periodicity is this close to the best one's counts as a tie
PICKUP_MARGIN = 0.1  # a pickup must fit the metric weights this much better than starting on a bar line


@dataclass(frozen=True)
class MeterFit:
    meter: str
    pickup: int  # grid steps before the first bar line (0: the music starts on one)
    periodicity: float  # the mean autocorrelation of the accents at the bar's and the beat's length


def infer_meter(notes: Sequence[GridNote], steps_per_quarter: int, bars: Sequence[int] = ()) -> MeterFit:
    """The meter (of METERS) under which the notes repeat best, and where its first bar line falls.

    Each onset is accented by the length of its notes (long notes fall on strong beats). The meter is the
    one whose bar and beat lengths give the highest autocorrelation of the accents (as in Brown 1993 and
    Toiviainen and Eerola 2006), the first listed among those within METER_TIE; it can't tell a meter
    from its double (2/4 from 4/4), so the order decides those. On O'Neill's tunes it finds the written
    meter's kind (duple, triple, compound; 2/4 counted as 4/4, 12/8 as 6/8) for 81% of them. The pickup
    is the phase at which the accents, folded onto one bar, best match the meter's metric weights.
    Too few onsets to tell (under eight) give 4/4 with no pickup.

    `bars`, the grid steps where a model put bar lines, narrow it down: the meter is then one whose bar is
    their most common spacing, and the first of them ends the pickup (they are ignored when no meter of
    METERS has that bar).
    """
    import numpy as np

    meters, pickup = _meters_of_bars(bars, steps_per_quarter)
    if len({n.start for n in notes}) < 8:
        return MeterFit(next(iter(meters)), pickup or 0, 0.0)
    accents = np.zeros(max(n.end for n in notes) + 1)
    for n in notes:
        accents[n.start] += n.end - n.start
    centred = accents - accents.mean()
    energy = float((centred * centred).mean()) or 1.0

    def autocorrelation(quarters: Fraction) -> float:
        lag = quarters * steps_per_quarter
        if lag.denominator != 1 or not 0 < lag < len(centred) - 1:
            return 0.0
        lag_steps = int(lag)
        return float((centred[:-lag_steps] * centred[lag_steps:]).mean()) / energy

    scored = [
        (meter, (autocorrelation(levels[0]) + autocorrelation(levels[1])) / 2) for meter, levels in meters.items()
    ]
    top = max(score for _, score in scored)
    meter, periodicity = next((meter, score) for meter, score in scored if score >= top - METER_TIE)
    if pickup is None:
        pickup = _pickup(accents, METERS[meter], steps_per_quarter)
    return MeterFit(meter, pickup, periodicity)


def _meters_of_bars(bars: Sequence[int], steps_per_quarter: int) -> tuple[dict[str, tuple[Fraction, ...]], int | None]:
    """The meters whose bar is the most common spacing of `bars`, and the steps before the first of them;
    every meter and no pickup (None: to be inferred) when there are fewer than two or no meter fits."""
    steps = sorted(set(bars))
    if len(steps) < 2:
        return METERS, None
    spacing = Counter(b - a for a, b in itertools.pairwise(steps)).most_common(1)[0][0]
    bar = Fraction(spacing, steps_per_quarter)
    fitting = {meter: levels for meter, levels in METERS.items() if levels[0] == bar}
    if not fitting:
        return METERS, None
    return fitting, steps[0] % spacing


def _pickup(accents: Any, levels: Sequence[Fraction], steps_per_quarter: int) -> int:
    """The steps before the first bar line: the phase where the accents folded onto a bar best correlate
    with the metric weights, when it fits clearly better than none (0 when the bar is not a whole number
    of steps)."""
    import numpy as np

    bar = levels[0] * steps_per_quarter
    if bar.denominator != 1:
        return 0
    steps = int(bar)
    weights = np.zeros(steps)
    for level in levels:
        period = level * steps_per_quarter
        if period.denominator == 1:
            weights[:: int(period)] += 1
    folded = np.zeros(steps)
    np.add.at(folded, np.arange(len(accents)) % steps, accents)
    fits = [_correlation(np.roll(folded, -phase), weights) for phase in range(steps)]
    best = int(np.argmax(fits))
    return best if fits[best] > fits[0] + PICKUP_MARGIN else 0


def _correlation(a: Any, b: Any) -> float:
    import numpy as np

    if a.std() == 0 or b.std() == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def notes_to_score(
    notes: Sequence[GridNote],
    steps_per_quarter: int,
    *,
    meter: str | None = None,
    key: str | None = None,
    bars: Sequence[int] = (),
) -> Score:
    """A one-part Score playing grid notes: a chord per span where the sounding notes stay the same,
    tied where a note goes on, then measures of `meter` (ties added across barlines), in `key`.

    With no `meter` it is inferred (`infer_meter` from the notes and the model's `bars` if it gave any, with
    its pickup: the first measure is short); with no
    `key`, music21's Krumhansl-Schmuckler key analysis (Krumhansl-Kessler profiles) chooses one, and black
    keys are spelled as flats in flat keys.
    """
    from music21 import chord, note, stream, tie
    from music21 import key as m21key
    from music21 import meter as m21meter

    notes = exclusive(notes)
    if not notes:
        raise ValueError("no notes")
    pickup = 0
    if meter is None:
        fitted = infer_meter(notes, steps_per_quarter, bars)
        meter, pickup = fitted.meter, fitted.pickup
    part = stream.Part()
    part.append(m21meter.TimeSignature(meter))
    bar = int(Fraction(m21meter.TimeSignature(meter).barDuration.quarterLength) * steps_per_quarter)
    # a pickup starts the first bar late: the notes are played after a rest that the first measure drops
    # (only for music that starts at once; a leading silence is kept as written)
    lead = (bar - pickup) % bar if pickup and min(n.start for n in notes) == 0 else 0
    shifted = [GridNote(n.start + lead, n.end + lead, n.pitch, n.velocity) for n in notes]
    changes = sorted({n.start for n in shifted} | {n.end for n in shifted} | {0})
    for begin, finish in itertools.pairwise(changes):
        length = Fraction(finish - begin, steps_per_quarter)
        sounding = [n for n in shifted if n.start <= begin < n.end]
        if not sounding:
            part.append(note.Rest(quarterLength=length))
            continue
        members = []
        for held in sorted(sounding, key=lambda n: n.pitch):
            member = note.Note(held.pitch, quarterLength=length)
            member.volume.velocity = held.velocity
            if held.start < begin:
                member.tie = tie.Tie("continue" if held.end > finish else "stop")
            elif held.end > finish:
                member.tie = tie.Tie("start")
            members.append(member)
        if len(members) == 1:
            part.append(members[0])
        else:
            combined = chord.Chord(members, quarterLength=length)
            part.append(combined)
    signature = m21key.Key(key) if key is not None else part.analyze("krumhansl")
    part.insert(0, m21key.Key(signature.tonic, signature.mode))
    if signature.sharps < 0:
        for element in part.recurse().notes:
            for pitch in element.pitches:
                if pitch.accidental is not None and pitch.accidental.alter == 1:
                    pitch.getEnharmonic(inPlace=True)
    part.makeNotation(inPlace=True)
    if lead:
        _drop_lead(part, Fraction(lead, steps_per_quarter))
    score = stream.Score()
    score.insert(0, part)
    return score


def _drop_lead(part: Any, lead: Fraction) -> None:
    """Make the first measure a pickup: its leading rest of `lead` quarters goes, and the music moves back."""
    from music21 import stream

    measures = list(part.getElementsByClass(stream.Measure))
    first = measures[0]
    for rest in list(first.notesAndRests):
        if rest.isRest and rest.offset < lead:
            first.remove(rest)
    for element in first.notesAndRests:
        element.offset -= lead
    first.paddingLeft = float(lead)
    for measure in measures[1:]:
        part.setElementOffset(measure, measure.offset - lead)
    part.coreElementsChanged()


def notes_to_midi(notes: Sequence[GridNote], steps_per_quarter: int) -> mido.MidiFile:
    """A type-0 mido MidiFile playing grid notes on channel 1 at 120 beats per minute."""
    import mido

    per_quarter = TICKS_PER_QUARTER if TICKS_PER_QUARTER % steps_per_quarter == 0 else steps_per_quarter * 96
    per_step = per_quarter // steps_per_quarter
    events: list[tuple[int, int, int, int]] = []  # (tick, 0 for off / 1 for on, pitch, velocity)
    for n in notes:
        events.append((n.start * per_step, 1, n.pitch, n.velocity))
        events.append((n.end * per_step, 0, n.pitch, 0))
    events.sort()  # at one tick, offs before ons: a repeated note is released, then struck again
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("set_tempo", tempo=500_000, time=0))
    track.append(mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0))
    now = 0
    for tick, is_on, pitch, velocity in events:
        kind = "note_on" if is_on else "note_off"
        track.append(mido.Message(kind, note=pitch, velocity=velocity, channel=0, time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    midi = mido.MidiFile(type=0, ticks_per_beat=per_quarter)
    midi.tracks.append(track)
    return midi


def midi_bytes(midi: mido.MidiFile) -> bytes:
    buffer = io.BytesIO()
    midi.save(file=buffer)
    return buffer.getvalue()


def midi_to_score(midi: mido.MidiFile, steps_per_quarter: int) -> Score:
    """A mido MidiFile read back by music21, quantised to the grid."""
    from music21 import midi as m21midi

    source = m21midi.MidiFile()
    source.readstr(midi_bytes(midi))
    return m21midi.translate.midiFileToStream(source, quarterLengthDivisors=(steps_per_quarter,))
