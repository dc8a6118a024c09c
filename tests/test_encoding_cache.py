"""read_corpus: splits of readings, bad pieces skipped with reasons, a cache keyed by piece content,
encoder version, parameters, the plugin's release and source; only EncodeErrors are cached; `cache clear`."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from encoders_support import GARBAGE_ABC, JIG, NO_NOTES, REEL, SCALE, write_midi

from tui_composer.api import EncodeError, EncoderSpec, Piece, TokenEncoder, hookimpl
from tui_composer.cli.app import cli
from tui_composer.plugin.host import PluginHost
from tui_composer.plugin.params import resolve
from tui_composer.plugin.specs import Origin
from tui_composer.services.corpora import Corpus, read_folder
from tui_composer.services.encoding import cache_folder, cache_key, read_corpus
from tui_composer.services.workspace import Workspace


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
        (replace(spec, version=f"{spec.version}.1"), params),
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


# --- the cache can't keep a bug (issue #13 item 7) ------------------------------------------------------------


class LettersEncoder(TokenEncoder):
    """ABC tunes as characters; `buggy` makes read raise a KeyError on reels, as a plugin's bug would."""

    name = "letters"
    buggy = False

    def read(self, piece: Piece) -> list[str]:
        if piece.text is None:
            raise EncodeError(piece.key, "not an ABC tune")  # a fact about the piece: cached
        if self.buggy and "R:reel" in piece.text:
            return {"jig": ["6/8"]}["reel"]
        return list(piece.text)

    def decode(self, array: np.ndarray) -> Any:
        raise EncodeError("sample", "letters are not a score")


def letters_spec(version: str = "1.0.0") -> EncoderSpec:
    host = PluginHost()
    plugin = SimpleNamespace(
        register_encoders=hookimpl(
            lambda register: register(
                EncoderSpec(name="letters", description="", makes="tokens", factory=LettersEncoder)
            )
        )
    )
    host.register_module(plugin, "letters-plugin", "tui-composer-letters", version)
    return host.registry.encoders["letters"]


def test_an_encoder_bug_is_never_cached_so_its_fix_takes_effect(
    music: Path, workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = letters_spec()
    monkeypatch.setattr(LettersEncoder, "buggy", True)
    buggy = read_corpus(workspace, folder_corpus(music), spec, {})
    reasons = {s.item: s.reason for s in buggy.skipped}
    assert reasons["tunes.abc#1"].startswith(
        "encoder 'letters' (plugin 'letters-plugin' from tui-composer-letters 1.0.0) raised KeyError: 'reel' "
        "in read of piece tunes.abc#1"
    )
    assert [f.action for f in buggy.failures] == ["read of piece tunes.abc#1"]
    assert "Traceback" in buggy.failures[0].trace and 'return {"jig": ["6/8"]}["reel"]' in buggy.failures[0].trace
    assert reasons["scale.mid"] == "not an ABC tune"

    monkeypatch.setattr(LettersEncoder, "buggy", False)  # the bug is fixed
    calls, progress = progress_log()
    fixed = read_corpus(workspace, folder_corpus(music), spec, {}, progress=progress)
    assert calls[0] == (11, 12)  # only the piece the bug spoilt is read again; EncodeErrors stay cached
    assert "tunes.abc#1" not in {s.item for s in fixed.skipped} and fixed.failures == []
    assert {s.item: s.reason for s in fixed.skipped}["scale.mid"] == "not an ABC tune"


def test_the_cache_key_follows_the_plugins_release_and_its_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "site" / "cache_key_probe"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "encoder.py").write_text("class Probe:\n    pass\n")
    (package / "helpers.py").write_text("STEP = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    spec = EncoderSpec(
        name="probe",
        description="",
        makes="tokens",
        factory="cache_key_probe.encoder:Probe",
        origin=Origin("probe-plugin", "tui-composer-probe", "1.0.0"),
    )
    first = cache_key(spec, {})
    assert cache_key(spec, {}) == first
    assert cache_key(replace(spec, origin=Origin("probe-plugin", "tui-composer-probe", "1.0.1")), {}) != first
    (package / "helpers.py").write_text("STEP = 2\n")  # an edit beside the encoder, as in an editable install
    edited = cache_key(spec, {})
    assert edited != first
    (package / "encoder.py").write_text("class Probe:\n    fixed = True\n")
    assert cache_key(spec, {}) not in (first, edited)


def test_cache_clear_removes_one_corpus_or_all(
    music: Path, workspace: Workspace, installed_host: PluginHost, tmp_path: Path
) -> None:
    spec = installed_host.registry.encoders["abc"]
    params = resolve(spec.params, {}, owner="encoder 'abc'")
    read_corpus(workspace, folder_corpus(music), spec, params)
    other = replace(folder_corpus(music), name="other")
    read_corpus(workspace, other, spec, params)
    (workspace.cache_dir / "novelty").mkdir()
    (workspace.cache_dir / "novelty" / "tiny-0123456789abcdef.npz").write_bytes(b"index")
    (workspace.cache_dir / "novelty" / "tiny-x-0123456789abcdef.npz").write_bytes(b"another corpus's index")

    def clear(*args: str) -> Any:
        return CliRunner().invoke(
            cli, ["--workspace", str(workspace.root), "cache", "clear", *args], obj=installed_host
        )

    result = clear("--corpus", "tiny")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("removed 2 cache entries of corpus 'tiny' (")
    assert not cache_folder(workspace, "tiny", spec, params).exists()
    assert cache_folder(workspace, "other", spec, params).is_dir()
    assert sorted(p.name for p in (workspace.cache_dir / "novelty").iterdir()) == ["tiny-x-0123456789abcdef.npz"]
    refused = clear("--corpus", "../..")
    assert refused.exit_code == 1 and "corpus name '../..' is not allowed" in refused.output
    assert clear().output.startswith("removed 2 cache entries (")
    assert not any((workspace.cache_dir / "encodings").iterdir())
