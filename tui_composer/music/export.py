"""Robust export of pieces and scores to MIDI and ABC, shared by the CLI, the TUI and sampling.

music21 10.5's plain `score.write('midi')` fails on about one O'Neill tune in ten: after expanding
repeats the same TimeSignature object sits in several measures, and building the conductor track raises
`StreamException: the object (<TimeSignature ...>) is already found in this Stream`. It can also hang
on malformed repeats. `score_to_midi` expands repeats itself, under half the time bound (falling back
to the written order when they are malformed or that slow), gives every repeated context object its own
copy, and bounds the conversion with a timeout.

Repeats follow ABC 2.1, not music21's reading: a `:|` with no `|:` since the last repeat end repeats
from the previous double bar (`||`, `|]`) or repeat end, or else from the start, so `A:|B:|` plays
AABB (music21 alone repeats `B:|` from the start: AABAAB, four times A).

For ABC's usual content `score_to_midi` writes those same bytes without music21's writer, seven times
faster (see `_direct_midi`).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tui_composer.music.files import MusicFileError, check_music_file
from tui_composer.plugin.contract import EncodeError, Piece
from tui_composer.services.corpora import max_file_bytes, read_abc_file
from tui_composer.services.parallel import call_bounded, reason_of

if TYPE_CHECKING:
    from music21.stream import Measure, Score, Stream

EXPORT_TIMEOUT = 30.0


class ExportError(Exception):
    """A score that could not be written; `reason` says why in one line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --- parsing -----------------------------------------------------------------------------------------


def parse_abc(text: str, *, beams: bool = False, name: str = "ABC tune") -> Score:
    """One ABC tune as a Score through music21's ABC parser.

    Beaming is two thirds of music21's ABC import time and matters only for printed notation, so it
    is skipped unless asked for; pitches, durations, ties, measures and repeats are the same. Notes,
    rests and the tune longer than tui_composer.music.notes' bounds raise EncodeError (naming `name`) before
    music21 builds anything from them.
    """
    from music21 import abcFormat, metadata, stream
    from music21.abcFormat import translate

    from tui_composer.music.notes import check_abc_lengths

    handler = abcFormat.ABCHandler()
    handler.process(text)
    check_abc_lengths(handler.tokens, name)
    score = stream.Score()
    info = metadata.Metadata()
    for token in handler.tokens:
        if isinstance(token, abcFormat.ABCMetadata) and token.isTitle():
            info.title = token.data
            break
    score.insert(0, info)
    voices = handler.splitByVoice()
    # splitByVoice puts the header first, then one handler per V: voice
    handlers = [voices[0]] if len(voices) == 1 else [voices[0] + voice for voice in voices[1:]]
    for part_handler in handlers:
        part = translate.abcToStreamPart(part_handler, inputM21=stream.Part() if beams else _unbeamed_part_class()())
        score.coreInsert(0, part)
    score.coreElementsChanged()
    _ABC_SOURCES[score] = (text, list(handler.tokens))
    return score


# What parse_abc read each Score from, while the Score lives: a check of the same text reuses it (and its
# tokens, for measuring bars) instead of parsing again.
_ABC_SOURCES: weakref.WeakKeyDictionary[Any, tuple[str, list[Any]]] = weakref.WeakKeyDictionary()


def abc_tokens(score: Stream, text: str) -> list[Any] | None:
    """The processed music21 ABC tokens `parse_abc` made `score` from, if it made it from exactly `text`
    (else None: parse the text)."""
    source = _ABC_SOURCES.get(score)
    return source[1] if source is not None and source[0] == text else None


@functools.cache
def _unbeamed_part_class() -> type:
    from music21 import stream

    class UnbeamedPart(stream.Part):
        """A Part whose makeBeams does nothing: the ABC importer calls it on every part."""

        def makeBeams(self, *args: Any, **kwargs: Any) -> None:
            return None

    return UnbeamedPart


