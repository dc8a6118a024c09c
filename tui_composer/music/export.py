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
"""

from __future__ import annotations

import contextlib
import copy
import functools
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
    return score


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
