"""midi-events: events -> MidiFile -> events is the identity; MIDI files and ABC tunes read to events;
ids decode (with or without bos/eos, garbage included) to music21; bad input names the piece."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from encoders_support import BAD_MIDI_INPUTS, CHORD, JIG, SCALE, abc_piece, midi_piece, write_midi
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tui_composer_plugins.midi_events.encoder import MidiEventEncoder

from tui_composer.music.export import score_to_midi
from tui_composer.music.notes import GridNote
from tui_composer.plugin.contract import EncodeError


@st.composite
def performances(draw: st.DrawFn) -> list[GridNote]:
    notes = []
    for pitch in draw(st.sets(st.integers(21, 108), min_size=1, max_size=5)):
        time = draw(st.integers(0, 40))
        for _ in range(draw(st.integers(1, 3))):
            length = draw(st.integers(1, 70))  # longer than a bar: several shift tokens
            notes.append(GridNote(time, time + length, pitch, draw(st.integers(1, 127))))
            time += length + draw(st.integers(0, 20))
    return notes


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(performances(), st.sampled_from([0, 8, 32]))
def test_events_to_midi_to_events_is_the_identity(notes: list[GridNote], bins: int) -> None:
    encoder = MidiEventEncoder(velocity_bins=bins)
    four_four = range(16, 16 * 20, 16)  # a MIDI file without a time signature is in 4/4
    events = encoder.events(encoder._velocities(sorted(notes)), four_four)
    midi = encoder.to_midi(events)
    assert encoder.midi_events(midi) == events
    assert encoder.events(*encoder.play(events)) == events


def test_the_vocabulary_of_a_scale_and_a_chord(tmp_path: Path) -> None:
    encoder = MidiEventEncoder()
    events = encoder.read(midi_piece(write_midi(tmp_path / "scale.mid", SCALE + CHORD)))
    assert events[:4] == ["on:60", "shift:4", "off:60", "on:62"]
    assert events[-8:] == ["off:72", "on:60", "on:64", "on:67", "shift:8", "off:60", "off:64", "off:67"]
    assert events.count("shift:4") == 8 and "shift:8" in events
    long_rest = MidiEventEncoder().events([GridNote(0, 1, 60), GridNote(37, 38, 62)])
    assert long_rest == ["on:60", "shift:1", "off:60", "shift:16", "shift:16", "shift:4", "on:62", "shift:1", "off:62"]


def test_velocity_bins_give_vel_tokens(tmp_path: Path) -> None:
    encoder = MidiEventEncoder(velocity_bins=4)
    events = encoder.read(midi_piece(write_midi(tmp_path / "loud.mid", SCALE[:2], velocity=100)))
    assert events == ["vel:3", "on:60", "shift:4", "off:60", "on:62", "shift:4", "off:62"]


def test_abc_tune_reads_through_music21_and_decodes_to_a_score() -> None:
    encoder = MidiEventEncoder()
    events = encoder.read(abc_piece(JIG))
    assert events[:5] == ["on:69", "shift:2", "bar", "off:69", "on:74"]  # the eighth-note pickup A4, a bar line
    assert encoder.play(events)[1] == [2 + 12 * bar for bar in range(8)]  # 6/8 bars as written, none at the end
    assert "on:73" in events and "on:72" in events  # ^c and =c in bar six
    encoder.fit([events])
    ids = encoder.encode(events)
    spec = encoder.data_spec()
    assert ids[0] == spec.bos and ids[-1] == spec.eos and spec.size == len(encoder.vocabulary)
    for sample in (ids, ids[1:-1], ids[1:]):  # as encoded, and as a model samples (no bos, no eos)
        score = encoder.decode(sample)
        assert [p.midi for n in score.flatten().notes for p in n.pitches][:4] == [69, 74, 78, 81]
    assert score_to_midi(score)[:4] == b"MThd"
    restored = MidiEventEncoder()
    restored.load_state(encoder.state())
    assert np.array_equal(restored.encode(events), ids)


def test_decode_plays_what_it_can_of_garbage() -> None:
    encoder = MidiEventEncoder()
    encoder.fit([["on:60", "off:60", "shift:4", "on:64", "off:64", "shift:2"]])
    vocabulary = encoder.vocabulary
    assert vocabulary is not None
    ids = [vocabulary.id(t) for t in ["off:64", "on:60", "on:60", "shift:4", "on:64", "shift:2"]] + [999, -3]
    score = encoder.decode(np.asarray(ids))
    notes = [(float(n.offset), p.midi) for n in score.flatten().notes for p in n.pitches]  # chords too
    assert (0.0, 60) in notes and (1.0, 64) in notes
    with pytest.raises(EncodeError, match="no notes"):
        encoder.decode(np.asarray([vocabulary.id("shift:4"), vocabulary.id("off:60")]))


@pytest.mark.parametrize(("make", "reason"), BAD_MIDI_INPUTS)
def test_bad_input_names_the_piece_and_the_reason(tmp_path: Path, make, reason: str) -> None:
    piece = make(tmp_path)
    with pytest.raises(EncodeError, match=reason) as caught:
        MidiEventEncoder().read(piece)
    assert caught.value.piece == piece.key