def parse_piece(piece: Piece, *, beams: bool = False) -> Score:
    """Any piece (ABC tune, MIDI file, MusicXML file) as a music21 Score.

    Raises EncodeError naming the piece and why it could not be read.
    """
    from music21 import converter, stream

    try:
        if piece.format == "abc":
            text = piece.text if piece.text is not None else _read_text(piece)
            parsed: Any = parse_abc(text, beams=beams, name=piece.key)
        else:
            # caps, regular file, a .mxl's zip directory and XML entities: checked before music21 reads a byte
            check_music_file(piece.path, piece.format, max_file_bytes(piece.format))
            parsed = converter.parse(piece.path, forceSource=True)
    except MusicFileError as error:
        raise EncodeError(piece.key, error.reason) from None
    except EncodeError:
        raise
    except Exception as error:  # noqa: BLE001 - music21 raises many kinds on bad input
        raise EncodeError(piece.key, f"music21 could not read it ({reason_of(error)})") from None
    if isinstance(parsed, stream.Opus):
        scores = list(parsed.scores)
        if not scores:
            raise EncodeError(piece.key, "no score in the file")
        parsed = scores[0]
    if not isinstance(parsed, stream.Score):
        score = stream.Score()
        score.insert(0, parsed)
        parsed = score
    if not parsed.recurse().notes:
        raise EncodeError(piece.key, "no notes")
    return parsed


def _read_text(piece: Piece) -> str:
    return read_abc_file(piece.path)


def piece_abc(piece: Piece) -> str:
    """ABC text of a piece: the tune's own text for ABC pieces, the ABC writer's otherwise."""
    if piece.format == "abc" and piece.text is not None:
        return piece.text
    from tui_composer.music.abc_writer import score_to_abc

    return score_to_abc(parse_piece(piece))


# --- MIDI ----------------------------------------------------------------------------------------------


def score_to_midi(score: Stream, path: Path | str | None = None, *, timeout: float = EXPORT_TIMEOUT) -> bytes:
    """The score as a Standard MIDI File; also written to `path` when given.

    Repeats are played out; malformed repeats (music21 raises, or takes more than half the timeout) are
    played as written. Raises ExportError with the reason (including a timeout) when music21 can't
    convert it.
    """
    data = _direct_or_none(score, timeout)
    if data is None:
        # expanding repeats is where music21 hangs on malformed ones: bound it on its own and fall back
        expanded = call_bounded(performable, score, timeout / 2)
        played = expanded.value if expanded.ok else performable(score, expand=False)
        outcome = call_bounded(_midi_bytes, played, timeout)
        if not outcome.ok:
            raise ExportError(f"MIDI export failed: {outcome.error}")
        data = outcome.value
        assert data is not None
    if path is not None:
        from tui_composer.services.workspace import write_atomic

        write_atomic(Path(path), data)
    return data


def _direct_or_none(score: Stream, timeout: float) -> bytes | None:
    """The bytes music21's writer would give, written directly (`_direct_midi`), or None when the score
    needs music21's writer (or the direct one failed: music21 then gives the same reason as before)."""
    # the Expander hangs on some malformed repeats: bounded on its own, then played as written, as above
    found = call_bounded(_orders_or_none, (score, True), timeout / 2)
    if not found.ok:
        found = call_bounded(_orders_or_none, (score, False), timeout / 2)
    if not found.ok or found.value is None:
        return None
    outcome = call_bounded(_direct_or_unsupported, (score, found.value), timeout)
    return outcome.value if outcome.ok else None


def _orders_or_none(item: tuple[Stream, bool]) -> list[list[tuple[Stream, Any]]] | None:
    try:
        return _measure_orders(*item)
    except _Unsupported:
        return None


def _direct_or_unsupported(item: tuple[Stream, list[list[tuple[Stream, Any]]]]) -> bytes | None:
    try:
        return _direct_midi(*item)
    except _Unsupported:
        return None


def _midi_bytes(played: Stream | None) -> bytes:
    from music21 import midi

    assert played is not None  # performable always gives a stream

    return midi.translate.streamToMidiFile(played).writestr()


def performable(score: Stream, *, expand: bool = True) -> Stream:
    """The score as it is played: repeats expanded by ABC 2.1's rules (unless `expand` is false or they are
    malformed), flat parts without measures (so music21 does not expand again), one context object per place."""
    from music21 import repeat, stream

    if not isinstance(score, stream.Score):
        wrapper = stream.Score()
        wrapper.insert(0, copy.deepcopy(score))
        score = wrapper
    parts: list[Stream] = list(score.parts) or [score]
    flat_parts = []
    for part in parts:
        played: Stream = part
        if expand and part.getElementsByClass(stream.Measure):
            try:
                with _implied_repeat_starts(part):
                    played = part.expandRepeats()
            except (repeat.ExpanderException, stream.StreamException, IndexError, KeyError):
                played = part  # malformed repeats: the music as written is still worth hearing
        flat_parts.append(_flat_unique(played))
    result = stream.Score()
    for flat in flat_parts:
        result.insert(0, flat)
    return result


