"""A music21 Score as ABC 2.1 text (music21 reads ABC but cannot write it).

Written: reference number, title, meter, unit note length, tempo, key; then per voice (`V:` when there
are several) the measures with notes, rests, chords (`[CEG]`), ties (`-`, per note inside chords),
grace notes (`{g}`), tuplets (`(3` or `(p:q:r`) where the notes form complete groups (other tuplet
lengths are written as exact fractions, e.g. `A2/3`), repeat barlines, first and second endings, and
meter and key changes as inline fields (`[M:3/4]`, `[K:D]`).

Every length is written as notes a score can show: plain or dotted powers of two of the unit length, at
most a breve, so a rest of 13/2 units is `z6 z/` and such a note `A6- A/` (tied), never `A13/2`. A score
with a note, rest or length past the bounds of `tui_composer.music.notes` is refused with EncodeError.

Accidentals are written in key context and made robust to both readings of ABC: the standard says an
accidental lasts to the end of the bar, music21's parser applies it to that note only. So a note gets
an explicit accidental when it differs from the key signature, and also when an earlier note of the
same letter in the bar had one; either way a reader gets the same pitch. music21 also ignores inline
key and meter changes inside measures, so after a key change a note is marked whenever it differs from
the header's key too (durations never depend on the meter: every length is written).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from tui_composer.music.notes import check_length

if TYPE_CHECKING:
    from music21.stream import Measure, Score, Stream

MEASURES_PER_LINE = 4
LONGEST_NOTE_VALUE = Fraction(8)  # quarters: a breve; longer lengths are written as tied notes
_MODES = {
    "major": "",
    "minor": "m",
    "aeolian": "m",
    "dorian": "dor",
    "mixolydian": "mix",
    "lydian": "lyd",
    "phrygian": "phr",
    "locrian": "loc",
    "ionian": "",
}
_ACCIDENTALS = {-2: "__", -1: "_", 0: "=", 1: "^", 2: "^^"}


def score_to_abc(score: Stream, *, reference: int = 1, title: str | None = None) -> str:
    """ABC 2.1 text for a score (or a part or a flat stream); it re-parses in music21 to the same notes.

    EncodeError (naming the title) when a note, rest or the score is longer than tui_composer.music.notes allows.
    """
    score = _as_score(score)
    name = title if title is not None else _title(score)
    _check_lengths(score, name)  # before making measures: music21 would bar a billion-quarter note
    parts = [_measured(part) for part in (score.parts or [score])]
    voices = [voice for part in parts for voice in _voices_of(part)]
    if not voices:
        raise ValueError("the score has no parts to write")
    first_meter = _first(parts, "TimeSignature")
    first_key = _first(parts, "KeySignature")
    first_tempo = _first(parts, "MetronomeMark")
    unit = _unit_length(first_meter)
    lines = [f"X:{reference}", f"T:{name}", f"M:{_meter(first_meter)}", f"L:{unit.numerator}/{unit.denominator}"]
    if first_tempo is not None and first_tempo.number is not None:
        lines.append(f"Q:1/4={round(first_tempo.getQuarterBPM())}")
    lines.append(f"K:{_key(first_key)}")
    several = len(voices) > 1
    for number, voice in enumerate(voices, start=1):
        if several:
            lines.append(f"V:{number}" + (" clef=bass" if voice.bass_clef else ""))
        writer = _VoiceWriter(unit=unit, meter=first_meter, key=first_key, header_key=first_key, name=name)
        lines.extend(writer.write(voice.measures))
    return "\n".join(lines) + "\n"


# --- preparing the score ---------------------------------------------------------------------------------


def _as_score(music: Stream) -> Score:
    from music21 import stream

    if isinstance(music, stream.Score):
        return music
    score = stream.Score()
    if isinstance(music, stream.Part) or not music.hasPartLikeStreams():
        score.insert(0, copy.deepcopy(music))
    else:
        for part in music.getElementsByClass(stream.Stream):
            score.insert(0, copy.deepcopy(part))
    return score


def _check_lengths(score: Score, name: str) -> None:
    for element in score.recurse().notesAndRests:
        check_length("rest" if element.isRest else "note", float(element.duration.quarterLength), name)
    check_length("piece", float(score.highestTime), name)


def _measured(part: Stream) -> Stream:
    """The part with measures (made, on a copy, when it has none)."""
    from music21 import stream

    if part.getElementsByClass(stream.Measure):
        return part
    return part.makeNotation(inPlace=False)


@dataclass
class _Voice:
    measures: list[tuple[Measure, list[Any]]] = field(default_factory=list)  # each measure and its elements
    bass_clef: bool = False


def _voices_of(part: Stream) -> list[_Voice]:
    """One ABC voice per music21 voice; a measure without that voice gets a rest of its length."""
    from music21 import clef, stream

    measures = list(part.getElementsByClass(stream.Measure))
    count = max((len(m.voices) for m in measures), default=0) or 1
    first_clef = part.recurse().getElementsByClass(clef.Clef).first()
    bass = isinstance(first_clef, clef.BassClef)
    voices = [_Voice(bass_clef=bass) for _ in range(count)]
    for measure in measures:
        inner = list(measure.voices)
        for index, voice in enumerate(voices):
            if inner:
                source: Stream | None = inner[index] if index < len(inner) else None
                own = list(measure.notesAndRests) if index == 0 else []
                elements = own + (_single_line(source) if source is not None else [])
            else:
                elements = _single_line(measure) if index == 0 else []
            voice.measures.append((measure, elements))
    return voices


def _single_line(container: Stream) -> list[Any]:
    """Notes, chords and rests of one voice in time order; notes starting together are merged into chords."""
    from music21 import chord, harmony

    def sounding(element: Any) -> bool:
        return not (element.isRest or element.duration.isGrace or isinstance(element, harmony.Harmony))

    # chord symbols and grace notes come before the note they belong to
    elements = sorted(container.notesAndRests, key=lambda e: (e.offset, sounding(e)))
    line: list[Any] = []
    for element in elements:
        previous = line[-1] if line else None
        if previous is not None and sounding(element) and sounding(previous) and element.offset == previous.offset:
            # two notes at the same offset in one voice (e.g. from MIDI): sound them as a chord
            merged = chord.Chord(list(previous.pitches) + list(element.pitches))
            merged.duration = copy.deepcopy(previous.duration)
            merged.offset = previous.offset
            line[-1] = merged
        else:
            line.append(element)
    return _cut_overlaps(line)


def _cut_overlaps(line: list[Any]) -> list[Any]:
    """The line with each note or rest that still sounds when the next element starts cut there (a copy,
    untied), and a rest where a note starts dropped.

    One ABC voice plays one thing at a time: written in turn, overlapping notes (from MIDI, say) would make
    the bar overfull and shift everything after them."""
    from music21 import duration, harmony

    cut: list[Any] = []
    for element, following in zip(line, [*line[1:], None], strict=True):
        if following is None or element.duration.isGrace or isinstance(element, harmony.Harmony):
            cut.append(element)
            continue
        room = Fraction(following.offset - element.offset).limit_denominator(10_000)
        if Fraction(element.duration.quarterLength).limit_denominator(10_000) <= room:
            cut.append(element)
        elif room == 0:
            if not element.isRest:
                cut.append(element)  # a note and grace notes or a rest at its onset: the note is kept
        else:
            shorter = copy.deepcopy(element)
            shorter.duration = duration.Duration(room)
            if not shorter.isRest:
                for member in shorter.notes if shorter.isChord else [shorter]:
                    member.tie = None  # it no longer reaches the note it was tied to
            shorter.offset = element.offset
            cut.append(shorter)
    return cut


def _first(parts: list[Stream], klass: str) -> Any:
    for part in parts:
        found = part.recurse().getElementsByClass(klass).first()
        if found is not None:
            return found
    return None


def _title(score: Score) -> str:
    meta = score.metadata
    text = (meta.title if meta is not None else None) or "Untitled"
    return " ".join(str(text).split())


# --- header fields ---------------------------------------------------------------------------------------


def _unit_length(meter: Any) -> Fraction:
    """ABC's default rule: 1/16 for meters below 3/4, otherwise 1/8."""
    if meter is not None and Fraction(meter.numerator, meter.denominator) < Fraction(3, 4):
        return Fraction(1, 16)
    return Fraction(1, 8)


