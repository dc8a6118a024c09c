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
from tui_composer_corpora import music21_corpus_dir

from tui_composer.contract import EncodeError, Piece
from tui_composer.corpora import read_folder
from tui_composer.export import ExportError, parse_abc, parse_piece, piece_abc, score_to_midi
from tui_composer.parallel import call_bounded


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
