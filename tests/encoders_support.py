"""Small real inputs for the encoder tests: ABC tunes, MIDI files written with mido, pieces in tmp_path."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import mido

from tui_composer.plugin.contract import Piece

REEL = """X:7
T:The Test Reel
Z:Transcribed by nobody
N:a note for the bibliography
M:4/4
L:1/8
R:reel
K:G
% a comment line
|:GABc dBGB|c2ec BdAF|G2BG FGAF|G2B2 G4:|  % trailing comment
|:g2fg edeg|f2ef d2B2|(3cBA (3BAG FGAF|[G2B2d2] [GBd]2 G4:|
"""

JIG = """X:2
T:A Jig In D
M:6/8
L:1/8
K:D
A|dfa afd|cec ecA|dfa afd|e3-e2A|
dfa afd|^cec =cec|B2B BAG|F3 D2||
"""

NO_NOTES = """X:3
T:Only Rests
M:4/4
L:1/8
K:C
z8|z8|
"""

GARBAGE_ABC = """X:4
T:Garbage
K:C
@@@ ### !!! $$$ ~~~ ???
"""


def abc_piece(text: str, key: str = "tunes.abc#1", path: Path | None = None) -> Piece:
    return Piece(key=key, title=key, format="abc", path=path or Path("tunes.abc"), text=text)


def write_midi(
    path: Path,
    notes: Sequence[tuple[int, int, int]],
    *,
    channel: int = 0,
    ticks_per_beat: int = 480,
    velocity: int = 90,
) -> Path:
    """A type-1 MIDI file with one track: notes as (pitch, start tick, end tick)."""
    events = []
    for pitch, start, end in notes:
        events.append((start, 1, pitch))
        events.append((end, 0, pitch))
    events.sort()
    track = mido.MidiTrack()
    now = 0
    for tick, is_on, pitch in events:
        kind = "note_on" if is_on else "note_off"
        track.append(
            mido.Message(kind, note=pitch, velocity=velocity if is_on else 0, channel=channel, time=tick - now)
        )
        now = tick
    midi = mido.MidiFile(type=1, ticks_per_beat=ticks_per_beat)
    midi.tracks.append(track)
    midi.save(path)
    return path


def midi_piece(path: Path, key: str | None = None) -> Piece:
    return Piece(key=key or path.name, title=path.stem, format="midi", path=path)


# C major scale in quarter notes, then a C major chord held for a half note
SCALE = [(60 + step, i * 480, (i + 1) * 480) for i, step in enumerate([0, 2, 4, 5, 7, 9, 11, 12])]
CHORD = [(60, 3840, 4800), (64, 3840, 4800), (67, 3840, 4800)]


def _bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# Pieces a MIDI-reading encoder must refuse, made in a folder, and a word its reason must hold.
BAD_MIDI_INPUTS: list[tuple[Callable[[Path], Piece], str]] = [
    (lambda d: midi_piece(_bytes(d / "noise.mid", bytes(range(256)) * 4)), "invalid MIDI"),
    (lambda d: midi_piece(_bytes(d / "cut.mid", write_midi(d / "x.mid", SCALE).read_bytes()[:30])), "MIDI"),
    (lambda d: midi_piece(write_midi(d / "drums.mid", SCALE, channel=9)), "only drums"),
    (lambda d: abc_piece(NO_NOTES, key="rests.abc#3"), "no notes"),
]
