"""piano-roll learns the texture of its training split (voices, silence) and decodes samples to it:
a melody's sampled frames give a melody, not notes held into the next one and scattered rests (issue 14)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from tui_composer_plugins.piano_roll.encoder import PianoRollEncoder

from tui_composer.music.notes import GridNote

LOW, HIGH = 60, 72
WIDTH = HIGH - LOW + 1
PRETRAINED = Path(__file__).parents[1] / "plugins" / "rnn_rbm" / "pretrained" / "chorales-default" / "encoder.json"


def frames_of(notes: list[GridNote], length: int | None = None) -> np.ndarray:
    frames = PianoRollEncoder.roll(notes, LOW, HIGH)
    if length is not None and length > len(frames):
        frames = np.vstack([frames, np.zeros((length - len(frames), frames.shape[1]), np.uint8)])
    return frames


def melody(start: int, pitches: list[int], length: int = 2) -> list[GridNote]:
    return [GridNote(start + i * length, start + (i + 1) * length, p) for i, p in enumerate(pitches)]


def fitted(readings: list[np.ndarray]) -> PianoRollEncoder:
    encoder = PianoRollEncoder(low=LOW, high=HIGH)
    encoder.fit(readings)
    return encoder


def test_fit_learns_the_voices_and_the_silence_of_the_split() -> None:
    tunes = [frames_of(melody(0, [60, 62, 64, 65, 67] * 20)) for _ in range(3)]  # 600 frames of one voice
    tunes.append(frames_of([GridNote(0, 2, 60), GridNote(0, 2, 64), GridNote(4, 6, 67)]))  # a rare chord, a rest
    melodic = fitted(tunes)
    assert melodic.voices == 1  # 2 frames of 606 with two notes: not a second voice
    assert melodic.silence == 2 / 606
    chords = fitted([frames_of([GridNote(t, t + 4, p) for t in range(0, 40, 4) for p in (60, 64, 67, 72)])])
    assert (chords.voices, chords.silence) == (4, 0.0)
    again = PianoRollEncoder(low=LOW, high=HIGH)
    again.load_state(json.loads(json.dumps(melodic.state())))
    assert (again.voices, again.silence) == (1, 2 / 606)


def test_a_note_struck_ends_the_one_held_into_it_where_the_split_has_one_voice() -> None:
    encoder = fitted([frames_of(melody(0, [60, 62, 64] * 10))])
    frames = frames_of([GridNote(0, 4, 60), GridNote(2, 6, 64), GridNote(2, 6, 67)])  # held into, two struck
    assert encoder.frames_notes(frames) == [GridNote(0, 2, 60), GridNote(2, 6, 67)]  # the higher struck note
    assert PianoRollEncoder(low=LOW, high=HIGH).frames_notes(frames) == [
        GridNote(0, 4, 60),
        GridNote(2, 6, 64),
        GridNote(2, 6, 67),
    ]  # unfitted: decoded as drawn


def test_a_gap_rings_on_where_the_split_hardly_rests_and_stays_a_rest_where_it_does() -> None:
    sampled = frames_of([GridNote(0, 3, 60), GridNote(5, 7, 62)], length=9)  # a 2-step gap, 2 silent at the end
    legato = fitted([frames_of(melody(0, [60, 62, 64] * 10))])
    assert legato.silence == 0.0
    assert legato.frames_notes(sampled) == [GridNote(0, 5, 60), GridNote(5, 9, 62)]
    resumed = sampled.copy()
    resumed[5:7, 62 - LOW] = resumed[5, WIDTH + 62 - LOW] = 0
    resumed[5:7, 60 - LOW] = 1  # play of the ringing note resumes after the gap, with no onset bit
    assert legato.frames_notes(resumed) == [GridNote(0, 9, 60)]  # one note, not struck again
    rests = [frames_of(melody(0, [60, 62]) + melody(6, [64, 65]), length=12) for _ in range(3)]
    resting = fitted(rests)
    assert resting.silence > 0.02
    assert resting.frames_notes(sampled) == [GridNote(0, 3, 60), GridNote(5, 7, 62)]
    # A sample that begins silent starts at its first note where the split hardly rests (3% of rbm x
    # piano-roll's samples on oneills were such leading rests), and keeps the rest where it does.
    late = frames_of([GridNote(3, 6, 60), GridNote(6, 8, 62)])
    assert legato.frames_notes(late) == [GridNote(0, 3, 60), GridNote(3, 5, 62)]
    assert resting.frames_notes(late) == [GridNote(3, 6, 60), GridNote(6, 8, 62)]


def test_runs_fitted_before_the_texture_decode_their_samples_as_before() -> None:
    saved = json.loads(PRETRAINED.read_text())["state"]  # the shipped chorales-default run: range only
    encoder = PianoRollEncoder(fit_range=True)
    encoder.load_state(saved)
    assert (encoder.voices, encoder.silence) == (None, None)
    held = np.zeros((6, 2 * encoder.pitches), np.uint8)
    held[0:4, 0] = held[0, encoder.pitches] = 1
    held[2:6, 4] = held[2, encoder.pitches + 4] = 1
    low = encoder.range[0]
    assert encoder.frames_notes(held) == [GridNote(0, 4, low), GridNote(2, 6, low + 4)]
