"""Distribution strategies for training: one device, several devices of one host, several hosts.

TensorFlow's `tf.distribute` does the work; this module picks the strategy from `--strategy` and gives
models the few helpers they share: how many replicas there are, and a batch split into one slice per
replica (each replica continues its own streams, so the stream count must divide evenly). It also
sets up the GPUs before TensorFlow starts on them (memory growth, or a cap per process, so several runs
share one GPU) and says in words where a training runs ("GPU:0 (NVIDIA H200)", "mirrored over 2 GPUs").

Nothing here imports TensorFlow at module level (plugins import this module at registration).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
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


# --- GPUs: memory, and where a training runs --------------------------------------------------------------

GPU_MEMORY_ENV = "TUI_COMPOSER_GPU_MEMORY"
MIN_GPU_MEMORY_MB = 256  # below this cuDNN's and cuBLAS's own workspaces leave nothing for a model
MAX_GPU_MEMORY_MB = 1 << 20  # 1 TiB: more than any GPU has, so a larger number is a typo
_configured: list[int | None] = []  # what `configure_gpus` applied in this process (at most one entry)


def gpu_memory_from(value: int | str | None, source: str = GPU_MEMORY_ENV) -> int | None:
    """Megabytes per GPU from `--gpu-memory` or the environment (None or "": memory growth, no cap).

    `source` names where the value came from, for the error message.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        megabytes = int(value)
    except ValueError:
        raise StrategyError(f"{source}={value!r} is not a whole number of megabytes, e.g. {source}=8192") from None
    if not MIN_GPU_MEMORY_MB <= megabytes <= MAX_GPU_MEMORY_MB:
        raise StrategyError(
            f"{source}={megabytes} MB is outside [{MIN_GPU_MEMORY_MB}, {MAX_GPU_MEMORY_MB}]: "
            f"give the megabytes one training may take on each GPU"
        )
    return megabytes


def configure_gpus(memory_mb: int | None = None) -> int | None:
    """Set up every GPU before TensorFlow starts on it; returns the cap applied (None: memory growth).

    By default TensorFlow takes nearly all of a GPU's memory at its first op, so a second training or a
    sampler on the same GPU fails. Here memory grows as needed instead, or, with `memory_mb` (else
    TUI_COMPOSER_GPU_MEMORY), each GPU is one logical device capped at that many megabytes. GPUs a
    caller has already split into logical devices (gpu_check's two logical GPUs) keep their setup.
    Without a GPU nothing happens. Calling it again with the same cap does nothing.
    """
    cap = (
        gpu_memory_from(memory_mb, "--gpu-memory")
        if memory_mb is not None
        else gpu_memory_from(os.environ.get(GPU_MEMORY_ENV))
    )
    if _configured and _configured[0] == cap:
        return cap
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        if tf.config.get_logical_device_configuration(gpu) and cap is None:
            continue  # split by the caller: memory growth can't be combined with logical devices
        try:
            if cap is None:
                tf.config.experimental.set_memory_growth(gpu, True)
            else:
                tf.config.set_logical_device_configuration(gpu, [tf.config.LogicalDeviceConfiguration(cap)])
        except (RuntimeError, ValueError) as error:  # TensorFlow has started on the GPUs already
            if cap is not None:
                raise StrategyError(
                    f"--gpu-memory {cap}: TensorFlow already runs on {gpu.name} in this process ({error}); "
                    f"set {GPU_MEMORY_ENV} before the process starts"
                ) from None
    _configured[:] = [cap]
    return cap


def gpu_names() -> list[str]:
    """The model name of each logical GPU ("NVIDIA H200"), "" where TensorFlow can't tell."""
    import tensorflow as tf

    physical = tf.config.list_physical_devices("GPU")
    names = [str(tf.config.experimental.get_device_details(gpu).get("device_name", "")) for gpu in physical]
    logical = len(tf.config.list_logical_devices("GPU"))
    if logical == len(names):
        return names
    # Logical GPUs carved from physical ones: the name is known when all physical GPUs are alike.
    return [names[0] if len(set(names)) == 1 else ""] * logical


def _device_label(device: str, names: Sequence[str]) -> tuple[str, str]:
    """("GPU", "GPU:0 (NVIDIA H200)") or ("CPU", "CPU") for a TensorFlow device string."""
    kind, _, index = device.rpartition("device:")[2].partition(":")
    kind = kind.upper() or "CPU"
    if kind != "GPU":
        return kind, kind
    number = int(index or 0)
    name = names[number] if number < len(names) else ""
    return kind, f"GPU:{number}" + (f" ({name})" if name else "")


def device_summary(devices: Sequence[str], names: Sequence[str] = (), *, mirrored: bool = False) -> str:
    """Where a model trains, in words, from the TensorFlow device strings of its replicas.

    ["/device:CPU:0"] -> "CPU"; ["/device:GPU:0"] with names ["NVIDIA H200"] -> "GPU:0 (NVIDIA H200)";
    two GPUs mirrored -> "mirrored over 2 GPUs (NVIDIA H200)"; two logical CPUs -> "mirrored over 2 CPU devices".
    """
    labels = [_device_label(device, names) for device in devices] or [("CPU", "CPU")]
    if not mirrored:
        return labels[0][1]
    kinds = {kind for kind, _ in labels}
    kind = kinds.pop() if len(kinds) == 1 else "device"
    count = len(labels)
    plural = "s" if count != 1 else ""
    if kind == "GPU":
        models = {names[i] for i in range(count) if i < len(names) and names[i]}
        suffix = f" ({models.pop()})" if len(models) == 1 else ""
        return f"mirrored over {count} GPU{plural}{suffix}"
    return f"mirrored over {count} {kind} device{plural}"


def describe_devices(strategy: Any) -> str:
    """Where a model built under `strategy` trains: "CPU", "GPU:0 (NVIDIA H200)", "mirrored over 2 GPUs"...

    Without a strategy TensorFlow places ops on the first GPU when there is one. A worker of a cluster
    says how many replicas the cluster has and where its own run.
    """
    import tensorflow as tf

    names = gpu_names()
    if strategy is None:
        gpus = tf.config.list_logical_devices("GPU")
        return device_summary([gpus[0].name if gpus else "/device:CPU:0"], names)
    local = list(strategy.extended.worker_devices)
    summary = device_summary(local, names, mirrored=splits_batches(strategy) and len(local) > 1)
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return f"multi-worker: {replica_count(strategy)} replicas; this worker on {summary}"
    return summary
