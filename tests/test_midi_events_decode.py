"""midi-events samples decode into tunes a musician and abc2midi accept (issue 14): a note the model never
released is cut where the training pieces say notes don't overlap, polyphony stays where they do, the
score gets an inferred meter and key, and the ABC writer never writes an overfull bar."""

from __future__ import annotations

import itertools
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from encoders_support import JIG, abc_piece
from tui_composer_plugins.midi_events.encoder import MidiEventEncoder, Texture

from tui_composer.api import DecodingStep, SampleRequest, StepContext, decode
from tui_composer.music.abc_writer import score_to_abc
from tui_composer.music.export import parse_abc
from tui_composer.music.notes import GridNote, infer_meter, notes_to_score, score_notes

ABC2MIDI = shutil.which("abc2midi")
MELODY = ["on:67", "shift:2", "off:67", "on:69", "shift:2", "off:69", "on:71", "shift:4", "off:71"]
CHORALE = [  # four voices that hold and move past each other, as a chorale's do
    GridNote(0, 8, 48),
    GridNote(0, 4, 55),
    GridNote(0, 4, 64),
    GridNote(0, 16, 72),
    GridNote(4, 8, 57),
    GridNote(4, 12, 65),
    GridNote(8, 16, 50),
    GridNote(8, 16, 59),
    GridNote(12, 16, 67),
]


def abc2midi_said(abc: str, folder: Path) -> str:
    assert ABC2MIDI is not None
    (folder / "tune.abc").write_text(abc)
    done = subprocess.run(
        [ABC2MIDI, "tune.abc", "-o", "tune.mid"], cwd=folder, capture_output=True, text=True, timeout=60, check=False
    )
    return "\n".join(
        line for line in (done.stdout + done.stderr).splitlines() if re.search("error|warning", line, re.I)
    )


def fitted(*readings: list[str]) -> MidiEventEncoder:
    encoder = MidiEventEncoder()
    encoder.fit(list(readings))
    return encoder


def test_the_texture_is_learned_from_the_training_pieces_and_saved_with_the_vocabulary() -> None:
    melody = fitted(MELODY, MidiEventEncoder().read(abc_piece(JIG)))
    # the jig's e3-e2: 10 sixteenths; neither piece rests
    assert melody.texture == Texture(voices=1, longest_note=10, longest_rest=0, silence=0.0)
    chorale = fitted(MidiEventEncoder().events(CHORALE))
    assert chorale.texture == Texture(voices=4, longest_note=16, longest_rest=0, silence=0.0)
    restored = MidiEventEncoder()
    restored.load_state(melody.state())
    assert restored.texture == melody.texture and restored.fitted_vocabulary().symbols == melody.state()["vocabulary"]


def test_a_note_never_released_is_cut_at_the_next_strike_in_a_melody(tmp_path: Path) -> None:
    encoder = fitted(MELODY)
    # 67 is struck and never released; eight more notes follow over two bars, then a silence of 20 quarters
    sample = ["on:67", "shift:2"] + [t for p in (69, 71, 72, 74, 71, 69, 67, 69) for t in (f"on:{p}", "shift:4")]
    sample += ["shift:16"] * 5 + ["on:67", "shift:4", "off:67"]
    notes = encoder.notes(sample)
    assert notes[0] == GridNote(0, 2, 67)  # cut where 69 is struck
    assert all(a.end <= b.start for a, b in itertools.pairwise(notes))  # one note at a time
    assert notes[-2].end - notes[-2].start == 4  # held at most as long as the longest training note
    assert notes[-1].start - notes[-2].end == 0  # a silence at most as long as the longest training one
    abc = score_to_abc(encoder.decode(encoder.encode(sample)))
    assert "[M:" not in abc and "V:" not in abc  # no overfull bar, one voice
    assert [(n.start, n.pitch) for n in score_notes(parse_abc(abc))][:3] == [(0.0, 67), (0.5, 69), (1.5, 71)]
    if ABC2MIDI:
        assert abc2midi_said(abc, tmp_path) == ""


