"""The training service: one run of any encoder-model pair, epoch by epoch, resumable.

`prepare_run` checks everything that is cheap to check (names, every hyperparameter, that the model
takes what the encoder makes) and creates the run folder; nothing heavy is imported. `train_run` does
the work in the calling process:

    read the corpus (cached) -> fit the encoder on the training split (encoder.json)
    -> encode the splits -> build the model -> per epoch: train, validate, checkpoint, early-stop

Files it writes in the run folder (see `tui_composer.services.runs`):

- `status.json`: state (starting, training, finished, stopped, failed), pid, epoch/epochs,
  batch/batches, eta_seconds, best_valid_loss; a background thread beats its heartbeat.
- `metrics.jsonl`: `{"kind": "batch", ...}` progress records (at most one a second), one
  `{"kind": "epoch", "epoch", "train_loss", "valid_loss", "valid_bits", ...}` per epoch, and
  `{"kind": "resumed", "epoch"}` when a resumed training starts again after `epoch` epochs.
- `model.keras`: the best model so far (lowest validation loss).
- `checkpoints/`: `epoch-NNNN.keras` with `epoch-NNNN.json` (the last `KEEP_EPOCH_CHECKPOINTS`),
  `last.keras`, `interrupted.keras` (written on SIGINT/SIGTERM) and `training.json`. Each `.json` is the
  `TrainingState` its model was saved with: the epochs done, the best loss, the patience counter, the
  seed and the loss of the model in `model.keras`. A resumed run restores `last.keras` (optimizer state
  included) with `training.json`, so it loses at most the epoch that was running; when `last.keras` is
  missing or can't be read it falls back to the newest epoch checkpoint that can, with that epoch's
  state, and says which files it skipped and why (`{"kind": "checkpoint_skipped"}` records).
  `model.keras` is replaced only by a model with a lower loss than the one it holds.

A refused resume (a finished run, one stopped early) writes nothing. A full disk fails the run with
"disk full writing FILE: free space and resume with ..." and leaves no partial file.

Every epoch reseeds Python, NumPy and TensorFlow from (seed, epoch), so a resumed run continues as the
uninterrupted one would have (up to TensorFlow's own thread-level nondeterminism).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import math
import os
import shutil
import signal
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tui_composer.plugin.contract import DataSpec, EncodeError, Encoder, EpochProgress, Model
from tui_composer.plugin.params import ParamError, resolve
from tui_composer.plugin.specs import EncoderSpec, ModelSpec, PluginError, factory_problem
from tui_composer.services.distribute import (
    DEFAULT_STRATEGY,
    STRATEGIES,
    StrategyError,
    configure_gpus,
    describe_devices,
    is_chief,
)
from tui_composer.services.jobs import DEFAULT_EPOCHS, DEFAULT_PATIENCE, TrainingRequest  # noqa: F401 - re-exported
from tui_composer.services.runs import HEARTBEAT_SECONDS, Run, RunState
from tui_composer.services.workspace import (
    DamagedFile,
    DiskFullError,
    WorkspaceError,
    is_disk_full,
    read_json,
    write_json,
)

if TYPE_CHECKING:
    import numpy as np

    from tui_composer.services.studio import Studio

KEEP_EPOCH_CHECKPOINTS = 3
BATCH_RECORD_SECONDS = 1.0
TRAINING_STATE = "training.json"


class TrainingError(Exception):
    """A training that can't start or go on; the message names the run, plugin or key and what to do."""


@dataclass(frozen=True)
class Progress:
    """What the trainer reports to its caller (the CLI's progress bar or plain lines)."""

    phase: str  # reading, training, epoch, finished, stopped
    epoch: int = 0  # epochs done (phase "epoch": the one just done)
    epochs: int = 0
    batch: int = 0
    batches: int = 0
    loss: float | None = None
    eta_seconds: float | None = None
    message: str = ""
    record: Mapping[str, Any] | None = None  # phase "epoch": the epoch's metrics


ProgressCallback = Callable[[Progress], None]


# --- preparing -----------------------------------------------------------------------------------------


def encoder_spec(studio: Studio, name: str, plugin: str | None = None) -> EncoderSpec:
    """The encoder named `name`; TrainingError naming the known ones, or the plugin that failed to load it.

    `plugin`: the plugin a run's config says the encoder came from."""
    specs = studio.registry.encoders
    if name not in specs:
        raise TrainingError(studio.host.missing("encoder", name, plugin))
    return specs[name]


def model_spec(studio: Studio, name: str, plugin: str | None = None) -> ModelSpec:
    """The model named `name`; TrainingError naming the known ones, or the plugin that failed to load it."""
    specs = studio.registry.models
    if name not in specs:
        raise TrainingError(studio.host.missing("model", name, plugin))
    return specs[name]


