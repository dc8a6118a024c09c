"""The training service and `tui-composer train`: validation, runs, checkpoints, stop, crash and resume."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from training_support import TINY_MODEL, tiny_corpus, tiny_request, write_tunes

from tui_composer.api import DataSpec, EpochProgress, Evaluation, Model, ModelSpec, SampleRequest, hookimpl
from tui_composer.cli.app import cli
from tui_composer.plugin.host import PluginHost
from tui_composer.services.studio import Studio
from tui_composer.services.training import Progress, TrainingError, _BatchTracker, prepare_run, train_run
from tui_composer.services.workspace import Workspace, WorkspaceError

pytest.importorskip("keras")


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, installed_host: PluginHost) -> Studio:
    """One workspace for the module, with the tiny corpus imported once."""
    studio = Studio(Workspace(tmp_path_factory.mktemp("training") / "ws").ensure(), installed_host)
    tiny_corpus(studio, tmp_path_factory.mktemp("tunes"))
    return studio


@pytest.fixture(scope="module")
def whole(shared: Studio) -> tuple[Any, list[Progress], dict[str, Any]]:
    """A two-epoch run trained without interruption: (run, progress reports, final status)."""
    run = prepare_run(shared, tiny_request(name="whole", epochs=2))
    reports: list[Progress] = []
    status = train_run(shared, run, on_progress=reports.append)
    return run, reports, status


def keras_weights(path: Path) -> list[np.ndarray]:
    import keras

    return keras.saving.load_model(path, safe_mode=True).get_weights()


# --- refused before any work --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"model_params": {"unitz": "64"}}, ["unitz", "units", "layers"]),
        ({"model_params": {"units": "0"}}, ["units", "[1, 8192]"]),
        ({"model_params": {"dropout": "lots"}}, ["dropout", "a number"]),
        ({"encoder": "piano-roll", "encoder_params": {"lowest": "3"}}, ["lowest", "low", "high"]),
        ({"model": "no-such-model"}, ["no-such-model", "char-lstm"]),
        ({"encoder": "no-such-encoder"}, ["no-such-encoder", "abc"]),
        ({"epochs": 0}, ["--epochs"]),
        ({"corpus": "no-such-corpus"}, ["no-such-corpus", "oneills"]),
    ],
)
def test_bad_requests_are_refused_naming_the_key(studio: Studio, overrides: dict[str, Any], named: list[str]) -> None:
    with pytest.raises((TrainingError, WorkspaceError)) as caught:
        prepare_run(studio, tiny_request(**{"corpus": "tiny", **overrides}))
    for word in named:
        assert word in str(caught.value)
    assert not studio.workspace.runs_dir.exists() or not any(studio.workspace.runs_dir.iterdir())


def test_prepare_run_records_resolved_parameters(shared: Studio) -> None:
    run = prepare_run(shared, tiny_request(name="resolved"))
    config = run.config
    assert config["model_params"]["units"] == 16 and config["model_params"]["dropout"] == 0.2
    assert config["encoder"] == "abc" and config["encoder_params"] == {"titles": False, "all_fields": False}
    assert (config["epochs"], config["seed"], config["name"]) == (2, 3, "resolved")
    assert run.status()["state"] == "created"


# --- training, crashes and resume ---------------------------------------------------------------------------


def crash_at(epoch: int, batch: int) -> Any:
    def on_progress(progress: Progress) -> None:
        if progress.phase == "training" and progress.epoch + 1 == epoch and progress.batch == batch:
            raise RuntimeError("simulated crash")

    return on_progress


def test_train_writes_metrics_checkpoints_and_status(whole: tuple[Any, list[Progress], dict[str, Any]]) -> None:
    run, reports, status = whole
    assert status["state"] == "finished" and status["epoch"] == 2 and status["pid"] == os.getpid()
    epochs = [m for m in run.metrics() if m["kind"] == "epoch"]
    assert [m["epoch"] for m in epochs] == [1, 2]
    for record in epochs:
        assert record["train_loss"] > 0 and record["valid_loss"] > 0
        assert record["valid_bits"] == pytest.approx(record["valid_loss"] / math.log(2))
    assert any(m["kind"] == "batch" for m in run.metrics())
    assert status["best_valid_loss"] == min(m["valid_loss"] for m in epochs)
    names = sorted(p.name for p in run.checkpoints_dir.iterdir())
    assert names == [
        "epoch-0001.json",
        "epoch-0001.keras",
        "epoch-0002.json",
        "epoch-0002.keras",
        "last.keras",
        "training.json",
    ]
    # Each epoch checkpoint keeps the state it was saved with; the last one is training.json's.
    epoch_one = json.loads((run.checkpoints_dir / "epoch-0001.json").read_text())
    assert epoch_one["epoch"] == 1 and epoch_one["model_loss"] == epochs[0]["valid_loss"]
    assert json.loads((run.checkpoints_dir / "epoch-0002.json").read_text()) == json.loads(
        (run.checkpoints_dir / "training.json").read_text()
    )
    assert run.model_path.is_file()
    encoder = json.loads(run.encoder_path.read_text())
    assert encoder["encoder"] == "abc" and encoder["data"]["kind"] == "tokens"
    assert [r.epoch for r in reports if r.phase == "epoch"] == [1, 2]
    assert reports[-1].phase == "finished"


def test_resume_after_a_crash_mid_epoch_continues_from_the_checkpoint(
    shared: Studio, whole: tuple[Any, list[Progress], dict[str, Any]]
) -> None:
    studio, uninterrupted = shared, whole[0]
    broken = prepare_run(studio, tiny_request(name="broken", epochs=2))
    with pytest.raises(Exception, match="simulated crash"):  # raw, or wrapped as the plugin's error
        train_run(studio, broken, on_progress=crash_at(epoch=2, batch=3))
    assert broken.status()["state"] == "failed"
    state = json.loads((broken.checkpoints_dir / "training.json").read_text())
    assert state["epoch"] == 1
    # Epoch 1 of both runs is the same computation: the checkpoints agree.
    checkpoint = keras_weights(broken.checkpoints_dir / "last.keras")
    for mine, theirs in zip(checkpoint, keras_weights(uninterrupted.checkpoints_dir / "epoch-0001.keras"), strict=True):
        np.testing.assert_array_equal(mine, theirs)

    status = train_run(studio, broken, resume=True)
    assert status["state"] == "finished" and status["epoch"] == 2
    assert {"kind": "resumed", "epoch": 1}.items() <= next(
        m for m in broken.metrics() if m["kind"] == "resumed"
    ).items()
    assert [m["epoch"] for m in broken.metrics() if m["kind"] == "epoch"] == [1, 2]
    # The resumed epoch 2 starts from the epoch-1 weights and optimizer state, reseeded as the whole run was.
    for mine, theirs in zip(keras_weights(broken.model_path), keras_weights(uninterrupted.model_path), strict=True):
        np.testing.assert_allclose(mine, theirs, atol=1e-5)


def test_stop_request_checkpoints_and_resume_finishes(shared: Studio) -> None:
    studio = shared
    run = prepare_run(studio, tiny_request(name="stopped", epochs=2))
    stop = threading.Event()

    def on_progress(progress: Progress) -> None:
        if progress.phase == "training" and progress.epoch == 1 and progress.batch == 2:
            stop.set()

    status = train_run(studio, run, on_progress=on_progress, stop=stop)
    assert status["state"] == "stopped" and status["epoch"] == 1
    assert (run.checkpoints_dir / "interrupted.keras").is_file()
    assert train_run(studio, run, resume=True)["state"] == "finished"
    with pytest.raises(TrainingError, match="already trained all 2 epochs"):
        train_run(studio, run, resume=True)


def test_a_second_trainer_of_the_same_run_is_refused(shared: Studio) -> None:
    run = prepare_run(shared, tiny_request(name="locked"))
    with run.lock(), pytest.raises(WorkspaceError, match="being trained by another process"):
        train_run(shared, run)


# --- early stopping, with a model that is fitted after one epoch ---------------------------------------------


class UnigramModel(Model):
    """Token frequencies: fitted exactly by one epoch, so later epochs never improve (numpy only)."""

    def __init__(self, params: Mapping[str, Any], data: DataSpec, strategy: Any = None) -> None:
        super().__init__(params, data, strategy)
        self.counts = np.ones(data.size)

    def train_epoch(self, sequences: Sequence[np.ndarray], epoch: int, progress: EpochProgress) -> float:
        self.counts = np.ones(self.data.size) + np.bincount(np.concatenate(sequences), minlength=self.data.size)
        progress.on_batch(1, 1, self.evaluate(sequences).loss)
        return self.evaluate(sequences).loss

    def evaluate(self, sequences: Sequence[np.ndarray]) -> Evaluation:
        p = self.counts / self.counts.sum()
        loss = float(-np.log(p[np.concatenate(sequences)]).mean())
        return Evaluation(loss=loss, bits=loss / math.log(2))

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.counts.tolist()))

    @classmethod
    def load(cls, path: Path, params: Mapping[str, Any], data: DataSpec, strategy: Any = None) -> UnigramModel:
        model = cls(params, data)
        model.counts = np.asarray(json.loads(path.read_text()))
        return model

    def sample(self, request: SampleRequest) -> list[np.ndarray]:
        rng = np.random.default_rng(request.seed)
        return [rng.choice(self.data.size, request.max_length, p=self.counts / self.counts.sum())]


class UnigramPlugin:
    @staticmethod
    @hookimpl
    def register_models(register: Any) -> None:
        register(ModelSpec(name="unigram", description="token frequencies", factory=UnigramModel, takes=("tokens",)))


def test_training_stops_early_when_validation_stops_improving(
    workspace: Workspace, installed_host: PluginHost, tmp_path: Path
) -> None:
    host = PluginHost()
    host.load_entry_points([ep for ep in _entry_points() if ep.name in ("abc", "piano-roll")])
    host.register_module(UnigramPlugin(), "unigram")
    studio = Studio(workspace, host)
    corpus = tiny_corpus(studio, tmp_path)
    run = prepare_run(studio, tiny_request(corpus, model="unigram", model_params={}, epochs=10, patience=2))
    status = train_run(studio, run)
    assert status["state"] == "finished"
    assert status["epoch"] == 3  # epoch 1 is best; 2 and 3 are no better; patience 2 stops there
    assert "stopped early" in status["message"]
    with pytest.raises(TrainingError, match="stopped early"):
        train_run(studio, run, resume=True)
    # A model that takes only tokens is never paired with a frames encoder.
    with pytest.raises(TrainingError, match="takes tokens"):
        prepare_run(studio, tiny_request(corpus, encoder="piano-roll", model="unigram", model_params={}))


def _entry_points() -> list[Any]:
    from importlib.metadata import entry_points

    return list(entry_points(group="tui_composer"))


# --- the command ------------------------------------------------------------------------------------------------


def invoke(host: PluginHost, workspace: Workspace, *args: str) -> Any:
    return CliRunner().invoke(cli, ["--workspace", str(workspace.root), *args], obj=host, catch_exceptions=False)


def test_cli_refuses_a_bad_setting_before_training(installed_host: PluginHost, workspace: Workspace) -> None:
    result = invoke(installed_host, workspace, "train", "--corpus", "oneills", "--encoder", "abc", "--model",
                    "char-lstm", "--set", "layers=100")  # fmt: skip
    assert result.exit_code == 1
    assert "layers=" in result.output and "[1, 16]" in result.output
    result = invoke(installed_host, workspace, "train", "--resume", "nothing-here")
    assert result.exit_code == 1 and "no run named 'nothing-here'" in result.output


def test_cli_trains_and_prints_the_run_name(installed_host: PluginHost, workspace: Workspace, tmp_path: Path) -> None:
    Studio(workspace, installed_host).catalogue.import_path(write_tunes(tmp_path / "src"), "tiny")
    settings = [arg for key, value in TINY_MODEL.items() for arg in ("--set", f"{key}={value}")]
    result = invoke(installed_host, workspace, "train", "--corpus", "tiny", "--encoder", "abc", "--model",
                    "char-lstm", "--epochs", "1", "--name", "cli-run", *settings)  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("run cli-run: training char-lstm on corpus tiny with encoder abc")
    assert any(line.startswith("epoch 1/1: train loss") for line in lines)
    assert "sample with `tui-composer sample cli-run`" in lines[-1]


@pytest.mark.slow  # two `tui-composer` processes, each importing TensorFlow
def test_sigkill_mid_training_then_resume(workspace: Workspace, installed_host: PluginHost, tmp_path: Path) -> None:
    """A real process killed with SIGKILL after its first epoch; `train --resume` finishes the run."""
    Studio(workspace, installed_host).catalogue.import_path(write_tunes(tmp_path / "src", copies=2), "tiny")
    slow = {**TINY_MODEL, "streams": "1", "steps": "4"}  # many batches: the kill lands mid-epoch
    settings = [arg for key, value in slow.items() for arg in ("--set", f"{key}={value}")]
    env = {**os.environ, "TUI_COMPOSER_HOME": str(workspace.root)}
    command = [sys.executable, "-m", "tui_composer", "train", "--corpus", "tiny", "--encoder", "abc",
               "--model", "char-lstm", "--epochs", "2", "--name", "killed", *settings]  # fmt: skip
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    training_state = workspace.runs_dir / "killed" / "checkpoints" / "training.json"
    deadline = time.monotonic() + 120
    while not training_state.exists():
        assert process.poll() is None, "training ended before its first checkpoint"
        assert time.monotonic() < deadline, "no checkpoint within 120 s"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done = json.loads(training_state.read_text())["epoch"]
    run = Studio(workspace, installed_host).runs.get("killed")
    assert run.status()["state"] == "interrupted"  # a live state whose process is gone
    resumed = subprocess.run([sys.executable, "-m", "tui_composer", "train", "--resume", "killed"], env=env,
                             capture_output=True, text=True)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming run 'killed' after epoch {done}" in resumed.stdout
    assert run.status()["state"] == "finished" and run.status()["epoch"] == 2
    after = [m["epoch"] for m in run.metrics() if m["kind"] == "epoch"]
    assert done == 1 and after[-1:] == [2]


def test_the_time_limit_ends_an_epoch_at_its_next_batch_and_keeps_the_model(shared: Studio) -> None:
    # 0.0001 minutes (6 ms) pass within the first batch, which traces the training step: the epoch ends
    # after it. The old host only checked between epochs, so a first epoch always ran whole.
    run = prepare_run(shared, tiny_request(name="limited", epochs=5, time_limit=0.0001))
    status = train_run(shared, run)
    assert status["state"] == "finished" and status["epoch"] == 1
    (epoch,) = [m for m in run.metrics() if m["kind"] == "epoch"]
    assert epoch["batches_done"] == 1 < epoch["batches"]
    assert status["message"] == (
        f"stopped at the time limit (0.0001 min) in epoch 1, after 1 of its {epoch['batches']} batches"
    )
    assert run.model_path.is_file() and math.isfinite(epoch["valid_loss"])  # a model to sample, validated


def test_the_time_left_skips_the_tracing_batch_and_stops_at_the_time_limit() -> None:
    tracker = _BatchTracker(None, None, lambda progress: None, 0, 3, [])  # type: ignore[arg-type]
    tracker.started = 0.0
    tracker.progress(1, 10, 1.0, now=30.0)  # the first batch traced the step for 29 s
    after_five = tracker.progress(5, 10, 1.0, now=34.0)  # then one second a batch
    assert after_five.eta_seconds == pytest.approx(5 * 1.0 + 2 * 10 * 1.0)
    limited = _BatchTracker(None, None, lambda progress: None, 0, 3, [], deadline=40.0)  # type: ignore[arg-type]
    limited.started = 0.0
    limited.progress(1, 10, 1.0, now=30.0)
    assert limited.progress(5, 10, 1.0, now=34.0).eta_seconds == pytest.approx(6.0)
