"""GPU readiness (issue 17): one command that proves every GPU path, in one short go on one GPU.

    .venv/bin/python benchmarks/gpu_check.py                 # on a CUDA box with the `gpu` extra (< 8 min)
    .venv/bin/python benchmarks/gpu_check.py --cpu-smoke     # the same code on the CPU, tiny sizes (the tests)

It installs nothing. Without a GPU it prints "no GPU: skipped" and exits 0 (with an NVIDIA driver that
TensorFlow can't use it says so and exits 1: install the `gpu` extra). On a GPU it checks, in this order:

- devices:   the GPUs TensorFlow sees, its CUDA and cuDNN build versions, memory growth or --gpu-memory.
- train:     `tui-composer train`'s own service trains char-lstm x abc on a few dozen O'Neill's tunes from
             music21's corpus; it must say "training on GPU:0 (...)" and record it in status.json.
- cudnn:     the char-lstm's training step holds CudnnRNN ops, and trains faster than the same layers
             built with use_cudnn=False (Keras's generic loop).
- precision: precision=mixed_float16 trains to about the float32 loss; its speed against float32.
- rbm, rnn-rbm: training and generation with every weight on the GPU.
- mirrored:  --strategy mirrored over all GPUs (two logical GPUs carved from one when there is one)
             follows the single-device loss trajectory (a fresh process: devices are set before start).
- cpu:       the same measurements in a fresh process with the GPU hidden: chars/s for training and
             for sampling 1 and 64 tunes, frames/s for rnn-rbm (and rbm), GPU against CPU.

Every figure is printed with its label; the last line is PASS / FAIL / SKIP per check, and the exit
status is 1 if any check failed. `--json FILE` also writes every figure. `--cpu-smoke` runs all of it on
the CPU with tiny sizes (mirrored over two logical CPU devices); checks that need a GPU say SKIP there.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np

KEYS = 88  # piano-roll frames for the energy models
NO_GPU = "no GPU: skipped (run with --cpu-smoke to exercise the same code on the CPU)"
CHECKS = ("devices", "train", "cudnn", "precision", "rbm", "rnn-rbm", "mirrored", "cpu")
# Relative loss differences allowed between mirrored and single-device training, per epoch. As in
# tests/test_distribute.py, except char-lstm: 1e-4 there on CPU; on a GPU cuDNN sums in another order
# for each replica's half of the batch (TensorFloat-32 is off in that job, so it is float32 rounding).
MIRRORED_TOLERANCE = {"char-lstm": 1e-3, "rbm": 0.05, "rnn-rbm": 0.05}
MIXED_TOLERANCE = 0.05  # mixed_float16's loss after the timed batches, relative to float32's
LOGICAL_GPU_MB = 4096  # memory of each of the two logical GPUs carved from one GPU for `mirrored`
CHILD_TIMEOUT = 300  # seconds a child process (mirrored job, CPU measurements) may take
# The mirrored job's models: tests/distribute_support.py's settings (even stream and batch counts).
MIRRORED_SETTINGS: dict[str, dict[str, Any]] = {
    "char-lstm": {"embedding": 8, "layers": 2, "units": 16, "streams": 4, "steps": 8, "dropout": 0.0, "clipnorm": 1.0},
    "rbm": {"window": 3, "hidden": 16, "batch_size": 16, "learning_rate": 0.01, "persistent": False},
    "rnn-rbm": {"hidden": 16, "recurrent": 12, "batch_size": 4, "bptt_steps": 10, "learning_rate": 0.01},
}


@dataclasses.dataclass(frozen=True)
class Sizes:
    """How big everything is: the default network on a GPU, a toy one for --cpu-smoke."""

    tunes: int  # O'Neill's tunes in the corpus the check builds
    service_epochs: int  # epochs the training service runs
    char_lstm: dict[str, int]  # char-lstm hyperparameters
    train_batches: int  # timed training batches (streams x steps characters each)
    sample_length: int  # characters per sampled tune
    many_tunes: int  # tunes sampled in one batch
    rbm: dict[str, int]
    rnn_rbm: dict[str, int]
    energy_sequences: int  # piano-roll sequences for the energy models' training
    energy_frames: int  # frames per sequence, and per generated tune
    mirrored_epochs: int  # epochs of each mirrored / single-device training compared
    mirrored_models: tuple[str, ...]  # the models compared (tests/test_distribute.py covers all three on CPU)
    # char-lstm builds timed: "float32" (cuDNN where a GPU is visible), "no-cudnn" (use_cudnn=False: on a
    # CPU the same hoisted loop as float32, so --cpu-smoke leaves it out), "mixed_float16"
    variants: tuple[str, ...]


FULL = Sizes(
    tunes=48,
    service_epochs=2,
    char_lstm={"embedding": 512, "layers": 3, "units": 256, "streams": 64, "steps": 64},
    train_batches=30,
    sample_length=500,
    many_tunes=64,
    rbm={"window": 15, "hidden": 150, "cd_steps": 1, "batch_size": 64, "gibbs_steps": 25},
    rnn_rbm={"hidden": 150, "recurrent": 100, "cd_steps": 15, "batch_size": 64, "bptt_steps": 100, "gibbs_steps": 25},
    energy_sequences=64,
    energy_frames=200,
    mirrored_epochs=3,
    mirrored_models=("char-lstm", "rbm", "rnn-rbm"),
    variants=("float32", "no-cudnn", "mixed_float16"),
)
TINY = Sizes(
    tunes=6,
    service_epochs=1,
    char_lstm={"embedding": 8, "layers": 1, "units": 8, "streams": 4, "steps": 8},
    train_batches=2,
    sample_length=12,
    many_tunes=64,
    rbm={"window": 3, "hidden": 8, "cd_steps": 1, "batch_size": 8, "gibbs_steps": 2},
    rnn_rbm={"hidden": 8, "recurrent": 6, "cd_steps": 1, "batch_size": 2, "bptt_steps": 8, "gibbs_steps": 2},
    energy_sequences=4,
    energy_frames=12,
    mirrored_epochs=2,
    mirrored_models=("char-lstm",),
    variants=("float32", "mixed_float16"),
)


# --- the report ------------------------------------------------------------------------------------------


class Report:
    """Labelled figures as they come, PASS / FAIL / SKIP per check, and the one-line summary."""

    def __init__(self) -> None:
        self.figures: dict[str, Any] = {}
        self.verdicts: dict[str, str] = {}
        self.started = time.perf_counter()

    def section(self, title: str) -> None:
        print(f"\n== {title} [{time.perf_counter() - self.started:.0f} s]", flush=True)

    def line(self, text: str) -> None:
        print(f"  {text}", flush=True)

    def figure(self, label: str, value: float, unit: str, *, digits: int = 0) -> float:
        self.figures[f"{label} ({unit})" if unit else label] = value
        print(f"  {label}: {value:,.{digits}f}" + (f" {unit}" if unit else ""), flush=True)
        return value

    def verdict(self, check: str, ok: bool | None, why: str = "") -> None:
        """ok None: skipped (the check needs a GPU)."""
        verdict = "SKIP" if ok is None else "PASS" if ok else "FAIL"
        self.verdicts[check] = verdict
        print(f"  -> {check}: {verdict}" + (f" ({why})" if why else ""), flush=True)

    def failed(self) -> bool:
        return any(verdict == "FAIL" for verdict in self.verdicts.values())

    def summary(self) -> str:
        verdicts = {check: self.verdicts.get(check, "FAIL") for check in CHECKS}  # a crash before it: FAIL
        return "SUMMARY: " + "  ".join(f"{check} {verdict}" for check, verdict in verdicts.items())


def timed(work: Callable[[], int]) -> tuple[int, float]:
    """(items, seconds) of one call; work returns how many characters or frames it made."""
    start = time.perf_counter()
    items = work()
    return items, time.perf_counter() - start


# --- devices ---------------------------------------------------------------------------------------------


def nvidia_driver_present() -> bool:
    return Path("/proc/driver/nvidia/version").exists() or shutil.which("nvidia-smi") is not None


def show_devices(report: Report, gpu_memory: int | None, *, gpu: bool) -> None:
    import keras
    import tensorflow as tf

    from tui_composer.services.distribute import gpu_names

    report.section("devices")
    build = tf.sysconfig.get_build_info()
    report.line(
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}; built with CUDA {build.get('cuda_version', '-')}, "
        f"cuDNN {build.get('cudnn_version', '-')} (CUDA build: {build.get('is_cuda_build', False)})"
    )
    physical = tf.config.list_physical_devices("GPU")
    for index, device in enumerate(physical):
        details = tf.config.experimental.get_device_details(device)
        capability = ".".join(str(part) for part in details.get("compute_capability", ()) or ("?",))
        report.line(f"physical GPU {index}: {details.get('device_name', '?')}, compute capability {capability}")
    logical = tf.config.list_logical_devices("GPU")
    names = gpu_names()
    for device, name in zip(logical, names, strict=True):
        report.line(f"logical {device.name.rpartition('device:')[2]}: {name or '?'}")
    report.line(f"GPU memory: {f'at most {gpu_memory} MB per GPU' if gpu_memory else 'grows as needed'}")
    report.figure("GPUs visible to TensorFlow", len(physical), "GPUs")
    if gpu:
        report.verdict("devices", bool(physical) and bool(build.get("is_cuda_build")), "a CUDA build sees the GPUs")
    else:
        report.verdict("devices", None, "no GPU in --cpu-smoke")


def gpu_peak_mb() -> float | None:
    """Peak GPU memory since the last reset, in MB (None without a GPU)."""
    import tensorflow as tf

    if not tf.config.list_logical_devices("GPU"):
        return None
    return tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20


def reset_gpu_peak() -> None:
    import tensorflow as tf

    if tf.config.list_logical_devices("GPU"):
        tf.config.experimental.reset_memory_stats("GPU:0")


def weights_on(network: Any, kind: str) -> bool:
    """Whether every weight of a Keras network lives on a device of this kind ("GPU" or "CPU")."""
    return all(f"{kind}:" in weight.value.device.upper() for weight in network.weights)


# --- the corpus and the training service ---------------------------------------------------------------


def oneills_abc(count: int) -> str:
    """The first `count` tunes of O'Neill's (music21's corpus), as one ABC text."""
    from tui_composer_corpora import music21_corpus_dir

    tunes: list[str] = []
    for path in sorted((music21_corpus_dir() / "oneills1850").glob("*.abc")):
        text = path.read_text(encoding="utf-8", errors="replace")
        tunes += ["X:" + part for part in text.split("\nX:")[1:]]
        if len(tunes) >= count:
            break
    if len(tunes) < count:
        raise SystemExit(f"music21's oneills1850 corpus has only {len(tunes)} tunes; reinstall music21")
    return "\n".join(tune.strip() + "\n" for tune in tunes[:count])


def train_service(
    report: Report, folder: Path, sizes: Sizes, gpu_memory: int | None, *, gpu: bool
) -> tuple[Any, list[np.ndarray]]:
    """Train char-lstm x abc through `tui_composer.services.training` (what `tui-composer train` runs).

    Returns the abc encoder's DataSpec and the encoded training tunes, for the measurements.
    """
    import tensorflow as tf

    from tui_composer.plugin.host import load_host
    from tui_composer.services.encoding import read_corpus
    from tui_composer.services.studio import Studio
    from tui_composer.services.training import (
        TrainingRequest,
        encode_split,
        encoder_spec,
        load_encoder,
        prepare_run,
        train_run,
    )
    from tui_composer.services.workspace import Workspace

    report.section(f"train: char-lstm x abc on {sizes.tunes} O'Neill's tunes through the training service")
    source = folder / "tunes"
    source.mkdir(parents=True)
    (source / "oneills.abc").write_text(oneills_abc(sizes.tunes), encoding="utf-8")
    studio = Studio(Workspace(folder / "workspace").ensure(), load_host())
    studio.catalogue.import_path(source, "gpu-check")
    model_params = {key: str(value) for key, value in sizes.char_lstm.items()}
    request = TrainingRequest(
        corpus="gpu-check",
        encoder="abc",
        model="char-lstm",
        model_params=model_params,
        epochs=sizes.service_epochs,
        seed=1,
        name="gpu-check",
    )
    run = prepare_run(studio, request)
    messages: list[str] = []
    status = train_run(
        studio, run, on_progress=lambda p: messages.append(p.message) if p.message else None, gpu_memory=gpu_memory
    )
    printed = next((m for m in messages if m.startswith("training on ")), "")
    recorded = str(run.raw_status().get("device", ""))
    report.line(f"printed: {printed!r}")
    report.line(f"status.json device: {recorded!r}")
    losses = [r["train_loss"] for r in run.metrics() if r.get("kind") == "epoch"]
    for epoch, loss in enumerate(losses, start=1):
        report.figure(f"service training loss, epoch {epoch}", loss, "nats/char", digits=4)
    gpus = len(tf.config.list_logical_devices("GPU"))
    # --strategy auto: the first GPU, or mirrored over all of them when there are several
    expected = (
        "training on CPU" if not gpu else "training on GPU:0" if gpus == 1 else f"training on mirrored over {gpus}"
    )
    ok = (
        printed.startswith(expected)
        and printed == f"training on {recorded}"
        and status.get("state") == "finished"
        and len(losses) == sizes.service_epochs
        and all(isinstance(loss, float) and math.isfinite(loss) for loss in losses)
    )
    report.verdict("train", ok, f"expected {expected!r}, the same in status.json, and finite losses")

    spec = encoder_spec(studio, "abc")
    encoded = read_corpus(studio.workspace, studio.catalogue.get("gpu-check"), spec, run.config["encoder_params"])
    encoder = load_encoder(run, spec, run.config["encoder_params"])
    return encoder.data_spec(), encode_split(encoder, encoded.splits["train"], lambda message: None)


# --- measurements (run here, and again in a child with the GPU hidden) ------------------------------------


def tiled(tunes: Sequence[np.ndarray], length: int) -> np.ndarray:
    """The training tunes end to end, repeated to `length` tokens: real ABC, as long as a timing needs."""
    stream = np.concatenate(list(tunes))
    return np.resize(stream, length).astype(np.int32)


def char_lstm(params: dict[str, Any], data: Any, *, cudnn: bool = True) -> Any:
    import keras
    from tui_composer_plugins.char_lstm.model import CharLSTM

    keras.utils.set_random_seed(1)
    model = CharLSTM(params, data)
    if not cudnn:  # the same layers on Keras's generic loop (read when the training step is traced)
        for layer in model.network.layers:
            if isinstance(layer, keras.layers.LSTM):
                layer.use_cudnn = False
    return model


def cudnn_ops(model: Any, x: np.ndarray) -> dict[str, int]:
    """The CudnnRNN ops (forward and backward) in a traced training step of the model's network."""
    import keras
    import tensorflow as tf

    network = model.network

    @tf.function
    def step(x: Any) -> Any:
        with tf.GradientTape() as tape:
            probabilities = network(x, training=True)
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(x, probabilities))
        return tape.gradient(loss, network.trainable_variables)

    graph = step.get_concrete_function(tf.constant(x)).graph.as_graph_def()
    nodes = list(graph.node) + [node for function in graph.library.function for node in function.node_def]
    counts: dict[str, int] = {}
    for node in nodes:
        if node.op.startswith("CudnnRNN"):
            counts[node.op] = counts.get(node.op, 0) + 1
    return counts