def test_where_the_training_pieces_hardly_rest_a_sampled_gap_rings_on() -> None:
    """O'Neill's tunes rest 0.4% of their time; a char-lstm's samples rested 1.1%, in gaps of a sixteenth
    or two between a release and the next strike. Those notes ring on; a corpus that rests keeps its rests."""
    gappy = ["on:67", "shift:3", "off:67", "shift:1", "on:69", "on:72", "shift:2", "off:69", "off:72", "shift:2"]
    gappy += ["on:71", "shift:4", "off:71"]
    legato = fitted(MELODY)
    assert legato.texture is not None and legato.texture.silence == 0.0 and legato.texture.rings_on
    legato.texture = Texture(voices=2, longest_note=20, longest_rest=12, silence=0.004)  # O'Neill's, fitted
    assert legato.notes(gappy) == [GridNote(0, 4, 67), GridNote(4, 8, 69), GridNote(4, 8, 72), GridNote(8, 12, 71)]
    resting = fitted(["on:67", "shift:4", "off:67", "shift:4", "on:69", "shift:4", "off:69"])
    assert (
        resting.texture is not None and resting.texture.silence == 0.3333 and not resting.texture.rings_on
    )  # 4 of 12 steps
    assert resting.notes(gappy)[0] == GridNote(0, 3, 67)
    old = MidiEventEncoder()  # a run saved before the silence was learned: its gaps stay
    state = legato.state()
    assert state["texture"]["silence"] == 0.004
    del state["texture"]["silence"]
    old.load_state(state)
    assert old.notes(gappy)[0] == GridNote(0, 3, 67)


def test_polyphony_the_training_pieces_hold_is_kept() -> None:
    encoder = fitted(MidiEventEncoder().events(CHORALE))
    sample = MidiEventEncoder().events(CHORALE)
    assert encoder.notes(sample) == sorted(CHORALE)  # overlapping voices keep their overlap
    held = ["on:48", "shift:4", "on:52", "on:55", "on:60", "shift:4", "on:62", "shift:4", "off:62"]
    played = encoder.notes(held)  # a fifth note is struck over four: the oldest (48) ends there
    assert GridNote(0, 8, 48) in played and all(n.end == 12 for n in played if n.pitch != 48)


def test_a_run_saved_before_the_texture_decodes_as_before() -> None:
    encoder = MidiEventEncoder()
    state = fitted(MELODY).state()
    del state["texture"]
    encoder.load_state(state)
    assert encoder.texture is None
    assert encoder.notes(["on:67", "shift:4", "on:69", "shift:4"]) == [GridNote(0, 8, 67), GridNote(4, 8, 69)]


def test_a_jig_gets_six_eight_with_its_pickup_and_a_d_major_scale_gets_d() -> None:
    jig = MidiEventEncoder().notes(MidiEventEncoder().read(abc_piece(JIG)))
    assert infer_meter(jig, 4).meter == "6/8" and infer_meter(jig, 4).pickup == 2  # the eighth-note A
    score = notes_to_score(jig, 4)
    abc = score_to_abc(score)
    assert "M:6/8" in abc
    assert abc.split("\n")[5].startswith("A | d f a a f d | c e c")  # the pickup is a bar of its own
    assert [(n.start, n.pitch) for n in score_notes(score)] == [(n.start / 4, n.pitch) for n in jig]

    up = [62, 64, 66, 67, 69, 71, 73, 74]
    scale = [GridNote(4 * i, 4 * i + 4, p) for i, p in enumerate(up + up[::-1][1:])]
    abc = score_to_abc(notes_to_score(scale, 4))
    assert "K:D" in abc and "^" not in abc  # F# and C# are the key's
    flats = [GridNote(2 * i, 2 * i + 2, p) for i, p in enumerate([65, 67, 69, 70, 72, 74, 76, 77, 70, 65] * 2)]
    abc = score_to_abc(notes_to_score(flats, 4))
    assert "K:F" in abc and "^A" not in abc  # B flat, written by the key, not A sharp
    assert "M:3/4" in score_to_abc(notes_to_score(scale, 4, meter="3/4"))  # as asked, when asked


def test_bar_lines_are_read_from_midi_time_signatures(tmp_path: Path) -> None:
    import mido

    from tui_composer.api import midi_bars

    midi = mido.MidiFile(type=1, ticks_per_beat=480)
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("time_signature", numerator=3, denominator=4, time=0))
    track.append(mido.Message("note_on", note=60, velocity=90, time=0))
    track.append(mido.Message("note_off", note=60, velocity=0, time=480 * 6))  # two bars of 3/4
    track.append(mido.MetaMessage("time_signature", numerator=6, denominator=8, time=0))
    track.append(mido.Message("note_on", note=62, velocity=90, time=0))
    track.append(mido.Message("note_off", note=62, velocity=0, time=480 * 9))  # three bars of 6/8
    midi.tracks.append(track)
    assert midi_bars(midi, 15.0) == [3.0, 6.0, 9.0, 12.0]
    assert midi_bars(mido.MidiFile(), 10.0) == [4.0, 8.0]  # none written: 4/4
    path = tmp_path / "waltz.mid"
    midi.save(path)
    from encoders_support import midi_piece

    events = MidiEventEncoder().read(midi_piece(path))
    assert MidiEventEncoder().play(events)[1] == [12, 24, 36, 48]


