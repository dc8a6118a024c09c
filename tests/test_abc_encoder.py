"""abc: normalisation keeps what a player needs, text -> tokens -> text is the identity after it, MIDI
pieces are written as ABC, decoding repairs what a model garbles, bad tunes name the piece."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from encoders_support import GARBAGE_ABC, JIG, NO_NOTES, REEL, SCALE, abc_piece, midi_piece, write_midi
from hypothesis import given, settings
from hypothesis import strategies as st
from tui_composer_plugins.abc.encoder import AbcEncoder, abc_score, normalise, playable

from tui_composer.music.checking import check_tune
from tui_composer.plugin.contract import EncodeError

ABC_LINES = st.one_of(
    st.sampled_from(
        ["X: 12", "T:  A  Title ", "Z:someone", "N: note", "M:6/8", "L: 1/8", "K:Ador", "R:jig", "B:book", "%%MIDI x"]
    ),
    st.text(alphabet="abcdefgABCDEFG,'^_=z/|:[]()-<>123 \t%\\\"", max_size=30),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(ABC_LINES, max_size=12), st.sampled_from(["\n", "\r\n", "\r"]))
def test_text_to_tokens_to_text_is_the_identity_after_normalisation(lines: list[str], newline: str) -> None:
    text = newline.join(lines)
    normal = normalise(text)
    assert normalise(normal) == normal
    encoder = AbcEncoder()
    tokens = list(normal)
    encoder.fit([tokens])
    assert encoder.text(encoder.encode(tokens)) == normal
    assert encoder.text(encoder.encode(tokens)[1:-1]) == normal  # without bos and eos, as models sample


def test_normalisation_keeps_the_player_fields_and_drops_the_rest() -> None:
    normal = normalise(REEL.replace("\n", "\r\n"))
    assert normal.splitlines()[:5] == ["X:1", "M:4/4", "L:1/8", "R:reel", "K:G"]  # X:7 renumbered, no title
    assert "Z:" not in normal and "N:" not in normal and "%" not in normal and "\r" not in normal
    assert normal.splitlines()[5] == "|:GABc dBGB|c2ec BdAF|G2BG FGAF|G2B2 G4:|"
    assert normal.endswith(":|\n")
    assert normalise(REEL, titles=True).splitlines()[:2] == ["X:1", "T:The Test Reel"]


def test_titles_and_the_other_fields_are_kept_only_when_asked() -> None:
    assert "T:" not in "".join(AbcEncoder().read(abc_piece(REEL)))
    assert "T:The Test Reel\n" in "".join(AbcEncoder(titles=True).read(abc_piece(REEL)))
    published = "".join(AbcEncoder(all_fields=True).read(abc_piece(REEL)))
    assert published.splitlines()[:5] == [
        "X:1",
        "T:The Test Reel",
        "Z:Transcribed by nobody",
        "N:a note for the bibliography",
        "M:4/4",
    ]
    assert "%" not in published and normalise(published, all_fields=True) == published


def test_read_encode_and_decode_a_tune() -> None:
    encoder = AbcEncoder()
    reel, jig = encoder.read(abc_piece(REEL)), encoder.read(abc_piece(JIG, key="tunes.abc#2"))
    encoder.fit([reel, jig])
    spec = encoder.data_spec()
    assert spec.kind == "tokens" and spec.size == len(set(reel) | set(jig)) + 3
    ids = encoder.encode(jig)
    assert encoder.to_abc(ids) == normalise(JIG)
    score = encoder.decode(ids[1:-1])
    assert [p.midi for n in score.flatten().notes for p in n.pitches][:4] == [69, 74, 78, 81]
    restored = AbcEncoder()
    restored.load_state(encoder.state())
    assert np.array_equal(restored.encode(jig), ids)


def test_decode_repairs_a_garbled_sample() -> None:
    encoder = AbcEncoder()
    sample = "T:made up\nM:4/4\nL:1/8\nABcd efga|bagf edcB|\n[[[((( z/0 :|: |]]]\n"
    encoder.fit([list(sample)])
    text = encoder.to_abc(encoder.encode(list(sample))[1:])
    assert text.startswith("X:1\nT:made up\nM:4/4\nL:1/8\nK:C\nABcd")  # X: and K: added
    score = encoder.decode(encoder.encode(list(sample)))
    assert len(score.flatten().notes) >= 8
    with pytest.raises(EncodeError, match="no"):
        encoder.decode(encoder.encode(list("z4 z4|")))
    assert playable(normalise(JIG)) == normalise(JIG)


def test_a_sample_with_neither_meter_nor_unit_length_gets_the_standard_eighth() -> None:
    sample = "X:1\nT:made up\nN:a long invented note\nK:G\nGAB c2d|e2d BAG|\n"
    assert playable(sample) == "X:1\nT:made up\nN:a long invented note\nL:1/8\nK:G\nGAB c2d|e2d BAG|\n"
    notes = abc_score(sample).flatten().notes
    assert [n.duration.quarterLength for n in notes] == [0.5, 0.5, 0.5, 1, 0.5, 1, 0.5, 0.5, 0.5, 0.5]
    assert playable("X:1\nM:6/8\nK:G\nGAB|\n") == "X:1\nM:6/8\nK:G\nGAB|\n"  # the meter implies the unit


def test_midi_pieces_are_written_as_abc(tmp_path: Path) -> None:
    encoder = AbcEncoder()
    text = "".join(encoder.read(midi_piece(write_midi(tmp_path / "scale.mid", SCALE))))
    assert text.startswith("X:1\nM:4/4\nL:1/8\n")
    assert "C2 D2 E2 F2 | G2 A2 B2 c2 |" in text


@pytest.mark.parametrize(
    ("text", "reason"), [(GARBAGE_ABC, "no notes|could not read"), (NO_NOTES, "no notes"), ("%only\n", "empty")]
)
def test_bad_tunes_name_the_piece_and_the_reason(text: str, reason: str) -> None:
    with pytest.raises(EncodeError, match=reason) as caught:
        AbcEncoder().read(abc_piece(text, key="bad.abc#4"))
    assert caught.value.piece == "bad.abc#4"


def test_random_bytes_as_a_midi_piece(tmp_path: Path) -> None:
    path = tmp_path / "noise.mid"
    path.write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 500, dtype=np.uint8)))
    with pytest.raises(EncodeError) as caught:
        AbcEncoder().read(midi_piece(path))
    assert caught.value.piece == "noise.mid"


AABB = "X:1\nM:2/4\nL:1/8\nK:C\nabcd|abcd:|\nefga|efga:|\n"


def test_an_implied_repeat_start_is_written_so_every_parser_plays_aabb(tmp_path: Path) -> None:
    """`A:|B:|` is AABB in ABC 2.1 and in our export, but abc2midi warns "Assuming repeat": samples get the
    repeat start written (`A::B:|`), which every parser reads alike; written repeats are left as they are."""
    import io
    import shutil
    import subprocess

    import mido

    from tui_composer.api import score_to_midi

    text = playable(AABB)
    # (a `::` ending its line, music21 reads the bars on either side as one: the `|:` starts the next)
    assert text.endswith("abcd|abcd:|\n|:efga|efga:|\n")
    assert check_tune(text, 1, None).bad_bars == []
    assert playable(AABB.replace(":|\nefga", ":|\n|efga")) == text  # the next line's own `|` becomes the `|:`
    assert playable("X:1\nM:2/4\nL:1/8\nK:C\nabcd|abcd:|efga|efga:|\n").endswith("abcd|abcd::efga|efga:|\n")
    kept_as_written = ("abcd|abcd:|\n|:efga|efga:|", "abcd|abcd||efga|efga|]", "|:ab|1cd:|2ef|]", "ab|cd:|")
    for kept in (*kept_as_written, "|:abcd||efga:|"):  # (last: the `:|` closes the `|:`, as abc2midi reads it)
        assert playable(f"X:1\nM:2/4\nL:1/8\nK:C\n{kept}\n").endswith(kept + "\n")
    # abc2midi plays this from the start (ABAB); ABC 2.1 repeats from the double bar (ABB), as we do
    assert playable("X:1\nL:1/8\nK:C\nabcd|abcd||efga|efga:|\n").endswith("abcd|abcd|:efga|efga:|\n")
    assert playable('X:1\nL:1/8\nK:C\nab "G:|"cd:|ef|ga:|\n').endswith('ab "G:|"cd::ef|ga:|\n')  # not in a chord symbol
    midi = mido.MidiFile(file=io.BytesIO(score_to_midi(abc_score(text))))
    assert sum(m.type == "note_on" and m.velocity > 0 for t in midi.tracks for m in t) == 32  # AABB: 2 x 16
    abc2midi = shutil.which("abc2midi")
    if abc2midi is None:
        pytest.skip("abc2midi (Debian package abcmidi) is not installed: the second parser's reading is not checked")
    (tmp_path / "tune.abc").write_text(text)
    said = subprocess.run([abc2midi, "tune.abc", "-o", "tune.mid"], cwd=tmp_path, capture_output=True, text=True)
    assert "Warning" not in said.stdout and "Error" not in said.stdout, said.stdout
