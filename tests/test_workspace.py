"""Workspace and runs: atomic metadata, no two trainings in one run, status derived from liveness."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from tui_composer.services.runs import Run, RunStore
from tui_composer.services.workspace import Workspace, WorkspaceError, read_json, write_json


def test_an_interrupted_write_leaves_the_old_file_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "status.json"
    write_json(path, {"state": "training", "epoch": 3})

    def crash(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        write_json(path, {"state": "finished", "epoch": 4})
    assert read_json(path) == {"epoch": 3, "state": "training"}
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]


def test_a_damaged_json_file_is_reported_by_path(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"corpus": "onei')
    with pytest.raises(WorkspaceError, match=r"config\.json is damaged"):
        read_json(path)


def test_two_runs_created_at_once_never_share_a_folder(workspace: Workspace) -> None:
    store = RunStore(workspace, bundled=None)
    created: list[str] = []
    errors: list[str] = []

    def create() -> None:
        try:
            created.append(store.create({"model": "rbm"}, name="same").name)
        except WorkspaceError as error:
            errors.append(str(error))

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert created == ["same"]
    assert len(errors) == 7 and "already exists" in errors[0]
    generated = {store.create({"model": "rbm"}).name for _ in range(5)}
    assert len(generated) == 5


def test_a_run_lock_refuses_a_second_trainer(workspace: Workspace) -> None:
    run = RunStore(workspace, bundled=None).create({"model": "rbm"}, name="locked")
    with run.lock():
        assert run.is_locked()
        with pytest.raises(WorkspaceError, match="being trained by another process"), run.lock():
            pass
    assert not run.is_locked()


def test_a_training_whose_process_died_shows_as_interrupted(workspace: Workspace) -> None:
    run = RunStore(workspace, bundled=None).create({"model": "rbm"}, name="r")
    run.write_status(state="training", pid=os.getpid())
    assert run.status()["state"] == "training"
    run.write_status(state="training", pid=2**22 + 12345)  # no such process
    assert run.status()["state"] == "interrupted"


def test_metrics_ignore_a_half_written_last_line(workspace: Workspace) -> None:
    run = RunStore(workspace, bundled=None).create({"model": "rbm"}, name="m")
    run.append_metric({"epoch": 1, "train_loss": 2.5})
    with open(run.metrics_path, "a") as handle:
        handle.write('{"epoch": 2, "train_lo')
    assert [m["epoch"] for m in run.metrics()] == [1]


def test_bundled_runs_are_read_only(tmp_path: Path, workspace: Workspace) -> None:
    bundled = tmp_path / "bundled"
    (bundled / "demo").mkdir(parents=True)
    (bundled / "demo" / "config.json").write_text(json.dumps({"model": "char-lstm", "corpus": "oneills"}))
    store = RunStore(workspace, bundled=bundled)
    run = store.get("demo")
    assert run.read_only and run.summary()["state"] == "ready"
    with pytest.raises(WorkspaceError, match="read-only"):
        run.write_status(state="training")
    with pytest.raises(WorkspaceError, match="read-only"):
        store.delete("demo")
    with pytest.raises(WorkspaceError, match="taken by a bundled run"):
        store.create({}, name="demo")
    assert isinstance(store.list()[0], Run)


def test_run_states_are_one_type_that_reads_back_from_status_json(tmp_path: Path) -> None:
    """The live states are written out once (RunState, LIVE_STATES), and a state read from JSON is its member."""
    from tui_composer.services.runs import LIVE_STATES, RunState

    runs = RunStore(Workspace(tmp_path).ensure())
    run = runs.create({"corpus": "c", "encoder": "abc", "model": "char-lstm"}, name="a-run")
    run.write_status(state=RunState.TRAINING, pid=os.getpid())
    assert json.loads(run.status_path.read_text())["state"] == "training"  # plain text on disk
    assert run.state() is not None and RunState(run.state()).live
    assert {state.value for state in LIVE_STATES} == {"starting", "training"}
    run.write_status(state=RunState.TRAINING, pid=2**22 + 12345)  # no such process: it died
    assert run.state() == RunState.INTERRUPTED and not RunState(run.state()).live