def training_rate(model: Any, sequence: np.ndarray, warm_up: np.ndarray) -> tuple[float, float]:
    """(chars/s, mean loss) of one epoch over `sequence`, after an epoch over `warm_up` traces the step."""
    from tui_composer.api import EpochProgress

    model.train_epoch([warm_up], 0, EpochProgress())
    chars = len(sequence) - 1
    loss = math.nan

    def epoch() -> int:
        nonlocal loss
        loss = model.train_epoch([sequence], 0, EpochProgress())
        return chars

    chars, seconds = timed(epoch)
    return chars / seconds, loss


def sampling_rates(model: Any, data: Any, sizes: Sizes) -> dict[str, float]:
    """chars/s sampling 1 tune and `many_tunes` at once, each full length (no end-of-tune)."""
    from tui_composer.api import SampleRequest

    sampler = char_lstm(model.params, dataclasses.replace(data, eos=None))
    sampler.network.set_weights(model.network.get_weights())
    rates = {}
    for n in (1, sizes.many_tunes):
        request = SampleRequest(n=n, max_length=sizes.sample_length, seed=1)
        sampler.sample(request)  # traces the loop for this batch size
        chars, seconds = timed(lambda r=request: sum(len(tune) for tune in sampler.sample(r)))
        rates[f"char-lstm sampling {n} tune{'s' if n > 1 else ''}"] = chars / seconds
    return rates


