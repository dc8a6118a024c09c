"""The ABC writer: its output re-parses in music21 to the same pitches and durations."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest
from music21 import chord, corpus, key, meter, note, stream, tie
from tui_composer_corpora import music21_corpus_dir

from tui_composer.music.abc_writer import note_values, score_to_abc, sounding_notes
from tui_composer.music.export import parse_abc
from tui_composer.plugin.contract import EncodeError
from tui_composer.services.corpora import read_folder


@pytest.mark.parametrize("work", ["bach/bwv66.6", "bach/bwv153.1", "bach/bwv269"])
def test_bach_chorales_reparse_to_the_same_notes(work: str) -> None:
    chorale = corpus.parse(work)
    text = score_to_abc(chorale)
    assert text.count("\nV:") == 4
    assert sounding_notes(parse_abc(text)) == sounding_notes(chorale)


def test_a_sample_of_bundled_tunes_reparses_to_the_same_notes() -> None:
    pieces = []
    for folder in ("oneills1850", "ryansMammoth"):
        found, _ = read_folder(music21_corpus_dir() / folder, ("*.abc",))
        pieces += found[::150][:6]  # spread over the collection
    assert len(pieces) == 12
    for piece in pieces:
        score = parse_abc(piece.text or "")
        assert sounding_notes(parse_abc(score_to_abc(score))) == sounding_notes(score), piece.key


def build(*elements: Any, signature: str = "4/4", tonic: str = "C") -> stream.Score:
    part = stream.Part()
    part.append(meter.TimeSignature(signature))
    part.append(key.Key(tonic))
    for element in elements:
        part.append(element)
    score = stream.Score()
    score.insert(0, part)
    return score


def n(name: str, length: float = 1.0, tie_type: str | None = None) -> note.Note:
    made = note.Note(name, quarterLength=length)
    if tie_type:
        made.tie = tie.Tie(tie_type)
    return made


def test_accidentals_in_key_context() -> None:
    score = build(n("F#4"), n("F4"), n("F#4"), n("C#5"), n("F5", 4), tonic="G")
    text = score_to_abc(score)
    body = text.split("K:G\n")[1]
    # F# is in the key; the natural is marked, and so is the F# after it in the same bar
    assert body.startswith("F2 =F2 ^F2 ^c2 |")
    assert sounding_notes(parse_abc(text)) == sounding_notes(score)


def test_chords_ties_rests_and_triplets() -> None:
    triplet = [n(p, 1 / 3) for p in ("C5", "D5", "E5")]
    score = build(
        chord.Chord(["C4", "E4", "G4"], quarterLength=2),
        note.Rest(quarterLength=1),
        *triplet,
        n("A4", 2, "start"),
        n("A4", 4, "stop"),
        n("B-4", 0.75),
        n("B-4", 0.25),
        n("C5", 1),
    )
    score.parts[0].makeNotation(inPlace=True)
    text = score_to_abc(score)
    assert "[CEG]4" in text and "z2" in text and "(3cde" in text and "A4-" in text and "_B3/2" in text
    assert sounding_notes(parse_abc(text)) == sounding_notes(score)


def test_several_voices_key_and_meter() -> None:
    upper = stream.Part([meter.TimeSignature("3/4"), key.Key("d"), n("D5", 3), n("E5", 1.5), n("F5", 1.5)])
    lower = stream.Part([meter.TimeSignature("3/4"), key.Key("d"), n("D3", 3), n("A2", 3)])
    score = stream.Score([upper, lower])
    text = score_to_abc(score)
    header = text.split("\n")
    assert "M:3/4" in header and "K:Dm" in header and "L:1/8" in header and "V:2 clef=bass" in header
    assert sounding_notes(parse_abc(text)) == sounding_notes(score)


def written_types(text: str) -> list[str]:
    return [e.duration.type for e in parse_abc(text).recurse().notesAndRests]


def test_a_rest_no_note_value_shows_is_written_as_consecutive_rests() -> None:
    # 13/2 eighths (3.25 quarters): a dotted half rest and a sixteenth rest, not `z13/2`
    score = build(note.Rest(quarterLength=3.25), n("C5", 0.75))
    text = score_to_abc(score)
    assert "z6 z/2 c3/2 |" in text and "13/2" not in text
    assert "complex" not in written_types(text)
    reparsed = parse_abc(text)
    assert float(reparsed.highestTime) == 4.0
    assert sum(float(r.quarterLength) for r in reparsed.recurse().getElementsByClass("Rest")) == 3.25
    assert sounding_notes(reparsed) == sounding_notes(score)


def test_a_note_no_note_value_shows_is_written_as_tied_notes() -> None:
    score = build(n("A4", 3.25), n("C5", 0.75), n("B4", 2.75, "start"), n("B4", 1.25, "stop"))
    text = score_to_abc(score)
    assert "A6- A/2 c3/2 | B4- B3/2- B2- B/2 |" in text and "13/2" not in text
    assert "complex" not in written_types(text)
    reparsed = parse_abc(text)
    assert float(reparsed.highestTime) == 8.0
    assert sounding_notes(reparsed) == sounding_notes(score)  # tied pieces join to the 3.25-quarter A
    assert sounding_notes(reparsed)[0][0] == (0.0, ("A4",), 3.25)


def test_note_values_are_plain_or_dotted_powers_of_two_at_most_a_breve() -> None:
    eighth, sixteenth = Fraction(1, 8), Fraction(1, 16)
    assert note_values(Fraction(13, 2), eighth) == [6, Fraction(1, 2)]
    assert note_values(Fraction(13, 2), sixteenth) == [6, Fraction(1, 2)]
    assert note_values(Fraction(11, 2), eighth) == [4, Fraction(3, 2)]
    assert note_values(Fraction(3), eighth) == [3]  # a dotted quarter as it is
    assert note_values(Fraction(33), eighth) == [16, 16, 1]  # two breves and an eighth
    assert note_values(Fraction(2, 3), eighth) == [Fraction(2, 3)]  # a tuplet's length stays whole


def test_the_writer_refuses_a_note_past_the_bound_before_making_measures() -> None:
    part = stream.Part([meter.TimeSignature("4/4"), n("C4", 1_000)])
    with pytest.raises(EncodeError, match=r"Long: a note of 1,000 quarters .*MAX_NOTE_QUARTERS"):
        score_to_abc(part, title="Long")
