"""Hostile lengths: a 60-byte tune with a note of a billion quarters, a MIDI note held for hours, a MIDI gap
of 2^28 ticks. Every encoder refuses them quickly, naming the bound of tui_composer.api it hit, and
never builds anything the size of the music (the midi-events encoder used to grow past 6 GB).
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mido
import pytest
from encoders_support import SCALE, abc_piece, midi_piece, write_midi
from music21 import note, stream
from tui_composer_plugins.abc.encoder import AbcEncoder
from tui_composer_plugins.midi_events.encoder import MidiEventEncoder
from tui_composer_plugins.piano_roll.encoder import PianoRollEncoder

from tui_composer import api
from tui_composer.plugin.contract import EncodeError, Encoder, Piece
from tui_composer.services.corpora import check_piece

ENCODERS: dict[str, Callable[..., Encoder]] = {
    "abc": AbcEncoder,
    "midi-events": MidiEventEncoder,
    "piano-roll": PianoRollEncoder,
}
LONGEST_DELTA = 0x0FFFFFFF  # the largest delta time a MIDI file can hold (a 4-byte variable-length number)
HEADER = "X:1\nM:4/4\nL:1/8\nK:C\n"


def abc_case(body: str) -> Callable[[Path], Piece]:
    return lambda folder: abc_piece(HEADER + body, key="hostile.abc#1")


def held_for_hours(folder: Path) -> Piece:
    # one note released after three hours at 120 beats per minute: 21,600 quarters
    return midi_piece(write_midi(folder / "held.mid", [(60, 0, 21_600 * 480), (64, 0, 480)]))


def never_released(folder: Path) -> Piece:
    # a note that is struck and never released, in a track that ends 2^28 ticks later
    track = mido.MidiTrack([mido.Message("note_on", note=60, velocity=90, time=0)])
    track.append(mido.MetaMessage("end_of_track", time=LONGEST_DELTA))
    midi = mido.MidiFile(type=0, ticks_per_beat=480, tracks=[track])
    midi.save(folder / "stuck.mid")
    return midi_piece(folder / "stuck.mid")


def huge_gap(folder: Path) -> Piece:
    # one tick per quarter and the longest delta between two notes: 268 million quarters of silence
    notes = [(60, 0, 1), (62, 1 + LONGEST_DELTA, 2 + LONGEST_DELTA)]
    return midi_piece(write_midi(folder / "gap.mid", notes, ticks_per_beat=1))


def long_piece(folder: Path) -> Piece:
    # 300 ordinary notes of 60 quarters: every note is fine, the piece (18,000 quarters) is not
    notes = [(60 + i % 12, i * 60 * 480, (i + 1) * 60 * 480) for i in range(300)]
    return midi_piece(write_midi(folder / "long.mid", notes))


def long_musicxml(folder: Path) -> Piece:
    # a 100-quarter note: music21 writes it as tied notes across 25 measures, read back joined
    part = stream.Part([note.Note("C4", quarterLength=100), note.Note("D4", quarterLength=4)])
    path = folder / "long.musicxml"
    stream.Score([part]).write("musicxml", fp=path)
    return Piece(key="long.musicxml", title="long", format="musicxml", path=path)


# (piece maker, the constant its message must name)
HOSTILE: dict[str, tuple[Callable[[Path], Piece], str]] = {
    "abc note of a billion quarters": (abc_case("C999999999|\n"), "MAX_NOTE_QUARTERS"),
    "abc barred note of a billion quarters": (abc_case("C999999999|D8|E8|\n"), "MAX_NOTE_QUARTERS"),
    "abc note of 1,250 quarters in a bar": (abc_case("C9999|D8|E8|\n"), "MAX_NOTE_QUARTERS"),
    "abc rest of a billion quarters": (abc_case("C8|D8|z999999999|E8|\n"), "MAX_REST_QUARTERS"),
    "abc bar of 1,200 quarters": (abc_case("C8" * 300 + "|D8|E8|\n"), "MAX_BAR_QUARTERS"),
    "abc tied notes over 72 quarters": (abc_case("C8-|" * 17 + "C8|D8|\n"), "MAX_NOTE_QUARTERS"),
    "abc tune of 16,640 quarters": (abc_case("C64|" * 520 + "\n"), "MAX_PIECE_QUARTERS"),
    "midi note held for three hours": (held_for_hours, "MAX_NOTE_QUARTERS"),
    "midi note never released": (never_released, "MAX_NOTE_QUARTERS"),
    "midi gap of 2^28 quarters": (huge_gap, "MAX_REST_QUARTERS"),
    "midi piece of 18,000 quarters": (long_piece, "MAX_PIECE_QUARTERS"),
    "musicxml note of 100 quarters": (long_musicxml, "MAX_NOTE_QUARTERS"),
}


_ADDRESS_SPACE_BEFORE: list[int] = []  # the process's address space at the first guarded read


def _address_space() -> int:
    return int(Path("/proc/self/statm").read_text().split()[0]) * resource.getpagesize()


def guarded_read(encoder: Encoder, piece: Piece) -> Any:
    return guarded(encoder.read, piece)


def guarded(read: Callable[[Piece], Any], piece: Piece) -> Any:
    """read(piece) with at most 1 GiB more address space than the first guarded read had: a regression
    fails with MemoryError instead of taking the shared machine's memory. The limit is lifted before the
    error reaches pytest, which needs memory to report it."""
    if not _ADDRESS_SPACE_BEFORE:
        _ADDRESS_SPACE_BEFORE.append(_address_space())
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = max(_ADDRESS_SPACE_BEFORE[0], _address_space()) + 2**30
    resource.setrlimit(resource.RLIMIT_AS, (limit if hard == resource.RLIM_INFINITY else min(limit, hard), hard))
    try:
        return read(piece)
    except MemoryError:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        pytest.fail(f"{piece.key}: {read.__qualname__} took more than 1 GiB", pytrace=False)
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@pytest.mark.parametrize("encoder", sorted(ENCODERS))
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_every_encoder_refuses_hostile_lengths_naming_the_bound(case: str, encoder: str, tmp_path: Path) -> None:
    make, bound = HOSTILE[case]
    piece = make(tmp_path)
    with pytest.raises(EncodeError, match=rf"longer than the [\d,]+-quarter limit \(tui_composer\.api\.{bound}\)"):
        guarded_read(ENCODERS[encoder](), piece)


def test_the_message_names_the_tune_the_length_and_the_limit() -> None:
    with pytest.raises(EncodeError) as caught:
        guarded_read(MidiEventEncoder(), abc_piece(HEADER + "C999999999|\n", key="hostile.abc#7"))
    assert caught.value.piece == "hostile.abc#7"
    assert str(caught.value) == (
        "hostile.abc#7: a note of 499,999,999.5 quarters at quarter 0 is longer than the 64-quarter limit "
        "(tui_composer.api.MAX_NOTE_QUARTERS); shorten it or leave the piece out"
    )


def test_import_refuses_the_tune_before_music21_re_bars_it() -> None:
    # music21 alone asks for a billion-part time signature here (MemoryError, or the machine's memory)
    with pytest.raises(EncodeError, match=r"hostile\.abc#1: a note of 499,999,999\.5 quarters .*MAX_NOTE_QUARTERS"):
        guarded(check_piece, abc_piece(HEADER + "C999999999|D8|E8|\n", key="hostile.abc#1"))


def test_a_tune_without_a_unit_length_is_refused_too() -> None:
    # the 60-byte tune as reported: music21 needs an L: or M: line, so it never reaches the bounds
    with pytest.raises(EncodeError, match="no active default note length"):
        guarded_read(MidiEventEncoder(), abc_piece("X:1\nK:C\nC999999999|\n"))


@pytest.mark.parametrize("encoder", ["midi-events", "piano-roll"])
def test_a_fine_grid_is_bounded_in_steps(encoder: str, tmp_path: Path) -> None:
    # 9,000 quarters pass the quarter bounds; on a 24-step grid they are 216,000 steps
    notes = [(60 + i % 12, i * 60 * 480, (i + 1) * 60 * 480) for i in range(150)]
    piece = midi_piece(write_midi(tmp_path / "fine.mid", notes))
    with pytest.raises(
        EncodeError, match=r"216,000 steps .* 200,000-step limit \(tui_composer\.api\.MAX_PIECE_STEPS\)"
    ):
        guarded_read(ENCODERS[encoder](steps_per_quarter=24), piece)
    assert len(guarded_read(ENCODERS[encoder](steps_per_quarter=4), piece)) > 0  # 36,000 steps: fine


def test_a_huge_tempo_is_no_bound_the_grid_counts_quarters(tmp_path: Path) -> None:
    # the slowest tempo a MIDI file can set (16.8 s per quarter) changes seconds, not the grid
    path = write_midi(tmp_path / "slow.mid", SCALE)
    midi = mido.MidiFile(path)
    midi.tracks[0].insert(0, mido.MetaMessage("set_tempo", tempo=0xFFFFFF, time=0))
    midi.save(tmp_path / "slowest.mid")
    encoder = MidiEventEncoder()
    slowest = encoder.read(midi_piece(tmp_path / "slowest.mid"))
    assert slowest == encoder.read(midi_piece(path))
    assert slowest[:3] == ["on:60", "shift:4", "off:60"]


def test_the_bounds_are_public_and_real_music_is_far_inside_them() -> None:
    assert (api.MAX_NOTE_QUARTERS, api.MAX_REST_QUARTERS, api.MAX_BAR_QUARTERS) == (64, 64, 256)
    assert (api.MAX_PIECE_QUARTERS, api.MAX_PIECE_STEPS) == (16_384, 200_000)
    api.check_lengths([], "empty")  # nothing is within every bound
    with pytest.raises(EncodeError, match=r"a piece of 16,384\.5 quarters"):
        api.check_length("piece", 16_384.5, "tune")


# Run in a child process: every hostile piece through every encoder, timed, then the peak RSS. An address
# space limit keeps a regression from taking the machine's memory.
CHILD = """
import json, resource, sys, time
resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, resource.getrlimit(resource.RLIMIT_AS)[1]))
from tui_composer.plugin.contract import EncodeError, Piece
from tui_composer_plugins.abc.encoder import AbcEncoder
from tui_composer_plugins.midi_events.encoder import MidiEventEncoder
from tui_composer_plugins.piano_roll.encoder import PianoRollEncoder
pieces = [Piece(**{**p, "path": __import__("pathlib").Path(p["path"])}) for p in json.loads(sys.argv[1])]
seconds = {}
for encoder in (AbcEncoder(), MidiEventEncoder(), PianoRollEncoder()):
    for piece in pieces:
        start = time.perf_counter()
        try:
            encoder.read(piece)
            outcome = "read"
        except EncodeError as error:
            outcome = error.reason
        seconds[f"{type(encoder).__name__} {piece.key}"] = (round(time.perf_counter() - start, 3), outcome)
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"peak_rss": rss, "seconds": seconds}))
"""


def test_encoding_hostile_pieces_stays_small_in_a_child_process(tmp_path: Path) -> None:
    pieces = []
    for name, (make, _) in HOSTILE.items():
        folder = tmp_path / str(len(pieces))
        folder.mkdir()
        piece = make(folder)
        pieces.append({**piece.__dict__, "key": name, "path": str(piece.path)})
    done = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(pieces)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    print(json.dumps(report, indent=1))  # the figures for the record (pytest -s)
    assert report["peak_rss"] < 2**30
    assert all("limit" in outcome for _, outcome in report["seconds"].values())