def chords(count: int, length: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Piano-roll frames of random four-note chords: the content does not change the arithmetic."""
    rolls = np.zeros((count, length, KEYS), np.uint8)
    for roll in rolls:
        for frame in roll:
            frame[rng.choice(np.arange(30, 70), 4, replace=False)] = 1
    return list(rolls)


def energy_rates(name: str, sizes: Sizes) -> dict[str, Any]:
    """Training and generation rates of rbm or rnn-rbm on piano-roll frames, and where their weights live."""
    import keras
    from tui_composer_plugins.rbm.model import RBM
    from tui_composer_plugins.rnn_rbm.model import RNNRBM

    from tui_composer.api import DataSpec, EpochProgress, SampleRequest

    keras.utils.set_random_seed(1)
    rng = np.random.default_rng(1)
    data = DataSpec("frames", KEYS)
    sequences = chords(sizes.energy_sequences, sizes.energy_frames, rng)
    model = RBM(sizes.rbm, data) if name == "rbm" else RNNRBM(sizes.rnn_rbm, data)
    reset_gpu_peak()
    model.train_epoch(sequences[:2], 0, EpochProgress())  # traces the update
    loss = math.nan
    items = len(model.windows(sequences)[1]) if name == "rbm" else len(sequences) * sizes.energy_frames

    def epoch() -> int:
        nonlocal loss
        loss = model.train_epoch(sequences, 1, EpochProgress())
        return items

    items, seconds = timed(epoch)
    unit = "windows/s" if name == "rbm" else "frames/s"
    figures: dict[str, Any] = {f"{name} training ({unit})": items / seconds, f"{name} training loss": loss}
    for n in (1, sizes.many_tunes):
        request = SampleRequest(n=n, max_length=sizes.energy_frames, seed=1)
        tunes = model.sample(request)  # traces the generation loop
        frames, seconds = timed(lambda r=request: sum(len(tune) for tune in model.sample(r)))
        label = f"{name} generation {n} tune{'s' if n > 1 else ''} (frames/s)"
        figures[label] = frames / seconds
        figures[f"{name} generated {n}: shapes ok"] = all(tune.shape == (sizes.energy_frames, KEYS) for tune in tunes)
    figures[f"{name} weights on GPU"] = weights_on(model.network, "GPU")
    figures[f"{name} peak GPU memory (MB)"] = gpu_peak_mb()
    return figures


def measure(data: Any, tunes: Sequence[np.ndarray], sizes: Sizes, variants: Sequence[str]) -> dict[str, Any]:
    """Every timing of the check: char-lstm training per variant, sampling, rbm and rnn-rbm.

    variants: see `Sizes.variants`.
    """
    params = dict(sizes.char_lstm, dropout=0.0)  # no dropout: the variants' losses are comparable
    batch = params["streams"] * params["steps"]
    sequence = tiled(tunes, batch * sizes.train_batches + 1)
    warm_up = sequence[: batch * 2 + 1]
    figures: dict[str, Any] = {}
    trained = None
    for variant in variants:
        precision = "mixed_float16" if variant == "mixed_float16" else "float32"
        model = char_lstm(dict(params, precision=precision), data, cudnn=variant != "no-cudnn")
        if variant != "mixed_float16":  # the cudnn check compares these two builds' graphs
            x = sequence[:batch].reshape(params["streams"], params["steps"])
            figures[f"char-lstm {variant} CudnnRNN ops"] = cudnn_ops(model, x)
        rate, loss = training_rate(model, sequence, warm_up)
        figures[f"char-lstm training {variant} (chars/s)"] = rate
        figures[f"char-lstm training {variant} loss"] = loss
        if variant == "float32":
            trained = model
    if trained is not None:
        figures.update({f"{label} (chars/s)": rate for label, rate in sampling_rates(trained, data, sizes).items()})
    for name in ("rbm", "rnn-rbm"):
        figures.update(energy_rates(name, sizes))
    return figures


# --- the mirrored job (logical devices are set before TensorFlow starts: a child process on a GPU) ---------


def carve_devices(gpu_memory: int | None) -> None:
    """Devices for `mirrored`: every GPU; two logical GPUs from a lone one; two logical CPUs without one."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if len(gpus) == 1:  # a logical GPU needs a memory cap
        memory = gpu_memory or LOGICAL_GPU_MB
        tf.config.set_logical_device_configuration(gpus[0], [tf.config.LogicalDeviceConfiguration(memory)] * 2)
    elif gpus:
        for gpu in gpus:
            tf.config.experimental.set_memory_growth(gpu, True)
    else:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    tf.config.experimental.enable_tensor_float_32_execution(False)  # compare at float32 rounding


def mirrored_job(sizes: Sizes) -> dict[str, Any]:
    """Every model trained on one device and mirrored, from the same seeds: their losses per epoch.

    The tiny models and data of tests/distribute_support.py, whose trajectories agree on CPU.
    """
    from tui_composer_plugins.char_lstm.model import CharLSTM
    from tui_composer_plugins.rbm.model import RBM
    from tui_composer_plugins.rnn_rbm.model import RNNRBM

    from tui_composer.api import DataSpec, EpochProgress
    from tui_composer.services.distribute import describe_devices, make_strategy, replica_count
    from tui_composer.services.training import epoch_seed, seed_everything

    jobs = {"char-lstm": (CharLSTM, "tokens"), "rbm": (RBM, "frames"), "rnn-rbm": (RNNRBM, "tokens")}
    rng = np.random.default_rng(0)
    data = {"tokens": DataSpec("tokens", 10, bos=0, eos=1), "frames": DataSpec("frames", 6)}
    tunes = {
        "tokens": [np.asarray([0, *(2 + (i + k) % 6 for i in range(40)), 1], np.int32) for k in range(8)],
        "frames": [(rng.random((int(rng.integers(20, 40)), 6)) < 0.3).astype(np.uint8) for _ in range(8)],
    }
    results: dict[str, Any] = {}
    for strategy_name in ("single", "mirrored"):
        strategy = make_strategy(strategy_name)
        results[f"{strategy_name} device"] = describe_devices(strategy)
        for name in sizes.mirrored_models:
            model_class, kind = jobs[name]
            seed_everything(epoch_seed(7, 0))
            model = model_class(MIRRORED_SETTINGS[name], data[kind], strategy)
            losses = []
            for epoch in range(sizes.mirrored_epochs):
                seed_everything(epoch_seed(7, epoch + 1))
                losses.append(model.train_epoch(tunes[kind], epoch, EpochProgress()))
            results[f"{strategy_name} {name}"] = {"replicas": replica_count(strategy), "losses": losses}
    return results


def child(job: str, sizes_name: str, env: dict[str, str], extra: Sequence[str] = ()) -> dict[str, Any]:
    """Run this script's `--job JOB` in a fresh process; its last line is a JSON object."""
    command = [sys.executable, __file__, "--job", job, "--sizes", sizes_name, *extra]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=CHILD_TIMEOUT)
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 or not lines:
        raise RuntimeError(f"`{' '.join(command)}` failed ({result.returncode}): {result.stderr[-2000:]}")
    return json.loads(lines[-1])