# Seeds are 31-bit like `epoch_seed`'s, so every sampler's generator (NumPy, TensorFlow int32/int64) takes them.
MAX_SEED = 2**31 - 1


def check_seed(seed: int) -> str | None:
    """Why `--seed` is refused, or None; shared by `train` and `sample`."""
    if not 0 <= seed <= MAX_SEED:
        return f"--seed {seed} is not valid: expected an integer in [0, {MAX_SEED}]"
    return None


def resolve_config(studio: Studio, request: TrainingRequest) -> dict[str, Any]:
    """The run's config with every parameter resolved; raises before any work on a bad one."""
    encoder = encoder_spec(studio, request.encoder)
    model = model_spec(studio, request.model)
    if encoder.makes not in model.takes:
        raise TrainingError(
            f"model {model.name!r} takes {', '.join(model.takes)}, but encoder {encoder.name!r} makes "
            f"{encoder.makes}; choose another encoder or model"
        )
    try:
        encoder_params = resolve(encoder.params, request.encoder_params, owner=f"encoder {encoder.name!r}")
        model_params = resolve(model.params, request.model_params, owner=f"model {model.name!r}")
        # Parameters fine alone may contradict each other (piano-roll low above high): the plugin says.
        encoder.check_params(encoder_params)
        model.check_params(model_params)
    except ParamError as error:
        raise TrainingError(str(error)) from None
    if request.epochs < 1:
        raise TrainingError(f"--epochs {request.epochs} is not valid: train at least 1 epoch")
    if request.patience < 1:
        raise TrainingError(f"--patience {request.patience} is not valid: expected at least 1 epoch")
    if request.time_limit is not None and not (0 < request.time_limit < math.inf):  # NaN fails both
        raise TrainingError(
            f"--time-limit {request.time_limit:g} is not valid: expected a finite number of minutes above 0"
        )
    seed_problem = check_seed(request.seed)
    if seed_problem:
        raise TrainingError(seed_problem)
    if request.strategy not in STRATEGIES:
        raise TrainingError(f"--strategy {request.strategy!r} is not known; choose one of {', '.join(STRATEGIES)}")
    if request.strategy == "multi-worker" and request.time_limit is not None:
        # Each worker would judge the limit by its own clock; one stopping alone stalls the others.
        raise TrainingError("--time-limit can't be used with --strategy multi-worker; limit --epochs instead")
    studio.catalogue.get(request.corpus)  # an unknown corpus is refused here, naming the known ones
    return {
        "corpus": request.corpus,
        "encoder": encoder.name,
        "encoder_version": encoder.version,
        "encoder_params": encoder_params,
        "model": model.name,
        "model_params": model_params,
        "epochs": request.epochs,
        "patience": request.patience,
        "time_limit": request.time_limit,
        "seed": request.seed,
        "strategy": request.strategy,
        "plugins": {"encoder": encoder.origin.plugin, "model": model.origin.plugin},
    }


def prepare_run(studio: Studio, request: TrainingRequest) -> Run:
    """Validate the request and create its run folder (no TensorFlow here).

    The encoder's and model's factories are resolved first, from their modules' source, so a misspelled
    factory is refused before a run folder exists or the corpus is read.
    """
    config = resolve_config(studio, request)
    for spec in (encoder_spec(studio, request.encoder), model_spec(studio, request.model)):
        problem = factory_problem(spec.factory)
        if problem is not None:
            kind = "encoder" if isinstance(spec, EncoderSpec) else "model"
            raise TrainingError(
                f"{kind} {spec.name!r} ({spec.origin.describe()}) can't be used: {problem}; fix or reinstall "
                "the plugin (`tui-composer plugins --check` imports every factory)"
            )
    return studio.runs.create(config, request.name)


# --- the status file and its heartbeat ---------------------------------------------------------------------


class StatusWriter:
    """Serialises status writes from the trainer and its heartbeat thread."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def write(self, **fields: Any) -> dict[str, Any]:
        """Merge the fields into status.json; returns the whole status."""
        with self._lock:
            return self.run.write_status(**fields)

    @contextlib.contextmanager
    def beating(self) -> Iterator[StatusWriter]:
        """Beat the heartbeat every few seconds while the body runs (also through long epochs)."""

        def beat() -> None:
            while not self._stop.wait(HEARTBEAT_SECONDS / 2):
                with contextlib.suppress(OSError):
                    self.write()

        self._thread = threading.Thread(target=beat, name="heartbeat", daemon=True)
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join()


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT and SIGTERM ask the training to stop at the next batch (it then checkpoints)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signals reach only the main thread; the caller stops through `stop`
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum: int, frame: Any) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now, without the checkpoint
        stop.set()

    for sig in previous:
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def quiet_tensorflow(gpu_memory: int | None = None) -> None:
    """Import TensorFlow with its start-up chatter (oneDNN notice, CUDA probing) kept off the terminal.

    Those lines come from C++ before absl logging is set up, so TF_CPP_MIN_LOG_LEVEL does not stop
    them: standard error is pointed at /dev/null while TensorFlow loads and finds its devices.
    Then the GPUs, if any, get memory growth or `gpu_memory` MB each (`distribute.configure_gpus`).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    if "tensorflow" in sys.modules:
        configure_gpus(gpu_memory)
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
        import tensorflow as tf

        tf.config.list_physical_devices()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    with contextlib.suppress(ImportError):
        import absl.logging

        absl.logging.set_verbosity(absl.logging.ERROR)
    configure_gpus(gpu_memory)


