"""Export: MIDI through music21 for tunes plain `score.write('midi')` fails on, bounded by a timeout;
any piece parses to a Score and gives ABC text."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import mido
import pytest
from encoders_support import JIG, SCALE, abc_piece, midi_piece, write_midi
from music21 import bar
from tui_composer_corpora import music21_corpus_dir

from tui_composer.music.export import (
    ExportError,
    _midi_bytes,
    parse_abc,
    parse_piece,
    performable,
    piece_abc,
    score_to_midi,
)
from tui_composer.plugin.contract import EncodeError, Piece
from tui_composer.services.corpora import read_folder
from tui_composer.services.parallel import call_bounded


def oneills(key: str) -> Piece:
    pieces, _ = read_folder(music21_corpus_dir() / "oneills1850", ("*.abc",))
    return next(p for p in pieces if p.key == key)


def struck(data: bytes) -> list[int]:
    midi = mido.MidiFile(file=io.BytesIO(data))
    return [m.note for track in midi.tracks for m in track if m.type == "note_on" and m.velocity > 0]


def test_a_tune_whose_time_signature_breaks_plain_music21_export(tmp_path: Path) -> None:
    # "The Enchanted Valley": after expanding repeats one TimeSignature object sits in two measures
    score = parse_piece(oneills("0001-0050.abc#1"))
    data = score_to_midi(score, tmp_path / "valley.mid")
    assert (tmp_path / "valley.mid").read_bytes() == data
    played = struck(data)
    assert len(played) == len(score.expandRepeats().stripTies().flatten().notes)  # grace notes sound too
    assert played[0] == 67 and 70 in played[:4]  # G3, then B flat (K:Gm)


def test_malformed_repeats_are_played_as_written() -> None:
    score = parse_piece(oneills("0101-0200.abc#82"))
    played = struck(score_to_midi(score))
    notes = [n for n in score.flatten().notes if not n.duration.isGrace]
    assert len(played) >= len(notes) - 1 and played[:2] == [71, 69]


def test_ties_are_joined_in_midi() -> None:
    score = parse_abc("X:1\nM:4/4\nL:1/8\nK:C\nc4- c4 | d8 |\n")
    midi = mido.MidiFile(file=io.BytesIO(score_to_midi(score)))
    assert midi.length > 0 and struck(score_to_midi(score)) == [72, 74]


def test_call_bounded_stops_a_hanging_call_in_the_main_thread_and_in_a_worker_thread() -> None:
    start = time.monotonic()
    outcome = call_bounded(time.sleep, 5, timeout=0.2)
    assert outcome.error == "timed out after 0.2 s" and time.monotonic() - start < 2
    answers = []
    worker = threading.Thread(target=lambda: answers.append(call_bounded(time.sleep, 5, timeout=0.2)))
    worker.start()
    worker.join(3)
    assert answers and answers[0].error == "timed out after 0.2 s"
    assert call_bounded(len, "abc", timeout=1).value == 3


def test_a_conversion_past_its_timeout_fails_with_the_reason() -> None:
    score = parse_piece(oneills("0001-0050.abc#1"))
    with pytest.raises(ExportError, match=r"MIDI export failed: timed out after 0\.001 s"):
        score_to_midi(score, timeout=0.001)


def test_parse_piece_and_piece_abc_for_each_format(tmp_path: Path) -> None:
    tune = abc_piece(JIG)
    assert piece_abc(tune) == JIG  # ABC pieces keep their own text
    assert len(parse_piece(tune).flatten().notes) == 41
    midi = midi_piece(write_midi(tmp_path / "scale.mid", SCALE))
    assert [n.pitch.midi for n in parse_piece(midi).flatten().notes] == [60, 62, 64, 65, 67, 69, 71, 72]
    assert "C2 D2 E2 F2" in piece_abc(midi)
    xml_path = tmp_path / "jig.musicxml"
    parse_piece(tune).write("musicxml", fp=xml_path)
    xml = Piece(key="jig.musicxml", title="jig", format="musicxml", path=xml_path)
    assert [p.nameWithOctave for p in parse_piece(xml).flatten().pitches][:3] == ["A4", "D5", "F#5"]
    broken = tmp_path / "broken.musicxml"
    broken.write_text("<score-partwise><part id='P1'>")
    with pytest.raises(EncodeError, match="music21 could not read it") as caught:
        parse_piece(Piece(key="broken.musicxml", title="broken", format="musicxml", path=broken))
    assert caught.value.piece == "broken.musicxml"


def test_a_timeout_swallowed_by_a_gc_callback_still_stops_the_call() -> None:
    import gc
    import time

    calls = []

    def swallowing_callback(phase: str, info: dict) -> None:
        calls.append(phase)
        if len(calls) == 1:
            time.sleep(0.1)  # the first alarm lands here, where Python swallows any exception

    def busy(seconds: float) -> float:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            gc.collect(0)
        return seconds

    gc.callbacks.append(swallowing_callback)
    try:
        outcome = call_bounded(busy, 2.0, timeout=0.05)
    finally:
        gc.callbacks.remove(swallowing_callback)
    assert outcome.error == "timed out after 0.05 s"


def letters(played: list[int]) -> str:
    return "".join("CDEFGAB"[[0, 2, 4, 5, 7, 9, 11].index(p % 12)] for p in played)


@pytest.mark.parametrize(
    ("body", "heard"),
    [
        ("C8|D8:|E8|F8:|", "CDCDEFEF"),  # a :| with no |: repeats from the last repeat end: AABB
        ("|:C8|D8:||:E8|F8:|", "CDCDEFEF"),  # the same, written out
        ("C8|D8|]E8|F8:|", "CDEFEF"),  # ... or from the last |]
        ("C8|D8||E8|F8:|", "CDEFEF"),  # ... or from the last ||
        ("C8|D8|E8:|", "CDECDE"),  # ... or from the start
        ("|:C8|D8||E8|F8:|", "CDEFCDEF"),  # a |: before the || still counts
        ("C8|D8:|E8|F8:|G8|A8:|", "CDCDEFEFGAGA"),
        ("|:C8|[1 D8:|[2 E8|]", "CDCE"),  # first and second endings
    ],
)
def test_repeats_follow_abc_2_1(body: str, heard: str) -> None:
    score = parse_abc("X:1\nM:4/4\nL:1/8\nK:C\n" + body + "\n")
    lefts = [m.leftBarline for m in score.parts[0].getElementsByClass("Measure")]
    assert letters(struck(score_to_midi(score))) == heard
    assert [m.leftBarline for m in score.parts[0].getElementsByClass("Measure")] == lefts  # left as written


# Tunes of O'Neill's whose repeats music21 alone plays 3 to 20 times over (`1031-1115.abc#18`: 290 written
# notes, 5,674 played); the first four are quick to expand.
OVER_REPEATED = ["0811-0899.abc#80", "0951-0981.abc#10", "1031-1115.abc#8", "1031-1115.abc#68"]
OVER_REPEATED += ["0732-0758_mh.abc#9", "1031-1115.abc#18", "1031-1115.abc#78", "1556-1576.abc#7"]


def check_repeats_as_written(pieces: list[Piece]) -> None:
    for piece in pieces:
        score = parse_piece(piece)
        written = len(struck(_midi_bytes(performable(score, expand=False))))
        played = len(struck(score_to_midi(score)))
        repeat_ends = sum(isinstance(m.rightBarline, bar.Repeat) for m in score.parts[0].getElementsByClass("Measure"))
        # each section repeats once at most: every written note sounds once or twice
        assert written <= played <= 2 * written, (piece.key, written, played)
        assert (played > written) == (repeat_ends > 0), (piece.key, written, played)


def test_the_tunes_music21_over_repeats_play_each_note_at_most_twice() -> None:
    pieces, _ = read_folder(music21_corpus_dir() / "oneills1850", ("*.abc",))
    check_repeats_as_written([p for p in pieces if p.key in OVER_REPEATED[:4]])


@pytest.mark.slow
def test_no_oneills_tune_plays_a_note_more_often_than_its_repeats_allow() -> None:
    pieces, _ = read_folder(music21_corpus_dir() / "oneills1850", ("*.abc",))
    chosen = [p for p in pieces if p.key in OVER_REPEATED] + pieces[::64][:32]
    assert len(chosen) == 40
    check_repeats_as_written(chosen)
