"""No lost work: resume after missing or damaged checkpoints, refusals that change nothing, a full disk
while training or sampling, a SIGKILL mid-checkpoint, and damaged run files that spoil no listing.

Tiny real Keras models train on the tiny real tunes of `training_support`; a full disk is made without
root through the two write seams (`training.write_model_file` for the plugin's model file,
`workspace.write_bytes` for every other file), which then raise ENOSPC as the kernel would.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import pytest
from training_support import tiny_corpus, tiny_request

from tui_composer.cli.app import cli, main
from tui_composer.plugin.host import PluginHost
from tui_composer.services import training, workspace
from tui_composer.services.runs import Run, RunDamaged, RunStore
from tui_composer.services.sampling import SampleOptions, sample_run
from tui_composer.services.studio import Studio
from tui_composer.services.training import Progress, TrainingError, prepare_run, train_run
from tui_composer.services.workspace import DiskFullError, Workspace
from tui_composer.tui.runwatch import MetricsTail, RunWatcher

pytest.importorskip("keras")

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, installed_host: PluginHost) -> Studio:
    studio = Studio(Workspace(tmp_path_factory.mktemp("lost-work") / "ws").ensure(), installed_host)
    studio.runs = RunStore(studio.workspace, bundled=None)  # type: ignore[misc] - only this workspace's runs
    tiny_corpus(studio, tmp_path_factory.mktemp("tunes"))
    return studio


def crash_at(epoch: int, batch: int) -> Callable[[Progress], None]:
    def on_progress(progress: Progress) -> None:
        if progress.phase == "training" and progress.epoch + 1 == epoch and progress.batch == batch:
            raise RuntimeError("simulated crash")

    return on_progress


@pytest.fixture(scope="module")
def crashed(shared: Studio) -> Run:
    """Two of three epochs trained, then a crash: epoch-0001/0002 checkpoints, last.keras, model.keras."""
    run = prepare_run(shared, tiny_request(name="crashed", epochs=3, patience=5))
    with pytest.raises(Exception, match="simulated crash"):  # raw, or wrapped as the plugin's error
        train_run(shared, run, on_progress=crash_at(epoch=3, batch=1))
    return run


@pytest.fixture(scope="module")
def finished(shared: Studio) -> Run:
    run = prepare_run(shared, tiny_request(name="finished", epochs=1))
    assert train_run(shared, run)["state"] == "finished"
    return run


def copy_run(studio: Studio, run: Run, name: str) -> Run:
    """A copy of a trained run to damage, so each test starts from the same files."""
    shutil.copytree(run.path, studio.workspace.runs_dir / name)
    return studio.runs.get(name)


def kinds(run: Run, kind: str) -> list[dict[str, Any]]:
    return [m for m in run.metrics() if m.get("kind") == kind]


def stray_files(run: Run) -> list[str]:
    """Partial and temporary files anywhere in the run folder (there must be none)."""
    return sorted(p.name for p in run.path.rglob("*") if ".partial" in p.name or p.name.endswith(".tmp"))


# --- 1. resume falls back to the newest readable checkpoint ---------------------------------------------------


def test_resume_without_last_keras_continues_from_the_newest_epoch_checkpoint(shared: Studio, crashed: Run) -> None:
    run = copy_run(shared, crashed, "no-last")
    (run.checkpoints_dir / "last.keras").unlink()
    messages: list[str] = []
    status = train_run(shared, run, resume=True, on_progress=lambda p: messages.append(p.message))
    assert status["state"] == "finished" and status["epoch"] == 3
    # Epochs 1 and 2 are kept: only epoch 3 is trained again (before: all three, from epoch 0).
    assert [m["epoch"] for m in kinds(run, "epoch")] == [1, 2, 3]
    assert kinds(run, "checkpoint_skipped")[0]["file"] == "last.keras"
    assert kinds(run, "checkpoint_skipped")[0]["reason"] == "is missing"
    resumed = kinds(run, "resumed")[-1]
    assert (resumed["epoch"], resumed["checkpoint"]) == (2, "epoch-0002.keras")
    assert "run 'no-last': skipped checkpoints/last.keras: it is missing" in messages
    assert "resuming run 'no-last' after epoch 2 from checkpoints/epoch-0002.keras" in messages


def test_resume_with_a_truncated_last_keras_loads_the_same_epoch_from_its_epoch_file(
    shared: Studio, crashed: Run
) -> None:
    run = copy_run(shared, crashed, "cut-last")
    last = run.checkpoints_dir / "last.keras"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])  # before: "File not found"
    status = train_run(shared, run, resume=True)
    assert status["state"] == "finished" and status["epoch"] == 3
    skipped = kinds(run, "checkpoint_skipped")
    assert [s["file"] for s in skipped] == ["last.keras"] and "can't be loaded" in skipped[0]["reason"]
    assert kinds(run, "resumed")[-1]["checkpoint"] == "epoch-0002.keras"


def test_a_fallback_restores_that_epochs_state_and_never_overwrites_a_better_model(
    shared: Studio, crashed: Run
) -> None:
    run = copy_run(shared, crashed, "older")
    folder = run.checkpoints_dir
    (folder / "last.keras").unlink()
    (folder / "epoch-0002.keras").write_bytes(b"PK\x03\x04 cut short")
    # model.keras holds a model better than the resumed trajectory reaches again (as after a lost epoch):
    # every state file records that lower loss.
    for name in ("epoch-0002.json", "training.json"):
        state = json.loads((folder / name).read_text())
        (folder / name).write_text(json.dumps({**state, "model_loss": 0.25}))
    best_model = run.model_path.read_bytes()
    epoch_one = json.loads((folder / "epoch-0001.json").read_text())

    status = train_run(shared, run, resume=True)
    assert status["state"] == "finished" and status["epoch"] == 3
    assert [s["file"] for s in kinds(run, "checkpoint_skipped")] == ["last.keras", "epoch-0002.keras"]
    resumed = kinds(run, "resumed")[-1]
    assert (resumed["epoch"], resumed["checkpoint"]) == (1, "epoch-0001.keras")
    # Epochs 2 and 3 are trained again from epoch 1's state (its best loss and patience counter).
    assert [m["epoch"] for m in kinds(run, "epoch")] == [1, 2, 2, 3]
    second_try = kinds(run, "epoch")[2]
    assert second_try["best"] == (second_try["valid_loss"] < epoch_one["best_valid_loss"])
    assert run.model_path.read_bytes() == best_model  # no retrained epoch beat 0.25
    assert status["best_valid_loss"] == 0.25


def test_resume_with_no_readable_checkpoint_is_refused_naming_each_file(shared: Studio, crashed: Run) -> None:
    run = copy_run(shared, crashed, "all-bad")
    folder = run.checkpoints_dir
    (folder / "last.keras").unlink()
    for name in ("epoch-0001.keras", "epoch-0002.keras"):
        (folder / name).write_bytes(b"")
    best_model = run.model_path.read_bytes()
    with pytest.raises(TrainingError) as refused:
        train_run(shared, run, resume=True)
    for words in ("last.keras is missing", "epoch-0002.keras can't be loaded", "epoch-0001.keras", "aside"):
        assert words in str(refused.value)
    assert run.model_path.read_bytes() == best_model
    assert (folder / "training.json").is_file() and not kinds(run, "epoch")[2:]


# --- 2. a refused resume changes nothing ---------------------------------------------------------------------------


def test_resuming_a_finished_run_is_refused_and_changes_no_file(shared: Studio, finished: Run) -> None:
    def snapshot() -> dict[str, bytes]:
        """Every file of the run but train.log, where the command logs its own refusal."""
        files = [p for p in finished.path.rglob("*") if p.is_file() and p != finished.log_path]
        return {str(p.relative_to(finished.path)): p.read_bytes() for p in files}

    before = snapshot()
    with pytest.raises(TrainingError, match="already trained all 1 epochs"):
        train_run(shared, finished, resume=True)
    assert snapshot() == before  # status.json byte for byte: still "finished", not "failed"
    result = invoke(shared, "train", "--resume", "finished")
    assert result.exit_code == 1 and "already trained all 1 epochs" in result.output
    assert snapshot() == before


def invoke(studio: Studio, *args: str) -> Any:
    from click.testing import CliRunner

    return CliRunner().invoke(cli, ["--workspace", str(studio.workspace.root), *args], obj=studio.host)


# --- 3. a full disk -----------------------------------------------------------------------------------------------


class FullDisk:
    """Once full, every write that needs space fails with ENOSPC after writing half its bytes (as the
    kernel does); overwriting a file's own bytes in place still works, as it needs no new space."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, fills_at: str | None = None) -> None:
        self.full = False
        self.fills_at = fills_at  # the model file whose writing fills the disk
        write_model, write_bytes = training.write_model_file, workspace.write_bytes

        def model_file(model: Any, path: Path) -> None:
            if self.fills_at is not None and path.name.startswith(f".{self.fills_at}"):
                self.full = True
            if self.full:
                path.write_bytes(b"PK\x03\x04 half a zip")
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            write_model(model, path)

        def some_bytes(handle: BinaryIO, data: bytes) -> None:
            if self.full:
                handle.write(data[: len(data) // 2])
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            write_bytes(handle, data)

        monkeypatch.setattr(training, "write_model_file", model_file)
        monkeypatch.setattr(workspace, "write_bytes", some_bytes)


def test_a_disk_that_fills_during_training_fails_the_run_clearly_and_resume_finishes(
    shared: Studio, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = prepare_run(shared, tiny_request(name="full-disk", epochs=2))
    disk = FullDisk(monkeypatch, fills_at="epoch-0002")
    with pytest.raises(TrainingError) as failed:
        train_run(shared, run)
    message = (
        f"disk full writing {run.checkpoints_dir / 'epoch-0002.keras'}: "
        "free space and resume with `tui-composer train --resume full-disk`"
    )
    assert str(failed.value) == message
    # Told in status.json although no new file fits: before, the state stayed "training".
    status = json.loads(run.status_path.read_text())
    assert (status["state"], status["error"]) == ("failed", message)
    assert stray_files(run) == []  # before: .epoch-0002.partial.keras
    assert all(json.loads(line) for line in run.metrics_path.read_text().splitlines())  # whole lines only

    disk.full = False  # space freed
    disk.fills_at = None
    resumed = train_run(shared, run, resume=True)
    assert resumed["state"] == "finished" and resumed["epoch"] == 2
    assert kinds(run, "resumed")[-1]["epoch"] == 1 and stray_files(run) == []


def test_a_full_disk_while_sampling_leaves_no_empty_file(
    shared: Studio, crashed: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "samples"
    options = SampleOptions(n=2, max_length=80, seed=1, out=out)
    disk = FullDisk(monkeypatch)
    disk.full = True
    with pytest.raises(DiskFullError) as failed:
        sample_run(shared, "crashed", options)
    assert str(failed.value).startswith(f"disk full writing {out / '001.'}")
    assert str(failed.value).endswith(": free space and sample again (the samples already written are kept)")
    assert sorted(p.name for p in out.iterdir()) == []  # before: a 0-byte 001.abc
    result = invoke(shared, "sample", "crashed", "-n", "1", "--max-length", "80", "--out", str(out))
    assert result.exit_code == 1 and "Error: disk full writing" in result.output
    assert sorted(p.name for p in out.iterdir()) == []

    disk.full = False
    samples = sample_run(shared, "crashed", options)
    assert [s.number for s in samples] == [1, 2]
    written = [p for p in out.iterdir()]
    assert written and all(p.stat().st_size > 0 for p in written)


# --- a real SIGKILL while checkpoints are written ---------------------------------------------------------------

# A trainer's checkpoint writing without its training (so no TensorFlow in the child): the epochs'
# model file is a real checkpoint's bytes, written the way training writes it, until the parent kills it.
CHECKPOINT_WRITER = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from tui_composer.services.runs import Run
    from tui_composer.services.training import TrainingState, checkpoint_epoch

    run, saved = Run(Path(sys.argv[1])), Path(sys.argv[2]).read_bytes()

    class SavedModel:
        def save(self, path):
            Path(path).write_bytes(saved)

    state = TrainingState.read(run.checkpoints_dir / "training.json")
    with run.lock():
        run.write_status(state="training", pid=os.getpid())
        print("writing", flush=True)
        while True:
            state.epoch += 1
            state.best_valid_loss = state.model_loss = 1.0 / state.epoch
            state.best_epoch, state.bad_epochs = state.epoch, 0
            checkpoint_epoch(run, SavedModel(), state, replace_model=True)
            run.append_metric({"kind": "epoch", "epoch": state.epoch, "valid_loss": state.model_loss})
    """
)


def test_sigkill_while_checkpointing_then_resume(shared: Studio, crashed: Run) -> None:
    """Killed at some moment of its checkpoint writing (between files or inside one), the run resumes."""
    run = copy_run(shared, crashed, "killed")
    config = run.config
    run.write_config({**config, "epochs": 100_000, "patience": 100_000})
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    writer = subprocess.Popen(
        [sys.executable, "-c", CHECKPOINT_WRITER, str(run.path), str(run.checkpoints_dir / "epoch-0002.keras")],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout is not None and writer.stdout.readline() == "writing\n"
    deadline = time.monotonic() + 60
    while json.loads((run.checkpoints_dir / "training.json").read_text())["epoch"] < 4:
        assert time.monotonic() < deadline and writer.poll() is None, "the writer wrote no checkpoint"
        time.sleep(0.01)
    time.sleep(0.05)  # then anywhere in its writing
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    assert run.status()["state"] == "interrupted"
    done = json.loads((run.checkpoints_dir / "training.json").read_text())["epoch"]

    stop = threading.Event()

    def stop_at_the_first_batch(progress: Progress) -> None:
        if progress.phase == "training":
            stop.set()

    status = train_run(shared, run, resume=True, stop=stop, on_progress=stop_at_the_first_batch)
    assert status["state"] == "stopped"  # it loaded a checkpoint and trained on from it
    resumed = kinds(run, "resumed")[-1]
    # The newest whole checkpoint: training.json's, or a newer epoch-N pair written just before the kill.
    assert resumed["epoch"] >= done and not kinds(run, "checkpoint_skipped")
    assert stray_files(run) == []  # what the killed writer left half-written is gone


# --- 4. damaged run files ------------------------------------------------------------------------------------------

GOOD_CONFIG = {
    "corpus": "tiny",
    "encoder": "abc",
    "encoder_params": {},
    "model": "char-lstm",
    "model_params": {},
    "epochs": 2,
    "seed": 0,
    "created": "2025-01-02T03:04:05+00:00",
}
DAMAGE = [
    ("config.json", b'{"corpus": "tin', "is not valid JSON, perhaps cut short"),
    ("config.json", b"", "is empty"),
    ("status.json", b"\x89PNG\r\n\x1a\n\x00\xff", "holds binary bytes, not UTF-8 text"),
    ("config.json", b"[1, 2]", "holds a list, not a JSON object"),
    ("status.json", b'{"state": "finished", "epoch": "abc"}', 'has epoch "abc", expected a whole number'),
    ("config.json", b"{}", "lacks corpus, encoder, encoder_params, model, model_params, epochs"),
]


def write_runs(root: Path, file: str, content: bytes) -> Studio:
    """A workspace with one sound run (`good`) and one whose `file` holds `content` (`broken`)."""
    studio = Studio(Workspace(root).ensure(), PluginHost())
    studio.runs = RunStore(studio.workspace, bundled=None)  # type: ignore[misc]
    for name in ("good", "broken"):
        folder = studio.workspace.runs_dir / name
        (folder / "checkpoints").mkdir(parents=True)
        (folder / "config.json").write_text(json.dumps({**GOOD_CONFIG, "name": name}))
        (folder / "status.json").write_text(json.dumps({"state": "finished", "epoch": 2, "best_valid_loss": 1.5}))
    (studio.workspace.runs_dir / "broken" / file).write_bytes(content)
    return studio


@pytest.mark.parametrize(("file", "content", "reason"), DAMAGE)
def test_a_damaged_run_is_listed_as_damaged_and_spoils_nothing(
    tmp_path: Path,
    installed_host: PluginHost,
    capsys: pytest.CaptureFixture[str],
    file: str,
    content: bytes,
    reason: str,
) -> None:
    studio = write_runs(tmp_path / "ws", file, content)
    listed = {r["name"]: r for r in json.loads(invoke(studio, "runs", "--json").output)}
    assert listed["good"]["state"] == "finished" and listed["good"]["damaged"] is None
    assert listed["broken"]["state"] == "damaged"
    assert listed["broken"]["damaged"]["file"] == file and listed["broken"]["damaged"]["reason"].startswith(reason)
    table = invoke(studio, "runs")
    assert table.exit_code == 0 and "good" in table.output
    assert f"run 'broken' is damaged: {file} {reason}" in " ".join(table.output.split())

    rows = {row.name: row for row in RunWatcher(studio.runs).rows()}
    assert rows["broken"].state == "damaged" and f"{file} {reason}" in rows["broken"].damaged
    assert rows["good"].state == "finished" and rows["good"].best_valid_loss == 1.5
    detail = RunWatcher(studio.runs).detail("broken")
    assert detail is not None and detail.state == "damaged" and f"{file} {reason}" in detail.error
    from tui_composer.tui.app import ComposerApp

    assert ComposerApp(studio).DEFAULT_MODE == "corpora"  # before: the app exited here

    # Sampling and resuming it give the same reason (for `{}`: not "needs a plugin that is not installed").
    for command in (["sample", "broken"], ["train", "--resume", "broken"]):
        with pytest.raises(SystemExit) as exited:
            main(["--workspace", str(studio.workspace.root), *command])
        assert exited.value.code == 1
        error = " ".join(capsys.readouterr().err.split())
        assert f"run 'broken' is damaged: {file} {reason}" in error and "plugin" not in error
    with pytest.raises(RunDamaged, match=reason.split(",")[0]):
        train_run(studio, studio.runs.get("broken"), resume=True)
    assert (studio.workspace.runs_dir / "broken" / file).read_bytes() == content  # left as found
    studio.runs.delete("broken")  # a damaged run can still be deleted
    assert [r.name for r in studio.runs.list()] == ["good"]


def test_binary_bytes_in_metrics_are_skipped(tmp_path: Path) -> None:
    studio = write_runs(tmp_path / "ws", "metrics.jsonl", b"")
    run = studio.runs.get("broken")
    record = json.dumps({"kind": "epoch", "epoch": 1, "train_loss": 2.0, "valid_loss": 2.5}).encode()
    run.metrics_path.write_bytes(b"\xff\xfe\x00garbage\n" + record + b"\n[1, 2]\n\x89PNG\n")
    assert run.metrics() == [json.loads(record)]  # before: UnicodeDecodeError
    tail = MetricsTail(run.metrics_path)
    tail.read()
    assert tail.valid == [(1.0, 2.5)] and tail.epochs_done == 1


def test_the_tui_opens_on_a_workspace_with_a_damaged_run_and_lists_it(tmp_path: Path) -> None:
    from textual.widgets import DataTable, Static

    from tui_composer.tui.app import ComposerApp

    studio = write_runs(tmp_path / "ws", "status.json", b"\x89PNG\r\n\x1a\n\x00\xff")

    async def scenario() -> None:
        app = ComposerApp(studio)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("f3")
            table = app.screen.query_one("#runs", DataTable)
            await until(pilot, lambda: table.row_count == 2, "the runs")
            states = {str(table.get_row_at(i)[0]): str(table.get_row_at(i)[1]) for i in range(table.row_count)}
            assert states == {"broken": "damaged", "good": "finished"}
            log = app.screen.query_one("#run-log", Static)
            await until(pilot, lambda: "status.json holds binary bytes" in str(log.content), "the damaged run's reason")
            assert "delete" in str(log.content)  # and what to do about it

    asyncio.run(scenario())


async def until(pilot: Any, condition: Callable[[], bool], what: str, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await pilot.pause(0.05)