def check_mirrored(report: Report, sizes: Sizes, args: argparse.Namespace, *, gpu: bool) -> None:
    """On a GPU in a fresh process, whose GPUs it carves; in --cpu-smoke here (main carved two CPUs)."""
    where = "fresh process" if gpu else "this process"
    report.section(
        f"mirrored: --strategy mirrored against one device, {sizes.mirrored_epochs} epochs per model ({where})"
    )
    if gpu:
        extra = ["--gpu-memory", str(args.gpu_memory)] if args.gpu_memory else []
        results = child("mirrored", args.sizes_name, dict(os.environ), extra)
    else:
        results = mirrored_job(sizes)
    report.line(f"single device: {results['single device']}; mirrored: {results['mirrored device']}")
    ok = results["mirrored char-lstm"]["replicas"] >= 2
    for name in sizes.mirrored_models:
        tolerance = MIRRORED_TOLERANCE[name]
        single, mirrored = results[f"single {name}"]["losses"], results[f"mirrored {name}"]["losses"]
        worst = max(abs(a - b) / abs(a) for a, b in zip(single, mirrored, strict=True))
        report.line(f"{name} losses, single: {', '.join(f'{x:.5f}' for x in single)}")
        report.line(f"{name} losses, mirrored over {results[f'mirrored {name}']['replicas']} replicas: "
                    f"{', '.join(f'{x:.5f}' for x in mirrored)}")  # fmt: skip
        report.figure(f"{name} largest relative loss difference (tolerance {tolerance:g})", worst, "", digits=6)
        ok = ok and worst <= tolerance
    report.verdict("mirrored", ok, "at least 2 replicas, every epoch's loss within the tolerance")


