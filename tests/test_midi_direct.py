"""The direct MIDI writer: `score_to_midi` writes the bytes music21's own writer wrote (repeats played by
ABC 2.1's rules, ties joined, same tempo, meter, key, velocities and event order) without music21's writer,
and falls back to it for what it does not render. Checked against music21's export, read back with mido."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import mido
import pytest
from encoders_support import JIG, REEL
from tui_composer_corpora import music21_corpus_dir

from tui_composer.music.checking import check_tune
from tui_composer.music.export import _direct_or_none, _midi_bytes, parse_abc, parse_piece, performable, score_to_midi
from tui_composer.plugin.contract import Piece
from tui_composer.services.corpora import read_folder
from tui_composer.services.parallel import call_bounded

if TYPE_CHECKING:
    from music21.stream import Score


def music21_midi(score: object) -> bytes:
    """The export as it was before the direct writer: music21 plays the expanded score and writes it."""
    expanded = call_bounded(performable, score, 15)
    played = expanded.value if expanded.ok else performable(score, expand=False)  # type: ignore[arg-type]
    return _midi_bytes(played)


def notes(data: bytes) -> list[tuple[int, int, int, int, int]]:
    """(track, pitch, start tick, duration in ticks, velocity) of every note struck; offs match first in, first out."""
    found = []
    for number, track in enumerate(mido.MidiFile(file=io.BytesIO(data)).tracks):
        tick, sounding = 0, {}
        for message in track:
            tick += message.time
            if message.type == "note_on" and message.velocity:
                sounding.setdefault(message.note, []).append((tick, message.velocity))
            elif message.type in ("note_on", "note_off") and sounding.get(message.note):
                start, velocity = sounding[message.note].pop(0)
                found.append((number, message.note, start, tick - start, velocity))
    return sorted(found, key=lambda n: (n[0], n[2], n[1]))  # by track, start, pitch


def meta(data: bytes) -> list[tuple[int, str, object]]:
    midi = mido.MidiFile(file=io.BytesIO(data))
    found = []
    for number, track in enumerate(midi.tracks):
        for message in track:
            if message.is_meta and message.type != "end_of_track":
                found.append((number, message.type, message.dict().get("tempo", message.dict().get("key"))))
    return found


def tune(body: str, header: str = "M:4/4\nL:1/8\nK:C\n") -> str:
    return f"X:1\n{header}{body}\n"


TUNES = {
    "repeats, implied start": tune("C8|D8:|E8|F8:|"),
    "first and second endings": tune("|:C2D2 E4|[1 D8:|[2 E8|]"),
    "ties across bars and within": tune("c4- c4 | d2-d2 e4- | e8 |"),
    "chords and a tied chord": tune("[CEG]4 [CEG]2-[CEG]2 | [DF]8 |"),
    "grace notes": tune("{g}A2 {ag}B2 c4 | {/d}e8 |"),
    "triplets and broken rhythm": tune("(3ABc (3def g>a b<c' | (3A2B2c2 d4 |"),
    "chord symbols": tune('"G"G2B2 "D7"A2F2 | "N.C."G8 | "Em/B"E8 |', "M:4/4\nL:1/8\nK:G\n"),
    "tempo, meter and key changes": tune(
        "G2A2 B2c2 | [M:3/4][K:D] d2 f2 a2 | [Q:1/4=90] g6 |", "M:4/4\nL:1/8\nQ:1/4=132\nK:G\n"
    ),
    "staccato, tenuto, bowings": tune("LA2 .B2 !accent!c2 d2 | .e2 Mf2 ug2 va2 |"),
    "two voices": tune("V:1\nC4 D4 | E8 |\nV:2\nE,4 F,4 | G,8 |"),
    "a minor key": tune("|:ABc dcB|A6:|", "M:3/4\nL:1/8\nK:Am\n"),
    "one bar (no measures)": tune("ABc dcB:|", "M:3/4\nL:1/8\nK:Am\n"),
    "the test reel": REEL,
    "the test jig": JIG,
}


@pytest.mark.parametrize("name", list(TUNES))
def test_the_direct_writer_writes_music21s_bytes(name: str) -> None:
    score = parse_abc(TUNES[name])
    direct = _direct_or_none(score, 30)
    assert direct is not None, f"{name}: went through music21's writer"
    expected = music21_midi(score)
    assert notes(direct) == notes(expected) and notes(direct)  # pitch, start, duration in ticks, velocity
    assert meta(direct) == meta(expected)
    assert direct == expected  # byte for byte: same event order and status bytes
    assert score_to_midi(score) == expected


def test_the_notes_are_the_ones_played() -> None:
    score = parse_abc(tune("C2D2E2-E2|F8:|G8|"))
    played = [(pitch, start // 5040, length // 5040) for _, pitch, start, length, _ in notes(score_to_midi(score))]
    # in eighth notes (5040 ticks: music21 writes 10080 a quarter); the tied E sounds once, two quarters long
    first = [(60, 0, 2), (62, 2, 2), (64, 4, 4), (65, 8, 8)]
    assert played == first + [(p, s + 16, n) for p, s, n in first] + [(67, 32, 8)]
    velocities = {v for *_, v in notes(score_to_midi(score))}
    assert velocities == {90}
    marked = parse_abc(tune(".C2 C2 MC4|"))  # music21 gives a staccato 0.05 more volume, a tenuto 0.05 less
    assert [v for *_, v in notes(score_to_midi(marked))] == [96, 90, 84]


def oneills(*keys: str) -> list[Piece]:
    pieces, _ = read_folder(music21_corpus_dir() / "oneills1850", ("*.abc",))
    chosen = [p for p in pieces if p.key in keys]
    assert len(chosen) == len(keys)
    return chosen


# The Enchanted Valley (a TimeSignature music21's writer chokes on), tunes music21 alone over-repeats, and
# tunes with endings, with ties, grace notes and triplets, with chords, with chord symbols.
BUNDLED = ["0001-0050.abc#1", "0811-0899.abc#80", "0951-0981.abc#10", "1031-1115.abc#8", "0101-0200.abc#82"]
BUNDLED += ["0051-0100.abc#47", "0001-0050.abc#2", "0101-0200.abc#35", "0051-0100.abc#16"]


def test_bundled_tunes_are_written_as_music21_writes_them() -> None:
    for piece in oneills(*BUNDLED):
        score = parse_piece(piece)
        expected = music21_midi(score)
        direct = _direct_or_none(score, 30)
        assert direct is not None, piece.key
        assert notes(direct) == notes(expected), piece.key
        assert direct == expected, piece.key


@pytest.mark.slow
def test_every_16th_oneills_tune_is_written_as_music21_writes_it() -> None:
    pieces, _ = read_folder(music21_corpus_dir() / "oneills1850", ("*.abc",))
    written = 0
    for piece in pieces[::16]:
        score = parse_piece(piece)
        direct = _direct_or_none(score, 30)
        if direct is None:
            continue  # music21's writer writes it, as before
        assert direct == music21_midi(score), piece.key
        written += 1
    assert written > 0.9 * len(pieces[::16])


def score_with(extra: str) -> Score:
    """A one-part score of two 4/4 measures, with a lyric, a dynamic or an instrument."""
    from music21 import dynamics, instrument, note, stream

    part = stream.Part()
    for number, names in enumerate((["C4", "D4", "E4", "F4"], ["G4", "A4", "B4", "C5"]), start=1):
        measure = stream.Measure(number=number)
        for name in names:
            measure.append(note.Note(name, quarterLength=1))
        part.append(measure)
    first = part.getElementsByClass(stream.Measure)[0]
    if extra == "lyric":
        first.notes[0].lyric = "la"  # a MIDI lyric event
    elif extra == "dynamic":
        first.insert(0, dynamics.Dynamic("ff"))  # changes velocities
    else:
        first.insert(0, instrument.Violin())  # a program change
    score = stream.Score()
    score.insert(0, part)
    return score


@pytest.mark.parametrize("extra", ["lyric", "dynamic", "instrument"])
def test_what_the_direct_writer_does_not_render_goes_through_music21(extra: str) -> None:
    score = score_with(extra)
    assert _direct_or_none(score, 30) is None
    assert score_to_midi(score) == music21_midi(score)


def test_a_check_reuses_the_score_parsed_from_its_text() -> None:
    text = TUNES["first and second endings"]
    score = parse_abc(text)
    assert check_tune(text, score=score, wrote_midi=True).to_json() == check_tune(text, wrote_midi=True).to_json()
    other = parse_abc(TUNES["grace notes"])  # parsed from other text: ignored, the text is parsed
    assert check_tune(text, score=other).to_json() == check_tune(text).to_json()
    bars_off = tune("C8|D6|E8|F8|")
    assert [b.number for b in check_tune(bars_off, score=parse_abc(bars_off)).bad_bars] == [2]


def test_a_grid_score_with_velocities_and_ties_over_bar_lines_is_written_as_music21_writes_it() -> None:
    from tui_composer.music.notes import GridNote, notes_to_score

    grid = [GridNote(0, 6, 60, 100), GridNote(6, 20, 64, 30), GridNote(22, 23, 67, 127), GridNote(23, 40, 72, 1)]
    score = notes_to_score(grid, 4, meter="3/4")  # 16ths: the E and the C are tied over bar lines
    direct = _direct_or_none(score, 30)
    assert direct is not None
    assert direct == music21_midi(score)
    assert [(pitch, start, length, v) for _, pitch, start, length, v in notes(direct)] == [
        (60, 0, 15120, 100),
        (64, 15120, 35280, 30),
        (67, 55440, 2520, 127),
        (72, 57960, 42840, 1),
    ]
