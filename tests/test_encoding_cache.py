"""read_corpus: splits of readings, bad pieces skipped with reasons, a cache keyed by piece content,
encoder version and parameters."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from encoders_support import GARBAGE_ABC, JIG, NO_NOTES, REEL, SCALE, write_midi

from tui_composer.corpora import Corpus, read_folder
from tui_composer.encoding import cache_folder, read_corpus
from tui_composer.params import resolve
from tui_composer.plugin_host import PluginHost
from tui_composer.workspace import Workspace


def folder_corpus(root: Path) -> Corpus:
    return Corpus(
        name="tiny", description="", licence="", source=str(root), kind="imported", _loader=lambda: read_folder(root)[0]
    )


@pytest.fixture
def music(tmp_path: Path) -> Path:
    root = tmp_path / "music"
    root.mkdir()
    tunes = [REEL, JIG, NO_NOTES, GARBAGE_ABC] + [
        JIG.replace("X:2", f"X:{n}").replace("A|d", f"{'ABcd'[n % 4]}|d") for n in range(5, 9)
    ]
    (root / "tunes.abc").write_text("\n".join(tunes))
    write_midi(root / "scale.mid", SCALE)
    write_midi(root / "drums.mid", SCALE, channel=9)
    (root / "noise.mid").write_bytes(bytes(range(200)))
    (root / "cut.mid").write_bytes((root / "scale.mid").read_bytes()[:40])
    return root


def progress_log() -> tuple[list[tuple[int, int]], object]:
    calls: list[tuple[int, int]] = []
    return calls, lambda done, total: calls.append((done, total))


def test_piano_roll_reading_keeps_going_past_bad_pieces(
    music: Path, workspace: Workspace, installed_host: PluginHost
) -> None:
    spec = installed_host.registry.encoders["piano-roll"]
    params = resolve(spec.params, {}, owner="encoder 'piano-roll'")
    corpus = folder_corpus(music)
    calls, progress = progress_log()
    encoded = read_corpus(workspace, corpus, spec, params, progress=progress)
    reasons = {s.item: s.reason for s in encoded.skipped}
    assert reasons["tunes.abc#3"] == "no notes" and "tunes.abc#4" in reasons
    assert "only drums" in reasons["drums.mid"]
    assert "invalid MIDI" in reasons["noise.mid"] and "invalid MIDI" in reasons["cut.mid"]
    kept = [key for pairs in encoded.splits.values() for key, _ in pairs]
    assert sorted(kept) == sorted(["scale.mid", "tunes.abc#1", "tunes.abc#2", *[f"tunes.abc#{n}" for n in range(5, 9)]])
    assert calls[0] == (0, 12) and calls[-1] == (12, 12)
    frames = dict(pair for pairs in encoded.splits.values() for pair in pairs)["scale.mid"]
    assert frames.dtype == np.uint8 and frames.shape == (32, 176)

    # warm: nothing is read again, and the readings are equal
    calls, progress = progress_log()
    warm = read_corpus(workspace, folder_corpus(music), spec, params, progress=progress)
    assert calls == [(12, 12)]
    assert warm.skipped == encoded.skipped
    for name, pairs in encoded.splits.items():
        assert [k for k, _ in warm.splits[name]] == [k for k, _ in pairs]
        assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(warm.splits[name], pairs, strict=True))
    folder = cache_folder(workspace, "tiny", spec, params)
    assert sorted(p.name for p in folder.iterdir()) == ["frames.npy", "manifest.json", "offsets.npy"]

    # an edited piece is read again, alone
    write_midi(music / "scale.mid", SCALE[:4])
    calls, progress = progress_log()
    edited = read_corpus(workspace, folder_corpus(music), spec, params, progress=progress)
    assert calls[0] == (11, 12)
    assert dict(p for ps in edited.splits.values() for p in ps)["scale.mid"].shape == (16, 176)


def test_a_changed_parameter_or_version_reads_again(music: Path, workspace: Workspace, installed_host) -> None:
    spec = installed_host.registry.encoders["midi-events"]
    params = resolve(spec.params, {}, owner="encoder 'midi-events'")
    read_corpus(workspace, folder_corpus(music), spec, params)
    for changed_spec, changed_params in [
        (spec, resolve(spec.params, {"steps_per_quarter": "2"}, owner="x")),
        (replace(spec, version="2"), params),
    ]:
        calls, progress = progress_log()
        encoded = read_corpus(workspace, folder_corpus(music), changed_spec, changed_params, progress=progress)
        assert calls[0] == (0, 12)
        tokens = dict(p for ps in encoded.splits.values() for p in ps)["scale.mid"]
        assert tokens[:3] == ["on:60", f"shift:{changed_params['steps_per_quarter']}", "off:60"]  # a quarter note
    manifest = json.loads((cache_folder(workspace, "tiny", spec, params) / "manifest.json").read_text())
    assert manifest["encoder"] == "midi-events" and len(manifest["entries"]) == 12


def test_a_damaged_cache_is_rebuilt(music: Path, workspace: Workspace, installed_host) -> None:
    spec = installed_host.registry.encoders["abc"]
    params = resolve(spec.params, {}, owner="encoder 'abc'")
    first = read_corpus(workspace, folder_corpus(music), spec, params)
    (cache_folder(workspace, "tiny", spec, params) / "readings.json").write_text("[[")
    calls, progress = progress_log()
    again = read_corpus(workspace, folder_corpus(music), spec, params, progress=progress)
    assert calls[0] == (0, 12) and again.splits == first.splits
    text = "".join(dict(p for ps in again.splits.values() for p in ps)["tunes.abc#1"])
    assert text.startswith("X:1\nM:4/4\nL:1/8\nR:reel")