# --- the check ----------------------------------------------------------------------------------------------


def rate_lines(report: Report, figures: dict[str, Any], prefix: str = "") -> None:
    for label, value in figures.items():
        if label.endswith("/s)") and isinstance(value, float):
            name, unit = label[:-1].rsplit(" (", 1)
            report.figure(prefix + name, value, unit)


def check_cudnn(report: Report, figures: dict[str, Any], sizes: Sizes, *, gpu: bool) -> None:
    report.section("cudnn: the kernel in the char-lstm's training step")
    with_ops = figures["char-lstm float32 CudnnRNN ops"]
    report.line(f"CudnnRNN ops in the training step, default build: {with_ops or 'none'}")
    if not gpu:
        report.verdict("cudnn", None if not with_ops else False, "no cuDNN on the CPU")
        return
    without_ops = figures["char-lstm no-cudnn CudnnRNN ops"]
    report.line(f"CudnnRNN ops, use_cudnn=False build: {without_ops or 'none'}")
    speedup = figures["char-lstm training float32 (chars/s)"] / figures["char-lstm training no-cudnn (chars/s)"]
    report.figure("cuDNN training speed over use_cudnn=False", speedup, "x", digits=2)
    layers = sizes.char_lstm["layers"]  # one forward and one backward op per layer
    ok = sum(with_ops.values()) >= 2 * layers and not without_ops and speedup > 1.0
    report.verdict("cudnn", ok, f"CudnnRNN ops forward and backward for {layers} layers, and faster")


