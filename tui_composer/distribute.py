"""Distribution strategies for training: one device, several devices of one host, several hosts.

TensorFlow's `tf.distribute` does the work; this module picks the strategy from `--strategy` and gives
models the few helpers they share: how many replicas there are, and a batch split into one slice per
replica (each replica continues its own streams, so the stream count must divide evenly).

Nothing here imports TensorFlow at module level (plugins import this module at registration).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import numpy as np

STRATEGIES = ("auto", "single", "mirrored", "multi-worker")
DEFAULT_STRATEGY = "auto"


class StrategyError(ValueError):
    """A strategy that can't be set up, or a batch it can't split; the message says what to do."""


def make_strategy(name: str | None) -> Any:
    """The `tf.distribute` strategy for `--strategy NAME`; None means TensorFlow's default device.

    - auto: MirroredStrategy over the GPUs when more than one is visible, else None.
    - single: OneDeviceStrategy on the first GPU, or the CPU.
    - mirrored: MirroredStrategy over every GPU, or over every logical CPU device when there is no GPU.
    - multi-worker: MultiWorkerMirroredStrategy, with the cluster and this process's task from TF_CONFIG.
    """
    name = name or DEFAULT_STRATEGY
    if name not in STRATEGIES:
        raise StrategyError(f"--strategy {name!r} is not known; choose one of {', '.join(STRATEGIES)}")
    if name == "multi-worker":
        # Collective ops must be configured before anything initialises TensorFlow's devices.
        task = tf_config_task()
        import tensorflow as tf

        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        if strategy.num_replicas_in_sync < 1:  # pragma: no cover - TensorFlow guarantees at least one
            raise StrategyError(f"multi-worker strategy for task {task} found no device")
        return strategy
    import tensorflow as tf

    gpus = [device.name for device in tf.config.list_logical_devices("GPU")]
    if name == "auto":
        return tf.distribute.MirroredStrategy(gpus) if len(gpus) > 1 else None
    if name == "single":
        return tf.distribute.OneDeviceStrategy(gpus[0] if gpus else "/cpu:0")
    devices = gpus or [device.name for device in tf.config.list_logical_devices("CPU")]
    return tf.distribute.MirroredStrategy(devices)


def tf_config_task() -> str:
    """This process's task in TF_CONFIG ("worker 0"); refuses a missing or malformed TF_CONFIG."""
    text = os.environ.get("TF_CONFIG")
    if not text:
        raise StrategyError(
            "--strategy multi-worker needs TF_CONFIG: the cluster's workers and this host's task, e.g. "
            '\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}\''
        )
    try:
        config = json.loads(text)
        task = config["task"]
        workers = config["cluster"][task["type"]]
        index = int(task["index"])
    except (ValueError, KeyError, TypeError) as error:
        raise StrategyError(f"TF_CONFIG is not valid ({error}); expected cluster and task, see the README") from None
    if not 0 <= index < len(workers):
        raise StrategyError(f"TF_CONFIG task index {index} is outside its {len(workers)} {task['type']} addresses")
    return f"{task['type']} {index}"


def is_chief(strategy: Any) -> bool:
    """Whether this process writes the run's files: always, except on the non-chief workers of a cluster."""
    if strategy is None:
        return True
    return bool(getattr(strategy.extended, "should_checkpoint", True))


def scope_of(strategy: Any) -> AbstractContextManager[Any]:
    """Where a model builds its variables: the strategy's scope, or nothing special without one."""
    return strategy.scope() if strategy is not None else nullcontext()


def replica_count(strategy: Any) -> int:
    """Replicas that share each batch (1 without a strategy)."""
    return 1 if strategy is None else int(strategy.num_replicas_in_sync)


def splits_batches(strategy: Any) -> bool:
    """Whether a model must split its batches across replicas itself (mirrored and multi-worker).

    A OneDeviceStrategy (`single`) keeps the ordinary single-device path; so does no strategy.
    """
    if strategy is None:
        return False
    import tensorflow as tf

    return not isinstance(strategy, tf.distribute.OneDeviceStrategy)


def check_divisible(count: int, strategy: Any, what: str, model: str) -> int:
    """Rows per replica; refuses a count the replicas can't share evenly (stateful streams need it)."""
    replicas = replica_count(strategy)
    if count % replicas:
        raise StrategyError(
            f"model {model!r}: {count} {what} can't be split evenly across {replicas} replicas; "
            f"set {what} to a multiple of {replicas}, or train with --strategy single"
        )
    return count // replicas


def per_replica(strategy: Any, array: np.ndarray | Any) -> Any:
    """`array` split along its first axis into one equal slice per replica (replica i gets slice i).

    Every worker of a cluster holds the whole global batch; each keeps the slices of its own replicas.
    """
    import tensorflow as tf

    replicas = replica_count(strategy)
    rows = len(array) // replicas

    def value(context: Any) -> Any:
        index = context.replica_id_in_sync_group
        return tf.convert_to_tensor(array[index * rows : (index + 1) * rows])

    return strategy.experimental_distribute_values_from_function(value)


def per_replica_from(strategy: Any, make: Callable[[int], Any]) -> Any:
    """A per-replica value made by `make(replica index)` (e.g. a replica's zero state)."""
    return strategy.experimental_distribute_values_from_function(lambda context: make(context.replica_id_in_sync_group))
