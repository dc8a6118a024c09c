"""Corpora: bundled counts, deterministic splits, and imports that keep the good and report the bad."""

from __future__ import annotations

import os
from pathlib import Path

import mido
import pytest

from tui_composer.plugin.contract import Piece
from tui_composer.services.corpora import assign_splits, split_abc_tunes
from tui_composer.services.studio import Studio
from tui_composer.services.workspace import WorkspaceError

GOOD_TUNES = """X:1
T:First Jig
M:6/8
L:1/8
K:G
GAB cde|dBG A2D|GAB cde|dBG G3:|

X:2
T:Broken Reel
M:4/4
L:1/8
K:D
[[[[ (((( {{{{ !!!!

X:3
T:Third Air
M:3/4
L:1/4
K:C
C D E|F G A|B c2|]
"""


def write_midi(path: Path, notes: list[int], *, truncate: bool = False) -> None:
    track = mido.MidiTrack()
    for pitch in notes:
        track.append(mido.Message("note_on", note=pitch, velocity=64, time=0))
        track.append(mido.Message("note_off", note=pitch, velocity=0, time=240))
    midi = mido.MidiFile(tracks=[track])
    midi.save(path)
    if truncate:
        path.write_bytes(path.read_bytes()[:-9])


@pytest.fixture
def music_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "incoming"
    (folder / "sub").mkdir(parents=True)
    (folder / "tunes.abc").write_text(GOOD_TUNES, encoding="utf-8")
    write_midi(folder / "sub" / "scale.mid", [60, 62, 64, 65, 67])
    (folder / "empty.abc").write_text("")
    (folder / "noise.abc").write_bytes(bytes(range(256)) * 4)
    (folder / "latin1.abc").write_bytes("X:1\nT:Caf\xe9\nK:C\nCDE|\n".encode("latin-1"))
    write_midi(folder / "cut.mid", [60, 64, 67], truncate=True)
    (folder / "garbage.mid").write_bytes(b"MThd this is not midi at all")
    (folder / "readme.txt").write_text("notes about the tunes")
    outside = tmp_path / "outside.abc"
    outside.write_text("X:1\nT:Outside\nK:C\nCDE|\n")
    os.symlink(outside, folder / "link.abc")
    return folder


def test_bundled_corpora_have_their_documented_sizes(studio: Studio) -> None:
    counts = {c.name: len(c.pieces) for c in studio.catalogue.list()}
    assert counts["oneills"] == 2009
    assert counts["ryans"] == 1059
    assert 8400 <= counts["essen"] <= 8600
    assert 400 <= counts["bach-chorales"] <= 420
    essen = studio.catalogue.get("essen")
    assert "non-commercial" in essen.licence


def test_an_import_keeps_the_good_and_reports_each_bad_item(studio: Studio, music_folder: Path) -> None:
    report = studio.catalogue.import_path(music_folder, "mixed")
    reasons = {item.item: item.reason for item in report.skipped}
    assert report.kept == 3  # two tunes of tunes.abc and the MIDI scale
    assert reasons["empty.abc"] == "empty file"
    assert reasons["noise.abc"] == "binary data, not ABC text"
    assert reasons["latin1.abc"].startswith("not UTF-8 text (bad byte at offset 9)")
    assert reasons["cut.mid"].startswith("does not parse: truncated or invalid MIDI file")
    assert reasons["garbage.mid"].startswith("does not parse: truncated or invalid MIDI file")
    assert reasons["readme.txt"] == "not a music file (extension .txt)"
    assert reasons["link.abc"] == "symbolic link, not followed"
    assert reasons["tunes.abc#2"].startswith("does not parse")
    corpus = studio.catalogue.get("mixed")
    assert sorted(p.key for p in corpus.pieces) == ["sub/scale.mid", "tunes.abc#1", "tunes.abc#3"]
    assert {s.item for s in corpus.skipped} == set(reasons)
    # The corpus lives in the workspace: the source folder can go away.
    assert all(p.path.is_relative_to(studio.workspace.root) for p in corpus.pieces)


def test_a_second_import_under_the_same_name_changes_nothing(studio: Studio, music_folder: Path) -> None:
    studio.catalogue.import_path(music_folder, "mixed")
    before = sorted(p.key for p in studio.catalogue.get("mixed").pieces)
    with pytest.raises(WorkspaceError, match="already exists"):
        studio.catalogue.import_path(music_folder / "sub", "mixed")
    assert sorted(p.key for p in studio.catalogue.get("mixed").pieces) == before
    with pytest.raises(WorkspaceError, match="already exists"):
        studio.catalogue.import_path(music_folder, "oneills")


def test_tunes_are_split_at_x_lines_with_their_titles() -> None:
    tunes = split_abc_tunes("% file header\n" + GOOD_TUNES)
    assert [(n, title) for n, title, _ in tunes] == [(1, "First Jig"), (2, "Broken Reel"), (3, "Third Air")]
    assert tunes[2][2].startswith("X:3\nT:Third Air")


def _pieces(n: int) -> list[Piece]:
    return [Piece(key=f"tune{i}.abc#1", title="", format="abc", path=Path("x"), text="X:1\n") for i in range(n)]


def test_the_split_is_deterministic_and_stable_as_the_corpus_grows() -> None:
    pieces = _pieces(200)
    first = assign_splits(pieces)
    again = assign_splits(list(reversed(pieces)))
    assert {k: [p.key for p in v] for k, v in first.items()} == {k: [p.key for p in v] for k, v in again.items()}
    assert [len(first[s]) for s in ("train", "valid", "test")] == [160, 20, 20]
    assert not {p.key for p in first["train"]} & {p.key for p in first["valid"] + first["test"]}
    # Most pieces keep their split when more are added (the position comes from the key alone).
    grown = assign_splits(_pieces(220))
    kept = {p.key for p in first["train"]} & {p.key for p in grown["train"]}
    assert len(kept) >= 150


def test_a_tiny_corpus_still_has_a_validation_split() -> None:
    splits = assign_splits(_pieces(3))
    assert [len(splits[s]) for s in ("train", "valid", "test")] == [1, 1, 1]


def test_text_without_an_x_line_holds_no_tunes() -> None:
    assert split_abc_tunes("T:Untitled\nK:C\nCDE|\n") == []


def test_a_single_file_named_through_a_link_is_imported_under_the_name_given(studio: Studio, tmp_path: Path) -> None:
    (tmp_path / "target.abc").write_text(GOOD_TUNES, encoding="utf-8")
    os.symlink(tmp_path / "target.abc", tmp_path / "chosen.abc")
    report = studio.catalogue.import_path(tmp_path / "chosen.abc", "single")
    assert report.kept == 2
    assert sorted(p.key for p in studio.catalogue.get("single").pieces) == ["chosen.abc#1", "chosen.abc#3"]
