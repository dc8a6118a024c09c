"""piano-roll: frames on the grid round-trip through music21, onsets keep repeated notes apart, bad input
gives an EncodeError naming the piece."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from encoders_support import BAD_MIDI_INPUTS, CHORD, JIG, SCALE, abc_piece, midi_piece, write_midi
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tui_composer_plugins.piano_roll.encoder import PianoRollEncoder

from tui_composer.music.export import score_to_midi
from tui_composer.music.notes import GridNote
from tui_composer.plugin.contract import EncodeError, Piece

LOW, HIGH = 55, 72  # a small range keeps the hypothesis examples quick


def roll_of(notes: list[GridNote], low: int = LOW, high: int = HIGH) -> np.ndarray:
    return PianoRollEncoder.roll(notes, low, high)


@st.composite
def grid_notes(draw: st.DrawFn) -> list[GridNote]:
    """Notes on the grid, never two of one pitch sounding at once (what a roll can hold)."""
    notes = []
    for pitch in draw(st.sets(st.integers(LOW, HIGH), min_size=1, max_size=4)):
        time = draw(st.integers(0, 6))
        for _ in range(draw(st.integers(1, 3))):
            length = draw(st.integers(1, 9))
            notes.append(GridNote(time, time + length, pitch))
            time += length + draw(st.integers(0, 3))  # 0: struck again right away
    return notes


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(grid_notes())
def test_frames_to_score_to_frames_is_the_identity(notes: list[GridNote]) -> None:
    encoder = PianoRollEncoder(low=LOW, high=HIGH)
    frames = encoder.encode(roll_of(notes))
    score = encoder.decode(frames)
    assert np.array_equal(encoder.score_frames(score), frames)


def test_onset_keeps_a_repeated_note_apart_from_a_held_one() -> None:
    encoder = PianoRollEncoder(low=LOW, high=HIGH)
    repeated = encoder.encode(roll_of([GridNote(0, 2, 60), GridNote(2, 4, 60)]))
    held = encoder.encode(roll_of([GridNote(0, 4, 60)]))
    width = HIGH - LOW + 1
    assert np.array_equal(repeated[:, :width], held[:, :width])  # same play bits
    assert repeated[:, width + 60 - LOW].tolist() == [1, 0, 1, 0]
    assert held[:, width + 60 - LOW].tolist() == [1, 0, 0, 0]
    assert [n.quarterLength for n in encoder.decode(repeated).flatten().notes] == [0.5, 0.5]
    assert [n.quarterLength for n in encoder.decode(held).flatten().notes] == [1.0]


def test_read_abc_gives_the_full_range_and_fit_crops_it() -> None:
    encoder = PianoRollEncoder(fit_range=True)
    frames = encoder.read(abc_piece(JIG))
    assert frames.dtype == np.uint8 and frames.shape[1] == 2 * 88
    # the jig starts with an eighth-note pickup A4 (MIDI 69): two sixteenth frames, struck once
    assert frames[:2, 69 - 21].tolist() == [1, 1] and frames[:2, 88 + 69 - 21].tolist() == [1, 0]
    assert frames.shape[0] == 2 + 7 * 12 + 10  # pickup, seven bars of 6/8, a last bar of five eighths
    encoder.fit([frames])
    used = np.flatnonzero(frames[:, :88].any(axis=0)) + 21
    assert encoder.range == (used.min(), used.max())
    encoded = encoder.encode(frames)
    assert encoded.shape == (frames.shape[0], 2 * (used.max() - used.min() + 1))
    assert encoder.data_spec().size == encoded.shape[1]
    restored = PianoRollEncoder(fit_range=True)
    restored.load_state(encoder.state())
    assert np.array_equal(restored.encode(frames), encoded)


def test_read_midi_and_decode_to_midi(tmp_path: Path) -> None:
    encoder = PianoRollEncoder()
    frames = encoder.read(midi_piece(write_midi(tmp_path / "scale.mid", SCALE + CHORD)))
    assert frames.shape[0] == 8 * 4 + 8  # eight quarter notes, then a half-note chord
    assert frames[32, 88 + 60 - 21] == frames[32, 88 + 64 - 21] == frames[32, 88 + 67 - 21] == 1
    encoder.fit([frames])
    score = encoder.decode(encoder.encode(frames))
    pitches = [p.midi for n in score.flatten().notes for p in n.pitches]
    assert pitches == [60, 62, 64, 65, 67, 69, 71, 72, 60, 64, 67]
    assert score_to_midi(score)[:4] == b"MThd"


def test_decode_accepts_model_output_as_it_comes() -> None:
    encoder = PianoRollEncoder(low=LOW, high=HIGH)
    width = HIGH - LOW + 1
    probabilities = np.zeros((4, 2 * width), dtype=np.float32)
    probabilities[0:3, 60 - LOW] = 0.9  # played two steps or more without an onset bit: starts where play begins
    probabilities[2, width + 60 - LOW] = 0.7  # an onset inside a held note: struck again
    notes = encoder.frames_notes(probabilities)
    assert notes == [GridNote(0, 2, 60), GridNote(2, 3, 60)]
    with pytest.raises(EncodeError, match="no notes"):
        encoder.decode(np.zeros((5, 2 * width), dtype=np.uint8))
    with pytest.raises(EncodeError, match="width"):
        encoder.decode(np.ones((5, 3), dtype=np.uint8))


def test_lone_bits_of_a_sampled_frame_are_no_notes() -> None:
    # A sampled frame draws every bit on its own: a lone onset bit, or a play bit for one step with no
    # onset, is noise that would add a one-step note to every chord (issue 14: clusters of 14 notes).
    encoder = PianoRollEncoder(low=LOW, high=HIGH)
    width = HIGH - LOW + 1
    frames = np.zeros((4, 2 * width), dtype=np.uint8)
    frames[0:4, [60 - LOW, 64 - LOW]] = 1  # a held third, struck at step 0
    frames[0, [width + 60 - LOW, width + 64 - LOW]] = 1
    frames[1, width + 67 - LOW] = 1  # an onset without play
    frames[2, 71 - LOW] = 1  # one step of play without an onset
    frames[3, [72 - LOW, width + 72 - LOW]] = 1  # a struck sixteenth is a note
    assert encoder.frames_notes(frames) == [GridNote(0, 4, 60), GridNote(0, 4, 64), GridNote(3, 4, 72)]
    pitches = sorted(p.midi for n in encoder.decode(frames).flatten().notes for p in n.pitches)
    assert 67 not in pitches and 71 not in pitches


@pytest.mark.parametrize(("make", "reason"), BAD_MIDI_INPUTS)
def test_bad_input_names_the_piece_and_the_reason(tmp_path: Path, make, reason: str) -> None:
    piece: Piece = make(tmp_path)
    with pytest.raises(EncodeError, match=reason) as caught:
        PianoRollEncoder().read(piece)
    assert caught.value.piece == piece.key
