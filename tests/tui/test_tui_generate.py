"""Generating in the warm sampling worker: samples join the table as each is written and checked, a second
generation reuses the loaded model, and ctrl+x cancels one. A tiny char-LSTM trained once by the CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import assert_tui_loaded_no_tensorflow, until
from textual.widgets import DataTable, Input, Select, Static

from tui_composer.plugin.host import PluginHost
from tui_composer.services.runs import RunStore
from tui_composer.services.studio import Studio
from tui_composer.services.workspace import Workspace
from tui_composer.tui.app import ComposerApp
from tui_composer.tui.messages import SamplerReplied
from tui_composer.tui.screens.samples import CHECKING, SamplesScreen

SIZE = (80, 24)
TINY = {"embedding": "8", "layers": "1", "units": "8", "streams": "2", "steps": "16"}


@pytest.fixture(scope="module")
def trained_template(tmp_path_factory: pytest.TempPathFactory, workspace_template: Path) -> Path:
    """A workspace with the `jigs` corpus and a run `tiny` trained one epoch by `tui-composer train`."""
    root = tmp_path_factory.mktemp("generate") / "ws"
    shutil.copytree(workspace_template, root)
    sets = [arg for key, value in TINY.items() for arg in ("--set", f"{key}={value}")]
    command = ["train", "--corpus", "jigs", "--encoder", "abc", "--model", "char-lstm", "--epochs", "1"]
    subprocess.run(
        [sys.executable, "-m", "tui_composer", "--workspace", str(root), *command, "--name", "tiny", *sets],
        check=True,
        capture_output=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    return root


@pytest.fixture
def trained(tmp_path: Path, trained_template: Path, installed_host: PluginHost) -> Studio:
    if "char-lstm" not in installed_host.registry.models or "abc" not in installed_host.registry.encoders:
        pytest.skip("needs the built-in abc encoder and char-lstm model")
    shutil.copytree(trained_template, tmp_path / "ws")
    studio = Studio(Workspace(tmp_path / "ws"), installed_host)
    studio.runs = RunStore(studio.workspace, bundled=None)  # type: ignore[misc]
    return studio


def fill(screen: SamplesScreen, n: int, max_length: int, seed: int) -> None:
    screen.query_one("#sample-n", Input).value = str(n)
    screen.query_one("#sample-max_length", Input).value = str(max_length)
    screen.query_one("#sample-seed", Input).value = str(seed)


def status(screen: SamplesScreen) -> str:
    return str(screen.query_one("#sample-status", Static).content)


async def test_generate_in_the_warm_worker_then_cancel(trained: Studio, monkeypatch: pytest.MonkeyPatch) -> None:
    cancel_at_first_sample: list[bool] = []
    handle = SamplesScreen.on_sampler_replied

    def cancelling(screen: SamplesScreen, message: SamplerReplied) -> None:
        handle(screen, message)
        # What ctrl+x runs, as the first sample arrives: the screen may take many replies in one go, so a key
        # pressed after the first row is drawn came after the last (400 tunes in 5.8 s on a quiet machine).
        if cancel_at_first_sample == [True] and message.reply.get("kind") == "sample":
            cancel_at_first_sample.append(True)
            screen.action_cancel()

    monkeypatch.setattr(SamplesScreen, "on_sampler_replied", cancelling)
    app = ComposerApp(trained)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f4")
        screen = app.screen
        assert isinstance(screen, SamplesScreen)
        table = screen.query_one("#samples", DataTable)
        assert screen.query_one("#sample-run", Select).value == "tiny"
        fill(screen, 3, 80, 7)
        await pilot.press("ctrl+g")
        await until(pilot, lambda: screen._generation is None and table.row_count == 3, 120, "three samples")
        assert [str(table.get_row_at(i)[0]) for i in range(3)] == ["001", "002", "003"]
        assert CHECKING not in [str(table.get_row_at(i)[2]) for i in range(3)]
        assert status(screen).startswith("3 samples from tiny in")
        assert sorted(p.name for p in (trained.workspace.runs_dir / "tiny" / "samples").glob("*.abc")) == [
            "001.abc",
            "002.abc",
            "003.abc",
        ]
        worker = screen.sampler.pid

        # A long generation, cancelled: it stops at its next step, and every row it wrote says what it is.
        # (Many long tunes: 80 of up to 1,000 steps were all written 3.2 s later, before the cancel came.)
        fill(screen, 400, 1000, 8)
        cancel_at_first_sample.append(True)
        await pilot.press("ctrl+g")
        await until(pilot, lambda: len(cancel_at_first_sample) == 2, 120, "the first sample of the second generation")
        await until(pilot, lambda: screen._generation is None, 30, "the generation to stop")
        assert status(screen).startswith("Cancelled:"), status(screen)
        assert 3 < table.row_count < 3 + 400
        assert CHECKING not in [str(table.get_row_at(i)[2]) for i in range(table.row_count)]
        assert screen.sampler.pid == worker  # it stopped between steps: the worker and its model stay
    assert_tui_loaded_no_tensorflow()