@contextlib.contextmanager
def _implied_repeat_starts(part: Stream) -> Iterator[None]:
    """The part with a `|:` written where ABC 2.1 implies one, for as long as the block runs (music21's
    expander copies what it plays, so the caller's score is left as it was)."""
    from music21 import bar, stream

    measures = list(part.getElementsByClass(stream.Measure))
    implied = repeat_starts(measures)
    written = [(measure, measure.leftBarline) for measure in implied]
    try:
        for measure in implied:
            measure.leftBarline = bar.Repeat(direction="start")
        yield
    finally:
        for measure, left in written:
            measure.leftBarline = left


def repeat_starts(measures: Sequence[Measure]) -> list[Measure]:
    """The measures where a repeat starts that no `|:` marks: for each `:|` with no `|:` since the last
    repeat end, the measure after the previous double bar (`||`, `|]`) or repeat end, or else the first."""
    from music21 import bar

    def starts(barline: Any) -> bool:
        return isinstance(barline, bar.Repeat) and barline.direction == "start"

    def ends_section(barline: Any) -> bool:  # a double bar, final bar or repeat end closes a section
        if isinstance(barline, bar.Repeat):
            return barline.direction == "end"
        return barline is not None and barline.type in ("double", "final", "light-light", "light-heavy")

    implied: list[Measure] = []
    section = 0  # where the section the current measure belongs to began
    opened = False  # a |: since the last :|
    for index, measure in enumerate(measures):
        left, right = measure.leftBarline, measure.rightBarline
        if starts(left):
            opened = True
        elif index > 0 and ends_section(left) and not opened:
            section = index
        if isinstance(right, bar.Repeat) and right.direction == "end":
            if not opened and all(measures[section] is not m for m in implied):
                implied.append(measures[section])
            section, opened = index + 1, False
        elif ends_section(right) and not opened:
            section = index + 1
    return implied


def _flat_unique(part: Stream) -> Stream:
    """A measure-free copy of a part where no object appears twice (the cause of music21's StreamException)."""
    from music21 import stream

    flat = stream.Part()
    seen: set[int] = set()
    for element in part.recurse().notesAndRests:
        _insert_once(flat, element, part, seen)
    for klass in ("TimeSignature", "KeySignature", "MetronomeMark", "Instrument", "Dynamic"):
        last: float | None = None
        for element in part.recurse().getElementsByClass(klass):
            offset = element.getOffsetInHierarchy(part)
            if last is not None and offset == last:
                continue  # one per offset, as music21's conductor track keeps
            _insert_once(flat, element, part, seen)
            last = offset
    flat.coreElementsChanged()
    return flat


def _insert_once(target: Stream, element: Any, container: Stream, seen: set[int]) -> None:
    offset = element.getOffsetInHierarchy(container)
    if id(element) in seen:
        element = copy.deepcopy(element)  # the same object in two places: music21 refuses that
    seen.add(id(element))
    target.coreInsert(offset, element)


# --- MIDI without music21's writer ---------------------------------------------------------------------
#
# music21's writer deep-copies the whole score twice (expanding repeats, then preparing the copy for MIDI)
# and builds an object per event: four fifths of a sample's conversion. For the music ABC gives (notes,
# rests and chords in measures, meter, key and tempo), `_direct_midi` writes the same bytes itself: repeats
# are expanded by music21's own Expander run on a skeleton of empty measures (so its rules, ABC 2.1's
# implied starts included, hold), ties are joined as `stripTies(matchByPitch=True)` joins them, and the
# events are ordered, timed and encoded as `streamToMidiFile(...).writestr()` does (chord symbols sound as
# music21 sounds them). Anything else (voices in a measure, lyrics, dynamics, instruments, microtones, jumps
# like D.C.) goes through music21's writer, as before. tests/test_midi_direct.py compares the bytes.


class _Unsupported(Exception):
    """The score holds something only music21's writer renders; it is written that way."""


_CONDUCTOR_CLASSES = ("TimeSignature", "KeySignature", "MetronomeMark")  # _flat_unique's order
_NOTE_OFF, _PITCH_BEND, _OTHER = -20, -10, 0  # music21's MidiEvent.sortOrder: offs, then bends, then the rest