def _meter(meter: Any) -> str:
    return "4/4" if meter is None else f"{meter.numerator}/{meter.denominator}"


def _key(signature: Any) -> str:
    """ABC key name with the same key signature (the mode when music21 knows it)."""
    from music21 import key

    if signature is None:
        return "C"
    if isinstance(signature, key.Key) and signature.mode in _MODES:
        tonic, mode = signature.tonic.name, _MODES[signature.mode]
    else:
        tonic, mode = signature.asKey("major").tonic.name, ""
    return tonic.replace("-", "b") + mode


def _key_alter(signature: Any, step: str) -> int:
    if signature is None:
        return 0
    accidental = signature.accidentalByStep(step)
    return int(accidental.alter) if accidental is not None else 0


# --- the music -------------------------------------------------------------------------------------------


def _length(ratio: Fraction) -> str:
    """A note length in unit lengths: '' for 1, '3', '/2', '3/2' (see `note_values` for which to write)."""
    if ratio == 1:
        return ""
    if ratio.denominator == 1:
        return str(ratio.numerator)
    if ratio.numerator == 1:
        return f"/{ratio.denominator}"
    return f"{ratio.numerator}/{ratio.denominator}"


def note_values(ratio: Fraction, unit: Fraction) -> list[Fraction]:
    """A length of `ratio` unit lengths (a unit of `unit` whole notes) split into lengths one note value shows:
    plain or dotted powers of two, at most LONGEST_NOTE_VALUE, longest first (13/2 -> [6, 1/2]).

    A length whose denominator is not a power of two (a tuplet's thirds) can't be split so; it stays whole.
    """
    quarters = ratio * unit * 4
    if quarters <= 0 or quarters.denominator & (quarters.denominator - 1):
        return [ratio]
    values: list[Fraction] = []
    while quarters > 0:
        plain = _power_of_two_at_most(min(quarters, LONGEST_NOTE_VALUE))
        dotted = plain * 3 / 2
        value = dotted if dotted <= min(quarters, LONGEST_NOTE_VALUE) else plain
        values.append(value)
        quarters -= value
    return [value / (unit * 4) for value in values]