def test_the_meter_comes_from_the_bar_lines_a_model_wrote() -> None:
    """Even quarter notes repeat under every meter: the inference alone says 4/4; the model's bar lines
    every three quarters after a one-quarter pickup give a three-quarter bar and that pickup."""
    encoder = fitted(MELODY)
    tokens = []
    for bar in range(7):
        tokens += ["bar"] if bar else []
        for pitch in (67, 69, 71) if bar else (67,):
            tokens += [f"on:{pitch}", "shift:4", f"off:{pitch}"]
    encoder.fit([tokens])
    plain = encoder.decode(encoder.encode([t for t in tokens if t != "bar"]))
    barred = encoder.decode(encoder.encode(tokens))
    assert score_to_abc(plain).count("M:4/4") == 1
    abc = score_to_abc(barred)
    assert "M:3/4" in abc or "M:6/8" in abc
    body = abc.split("\n")[5]
    assert body.startswith("G2 | G2 A2 B2 |"), abc  # the pickup, then bars of three


def test_a_run_saved_before_bar_lines_reads_primers_without_them() -> None:
    old = MidiEventEncoder()
    old.fit([[t for t in MidiEventEncoder().read(abc_piece(JIG)) if t != "bar"]])
    restored = MidiEventEncoder()
    restored.load_state(old.state())
    assert not restored.bar_lines
    read = restored.read(abc_piece(JIG))
    assert "bar" not in read and "<unk>" not in restored.tokens(restored.encode(read))


def test_overlapping_notes_in_one_voice_are_cut_at_the_next_onset_by_the_writer(tmp_path: Path) -> None:
    from music21 import note, stream

    first, second = stream.Measure(number=1), stream.Measure(number=2)
    first.insert(0, note.Note("C4", quarterLength=4))  # held over the next three in one voice, as from MIDI
    for offset, name in [(1, "E4"), (2, "G4"), (3, "C5")]:
        first.insert(offset, note.Note(name, quarterLength=1))
    second.insert(0, note.Note("D4", quarterLength=4))
    line = stream.Part([first, second])
    abc = score_to_abc(line)
    assert "[M:" not in abc
    assert abc.splitlines()[-1] == "C2 E2 G2 c2 | D8 |"
    if ABC2MIDI:
        assert abc2midi_said(abc, tmp_path) == ""


@pytest.mark.skipif(ABC2MIDI is None, reason="abc2midi is not installed")
def test_garbage_that_holds_every_note_decodes_to_clean_abc(tmp_path: Path) -> None:
    encoder = fitted(MELODY)
    rng = np.random.default_rng(3)
    vocabulary = encoder.fitted_vocabulary()
    tokens = [t for t in vocabulary.symbols if not t.startswith(("off:", "<"))]
    for _ in range(5):
        sample = np.asarray([vocabulary.id(t) for t in rng.choice(tokens, 120)])
        abc = score_to_abc(encoder.decode(sample))
        assert "[M:" not in abc and abc2midi_said(abc, tmp_path) == ""


class EagerToEnd(DecodingStep):
    """A model that would end every piece at once: the end-of-piece id far likelier than any other."""

    def __init__(self, size: int, eos: int) -> None:
        self.size, self.eos = size, eos

    def prime(self, primer: np.ndarray, n: int) -> int:
        return n

    def scores(self, state: int, context: StepContext) -> np.ndarray:
        scores = np.zeros((state, self.size), np.float32)
        scores[:, self.eos] = 6.0
        return scores

    def advance(self, state: int, chosen: np.ndarray) -> int:
        return len(chosen)

    def select(self, state: int, rows: np.ndarray) -> int:
        return len(rows)


def test_constrained_events_end_only_after_a_note_is_struck() -> None:
    # Unconstrained, such a model's samples are empty: "the events play no notes", and no tune is written.
    encoder = fitted(MELODY)
    data = encoder.data_spec()
    assert data.eos is not None
    step = EagerToEnd(data.size, data.eos)
    free = decode(step, SampleRequest(n=20, max_length=64, seed=1), data)
    assert sum(len(ids) == 0 for ids in free) >= 18
    constrained = decode(step, SampleRequest(n=20, max_length=64, seed=1, constraint=encoder.constraint()), data)
    for ids in constrained:
        tokens = encoder.tokens(ids)
        assert any(token.startswith("on:") for token in tokens)
        assert encoder.notes(tokens)
    # Only an end before the first strike is forbidden: most pieces end right after it, as the model wants.
    assert sum(encoder.tokens(ids)[-1].startswith("on:") for ids in constrained) >= 15
