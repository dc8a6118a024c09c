"""The TUI with real training and sampling subprocesses: tiny char-LSTMs on two jigs.

Training and sampling run as `tui-composer` processes (TensorFlow never loads into the TUI), so these
tests start real ones; each takes seconds, most of it TensorFlow's import in the child.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import assert_tui_loaded_no_tensorflow
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Select

from tui_composer.plugin.host import PluginHost
from tui_composer.services.runs import RunStore, pid_alive
from tui_composer.services.studio import Studio
from tui_composer.services.workspace import Workspace
from tui_composer.tui.app import ComposerApp
from tui_composer.tui.screens.new_run import NewRunScreen
from tui_composer.tui.screens.runs import RunsScreen
from tui_composer.tui.screens.samples import SamplesScreen
from tui_composer.tui.widgets.loss_chart import LossChart

SIZE = (80, 24)
# A model small enough to train two epochs on two jigs in a few seconds.
TINY = {"embedding": "8", "layers": "1", "units": "8", "streams": "2", "steps": "16"}


@pytest.fixture
def real_studio(tmp_path: Path, workspace_template: Path, installed_host: PluginHost) -> Studio:
    """The installed plugins (abc, char-lstm) on a fresh copy of the workspace with the `jigs` corpus."""
    if "char-lstm" not in installed_host.registry.models or "abc" not in installed_host.registry.encoders:
        pytest.skip("needs the built-in abc encoder and char-lstm model")
    shutil.copytree(workspace_template, tmp_path / "ws")
    studio = Studio(Workspace(tmp_path / "ws"), installed_host)
    studio.runs = RunStore(studio.workspace, bundled=None)  # type: ignore[misc]
    return studio


async def wait_for(pilot: Pilot, condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds:g} s waiting for {what}")
        await pilot.pause(0.2)


def run_state(studio: Studio, name: str) -> str:
    try:
        return str(studio.runs.get(name).status().get("state"))
    except Exception:  # noqa: BLE001 - the folder appears a moment after the launch
        return "absent"


async def test_new_run_trains_outlives_the_tui_and_is_listed_after_restart(real_studio: Studio) -> None:
    app = ComposerApp(real_studio)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f2")
        screen = app.screen
        assert isinstance(screen, NewRunScreen)
        screen.query_one("#corpus", Select).value = "jigs"
        screen.query_one("#encoder", Select).value = "abc"
        screen.query_one("#model", Select).value = "char-lstm"
        await pilot.pause()
        screen.query_one("#run-name", Input).value = "tiny"
        screen.query_one("#param-run-epochs", Input).value = "3"
        for key, value in TINY.items():
            screen.query_one(f"#param-model-{key}", Input).value = value
        await pilot.press("ctrl+r")
        # Runs follows the new run; its batches and epochs arrive from the training process's files.
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), 10, "the Runs screen")
        runs = app.screen
        assert isinstance(runs, RunsScreen)
        await wait_for(pilot, lambda: len(runs.query_one(LossChart).valid) >= 1, 120, "the first epoch's loss")
        chart = runs.query_one(LossChart)
        assert chart.epochs == 3 and chart.train and 0 < chart.valid[0][1] < 10
        table = runs.query_one("#runs", DataTable)
        assert str(table.get_row("tiny")[4]) == "abc/char-lstm"
        status = real_studio.runs.get("tiny").status()
        pid = status["pid"]
        if status["state"] == "training":
            # Its own session and no terminal: closing the TUI (or its SSH connection) doesn't reach it.
            assert os.getsid(pid) != os.getsid(0)
            await pilot.press("ctrl+q")
    assert_tui_loaded_no_tensorflow()
    if status["state"] == "training":
        assert pid_alive(pid), "the training stopped when the TUI quit"
    deadline = time.monotonic() + 120
    while run_state(real_studio, "tiny") != "finished" and time.monotonic() < deadline:
        time.sleep(0.5)
    log = real_studio.workspace.runs_dir / "tiny" / "train.log"
    assert run_state(real_studio, "tiny") == "finished", log.read_text()
    # One log place: the launch log moved into the run folder, with the command line that started it.
    assert not (real_studio.workspace.root / "logs" / "tiny.log").exists()
    lines = log.read_text().splitlines()
    assert lines[0].startswith("$ tui-composer train --corpus jigs") and any("epoch 3/3" in x for x in lines)

    again = ComposerApp(real_studio)
    async with again.run_test(size=SIZE) as pilot:
        await pilot.press("f3")
        runs = again.screen
        await wait_for(pilot, lambda: "tiny" in runs.rows, 10, "the run in the table")
        row = runs.rows["tiny"]
        assert (row.state, row.epoch, row.epochs, row.pair) == ("finished", 3, 3, "abc/char-lstm")
        await wait_for(pilot, lambda: len(runs.query_one(LossChart).valid) == 3, 10, "the three epochs' losses")


@pytest.fixture
def trained_run(real_studio: Studio) -> Studio:
    """A tiny run trained by the `train` command itself (as a user would from a shell)."""
    sets = [arg for key, value in TINY.items() for arg in ("--set", f"{key}={value}")]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "tui_composer",
            "--workspace",
            str(real_studio.workspace.root),
            "train",
            "--corpus",
            "jigs",
            "--encoder",
            "abc",
            "--model",
            "char-lstm",
            "--epochs",
            "1",
            "--name",
            "tiny",
            *sets,
        ],
        check=True,
        capture_output=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    return real_studio


async def test_generate_copy_and_export_samples(trained_run: Studio, tmp_path: Path) -> None:
    # Trained from a shell, the run's log is in the same place as a TUI-started run's.
    log = (trained_run.workspace.runs_dir / "tiny" / "train.log").read_text().splitlines()
    assert log[0].startswith("run tiny: training char-lstm on corpus jigs") and any("epoch 1/1:" in x for x in log)
    app = ComposerApp(trained_run)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f4")
        screen = app.screen
        assert isinstance(screen, SamplesScreen)
        assert screen.query_one("#sample-run", Select).value == "tiny"
        screen.query_one("#sample-n", Input).value = "2"
        screen.query_one("#sample-max_length", Input).value = "80"
        screen.query_one("#sample-seed", Input).value = "7"
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: len(screen.samples) == 2, 120, "two samples")
        first = screen.samples[0]
        assert first.abc.startswith("X:")
        # The .abc file holds what the screen shows (plus a comment with the reason if it won't play).
        assert Path(first.abc_path).read_text(encoding="utf-8").startswith(first.abc)
        table = screen.query_one("#samples", DataTable)
        # Each sample gets `tui-composer check`'s verdict (parses, MIDI, bars, copies) in the table.
        await wait_for(pilot, lambda: table.get_row("1")[2] != "checking…", 120, "the samples' verdicts")
        verdicts = [str(table.get_row(str(s.number))[2]) for s in screen.samples]
        assert all(v.startswith(("plays", "no MIDI", "bars off meter", "does not parse")) for v in verdicts), verdicts
        table.focus()
        await pilot.press("down", "c")  # copy the second sample's ABC (OSC 52 in a real terminal)
        assert app.clipboard == screen.samples[1].abc
        await pilot.press("e")
        target = tmp_path / "exported"
        app.screen.query_one("#export-path", Input).value = str(target)
        await pilot.press("enter")
        await pilot.pause()
        exported = sorted(p.name for p in target.iterdir())
        assert Path(screen.samples[1].abc_path).name in exported
        source = Path(screen.samples[1].abc_path)
        assert (target / source.name).read_text() == source.read_text()
    assert_tui_loaded_no_tensorflow()
