"""Runs that ship with a plugin are registered by it (`register_runs`), listed read-only (issue #13 item 8)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

import tui_composer
from tui_composer.api import RunSpec, hookimpl
from tui_composer.cli.app import cli
from tui_composer.plugin.host import PluginHost
from tui_composer.services.studio import Studio
from tui_composer.services.workspace import Workspace, WorkspaceError


def runs_plugin(*specs: RunSpec) -> SimpleNamespace:
    def register_runs(register: Any) -> None:
        for spec in specs:
            register(spec)

    return SimpleNamespace(register_runs=hookimpl(register_runs))


def test_the_shipped_run_comes_from_the_char_lstm_plugin(installed_host: PluginHost) -> None:
    spec = installed_host.registry.runs["oneills-default"]
    assert spec.origin.plugin == "char-lstm" and spec.origin.distribution == "tui-composer"
    assert spec.path.parts[-3:] == ("char_lstm", "pretrained", "oneills-default")
    assert (spec.path / "model.keras").is_file() and (spec.path / "config.json").is_file()
    assert "run oneills-default" in installed_host.plugins["char-lstm"].provides
    assert not (Path(tui_composer.__file__).parent / "pretrained").exists()  # core holds no run


def test_a_plugin_run_is_listed_read_only_and_hidden_by_a_workspace_run(
    installed_host: PluginHost, workspace: Workspace, tmp_path: Path
) -> None:
    shipped = tmp_path / "plugin-data" / "tiny-shipped"
    shutil.copytree(
        installed_host.registry.runs["oneills-default"].path, shipped, ignore=shutil.ignore_patterns("*.keras")
    )
    host = PluginHost()
    host.register_module(runs_plugin(RunSpec("tiny-shipped", shipped, "a test run")), "shipper", "tui-composer-shipper")
    studio = Studio(workspace, host)
    run = studio.runs.get("tiny-shipped")
    assert run.read_only and run.path == shipped
    with pytest.raises(WorkspaceError, match="read-only"):
        run.write_status(state="training")
    with pytest.raises(WorkspaceError, match="taken by a bundled run"):
        studio.runs.create({"model": "char-lstm"}, name="tiny-shipped")

    listed = CliRunner().invoke(cli, ["--workspace", str(workspace.root), "runs", "--json"], obj=host)
    (row,) = json.loads(listed.output)
    assert row["name"] == "tiny-shipped" and row["read_only"] and row["model"] == "char-lstm"
    plugins = json.loads(CliRunner().invoke(cli, ["plugins", "--json"], obj=host).output)
    assert plugins["runs"] == {"tiny-shipped": {"description": "a test run", "plugin": "shipper"}}

    own = workspace.runs_dir / "tiny-shipped"  # a workspace run of the same name wins
    shutil.copytree(shipped, own)
    fresh = Studio(workspace, host)
    assert [(r.name, r.read_only) for r in fresh.runs.list()] == [("tiny-shipped", False)]


def test_a_run_spec_must_name_its_folder_or_its_plugin_fails_whole(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"its folder .* must be named 'other-name'"):
        RunSpec("other-name", tmp_path / "tiny-shipped")
    with pytest.raises(WorkspaceError, match=re.escape("run name '../up' is not allowed")):
        RunSpec("../up", tmp_path / "up")

    def register_runs(register: Any) -> None:
        register(RunSpec("good-run", tmp_path / "good-run"))
        register(RunSpec("bad-name", tmp_path / "elsewhere"))

    host = PluginHost()
    host.register_module(SimpleNamespace(register_runs=hookimpl(register_runs)), "shipper")
    assert host.registry.runs == {}
    info = host.plugins["shipper"]
    assert info.status == "failed" and info.dropped == ["run good-run"]
    assert info.errors[0].startswith("register_runs raised ValueError: run 'bad-name': its folder")


def test_chorales_default_comes_from_the_rnn_rbm_plugin_and_writes_four_voices(
    installed_host: PluginHost, workspace: Workspace, tmp_path: Path
) -> None:
    from tui_composer.music.export import parse_abc
    from tui_composer.music.notes import score_notes

    spec = installed_host.registry.runs["chorales-default"]
    assert spec.origin.plugin == "rnn-rbm" and spec.path.parts[-3:] == ("rnn_rbm", "pretrained", "chorales-default")
    assert sum(p.stat().st_size for p in spec.path.rglob("*") if p.is_file()) <= 10_000_000
    # With no --max-length, chorale length: the median of its 328 training chorales (at 1000 frames they drifted).
    args = ["--workspace", str(workspace.root), "sample", "chorales-default", "-n", "2"]
    result = CliRunner().invoke(cli, [*args, "--seed", "1", "--json", "--out", str(tmp_path)], obj=installed_host)
    assert result.exit_code == 0, result.output
    listed = json.loads(result.output)
    assert len(listed) == 2 and all(s["ok"] and s["midi_path"] for s in listed)
    assert [s["length"] for s in listed] == [192, 192]
    for sample in listed:
        notes = score_notes(parse_abc(sample["abc"]))
        chords: dict[float, int] = {}
        for note in notes:
            chords[note.start] = chords.get(note.start, 0) + 1
        steps = np.arange(0.0, max(n.end for n in notes), 0.25)  # a sixteenth-note grid
        sounding = np.asarray([sum(n.start <= t < n.end for n in notes) for t in steps])
        assert 3 <= sounding[sounding > 0].mean() <= 5  # about four voices, not clusters
        assert max(chords.values()) <= 8  # the chorales' own largest onset (pair_quality's baseline row)