def check_precision(report: Report, figures: dict[str, Any]) -> None:
    report.section("precision: mixed_float16 against float32, same seed and batches")
    float32_loss = report.figure("float32 loss", figures["char-lstm training float32 loss"], "nats/char", digits=4)
    mixed_loss = report.figure(
        "mixed_float16 loss", figures["char-lstm training mixed_float16 loss"], "nats/char", digits=4
    )
    speed = figures["char-lstm training mixed_float16 (chars/s)"] / figures["char-lstm training float32 (chars/s)"]
    report.figure("mixed_float16 training speed over float32", speed, "x", digits=2)
    close = math.isfinite(mixed_loss) and abs(mixed_loss - float32_loss) <= MIXED_TOLERANCE * abs(float32_loss)
    helps = "it helps here" if speed > 1 else "it does not help here"
    report.verdict("precision", close, f"loss within {MIXED_TOLERANCE:.0%} of float32's; {helps}")


def check_energy(report: Report, figures: dict[str, Any], name: str, sizes: Sizes, *, gpu: bool) -> None:
    report.section(f"{name}: training and generation")
    peak = figures[f"{name} peak GPU memory (MB)"]
    on_gpu = figures[f"{name} weights on GPU"]
    report.line(f"every weight on the GPU: {on_gpu}; peak GPU memory: {f'{peak:,.0f} MB' if peak else '-'}")
    loss = report.figure(f"{name} training loss (reconstruction error)", figures[f"{name} training loss"], "", digits=4)
    shapes = all(figures[f"{name} generated {n}: shapes ok"] for n in (1, sizes.many_tunes))
    where = ", every weight on the GPU" if gpu else ""
    report.verdict(name, shapes and math.isfinite(loss) and (on_gpu or not gpu), f"finite loss, full tunes{where}")