def epoch_seed(seed: int, epoch: int) -> int:
    """A 31-bit seed per (run seed, epoch): runs with neighbouring seeds don't share epochs."""
    digest = hashlib.sha256(f"{seed}:{epoch}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def seed_everything(seed: int) -> None:
    import keras

    keras.utils.set_random_seed(seed)


def make_strategy(config: Mapping[str, Any]) -> Any:
    """The tf.distribute strategy the model is built under; None: TensorFlow's default device.

    From `config["strategy"]` (auto, single, mirrored, multi-worker; runs made before it existed: auto),
    see `tui_composer.services.distribute.make_strategy`. Models build and compile inside `strategy.scope()`.
    """
    from tui_composer.services.distribute import make_strategy as strategy_named

    try:
        return strategy_named(config.get("strategy") or DEFAULT_STRATEGY)
    except StrategyError as error:
        raise TrainingError(str(error)) from None


# --- the encoder ----------------------------------------------------------------------------------------------


def save_encoder(run: Run, name: str, encoder: Encoder) -> None:
    write_json(run.encoder_path, {"encoder": name, "state": encoder.state(), "data": encoder.data_spec().to_json()})


def load_encoder(run: Run, spec: EncoderSpec, params: dict[str, Any]) -> Encoder:
    """The run's encoder with what it learned on the training split."""
    saved = read_json(run.encoder_path)
    if saved is None:
        raise WorkspaceError(f"run {run.name!r} has no encoder.json: it never finished reading its corpus")
    encoder = spec.create(params)
    encoder.load_state(saved.get("state", {}))
    return encoder


def encode_split(
    encoder: Encoder,
    pairs: list[tuple[str, Any]],
    log: Callable[[str], None],
    progress: Callable[[int], None] | None = None,
) -> list[np.ndarray]:
    """Encoded readings; one that fails is left out with its reason in the log. `progress(done)` after each."""
    encoded = []
    for done, (key, reading) in enumerate(pairs, start=1):
        if progress is not None:
            progress(done)
        try:
            array = encoder.encode(reading)
        except (EncodeError, ValueError) as error:
            log(f"skipped {key}: {getattr(error, 'reason', error)}")
            continue
        if len(array):
            encoded.append(array)
    return encoded


def median_length(encoded: list[np.ndarray]) -> int:
    """The median steps (tokens or frames) of encoded pieces; 0 for none."""
    return int(statistics.median(len(array) for array in encoded)) if encoded else 0


# --- checkpoints --------------------------------------------------------------------------------------------


def write_model_file(model: Model, path: Path) -> None:
    """The plugin writes its model file (tests put a full disk here)."""
    model.save(path)


def _partial(path: Path) -> Path:
    return path.with_name(f".{path.stem}.partial{path.suffix}")


def save_model(model: Model, path: Path) -> None:
    """Write atomically: a crash mid-write leaves the previous file intact, a full disk no partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = _partial(path)
    try:
        write_model_file(model, partial)
        os.replace(partial, path)
    except BaseException as error:
        partial.unlink(missing_ok=True)
        if is_disk_full(error) and not isinstance(error, DiskFullError):
            raise DiskFullError(path) from error
        raise


def copy_model(source: Path, target: Path) -> None:
    """Copy atomically, like `save_model`."""
    partial = _partial(target)
    try:
        shutil.copyfile(source, partial)
        os.replace(partial, target)
    except BaseException as error:
        partial.unlink(missing_ok=True)
        if is_disk_full(error) and not isinstance(error, DiskFullError):
            raise DiskFullError(target) from error
        raise


@dataclass
class TrainingState:
    """What a resumed training needs besides the weights; saved with each epoch's checkpoint."""

    epoch: int = 0  # epochs done
    best_valid_loss: float | None = None
    best_epoch: int = 0
    bad_epochs: int = 0  # epochs since the best one (early-stopping patience counter)
    seed: int = 0
    # The loss of the model in model.keras: only a lower one replaces it (after a fallback to an older
    # checkpoint, model.keras may hold a better model than this trajectory has reached again).
    model_loss: float | None = None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def read(cls, path: Path) -> TrainingState | None:
        """The state saved at `path`, None when missing; DamagedFile when it can't be used."""
        data = read_json(path)
        if data is None:
            return None
        if not isinstance(data, dict):
            raise DamagedFile(path, "is not a JSON object")
        numbers = ("best_valid_loss", "model_loss")
        counts = ("epoch", "best_epoch", "bad_epochs", "seed")
        for key, value in data.items():
            if key not in numbers + counts:
                continue  # a field of a later version
            if key in counts and not (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
                raise DamagedFile(path, f"has {key} {value!r}, expected a whole number")
            if key in numbers and not (
                value is None or (isinstance(value, int | float) and not isinstance(value, bool))
            ):
                raise DamagedFile(path, f"has {key} {value!r}, expected a number")
        return cls(**{key: value for key, value in data.items() if key in numbers + counts})

    def write(self, path: Path) -> None:
        write_json(path, self.to_json())


def epoch_checkpoint(run: Run, epoch: int) -> Path:
    return run.checkpoints_dir / f"epoch-{epoch:04d}.keras"


def checkpoint_epoch(run: Run, model: Model, state: TrainingState, replace_model: bool) -> None:
    """The epoch's checkpoint and state, the best model, last.keras, then training.json (which names it done).

    Every file is written atomically, in an order that keeps each (model, state) pair a resume may use
    true: epoch-N.json follows epoch-N.keras, and training.json follows last.keras. The state is written
    before model.keras, so its `model_loss` is never above the loss of the model really there.
    """
    folder = run.checkpoints_dir
    epoch_path = epoch_checkpoint(run, state.epoch)
    save_model(model, epoch_path)
    state.write(epoch_path.with_suffix(".json"))
    if replace_model:
        copy_model(epoch_path, run.model_path)
    copy_model(epoch_path, folder / "last.keras")
    state.write(folder / TRAINING_STATE)
    kept = sorted(folder.glob("epoch-*.keras"))[-KEEP_EPOCH_CHECKPOINTS:]
    for old in folder.glob("epoch-*.*"):
        if old.with_suffix(".keras") not in kept:
            old.unlink(missing_ok=True)


@dataclass(frozen=True)
class Checkpoint:
    """A model file and the training state it was saved with."""

    path: Path
    state: TrainingState


@dataclass
class ResumePoint:
    """Where a resume may start: the checkpoints to try (newest first), what is unusable, and the best loss known."""

    candidates: list[Checkpoint]
    skipped: list[tuple[str, str]]  # (file, reason): state files and checkpoints that can't be used
    model_loss: float | None  # the lowest loss recorded for model.keras in any state file

    @property
    def newest(self) -> TrainingState | None:
        return self.candidates[0].state if self.candidates else None


def resume_point(run: Run) -> ResumePoint:
    """The checkpoints a resume may start from, newest first, read from the state files alone (no TensorFlow)."""
    folder = run.checkpoints_dir
    skipped: list[tuple[str, str]] = []
    states: list[TrainingState] = []

    def read(path: Path) -> TrainingState | None:
        try:
            state = TrainingState.read(path)
        except DamagedFile as error:
            skipped.append((path.name, error.reason))
            return None
        if state is not None:
            states.append(state)
        return state

    candidates = []
    for path in folder.glob("epoch-*.json"):
        state = read(path)
        if state is not None and path.stem != f"epoch-{state.epoch:04d}":
            skipped.append((path.name, f"holds the state of epoch {state.epoch}"))
        elif state is not None:
            candidates.append(Checkpoint(path.with_suffix(".keras"), state))
    candidates.sort(key=lambda checkpoint: checkpoint.state.epoch, reverse=True)
    last = read(folder / TRAINING_STATE)
    # last.keras is written just before training.json: they agree unless a newer epoch-N.json exists.
    if last is not None and (not candidates or last.epoch >= candidates[0].state.epoch):
        candidates.insert(0, Checkpoint(folder / "last.keras", last))
    elif last is None and not (folder / TRAINING_STATE).exists() and candidates:
        skipped.append((TRAINING_STATE, "is missing"))
    losses = [loss for state in states for loss in (state.model_loss, state.best_valid_loss) if loss is not None]
    return ResumePoint(candidates, skipped, min(losses, default=None))


def _unreadable(error: BaseException) -> str:
    """Why a checkpoint did not load, in one short line (the plugin's own error, not the wrapper's advice)."""
    cause = error.__cause__ or error
    text = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
    return f"can't be loaded ({type(cause).__name__}: {text[:200]})"


def model_loss_to_beat(run: Run, start: ResumePoint) -> float | None:
    """The loss a model must beat to replace model.keras: the lowest recorded for it anywhere."""
    if not run.model_path.is_file():
        return None
    recorded = (start.model_loss, run.raw_status().get("best_valid_loss"))
    return min((loss for loss in recorded if loss is not None), default=None)


def _restore(
    run: Run,
    spec: ModelSpec,
    config: Mapping[str, Any],
    data: DataSpec,
    strategy: Any,
    start: ResumePoint,
    report: ProgressCallback,
) -> tuple[Model, TrainingState] | None:
    """The newest checkpoint that loads, with the state it was saved with; None when the run has none.

    Every file passed over is said, with its reason: a progress message and a `checkpoint_skipped` record.
    """
    skipped = list(start.skipped)
    restored: tuple[Model, Checkpoint] | None = None
    for checkpoint in start.candidates:
        if not checkpoint.path.is_file():
            skipped.append((checkpoint.path.name, "is missing"))
            continue
        try:
            restored = (spec.load(checkpoint.path, config["model_params"], data, strategy), checkpoint)
            break
        except StrategyError as error:  # the run's strategy, not the file, is at fault
            raise TrainingError(str(error)) from None
        except Exception as error:  # noqa: BLE001 - a truncated or damaged file: try the one before it
            skipped.append((checkpoint.path.name, _unreadable(error)))
    for file, reason in skipped:
        run.append_metric({"kind": "checkpoint_skipped", "file": file, "reason": reason})
        report(Progress(phase="reading", message=f"run {run.name!r}: skipped checkpoints/{file}: it {reason}"))
    if restored is None and (start.candidates or skipped):
        raise TrainingError(
            f"run {run.name!r} has no checkpoint that can be read ("
            + "; ".join(f"{file} {reason}" for file, reason in skipped)
            + f"); restore one from a backup, or move {run.checkpoints_dir} aside to train again from epoch 0 "
            "(model.keras is kept unless a better model is trained)"
        )
    if restored is None:
        return None  # killed before its first checkpoint
    model, checkpoint = restored
    state = dataclasses.replace(checkpoint.state, model_loss=model_loss_to_beat(run, start))
    run.append_metric({"kind": "resumed", "epoch": state.epoch, "checkpoint": checkpoint.path.name})
    origin = f" from checkpoints/{checkpoint.path.name}" if skipped else ""
    report(Progress(phase="reading", message=f"resuming run {run.name!r} after epoch {state.epoch}{origin}"))
    return model, state


# --- training ------------------------------------------------------------------------------------------------


def train_run(
    studio: Studio,
    run: Run,
    *,
    resume: bool = False,
    on_progress: ProgressCallback | None = None,
    stop: threading.Event | None = None,
    gpu_memory: int | None = None,
) -> dict[str, Any]:
    """Train the run in this process; returns its final status.

    `stop` (or SIGINT/SIGTERM in the main thread) ends the training at the next batch with an
    `interrupted.keras` checkpoint and state "stopped". Holds the run's lock throughout.
    `gpu_memory` caps each GPU at that many MB (None: TUI_COMPOSER_GPU_MEMORY, else memory growth).
    """
    report = on_progress or (lambda progress: None)
    stop = stop or threading.Event()
    config = run.config  # RunDamaged: config.json can't be used
    run.raw_status()  # RunDamaged: status.json can't be read; nothing is written over it
    status = StatusWriter(run)
    with run.lock():
        # A refused resume writes nothing: the run's state stays what it was.
        start = refuse_resume(run, config) if resume else None
        remove_leftovers(run)
        try:
            quiet_tensorflow(gpu_memory)
        except StrategyError as error:
            raise TrainingError(str(error)) from None
        with stop_on_signals(stop), status.beating():
            status.write(state=RunState.STARTING, pid=os.getpid(), epochs=config["epochs"], error=None)
            try:
                return _train(studio, run, config, start, report, stop, status)
            except KeyboardInterrupt:
                status.write(state=RunState.STOPPED, message="interrupted without a checkpoint", eta_seconds=None)
                raise
            except DiskFullError as error:
                error.advice = f"free space and resume with `tui-composer train --resume {run.name}`"
                with contextlib.suppress(OSError, WorkspaceError):  # the status is rewritten in place if need be
                    status.write(state=RunState.FAILED, error=str(error), message=str(error), eta_seconds=None)
                raise TrainingError(str(error)) from None
            except PluginError as error:  # plugin code raised: its traceback goes in the run's log
                record_plugin_error(run, error)
                with contextlib.suppress(OSError, WorkspaceError):
                    status.write(state=RunState.FAILED, error=str(error)[:500], eta_seconds=None)
                raise
            except BaseException as error:
                with contextlib.suppress(OSError, WorkspaceError):
                    status.write(
                        state=RunState.FAILED, error=f"{type(error).__name__}: {error}"[:500], eta_seconds=None
                    )
                raise


MAX_LOGGED_FAILURES = 3  # an encoder that fails on every piece logs this many tracebacks, and the count


def record_plugin_error(run: Run, error: PluginError) -> None:
    """Write the plugin's traceback into the run's train.log and metrics.jsonl; the error then says where."""
    if run.read_only:
        return
    with contextlib.suppress(OSError, WorkspaceError):  # the error itself must still reach the user
        run.append_metric({"kind": "plugin_error", **error.to_json()})
        with open(run.log_path, "a", encoding="utf-8") as log:
            log.write(f"plugin error: {error.kind} {error.spec!r} ({error.origin.describe()}), {error.action}\n")
            log.write(error.trace.rstrip("\n") + "\n")
        error.advice = (
            f"the traceback is in {run.log_path}; if it is not about your settings or data, report it to the "
            "plugin's authors with it"
        )


def remove_leftovers(run: Run) -> None:
    """Delete what a killed trainer left half-written (partial checkpoints, temporary files); we hold the lock."""
    for folder in (run.path, run.checkpoints_dir):
        for leftover in [*folder.glob(".*.partial.*"), *folder.glob(".*.tmp")]:
            leftover.unlink(missing_ok=True)


def refuse_resume(run: Run, config: Mapping[str, Any]) -> ResumePoint:
    """Where the resume starts; TrainingError, before anything is written, when the run can't go on."""
    if config.get("strategy") == "multi-worker":
        raise TrainingError(
            f"run {run.name!r}: resuming a multi-worker run is not supported (only the chief has checkpoints); "
            "train a new run"
        )
    start = resume_point(run)
    newest, epochs = start.newest, int(config["epochs"])
    if newest is not None and newest.epoch >= epochs:
        raise TrainingError(
            f"run {run.name!r} has already trained all {epochs} epochs; train a new run for more epochs"
        )
    if newest is not None and newest.bad_epochs >= int(config.get("patience", DEFAULT_PATIENCE)):
        raise TrainingError(
            f"run {run.name!r} already stopped early (best epoch {newest.best_epoch}); train a new run instead"
        )
    return start


def _train(
    studio: Studio,
    run: Run,
    config: dict[str, Any],
    start: ResumePoint | None,
    report: ProgressCallback,
    stop: threading.Event,
    status: StatusWriter,
) -> dict[str, Any]:
    from tui_composer.services.encoding import read_corpus

    def log(message: str) -> None:
        report(Progress(phase="reading", message=message))

    epochs = int(config["epochs"])
    plugins = config.get("plugins") or {}
    enc_spec = encoder_spec(studio, config["encoder"], plugins.get("encoder"))
    mod_spec = model_spec(studio, config["model"], plugins.get("model"))
    resume = start is not None
    # Both factories are imported before the corpus is read: a plugin that can't be imported costs nothing.
    enc_spec.encoder_class()
    mod_spec.model_class()

    # The corpus, read through the encoder's cache.
    corpus = studio.catalogue.get(config["corpus"])
    report(Progress(phase="reading", message=f"reading corpus {corpus.name!r} with encoder {enc_spec.name!r}"))
    pieces = _PieceTracker(status, report, stop)
    encoded = read_corpus(
        studio.workspace,
        corpus,
        enc_spec,
        config["encoder_params"],
        progress=lambda done, total: pieces.update("reading", done, total),
    )
    train_pairs = encoded.splits.get("train", [])
    if not train_pairs:
        reasons = "; ".join(f"{s.item}: {s.reason}" for s in encoded.skipped[:3])
        raise TrainingError(
            f"corpus {corpus.name!r} has no training piece that encoder {enc_spec.name!r} can read"
            + (f" ({reasons})" if reasons else "")
        )
    if encoded.skipped:
        log(f"skipped {len(encoded.skipped)} pieces the encoder could not read (see `tui-composer corpus show`)")
    for error in encoded.failures[:MAX_LOGGED_FAILURES]:  # the encoder's own bugs: their tracebacks go in the log
        record_plugin_error(run, error)
    if encoded.failures:
        log(f"{encoded.failures[0]} (on {len(encoded.failures)} pieces; they are read again next time)")

    # The encoder: fitted on the training split, or restored when resuming.
    if resume and run.encoder_path.is_file():
        encoder = load_encoder(run, enc_spec, config["encoder_params"])
    else:
        encoder = enc_spec.create(config["encoder_params"])
        encoder.fit([reading for _, reading in train_pairs])
        save_encoder(run, enc_spec.name, encoder)
    data: DataSpec = encoder.data_spec()
    valid_pairs = encoded.splits.get("valid", [])
    total = len(train_pairs) + len(valid_pairs)
    train = encode_split(encoder, train_pairs, log, lambda done: pieces.update("encoding", done, total))
    first = len(train_pairs)
    valid = encode_split(encoder, valid_pairs, log, lambda done: pieces.update("encoding", first + done, total))
    run.append_metric(
        {
            "kind": "data",
            "train_pieces": len(train),
            "valid_pieces": len(valid),
            "skipped": len(encoded.skipped),
            "median_length": median_length(train),  # a frames run samples pieces this long by default
        }
    )

    # The model: fresh, or the last epoch's checkpoint with its optimizer state.
    strategy = make_strategy(config)
    # Every worker of a cluster trains; only the chief writes model files (the others would race it).
    chief = is_chief(strategy)
    device = describe_devices(strategy)  # printed, and kept in status.json for the TUI's Runs screen
    status.write(device=device)
    log(f"training on {device}")
    restored = _restore(run, mod_spec, config, data, strategy, start, report) if start is not None else None
    if restored is not None:
        model, state = restored
    else:
        state = TrainingState(seed=int(config["seed"]))
        if start is not None:
            run.append_metric({"kind": "resumed", "epoch": 0})  # killed before its first checkpoint
            state.model_loss = model_loss_to_beat(run, start)
        seed_everything(epoch_seed(state.seed, 0))
        try:
            model = mod_spec.build(config["model_params"], data, strategy)
        except StrategyError as error:  # e.g. streams that the replicas can't share evenly
            raise TrainingError(str(error)) from None
    status.write(state=RunState.TRAINING, epoch=state.epoch, best_valid_loss=state.model_loss, **NO_PIECES)
    if not chief:
        log(f"run {run.name!r}: a non-chief worker of a multi-worker cluster; the chief writes the model files")

    patience = int(config.get("patience", DEFAULT_PATIENCE))
    time_limit = config.get("time_limit")
    epoch_seconds: list[float] = []
    deadline = time.monotonic() + time_limit * 60 if time_limit else None

    def time_is_up() -> bool:
        return deadline is not None and time.monotonic() >= deadline

    def finished(message: str) -> dict[str, Any]:
        """The run ends before its planned epochs (time limit, early stopping): status and report say why."""
        final = status.write(state=RunState.FINISHED, eta_seconds=None, message=message)
        report(Progress(phase="finished", epoch=state.epoch, epochs=epochs, message=message))
        return final

    def stop_requested() -> bool:
        # At the time limit the epoch ends at its next batch, and counts: an epoch longer than the limit
        # (a big corpus, a loaded machine) still leaves a model, and the limit holds to a batch. An epoch
        # that counts has trained at least one batch.
        return stop.is_set() or (time_is_up() and tracker.batches_done > 0)

    while state.epoch < epochs:
        if time_is_up():
            message = f"stopped at the time limit ({time_limit:g} min) after epoch {state.epoch}"
            return finished(message)
        seed_everything(epoch_seed(state.seed, state.epoch + 1))
        started, cpu_started = time.monotonic(), time.process_time()
        tracker = _BatchTracker(run, status, report, state.epoch, epochs, epoch_seconds, deadline)
        train_loss = model.train_epoch(
            train, state.epoch, EpochProgress(on_batch=tracker.on_batch, stop_requested=stop_requested)
        )
        if stop.is_set():
            if chief:
                save_model(model, run.checkpoints_dir / "interrupted.keras")
            final = status.write(state=RunState.STOPPED, eta_seconds=None, message="stopped; resume with --resume")
            report(Progress(phase="stopped", epoch=state.epoch, epochs=epochs))
            return final
        evaluation = model.evaluate(valid) if valid else None
        valid_loss = evaluation.loss if evaluation is not None else math.nan
        # Without a validation split the training loss decides what is best.
        score = valid_loss if math.isfinite(valid_loss) else train_loss
        state.epoch += 1
        improved = state.best_valid_loss is None or score < state.best_valid_loss
        if improved:
            state.best_valid_loss, state.best_epoch, state.bad_epochs = float(score), state.epoch, 0
        else:
            state.bad_epochs += 1
        # model.keras may hold a better model than this trajectory's best (see TrainingState.model_loss).
        replace_model = state.model_loss is None or score < state.model_loss
        if replace_model:
            state.model_loss = float(score)
        if chief:
            checkpoint_epoch(run, model, state, replace_model)
        seconds = time.monotonic() - started
        epoch_seconds.append(seconds)
        record = {
            "kind": "epoch",
            "epoch": state.epoch,
            "train_loss": _finite(train_loss),
            "valid_loss": _finite(valid_loss),
            "valid_bits": _finite(evaluation.bits) if evaluation is not None else None,
            "best": improved,
            "seconds": round(seconds, 2),
            "cpu_seconds": round(time.process_time() - cpu_started, 2),
        }
        cut_short = time_is_up() and tracker.batches_done < tracker.batches
        if cut_short:
            record["batches_done"], record["batches"] = tracker.batches_done, tracker.batches  # cut by the limit
        run.append_metric(record)
        remaining = epochs - state.epoch
        status.write(
            epoch=state.epoch,
            best_valid_loss=state.model_loss,  # the loss of model.keras
            train_loss=record["train_loss"],
            valid_loss=record["valid_loss"],
            valid_bits=record["valid_bits"],
            eta_seconds=round(remaining * sum(epoch_seconds) / len(epoch_seconds), 1),
        )
        report(Progress(phase="epoch", epoch=state.epoch, epochs=epochs, record=record))
        if cut_short:
            message = (
                f"stopped at the time limit ({time_limit:g} min) in epoch {state.epoch}, "
                f"after {tracker.batches_done} of its {tracker.batches} batches"
            )
            return finished(message)
        if state.bad_epochs >= patience:
            message = f"stopped early: no better validation loss for {patience} epochs (best: epoch {state.best_epoch})"
            return finished(message)
    final = status.write(state=RunState.FINISHED, eta_seconds=None, message=f"trained {epochs} epochs")
    report(Progress(phase="finished", epoch=state.epoch, epochs=epochs))
    return final


def _finite(value: float | None) -> float | None:
    """JSON has no NaN: a missing measurement is null."""
    return float(value) if value is not None and math.isfinite(value) else None


PIECES_STATUS_SECONDS = 1.0  # reading progress reaches status.json at most this often
NO_PIECES: dict[str, Any] = {"pieces_phase": None, "pieces_done": None, "pieces_total": None}


class _PieceTracker:
    """Reading and encoding progress (N of M pieces) to the caller, and to status.json at most once a second,
    where the TUI's Runs screen reads it: reading a big corpus the first time takes minutes. A stop asked
    for meanwhile (Ctrl-C, the TUI's `s`) ends it at the next piece: nothing is trained yet to checkpoint."""

    def __init__(self, status: StatusWriter, report: ProgressCallback, stop: threading.Event | None = None) -> None:
        self.status, self.report, self.stop = status, report, stop
        self.last_write = 0.0
        self.last_phase = ""

    def update(self, phase: str, done: int, total: int) -> None:
        if self.stop is not None and self.stop.is_set():
            raise KeyboardInterrupt  # train_run marks the run stopped; `--resume` starts it again
        self.report(Progress(phase=phase, batch=done, batches=total))
        now = time.monotonic()
        if done == total or phase != self.last_phase or now - self.last_write >= PIECES_STATUS_SECONDS:
            self.last_write, self.last_phase = now, phase
            self.status.write(pieces_phase=phase, pieces_done=done, pieces_total=total)


class _BatchTracker:
    """Turns a model's per-batch callbacks into status fields, metrics records and progress reports."""

    def __init__(
        self,
        run: Run,
        status: StatusWriter,
        report: ProgressCallback,
        epoch: int,
        epochs: int,
        epoch_seconds: list[float],
        deadline: float | None = None,
    ) -> None:
        self.run, self.status, self.report = run, status, report
        self.epoch, self.epochs = epoch, epochs
        self.epoch_seconds = epoch_seconds
        self.deadline = deadline  # time.monotonic() at the time limit, if any
        self.started = time.monotonic()
        self.first_batch_done: float | None = None
        self.last_record = 0.0
        self.batches_done, self.batches = 0, 0

    def on_batch(self, done: int, total: int, loss: float) -> None:
        now = time.monotonic()
        self.batches_done, self.batches = done, total
        progress = self.progress(done, total, loss, now)
        self.report(progress)
        if now - self.last_record >= BATCH_RECORD_SECONDS or done == total:
            self.last_record = now
            self.run.append_metric(
                {"kind": "batch", "epoch": self.epoch + 1, "batch": done, "batches": total, "loss": _finite(loss)}
            )
            eta = round(progress.eta_seconds or 0.0, 1)
            self.status.write(batch=done, batches=total, loss=_finite(loss), eta_seconds=eta)  # a NaN loss is null

    def progress(self, done: int, total: int, loss: float, now: float) -> Progress:
        """The report after `done` of `total` batches, with the time left."""
        if done == 1:
            self.first_batch_done = now
        # The first batch of a process pays for tracing the training step: the pace is measured after it.
        if done > 1 and self.first_batch_done is not None:
            pace = (now - self.first_batch_done) / (done - 1)
        else:
            pace = (now - self.started) / max(done, 1)
        per_epoch = sum(self.epoch_seconds) / len(self.epoch_seconds) if self.epoch_seconds else pace * total
        eta = pace * (total - done) + (self.epochs - self.epoch - 1) * per_epoch
        if self.deadline is not None:  # a time limit stops the training before the last epoch
            eta = min(eta, max(self.deadline - now, 0.0))
        return Progress(
            phase="training",
            epoch=self.epoch,
            epochs=self.epochs,
            batch=done,
            batches=total,
            loss=loss,
            eta_seconds=eta,
        )