def _power_of_two_at_most(limit: Fraction) -> Fraction:
    power = Fraction(2) ** (limit.numerator.bit_length() - limit.denominator.bit_length())
    while power > limit:
        power /= 2
    while power * 2 <= limit:
        power *= 2
    return power


@dataclass
class _VoiceWriter:
    unit: Fraction
    meter: Any
    key: Any
    letters_marked: set[str] = field(default_factory=set)  # letters given an accidental in this bar
    header_key: Any = None
    stretched: bool = False  # the last measure was written with a longer inline meter
    name: str = "score"  # the tune, for errors

    def write(self, measures: list[tuple[Measure, list[Any]]]) -> list[str]:
        from music21 import bar, spanner

        lines: list[str] = []
        current = ""
        brackets: dict[int, Any] = {}
        for measure, _ in measures:
            bracket: Any
            for bracket in measure.getSpannerSites([spanner.RepeatBracket]):
                if bracket.isFirst(measure):
                    brackets[id(measure)] = bracket.number or "1"
        for index, (measure, elements) in enumerate(measures):
            self.letters_marked = set()
            text = ""
            left = measure.leftBarline
            if isinstance(left, bar.Repeat) and left.direction == "start":
                text += "|: " if index == 0 or not current.rstrip().endswith((":|", "|")) else ": "
            if id(measure) in brackets:
                text += f"[{brackets[id(measure)]} "
            changes = self._changes(measure, first=index == 0)
            body, length = self._body(measure, elements)
            text += changes + self._overfull(length) + body + " " + self._barline(measure)
            current = f"{current} {text}" if current else text
            if (index + 1) % MEASURES_PER_LINE == 0:
                lines.append(" ".join(current.split()))
                current = ""
        if current:
            lines.append(" ".join(current.split()))
        return lines

    def _changes(self, measure: Measure, *, first: bool) -> str:
        text = ""
        meter = measure.timeSignature
        if meter is not None and not first and (self.meter is None or meter.ratioString != self.meter.ratioString):
            text += f"[M:{_meter(meter)}] "
        if meter is not None:
            self.meter = meter
        signature = measure.keySignature
        if signature is not None and not first and (self.key is None or signature.sharps != self.key.sharps):
            text += f"[K:{_key(signature)}] "
        if signature is not None:
            self.key = signature
        return text

    def _overfull(self, length: Fraction) -> str:
        """An inline meter for a measure longer than its meter allows (a final long chord, say).

        Without it music21's ABC reader would split the measure and the note with it.
        """
        bar_length = Fraction(4) if self.meter is None else Fraction(self.meter.barDuration.quarterLength)
        if length <= bar_length:
            if self.stretched:
                self.stretched = False
                return f"[M:{_meter(self.meter)}] "
            return ""
        self.stretched = True
        denominator = 4 if self.meter is None else self.meter.denominator
        while (length * denominator / 4).denominator != 1:
            denominator *= 2
        return f"[M:{length * denominator / 4}/{denominator}] "

    def _barline(self, measure: Measure) -> str:
        from music21 import bar

        right = measure.rightBarline
        if isinstance(right, bar.Repeat) and right.direction == "end":
            return ":|"
        if right is not None and right.type in ("final", "light-heavy"):
            return "|]"
        if right is not None and right.type in ("double", "light-light"):
            return "||"
        return "|"

    def _body(self, measure: Measure, elements: list[Any]) -> tuple[str, Fraction]:
        """The measure's notes as ABC, and their total length in quarter notes."""
        from music21 import harmony

        tokens: list[str] = []
        position = Fraction(0)  # a pickup measure's notes start at 0 too (music21 records paddingLeft)
        graces: list[Any] = []
        index = 0
        while index < len(elements):
            element = elements[index]
            if isinstance(element, harmony.Harmony):
                tokens.append(f'"{element.figure}"')  # a chord symbol annotates the next note
                index += 1
                continue
            if element.duration.isGrace:
                graces.append(element)
                index += 1
                continue
            offset = Fraction(element.offset).limit_denominator(10_000)
            if offset > position:
                tokens.extend(self._rest(offset - position))  # a gap: rest through it
                position = offset
            group = self._tuplet_group(elements, index)
            if graces:
                tokens.append("{" + "".join(self._pitches_text(g) for g in graces if not g.isRest) + "}")
                graces = []
            if group:
                actual, normal = (
                    group[0].duration.tuplets[0].numberNotesActual,
                    group[0].duration.tuplets[0].numberNotesNormal,
                )
                scale = Fraction(actual, normal)
                written = [piece for e in group for piece in self._note(e, scale)]  # a split note counts twice
                count = len(written)
                prefix = f"({actual}" if (actual, normal, count) == (3, 2, 3) else f"({actual}:{normal}:{count}"
                tokens.append(prefix + "".join(written))
                position += sum((self._ql(e) for e in group), Fraction(0))
                index += len(group)
                continue
            tokens.extend(self._note(element, Fraction(1)))
            position += self._ql(element)
            index += 1
        if graces:
            tokens.append("{" + "".join(self._pitches_text(g) for g in graces if not g.isRest) + "}")
        if position == 0 and measure.highestTime > 0:
            # this voice is silent in a measure where another one plays
            position = Fraction(measure.highestTime).limit_denominator(10_000)
            tokens.extend(self._rest(position))
        return " ".join(tokens), position

    @property
    def _unit_ql(self) -> Fraction:
        return self.unit * 4

    def _ql(self, element: Any) -> Fraction:
        return Fraction(element.duration.quarterLength).limit_denominator(10_000)

    def _tuplet_group(self, elements: list[Any], index: int) -> list[Any]:
        """A complete tuplet group (same ratio, notes adding up to the tuplet's span) starting here, or []."""
        first = elements[index]
        tuplets = first.duration.tuplets
        if len(tuplets) != 1:
            return []
        ratio = (tuplets[0].numberNotesActual, tuplets[0].numberNotesNormal)
        span = Fraction(tuplets[0].totalTupletLength()).limit_denominator(10_000)
        group: list[Any] = []
        total = Fraction(0)
        for element in elements[index:]:
            t = element.duration.tuplets
            if element.duration.isGrace or len(t) != 1 or (t[0].numberNotesActual, t[0].numberNotesNormal) != ratio:
                return []
            group.append(element)
            total += self._ql(element)
            if total == span:
                return group
            if total > span or len(group) > 9:
                return []
        return []

    def _rest(self, quarters: Fraction) -> list[str]:
        """A silence of `quarters` as consecutive rests of note values."""
        check_length("rest", float(quarters), self.name)
        return ["z" + _length(value) for value in note_values(quarters / self._unit_ql, self.unit)]

    def _note(self, element: Any, scale: Fraction) -> list[str]:
        """A note, chord or rest as written notes of note values (tied, for notes); `scale` undoes a tuplet's
        ratio inside a tuplet group."""
        quarters = self._ql(element)
        check_length("rest" if element.isRest else "note", float(quarters), self.name)
        lengths = [_length(value) for value in note_values(quarters * scale / self._unit_ql, self.unit)]
        if element.isRest:
            return ["z" + length for length in lengths]
        members = list(element.notes) if element.isChord else [element]
        written = []
        for index, length in enumerate(lengths):
            last = index == len(lengths) - 1
            ties = [self._tie(n) if last else "-" for n in members]  # pieces of one note are tied
            if len(members) == 1:
                written.append(self._pitch(members[0].pitch) + length + ties[0])
            else:
                inner = "".join(self._pitch(n.pitch) + tie for n, tie in zip(members, ties, strict=True))
                written.append(f"[{inner}]{length}")
        return written

    def _pitches_text(self, element: Any) -> str:
        return "".join(self._pitch(p) for p in element.pitches)

    @staticmethod
    def _tie(note: Any) -> str:
        return "-" if note.tie is not None and note.tie.type in ("start", "continue") else ""

    def _pitch(self, pitch: Any) -> str:
        alter = int(pitch.accidental.alter) if pitch.accidental is not None else 0
        step = pitch.step
        marked = step in self.letters_marked
        text = ""
        # music21 ignores inline key changes ([K:D] mid-tune): agree with the header key as well
        if alter != _key_alter(self.key, step) or alter != _key_alter(self.header_key, step) or marked:
            text = _ACCIDENTALS.get(alter, "=")
            self.letters_marked.add(step)
        octave = pitch.octave if pitch.octave is not None else 4
        if octave >= 5:
            text += step.lower() + "'" * (octave - 5)
        else:
            text += step + "," * (4 - octave)
        return text


def sounding_notes(score: Any) -> list[list[tuple[float, tuple[str, ...], float]]]:
    """What the writer promises to keep, to compare a score with its ABC re-parsed.

    Per part: (offset, spelled pitches, length) of each note or chord, tied single notes joined (music21's
    ABC reader keeps ties on notes but drops them inside chords, so chords stay as written).
    """
    from music21 import harmony

    parts = []
    for part in score.parts:
        line: list[list[Any]] = []
        for n in part.flatten().notes:
            if n.duration.isGrace or isinstance(n, harmony.Harmony):
                continue
            item = [
                round(float(n.offset), 4),
                tuple(sorted(p.nameWithOctave for p in n.pitches)),
                float(n.quarterLength),
            ]
            tied_on = not n.isChord and n.tie is not None and n.tie.type in ("start", "continue")
            if line and line[-1][3] and line[-1][1] == item[1] and abs(line[-1][0] + line[-1][2] - item[0]) < 1e-6:
                line[-1][2] += item[2]
                line[-1][3] = tied_on
                continue
            line.append([*item, tied_on])
        parts.append([(a, b, round(c, 4)) for a, b, c, _ in line])
    return parts