def check_cpu(report: Report, figures: dict[str, Any], folder: Path, data: Any, tunes: list[np.ndarray]) -> None:
    """The measurements again in a process that sees no GPU; GPU against CPU per figure."""
    report.section("cpu: the same measurements with the GPU hidden (fresh process)")
    np.save(folder / "tunes.npy", np.concatenate(tunes))
    (folder / "data.json").write_text(json.dumps(data.to_json()))
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="-1")
    cpu = child("measure", "full", env, ["--data", str(folder)])
    report.line(f"{'measurement':<48} {'GPU':>11} {'CPU':>11} {'GPU/CPU':>8}")
    for label, value in cpu.items():
        if label.endswith("/s)") and isinstance(figures.get(label), float) and isinstance(value, float):
            report.figures[f"CPU: {label}"] = value
            report.line(f"{label:<48} {figures[label]:>11,.0f} {value:>11,.0f} {figures[label] / value:>7.1f}x")
    key = "char-lstm training float32 (chars/s)"
    report.verdict("cpu", figures[key] > cpu[key], "the GPU trains char-lstm faster than the CPU")


def guarded(report: Report, checks: Sequence[str], work: Callable[[], None]) -> None:
    """Run one part of the check; an exception fails its checks (with the error) and the others go on."""
    try:
        work()
    except Exception as error:  # noqa: BLE001 - any failure is a finding, printed and counted
        report.line(f"ERROR: {type(error).__name__}: {error}"[:3000])
        for check in checks:
            if check not in report.verdicts:
                report.verdict(check, False, "raised")


