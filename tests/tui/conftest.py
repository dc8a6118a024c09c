"""Fixtures for the TUI tests: a workspace with an imported corpus, fixed runs, and a fixed plugin set."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import tui_fixture_plugin

from tui_composer.plugin.host import PluginHost
from tui_composer.services.runs import RunStore
from tui_composer.services.studio import Studio
from tui_composer.services.workspace import Workspace

IMPORTED_TUNES = """X:1
T:Kesh Jig
M:6/8
L:1/8
K:G
D|GAG GAB|ABA ABd|edd gdd|edB dBA|GAG GAB|ABA ABd|edd gdB|AGF G2:|

X:2
T:Out On The Ocean
M:6/8
L:1/8
K:G
D|GED DED|GAB d2e|dBA GBd|egf gdB|GED DED|GAB d2e|dBA GAB|AGE E2:|
"""


def write_music_folder(folder: Path) -> Path:
    """Two good tunes, a file with a tune that has no notes, and a file that isn't music."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "jigs.abc").write_text(IMPORTED_TUNES, encoding="utf-8")
    (folder / "empty-tune.abc").write_text("X:1\nT:Nothing\nM:4/4\nK:C\n", encoding="utf-8")
    (folder / "notes.txt").write_text("not music", encoding="utf-8")
    return folder


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run `async def` tests (Pilot needs an event loop) without an async test plugin."""
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    arguments = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    asyncio.run(pyfuncitem.obj(**arguments))
    return True


HEAVY_MODULES = ("tensorflow", "keras")
_preloaded: set[str] = set()


@pytest.fixture(autouse=True)
def _heavy_modules_before_the_test() -> None:
    # Other test files train models in this same process; what they loaded is not the TUI's doing.
    _preloaded.clear()
    _preloaded.update(m for m in HEAVY_MODULES if m in sys.modules)


def assert_tui_loaded_no_tensorflow() -> None:
    """The TUI process never imports TensorFlow or Keras (checked in a fresh process by test_tui_no_tensorflow)."""
    loaded = [m for m in HEAVY_MODULES if m in sys.modules and m not in _preloaded]
    assert not loaded, f"the TUI imported {loaded}"


@pytest.fixture(autouse=True)
def _utc(monkeypatch: pytest.MonkeyPatch) -> None:
    """Times in the Runs table are local; pin the zone so snapshots don't depend on the machine."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()


@pytest.fixture(scope="session")
def fixture_host() -> PluginHost:
    host = PluginHost()
    host.register_module(tui_fixture_plugin, "tui-fixture", distribution="tui-fixture")
    return host


@pytest.fixture(scope="session")
def workspace_template(tmp_path_factory: pytest.TempPathFactory, fixture_host: PluginHost) -> Path:
    """A workspace with the corpus `jigs` imported once per session (import parses with music21)."""
    root = tmp_path_factory.mktemp("template")
    studio = Studio(Workspace(root / "ws").ensure(), fixture_host)
    report = studio.catalogue.import_path(
        write_music_folder(root / "incoming"), "jigs", description="Two jigs for the tests", licence="traditional"
    )
    # The manifest records where the music came from: a tmp path that differs per session; pin it.
    manifest = report.path / "manifest.json"
    manifest.write_text(manifest.read_text().replace(str((root / "incoming").resolve()), "/music/jigs"))
    return root / "ws"


@pytest.fixture
def tui_studio(tmp_path: Path, workspace_template: Path, fixture_host: PluginHost) -> Studio:
    """A Studio on a fresh copy of the template workspace, with the fixture plugin and no bundled runs."""
    root = tmp_path / "ws"
    shutil.copytree(workspace_template, root)
    studio = Studio(Workspace(root), fixture_host)
    studio.runs = RunStore(studio.workspace, bundled=None)  # type: ignore[misc] - cached_property set once
    return studio


def write_run(
    workspace: Workspace,
    name: str,
    *,
    state: str,
    epoch: int,
    epochs: int,
    metrics: list[dict[str, Any]] = (),  # type: ignore[assignment]
    best: float | None = None,
    error: str = "",
) -> Path:
    """A run folder as a trainer leaves it: fixed config, status and metrics (for deterministic screens)."""
    folder = workspace.runs_dir / name
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "samples").mkdir()
    config = {
        "name": name,
        "corpus": "jigs",
        "encoder": "letters",
        "model": "tiny-rnn",
        "epochs": epochs,
        "created": "2025-01-02T03:04:05+00:00",
    }
    (folder / "config.json").write_text(json.dumps(config))
    status = {
        "state": state,
        "pid": None,
        "epoch": epoch,
        "epochs": epochs,
        "heartbeat_unix": 0.0,
        "best_valid_loss": best,
    }
    if error:
        status["error"] = error
    (folder / "status.json").write_text(json.dumps(status))
    (folder / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
    return folder


def loss_metrics(epochs: int, batches: int, start: float = 3.0) -> list[dict[str, Any]]:
    """A falling loss, batch by batch, with a validation loss per epoch."""
    records: list[dict[str, Any]] = []
    loss = start
    for epoch in range(1, epochs + 1):
        for batch in range(1, batches + 1):
            loss *= 0.97
            records.append(
                {"kind": "batch", "epoch": epoch, "batch": batch, "batches": batches, "loss": round(loss, 4)}
            )
        records.append(
            {"kind": "epoch", "epoch": epoch, "train_loss": round(loss, 4), "valid_loss": round(loss * 1.1, 4)}
        )
    return records


async def until(pilot: Any, condition: Any, seconds: float = 10.0, what: str = "the screen to update") -> None:
    """Let the app run (timers, workers, messages) until `condition()` holds."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds:g} s waiting for {what}")
        await pilot.pause(0.05)


def env_for(workspace: Workspace) -> dict[str, str]:
    return {**os.environ, "TUI_COMPOSER_HOME": str(workspace.root)}