def _direct_midi(score: Stream, orders: list[list[tuple[Stream, Any]]]) -> bytes:
    """The Standard MIDI File music21 writes for `score` played in `orders` (each part's measures and
    their offsets); raises _Unsupported for what only music21 renders."""
    from music21 import defaults, tempo

    per_quarter = defaults.ticksPerQuarter
    conductor_elements: list[list[tuple[Any, Any]]] = []  # per part: (offset, element), sorted
    tracks: list[bytes] = []
    for order in orders:
        played, context = _played_elements(order)
        conductor_elements.append(context)
        tracks.append(_part_track(_joined_ties(played), per_quarter))
    # the conductor track: music21 keeps, per class and across parts, an event only after the last one's offset
    chosen: list[tuple[Any, int, int, int, Any]] = []  # (offset, priority, class order, insert order, element)
    for klass in ("MetronomeMark", "TimeSignature", "KeySignature"):
        last = -1.0
        for context in conductor_elements:
            for offset, element in context:
                if klass in element.classSet:
                    if offset > last:
                        chosen.append((offset, element.priority, element.classSortOrder, len(chosen), element))
                    last = offset
    if not any(isinstance(item[4], tempo.MetronomeMark) for item in chosen):
        chosen.append((0.0, 0, tempo.MetronomeMark.classSortOrder, len(chosen), tempo.MetronomeMark(number=120)))
    if not any("TimeSignature" in item[4].classSet for item in chosen):
        from music21 import meter

        default = meter.TimeSignature("4/4")
        chosen.append((0.0, 0, default.classSortOrder, len(chosen), default))
    chosen.sort(key=lambda item: item[:4])
    events: list[tuple[int, int, int, bytes]] = []
    for offset, _, _, _, element in chosen:
        data = _conductor_event(element)
        if data is not None:
            events.append((round(offset * per_quarter), _OTHER, len(events), data))
    events.sort(key=lambda event: event[:2])
    conductor = _track_bytes([(tick, data) for tick, _, _, data in events], b"", per_quarter)
    header = b"MThd" + (6).to_bytes(4, "big") + (1).to_bytes(2, "big") + (1 + len(tracks)).to_bytes(2, "big")
    return header + per_quarter.to_bytes(2, "big") + conductor + b"".join(tracks)


def _played_elements(order: list[tuple[Stream, Any]]) -> tuple[list[tuple[Any, Any]], list[tuple[Any, Any]]]:
    """The notes, rests and chords of the played measures as (offset, element) in music21's flat order,
    and the meter, key and tempo marks as _flat_unique keeps them (one per class and offset)."""
    from music21 import stream
    from music21.common.numberTools import opFrac

    notes: list[tuple[Any, int, int, int, int, Any]] = []  # music21's sort: offset, priority, class, grace, insert
    marks: dict[str, list[tuple[Any, Any]]] = {klass: [] for klass in _CONDUCTOR_CLASSES}
    for measure, start in order:
        for element in measure:
            if isinstance(element, stream.Stream):
                raise _Unsupported("voices")
            offset = opFrac(start + measure.elementOffset(element))
            classes = element.classSet
            if "GeneralNote" in classes:
                _check_sounding(element)
                grace = int(not element.duration.isGrace)
                notes.append((offset, element.priority, element.classSortOrder, grace, len(notes), element))
            elif "Dynamic" in classes or "Instrument" in classes or "RepeatExpression" in classes:
                raise _Unsupported(type(element).__name__)
            else:
                for klass in _CONDUCTOR_CLASSES:
                    if klass in classes:
                        marks[klass].append((offset, element))
    notes.sort(key=lambda item: item[:5])
    context: list[tuple[Any, Any]] = []
    for klass in _CONDUCTOR_CLASSES:
        last = None
        for offset, element in marks[klass]:
            if last is not None and offset == last:
                continue
            context.append((offset, element))
            last = offset
    context.sort(key=lambda item: (item[0], item[1].priority))  # stable: insert order within an offset
    return [(offset, element) for offset, *_, element in notes], context


def _check_sounding(element: Any) -> None:
    from music21 import chord, harmony, note

    kind = type(element)
    if kind is note.Rest:
        return
    if kind not in (note.Note, chord.Chord, harmony.ChordSymbol, harmony.NoChord):
        raise _Unsupported(kind.__name__)  # unpitched notes, percussion...
    if element.lyric:
        raise _Unsupported("lyrics")
    if kind is not note.Note and element.pitches and element.hasComponentVolumes():
        raise _Unsupported("chord member volumes")
    for pitch in element.pitches:
        if not pitch.isTwelveTone() or not 0 <= pitch.midi <= 127:
            raise _Unsupported("microtones")