def run_check(args: argparse.Namespace, sizes: Sizes, *, gpu: bool) -> Report:
    from tui_composer.services.distribute import configure_gpus

    report = Report()
    show_devices(report, configure_gpus(args.gpu_memory), gpu=gpu)
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as temporary:
        folder = Path(temporary)
        corpus: list[Any] = []
        guarded(
            report, ["train"], lambda: corpus.extend(train_service(report, folder, sizes, args.gpu_memory, gpu=gpu))
        )
        if not corpus:  # the measurements need the encoded tunes
            return report
        data, tunes = corpus
        figures: dict[str, Any] = {}

        def measurements() -> None:
            report.section(f"measurements on this device: char-lstm ({', '.join(sizes.variants)}), rbm, rnn-rbm")
            figures.update(measure(data, tunes, sizes, sizes.variants))
            rate_lines(report, figures)

        guarded(report, ["cudnn", "precision", "rbm", "rnn-rbm"], measurements)
        guarded(report, ["cudnn"], lambda: check_cudnn(report, figures, sizes, gpu=gpu))
        guarded(report, ["precision"], lambda: check_precision(report, figures))
        for name in ("rbm", "rnn-rbm"):
            guarded(report, [name], lambda name=name: check_energy(report, figures, name, sizes, gpu=gpu))
        guarded(report, ["mirrored"], lambda: check_mirrored(report, sizes, args, gpu=gpu))
        if gpu:
            guarded(report, ["cpu"], lambda: check_cpu(report, figures, folder, data, tunes))
        else:
            report.section("cpu: the same measurements with the GPU hidden")
            report.verdict("cpu", None, "this is the CPU")
    return report


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu-smoke", action="store_true", help="run everything on the CPU with tiny sizes")
    parser.add_argument("--gpu-memory", type=int, metavar="MB", help="cap each GPU at MB (default: memory growth)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write every figure and verdict to FILE")
    parser.add_argument("--job", choices=("mirrored", "measure"), help=argparse.SUPPRESS)  # child processes
    parser.add_argument("--sizes", dest="sizes_name", choices=("full", "tiny"), help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.sizes_name = args.sizes_name or ("tiny" if args.cpu_smoke else "full")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    sizes = TINY if args.sizes_name == "tiny" else FULL
    if args.job == "mirrored":
        carve_devices(args.gpu_memory)
        print(json.dumps(mirrored_job(sizes)), flush=True)
        return 0
    if args.job == "measure":
        from tui_composer.api import DataSpec
        from tui_composer.services.training import quiet_tensorflow

        quiet_tensorflow()
        data = DataSpec.from_json(json.loads((args.data / "data.json").read_text()))
        tunes = [np.load(args.data / "tunes.npy")]
        print(json.dumps(measure(data, tunes, sizes, ("float32",))), flush=True)
        return 0
    if args.cpu_smoke:
        os.environ["CUDA_VISIBLE_DEVICES"] = "-1"  # on the CPU even where a GPU is (set before TensorFlow starts)
    elif not nvidia_driver_present():  # no driver, no GPU: no need to wait for TensorFlow to say so
        print(NO_GPU)
        return 0
    from tui_composer.services.training import quiet_tensorflow

    quiet_tensorflow(args.gpu_memory)
    import tensorflow as tf

    gpu = bool(tf.config.list_physical_devices("GPU"))
    if not gpu and not args.cpu_smoke:
        if nvidia_driver_present():
            print("FAIL: an NVIDIA driver is present but TensorFlow sees no GPU; install the CUDA libraries with "
                  "`.venv/bin/pip install -e '.[gpu]'` and run again")  # fmt: skip
            return 1
        print(NO_GPU)
        return 0
    if args.cpu_smoke:
        carve_devices(None)  # two logical CPUs for the mirrored check, before TensorFlow starts
    started = time.perf_counter()
    report = run_check(args, sizes, gpu=gpu and not args.cpu_smoke)
    report.section("time")
    report.figure("whole check", time.perf_counter() - started, "s")
    if args.json:
        args.json.write_text(
            json.dumps({"figures": report.figures, "verdicts": report.verdicts}, indent=1, default=str)
        )
    print(report.summary())
    return 1 if report.failed() else 0


if __name__ == "__main__":
    sys.exit(main())
