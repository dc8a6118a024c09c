"""GPU readiness on a machine without one (issue 17): benchmarks/gpu_check.py's CPU paths, the device a
training reports (CLI, status.json, the TUI's Runs screen), GPU memory settings, and mixed precision.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from training_support import TINY_MODEL, write_tunes

from tui_composer.api import DataSpec, EpochProgress
from tui_composer.cli.app import cli
from tui_composer.plugin.host import PluginHost
from tui_composer.services.distribute import (
    GPU_MEMORY_ENV,
    StrategyError,
    configure_gpus,
    describe_devices,
    device_summary,
    gpu_memory_from,
)
from tui_composer.services.studio import Studio
from tui_composer.services.workspace import Workspace

ROOT = Path(__file__).resolve().parent.parent
GPU_CHECK = ROOT / "benchmarks" / "gpu_check.py"
FIGURE = re.compile(r"^  (?P<label>[^:]+): (?P<value>-?[\d,]+(?:\.\d+)?)(?: (?P<unit>\S+))?$")
LOCAL = "/job:localhost/replica:0/task:0/device:"


def has_nvidia_driver() -> bool:
    return Path("/proc/driver/nvidia/version").exists()


# --- benchmarks/gpu_check.py -------------------------------------------------------------------------------


@pytest.mark.skipif(has_nvidia_driver(), reason="this machine has a GPU: the check would run for real")
def test_without_a_gpu_the_check_skips_and_exits_0() -> None:
    result = subprocess.run([sys.executable, str(GPU_CHECK)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("no GPU: skipped")


def test_cpu_smoke_runs_every_check_and_prints_numbers(tmp_path: Path) -> None:
    """The whole check on the CPU with tiny sizes: every figure labelled and a number, a verdict per check."""
    figures_file = tmp_path / "figures.json"
    result = subprocess.run(
        [sys.executable, str(GPU_CHECK), "--cpu-smoke", "--json", str(figures_file)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.splitlines()
    printed = {}
    for line in lines:
        match = FIGURE.match(line)
        if match:
            printed[match["label"]] = (float(match["value"].replace(",", "")), match["unit"])
    rates = {
        "char-lstm training float32": "chars/s",
        "char-lstm training mixed_float16": "chars/s",
        "char-lstm sampling 1 tune": "chars/s",
        "char-lstm sampling 64 tunes": "chars/s",
        "rbm training": "windows/s",
        "rnn-rbm training": "frames/s",
        "rnn-rbm generation 1 tune": "frames/s",
        "rnn-rbm generation 64 tunes": "frames/s",
    }
    for label, unit in rates.items():
        value, printed_unit = printed[label]
        assert printed_unit == unit and value > 0, (label, value, printed_unit)
    assert "  CudnnRNN ops in the training step, default build: none" in lines  # the CPU has no cuDNN
    assert printed["mixed_float16 training speed over float32"][0] > 0
    # Same seed and batches: mixed_float16 lands near float32 (the precision check's bound is 5%).
    assert printed["mixed_float16 loss"][0] == pytest.approx(printed["float32 loss"][0], rel=0.05)
    assert printed["char-lstm largest relative loss difference (tolerance 0.001)"][0] <= 1e-3
    assert "  printed: 'training on CPU'" in lines
    assert "  status.json device: 'CPU'" in lines
    assert "  single device: CPU; mirrored: mirrored over 2 CPU devices" in lines
    assert lines[-1] == (
        "SUMMARY: devices SKIP  train PASS  cudnn SKIP  precision PASS  rbm PASS  rnn-rbm PASS  mirrored PASS  cpu SKIP"
    )
    written = json.loads(figures_file.read_text())
    assert written["verdicts"]["train"] == "PASS"
    assert written["figures"]["char-lstm training float32 (chars/s)"] == pytest.approx(
        printed["char-lstm training float32"][0], abs=1
    )


# --- device reporting ----------------------------------------------------------------------------------------


def test_device_summary_names_the_device_the_way_train_prints_it() -> None:
    assert device_summary([f"{LOCAL}CPU:0"]) == "CPU"
    assert device_summary([f"{LOCAL}GPU:0"], ["NVIDIA H200"]) == "GPU:0 (NVIDIA H200)"
    assert device_summary([f"{LOCAL}GPU:1"], ["NVIDIA H200", "NVIDIA A100"]) == "GPU:1 (NVIDIA A100)"
    assert device_summary([f"{LOCAL}GPU:0"], [""]) == "GPU:0"  # a name TensorFlow could not read
    two = [f"{LOCAL}GPU:0", f"{LOCAL}GPU:1"]
    assert device_summary(two, ["NVIDIA H200"] * 2, mirrored=True) == "mirrored over 2 GPUs (NVIDIA H200)"
    assert device_summary(two, ["NVIDIA H200", "NVIDIA A100"], mirrored=True) == "mirrored over 2 GPUs"
    cpus = [f"{LOCAL}CPU:0", f"{LOCAL}CPU:1"]
    assert device_summary(cpus, mirrored=True) == "mirrored over 2 CPU devices"


def test_describe_devices_on_the_cpu() -> None:
    import tensorflow as tf

    assert describe_devices(None) == "CPU"
    assert describe_devices(tf.distribute.OneDeviceStrategy("/cpu:0")) == "CPU"
    assert describe_devices(tf.distribute.MirroredStrategy(["/cpu:0"])) == "CPU"  # one replica: one device


def test_gpu_memory_is_bounded_and_names_where_it_came_from(monkeypatch: pytest.MonkeyPatch) -> None:
    assert gpu_memory_from(None) is None and gpu_memory_from(" ") is None
    assert gpu_memory_from("8192") == 8192
    with pytest.raises(StrategyError, match=r"TUI_COMPOSER_GPU_MEMORY='lots' is not a whole number"):
        gpu_memory_from("lots")
    with pytest.raises(StrategyError, match=r"--gpu-memory=100 MB is outside \[256, 1048576\]"):
        gpu_memory_from(100, "--gpu-memory")
    monkeypatch.setenv(GPU_MEMORY_ENV, "12")
    with pytest.raises(StrategyError, match=r"TUI_COMPOSER_GPU_MEMORY=12 MB is outside"):
        configure_gpus()
    monkeypatch.setenv(GPU_MEMORY_ENV, "2048")
    assert configure_gpus() == 2048  # no GPU here: nothing to set, the cap is what would apply
    monkeypatch.delenv(GPU_MEMORY_ENV)
    assert configure_gpus() is None  # memory growth


def invoke(host: PluginHost, workspace: Workspace, *args: str, env: dict[str, str] | None = None) -> object:
    return CliRunner().invoke(cli, ["--workspace", str(workspace.root), *args], obj=host, env=env)


def test_train_prints_and_records_the_device(installed_host: PluginHost, workspace: Workspace, tmp_path: Path) -> None:
    Studio(workspace, installed_host).catalogue.import_path(write_tunes(tmp_path / "src"), "tiny")
    settings = [arg for key, value in TINY_MODEL.items() for arg in ("--set", f"{key}={value}")]
    train = ["train", "--corpus", "tiny", "--encoder", "abc", "--model", "char-lstm", "--epochs", "1", *settings]
    result = invoke(installed_host, workspace, *train, "--name", "on-cpu", "--gpu-memory", "1024")
    assert result.exit_code == 0, result.output
    assert "training on CPU" in result.output.splitlines()
    status = json.loads((workspace.runs_dir / "on-cpu" / "status.json").read_text())
    assert status["device"] == "CPU" and status["state"] == "finished"
    listed = json.loads(invoke(installed_host, workspace, "runs", "--json").output)
    assert {row["name"]: row["device"] for row in listed}["on-cpu"] == "CPU"  # `runs --json` says so too


def test_bad_gpu_memory_is_refused_before_any_work(installed_host: PluginHost, workspace: Workspace) -> None:
    train = ["train", "--corpus", "oneills", "--encoder", "abc", "--model", "char-lstm"]
    result = invoke(installed_host, workspace, *train, "--gpu-memory", "100")
    assert result.exit_code == 2 and "--gpu-memory" in result.output and "256<=x<=1048576" in result.output
    result = invoke(installed_host, workspace, *train, env={GPU_MEMORY_ENV: "half"})
    assert result.exit_code == 1 and "TUI_COMPOSER_GPU_MEMORY='half' is not a whole number" in result.output
    assert not workspace.runs_dir.exists() or not any(workspace.runs_dir.iterdir())


def write_trained_run(workspace: Workspace, name: str, device: str) -> None:
    """A finished run as the trainer leaves it, with the device it trained on."""
    folder = workspace.runs_dir / name
    (folder / "checkpoints").mkdir(parents=True)
    config = {"name": name, "corpus": "jigs", "encoder": "abc", "model": "char-lstm", "epochs": 2}
    (folder / "config.json").write_text(json.dumps(config))
    status = {"state": "finished", "pid": None, "epoch": 2, "heartbeat_unix": 0.0, "device": device}
    (folder / "status.json").write_text(json.dumps(status))
    epochs = [{"kind": "epoch", "epoch": e, "train_loss": 2.0 / e, "valid_loss": 2.2 / e} for e in (1, 2)]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(record) + "\n" for record in epochs))


def test_runs_screen_shows_the_device_of_each_run(workspace: Workspace) -> None:
    from textual.widgets import Static

    from tui_composer.services.runs import RunStore
    from tui_composer.tui.app import ComposerApp
    from tui_composer.tui.runwatch import RunWatcher

    write_trained_run(workspace, "gpu-run", "GPU:0 (NVIDIA H200)")
    write_trained_run(workspace, "cpu-run", "CPU")
    studio = Studio(workspace, PluginHost())
    studio.runs = RunStore(workspace, bundled=None)  # type: ignore[misc] - the shipped run is not this test's
    assert RunWatcher(studio.runs).detail("gpu-run").device == "GPU:0 (NVIDIA H200)"

    expected = {"cpu-run": "device: CPU", "gpu-run": "device: GPU:0 (NVIDIA H200)"}

    async def drive() -> dict[str, str]:
        shown = {}
        app = ComposerApp(studio)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("f3")
            for row in range(2):
                if row:
                    await pilot.press("down")
                for _ in range(100):  # until the selected run's files have been read
                    await pilot.pause(0.05)
                    text = str(app.screen.query_one("#run-eta", Static).content)
                    if text == expected.get(app.screen.selected):
                        break
                shown[app.screen.selected] = text
        return shown

    assert asyncio.run(drive()) == expected


# --- mixed precision -----------------------------------------------------------------------------------------


def test_char_lstm_trains_in_mixed_float16_and_keeps_it_when_saved(tmp_path: Path) -> None:
    import keras
    import tensorflow as tf
    from tui_composer_plugins.char_lstm.model import CharLSTM

    data = DataSpec("tokens", 10, bos=0, eos=1)
    tunes = [np.asarray([0, *(2 + (i + k) % 6 for i in range(60)), 1], np.int32) for k in range(4)]
    params = {"embedding": 8, "layers": 1, "units": 8, "streams": 2, "steps": 8, "precision": "mixed_float16"}
    keras.utils.set_random_seed(1)
    model = CharLSTM(params, data)
    assert isinstance(model.network.optimizer, keras.optimizers.LossScaleOptimizer)
    lstm = model.network.get_layer("lstm_1")
    assert lstm.compute_dtype == "float16" and lstm.variable_dtype == "float32"
    assert model.network.output.dtype == "float32"  # the loss is computed in float32
    losses = [model.train_epoch(tunes, epoch, EpochProgress()) for epoch in range(2)]
    assert all(math.isfinite(loss) for loss in losses) and losses[1] < losses[0]
    model.save(tmp_path / "mixed.keras")
    again = CharLSTM.load(tmp_path / "mixed.keras", model.params, data)
    assert again.network.get_layer("lstm_1").compute_dtype == "float16"
    assert isinstance(again.network.optimizer, keras.optimizers.LossScaleOptimizer)
    with pytest.raises(StrategyError, match="precision=mixed_float16 trains on one device only"):
        CharLSTM(params, data, tf.distribute.MirroredStrategy(["/cpu:0"]))
