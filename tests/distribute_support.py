"""Runs one tiny training under a strategy on two logical CPU devices; prints its losses as JSON.

Run as a script (`python tests/distribute_support.py MODEL:STRATEGY:KIND ...`): the logical devices must be
configured before TensorFlow initialises its devices, so each run gets a fresh process.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np

TOKENS = {"kind": "tokens", "size": 10, "bos": 0, "eos": 1}
FRAMES = {"kind": "frames", "size": 6}

# Tiny settings per model; every stream/batch count is even so two replicas share it.
SETTINGS = {
    "char-lstm": {"embedding": 8, "layers": 2, "units": 16, "streams": 4, "steps": 8, "dropout": 0.0, "clipnorm": 1.0},
    "rbm": {"window": 3, "hidden": 16, "batch_size": 16, "learning_rate": 0.01, "persistent": False},
    "rnn-rbm": {"hidden": 16, "recurrent": 12, "batch_size": 4, "bptt_steps": 10, "learning_rate": 0.01},
}


def tunes(count: int = 8, length: int = 40) -> list[np.ndarray]:
    """bos, a cyclic pattern with a per-tune offset, eos."""
    return [np.asarray([0, *(2 + (i + k) % 6 for i in range(length)), 1], np.int32) for k in range(count)]


def frames(count: int = 8, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(rng.random((rng.integers(20, 40), 6)) < 0.3).astype(np.uint8) for _ in range(count)]


def model_class(name: str) -> type:
    if name == "char-lstm":
        from tui_composer_plugins.char_lstm.model import CharLSTM

        return CharLSTM
    if name == "rbm":
        from tui_composer_plugins.rbm.model import RBM

        return RBM
    from tui_composer_plugins.rnn_rbm.model import RNNRBM

    return RNNRBM


def configure_devices(strategy_names: list[str]) -> None:
    """Two logical CPU devices, unless this process is a worker of a cluster (which keeps its one)."""
    import tensorflow as tf

    if "multi-worker" not in strategy_names:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)


def train(model: str, strategy_name: str, kind: str, epochs: int = 3) -> dict[str, object]:
    """The losses of a tiny training: every epoch's training loss, and char-lstm's validation loss."""
    from tui_composer.api import DataSpec, EpochProgress
    from tui_composer.services.distribute import make_strategy, replica_count
    from tui_composer.services.training import epoch_seed, seed_everything

    strategy = make_strategy(strategy_name)
    data = DataSpec.from_json(TOKENS if kind == "tokens" else FRAMES)
    sequences = tunes() if kind == "tokens" else frames()
    seed_everything(epoch_seed(7, 0))
    instance = model_class(model)(SETTINGS[model], data, strategy)
    losses = []
    for epoch in range(epochs):
        seed_everything(epoch_seed(7, epoch + 1))
        losses.append(instance.train_epoch(sequences, epoch, EpochProgress()))
    valid = instance.evaluate(sequences[:2]).loss if model == "char-lstm" else None
    return {
        "model": model,
        "strategy": strategy_name,
        "kind": kind,
        "replicas": replica_count(strategy),
        "losses": losses,
        "valid": valid,
    }


def main(jobs: list[str]) -> None:
    """Each job is MODEL:STRATEGY:KIND; one JSON line per job on standard output."""
    parsed = [job.split(":") for job in jobs]
    configure_devices([strategy for _, strategy, _ in parsed])
    for model, strategy, kind in parsed:
        print(json.dumps(train(model, strategy, kind)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