def _joined_ties(played: list[tuple[Any, Any]]) -> list[tuple[Any, Any, Any]]:
    """(offset, element, quarter length) with tied notes joined, as music21's
    `stripTies(inPlace=True, matchByPitch=True)` joins them on the flat part (a port of its loop)."""
    from music21 import chord, note
    from music21.common.numberTools import opFrac

    lengths = [element.quarterLength for _, element in played]
    sounding = [i for i, length in enumerate(lengths) if length > 0]  # stripTies looks at these only
    items = [played[i][1] for i in sounding]
    connected: list[int] = []
    deleted: set[int] = set()

    def end_match(n: Any, last: Any, i_last: int | None) -> bool:
        if not isinstance(n, chord.Chord) and n.tie is not None and n.tie.type == "stop":
            return True
        if (
            last is not None
            and i_last in connected
            and hasattr(last, "pitch")
            and hasattr(n, "pitch")
            and not isinstance(last, chord.Chord)
            and not isinstance(n, chord.Chord)
            and last.pitch == n.pitch
        ):
            return True
        if (
            last is not None
            and not isinstance(n, note.Note)
            and i_last in connected
            and hasattr(last, "pitches")
            and hasattr(n, "pitches")
        ):
            if len(last.pitches) != len(n.pitches):
                return False
            return all(a.step == b.step and a.isEnharmonic(b) for a, b in zip(last.pitches, n.pitches, strict=True))
        return False

    for i, n in enumerate(items):
        i_last, last = (i - 1, items[i - 1]) if i > 0 else (None, None)
        ended: bool | None = None
        tie = n.tie.type if n.tie is not None else None
        if tie == "start":
            if i_last is None or i_last not in connected:
                connected = [i]
            else:
                connected.append(i)
            ended = False
        elif tie == "continue":
            if not connected or end_match(n, last, i_last):
                connected.append(i)
            else:
                connected = [i]
            ended = False
        if ended is None:
            ended = end_match(n, last, i_last)
        if ended:
            connected.append(i)
            if len(connected) < 2:
                connected = []
                continue
            total: Any = 0
            for q in connected[1:]:
                total += lengths[sounding[q]]
                deleted.add(sounding[q])
            if total == 0:
                raise _Unsupported("tied notes of no duration")  # music21 raises StreamException
            first = sounding[connected[0]]
            lengths[first] = opFrac(lengths[first] + total)
            connected = []
    return [(offset, element, lengths[i]) for i, (offset, element) in enumerate(played) if i not in deleted]


def _velocity(element: Any) -> int:
    """music21's realized velocity without dynamics: 0.70866 (or the set velocity) shifted by articulations."""
    if element._volume is not None:
        realized = element.volume.getRealized(useDynamicContext=False, useVelocity=True, useArticulations=True)
    else:
        realized = 0.5
        realized += 0.20866
        for articulation in element.articulations:
            realized += articulation.volumeShift
        realized = min(1.0, max(0.0, realized))
    return round(realized * 127)


def _part_track(played: list[tuple[Any, Any, Any]], per_quarter: int) -> bytes:
    """One part's track: its name (empty), a pitch bend reset, and a note on and off for each sounding note."""
    from music21 import chord

    events: list[tuple[int, int, int, bytes]] = []  # (tick, sort order, sequence, message)
    for offset, element, length in played:
        if not element.isNote and not element.isChord:
            continue  # a rest
        start = round(offset * per_quarter)
        end = start + round(length * per_quarter)
        velocity = _velocity(element)
        pitches = [p.midi for p in element.pitches] if isinstance(element, chord.Chord) else [element.pitch.midi]
        for pitch in pitches:
            events.append((start, _OTHER, len(events), bytes((0x90, pitch, velocity))))
        for pitch in pitches:
            events.append((end, _NOTE_OFF, len(events), bytes((0x80, pitch, 0))))
    if events:
        events.append((0, _PITCH_BEND, len(events), b"\xe0\x00\x40"))
    events.sort(key=lambda event: event[:2])
    return _track_bytes([(tick, data) for tick, _, _, data in events], b"\x00\xff\x03\x00", per_quarter)


def _conductor_event(element: Any) -> bytes | None:
    """The meta event music21 writes for a tempo, meter or key mark (None: it writes none)."""
    import math

    classes = element.classSet
    if "MetronomeMark" in classes:
        if element.number is None and element.numberSounding is None:
            return None
        microseconds = round(60_000_000 / element.getSoundingMetronomeMark().getQuarterBPM())
        return b"\xff\x51\x03" + (microseconds & 0xFFFFFF).to_bytes(3, "big")
    if "TimeSignature" in classes:
        if element.numerator > 255:
            return None
        return b"\xff\x58\x04" + bytes((element.numerator, int(math.log2(element.denominator)), 24, 8))
    mode = 1 if "Key" in classes and element.mode == "minor" else 0
    return b"\xff\x59\x02" + bytes((element.sharps % 256, mode))


