"""Training under tf.distribute strategies on CPU: two logical devices, and a two-worker cluster on localhost.

The logical devices must be set before TensorFlow initialises its devices, so every training runs in a
fresh Python process (tests/distribute_support.py); one process holds at most one MirroredStrategy.

Tolerances: the char-LSTM's mirrored step is the single-device step on the same global batch (the
gradients are summed over the replicas before clipping), so its losses agree to float rounding (1e-4
relative). The RBMs draw their Gibbs noise per replica, so their reconstruction errors agree
statistically: within 5% relative at every epoch.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tui_composer.services.distribute import STRATEGIES, StrategyError, make_strategy

SUPPORT = Path(__file__).with_name("distribute_support.py")
TOLERANCE = {"char-lstm": 1e-4, "rbm": 0.05, "rnn-rbm": 0.05}


def run_jobs(*jobs: str, env: dict[str, str] | None = None, timeout: float = 600) -> list[dict]:
    result = subprocess.run(
        [sys.executable, str(SUPPORT), *jobs], capture_output=True, text=True, timeout=timeout, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def assert_same_trajectory(reference: list[float], other: list[float], tolerance: float) -> None:
    assert len(reference) == len(other) == 3
    for epoch, (a, b) in enumerate(zip(reference, other, strict=True), start=1):
        assert abs(a - b) <= tolerance * abs(a), f"epoch {epoch}: {a} vs {b} (tolerance {tolerance:.0e} relative)"


@pytest.mark.parametrize(
    ("model", "kind"),
    [("char-lstm", "tokens"), ("rbm", "frames"), ("rnn-rbm", "tokens")],
)
def test_mirrored_follows_the_single_device_trajectory(model: str, kind: str) -> None:
    single, mirrored = run_jobs(f"{model}:single:{kind}", f"{model}:mirrored:{kind}")
    assert (single["replicas"], mirrored["replicas"]) == (1, 2)
    assert_same_trajectory(single["losses"], mirrored["losses"], TOLERANCE[model])
    if model == "char-lstm":
        assert single["losses"][-1] < single["losses"][0]  # it learns, so the comparison means something
        assert mirrored["valid"] == pytest.approx(single["valid"], rel=1e-4)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_workers_on_localhost_train_like_one_device() -> None:
    workers = [f"127.0.0.1:{free_port()}" for _ in range(2)]
    processes = []
    for index in range(2):
        config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        env = dict(os.environ, TF_CONFIG=json.dumps(config))
        processes.append(
            subprocess.Popen(
                [sys.executable, str(SUPPORT), "char-lstm:multi-worker:tokens"],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    results = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert [r["replicas"] for r in results] == [2, 2]
    assert results[0]["losses"] == results[1]["losses"]  # both workers hold the same weights
    losses = results[0]["losses"]
    assert losses[2] < losses[1] < losses[0]  # the shared updates train the model


def test_multi_worker_without_tf_config_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(StrategyError, match="needs TF_CONFIG"):
        make_strategy("multi-worker")
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 3}}')
    with pytest.raises(StrategyError, match="index 3 is outside"):
        make_strategy("multi-worker")
    with pytest.raises(StrategyError, match="not known"):
        make_strategy("everywhere")


def test_train_offers_the_strategies() -> None:
    from tui_composer.cli.app import cli

    result = CliRunner().invoke(cli, ["train", "--help"])
    assert result.exit_code == 0
    assert "--strategy" in result.output
    assert all(name in result.output for name in STRATEGIES)