def _track_bytes(events: list[tuple[int, bytes]], start: bytes, per_quarter: int) -> bytes:
    """An MTrk chunk: the start events, then each event after its delta time, then the end of track one
    quarter after the last event, with every status byte written (music21 uses no running status)."""
    body = bytearray(start)
    now = 0
    for tick, data in events:
        body += _variable_length(tick - now) + data
        now = tick
    body += _variable_length(per_quarter) + b"\xff\x2f\x00"
    return b"MTrk" + len(body).to_bytes(4, "big") + bytes(body)


def _variable_length(value: int) -> bytes:
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def _measure_orders(score: Stream, expand: bool = True) -> list[list[tuple[Stream, Any]]]:
    """Each part's measures as played, with their offsets: repeats expanded by music21's Expander on a
    skeleton of empty measures (ABC 2.1's implied `|:` added), or as written where it raises.
    Raises _Unsupported for what the direct writer does not render."""
    from music21 import stream

    if not isinstance(score, stream.Score) or not score.parts:
        raise _Unsupported("not a score of parts")
    orders: list[list[tuple[Stream, Any]]] = []
    for part in score.parts:
        measures = list(part.getElementsByClass(stream.Measure))
        if not measures:  # a one-bar tune: music21 plays the part itself, as written
            orders.append([(part, 0.0)])
            continue
        for element in part:
            if not isinstance(element, stream.Measure) and (
                isinstance(element, stream.Stream) or element.classSet & _PART_LEVEL_UNSUPPORTED
            ):
                raise _Unsupported(f"{type(element).__name__} outside measures")
        indices = _expanded_indices(part, measures) if expand else None
        if indices is None:
            orders.append([(m, part.elementOffset(m)) for m in measures])  # as written
            continue
        from music21.common.numberTools import opFrac

        offset: Any = 0.0
        order: list[tuple[Stream, Any]] = []
        for index in indices:
            order.append((measures[index], offset))
            offset = opFrac(offset + measures[index].duration.quarterLength)
        orders.append(order)
    return orders


_PART_LEVEL_UNSUPPORTED = frozenset(
    {"GeneralNote", "TimeSignature", "KeySignature", "MetronomeMark", "Instrument", "Dynamic"}
)


def _expanded_indices(part: Stream, measures: list[Measure]) -> list[int] | None:
    """The indices of `measures` in the order music21's Expander plays them (None: malformed repeats,
    played as written), found on empty copies of the measures so no note is copied."""
    from music21 import bar, duration, repeat, spanner, stream

    skeleton = stream.Part()
    copies: dict[int, Measure] = {}
    for measure in measures:
        empty = stream.Measure(number=measure.number)
        empty.numberSuffix = measure.numberSuffix
        empty.duration = duration.Duration(measure.duration.quarterLength)
        for side in ("leftBarline", "rightBarline"):
            line = getattr(measure, side)
            if line is not None:
                setattr(empty, side, copy.deepcopy(line))
        copies[id(measure)] = empty
        skeleton.coreInsert(part.elementOffset(measure), empty)
    for bracket in part.spannerBundle.getByClass(spanner.RepeatBracket):
        members = bracket.getSpannedElements()
        if not all(id(m) in copies for m in members):
            raise _Unsupported("a repeat bracket over something other than measures")
        skeleton.coreInsert(0, spanner.RepeatBracket([copies[id(m)] for m in members], number=bracket.number))
    skeleton.coreElementsChanged()
    empties = list(copies.values())
    for measure in repeat_starts(empties):
        measure.leftBarline = bar.Repeat(direction="start")
    try:
        expanded = repeat.Expander(skeleton).process(deepcopy=False)  # the skeleton is ours to change
    except (repeat.ExpanderException, stream.StreamException, IndexError, KeyError):
        return None
    index_of = {id(m): i for i, m in enumerate(empties)}
    indices = []
    for played in expanded.getElementsByClass(stream.Measure):
        source: Any = played
        while id(source) not in index_of:
            source = source.derivation.origin
            if source is None:
                raise _Unsupported("a played measure of unknown origin")
        indices.append(index_of[id(source)])
    return indices
