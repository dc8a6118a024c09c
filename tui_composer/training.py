"""The training service: one run of any encoder-model pair, epoch by epoch, resumable.

`prepare_run` checks everything that is cheap to check (names, every hyperparameter, that the model
takes what the encoder makes) and creates the run folder; nothing heavy is imported. `train_run` does
the work in the calling process:

    read the corpus (cached) -> fit the encoder on the training split (encoder.json)
    -> encode the splits -> build the model -> per epoch: train, validate, checkpoint, early-stop

Files it writes in the run folder (see `tui_composer.runs`):

- `status.json`: state (starting, training, finished, stopped, failed), pid, epoch/epochs,
  batch/batches, eta_seconds, best_valid_loss; a background thread beats its heartbeat.
- `metrics.jsonl`: `{"kind": "batch", ...}` progress records (at most one a second), one
  `{"kind": "epoch", "epoch", "train_loss", "valid_loss", "valid_bits", ...}` per epoch, and
  `{"kind": "resumed", "epoch"}` when a resumed training starts again after `epoch` epochs.
- `model.keras`: the best model so far (lowest validation loss).
- `checkpoints/`: `epoch-NNNN.keras` (the last `KEEP_EPOCH_CHECKPOINTS`), `last.keras`,
  `interrupted.keras` (written on SIGINT/SIGTERM) and `training.json`: the epochs done, the best loss,
  the patience counter and the seed. A resumed run restores `last.keras` (optimizer state included) and
  `training.json`, so it loses at most the epoch that was running.

Every epoch reseeds Python, NumPy and TensorFlow from (seed, epoch), so a resumed run continues as the
uninterrupted one would have (up to TensorFlow's own thread-level nondeterminism).
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tui_composer.contract import DataSpec, EncodeError, Encoder, EpochProgress, Model
from tui_composer.distribute import DEFAULT_STRATEGY, STRATEGIES, StrategyError, is_chief
from tui_composer.params import ParamError, resolve
from tui_composer.runs import HEARTBEAT_SECONDS, Run
from tui_composer.specs import EncoderSpec, ModelSpec
from tui_composer.workspace import WorkspaceError, read_json, write_json

if TYPE_CHECKING:
    import numpy as np

    from tui_composer.studio import Studio

DEFAULT_EPOCHS = 20
DEFAULT_PATIENCE = 3
KEEP_EPOCH_CHECKPOINTS = 3
BATCH_RECORD_SECONDS = 1.0
TRAINING_STATE = "training.json"


class TrainingError(Exception):
    """A training that can't start or go on; the message names the run, plugin or key and what to do."""


@dataclass(frozen=True)
class TrainingRequest:
    """What `tui-composer train` asks for; parameters are strings as typed (resolved by `prepare_run`)."""

    corpus: str
    encoder: str
    model: str
    encoder_params: Mapping[str, str] = field(default_factory=dict)
    model_params: Mapping[str, str] = field(default_factory=dict)
    epochs: int = DEFAULT_EPOCHS
    seed: int = 0
    name: str | None = None
    patience: int = DEFAULT_PATIENCE  # epochs without a better validation loss before stopping
    time_limit: float | None = None  # minutes: no epoch starts that would end after this
    strategy: str = DEFAULT_STRATEGY  # auto, single, mirrored or multi-worker (tf.distribute)


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


def encoder_spec(studio: Studio, name: str) -> EncoderSpec:
    specs = studio.registry.encoders
    if name not in specs:
        raise TrainingError(f"no encoder named {name!r}; encoders: {', '.join(sorted(specs)) or 'none installed'}")
    return specs[name]


def model_spec(studio: Studio, name: str) -> ModelSpec:
    specs = studio.registry.models
    if name not in specs:
        raise TrainingError(f"no model named {name!r}; models: {', '.join(sorted(specs)) or 'none installed'}")
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
    """Validate the request and create its run folder (no TensorFlow here)."""
    config = resolve_config(studio, request)
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


def quiet_tensorflow() -> None:
    """Import TensorFlow with its start-up chatter (oneDNN notice, CUDA probing) kept off the terminal.

    Those lines come from C++ before absl logging is set up, so TF_CPP_MIN_LOG_LEVEL does not stop
    them: standard error is pointed at /dev/null while TensorFlow loads and finds its devices.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    if "tensorflow" in sys.modules:
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
    see `tui_composer.distribute.make_strategy`. Models build and compile inside `strategy.scope()`.
    """
    from tui_composer.distribute import make_strategy as strategy_named

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


def encode_split(encoder: Encoder, pairs: list[tuple[str, Any]], log: Callable[[str], None]) -> list[np.ndarray]:
    """Encoded readings; one that fails is left out with its reason in the log."""
    encoded = []
    for key, reading in pairs:
        try:
            array = encoder.encode(reading)
        except (EncodeError, ValueError) as error:
            log(f"skipped {key}: {getattr(error, 'reason', error)}")
            continue
        if len(array):
            encoded.append(array)
    return encoded


# --- checkpoints --------------------------------------------------------------------------------------------


def save_model(model: Model, path: Path) -> None:
    """Write atomically: a crash mid-write leaves the previous file intact."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.stem}.partial.keras")
    model.save(partial)
    os.replace(partial, path)


@dataclass
class TrainingState:
    """What a resumed training needs besides the weights; saved after each epoch's checkpoint."""

    epoch: int = 0  # epochs done
    best_valid_loss: float | None = None
    best_epoch: int = 0
    bad_epochs: int = 0  # epochs since the best one (early-stopping patience counter)
    seed: int = 0

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def read(cls, run: Run) -> TrainingState | None:
        data = read_json(run.checkpoints_dir / TRAINING_STATE)
        return cls(**data) if data else None

    def write(self, run: Run) -> None:
        write_json(run.checkpoints_dir / TRAINING_STATE, self.to_json())


def checkpoint_epoch(run: Run, model: Model, state: TrainingState, improved: bool) -> None:
    """Epoch checkpoint, last.keras, the best model and then training.json (which names them done)."""
    folder = run.checkpoints_dir
    epoch_path = folder / f"epoch-{state.epoch:04d}.keras"
    save_model(model, epoch_path)
    partial = folder / ".last.partial.keras"
    shutil.copyfile(epoch_path, partial)
    os.replace(partial, folder / "last.keras")
    if improved:
        partial = run.path / ".model.partial.keras"
        shutil.copyfile(epoch_path, partial)
        os.replace(partial, run.model_path)
    state.write(run)
    for old in sorted(folder.glob("epoch-*.keras"))[:-KEEP_EPOCH_CHECKPOINTS]:
        old.unlink(missing_ok=True)


# --- training ------------------------------------------------------------------------------------------------


def train_run(
    studio: Studio,
    run: Run,
    *,
    resume: bool = False,
    on_progress: ProgressCallback | None = None,
    stop: threading.Event | None = None,
) -> dict[str, Any]:
    """Train the run in this process; returns its final status.

    `stop` (or SIGINT/SIGTERM in the main thread) ends the training at the next batch with an
    `interrupted.keras` checkpoint and state "stopped". Holds the run's lock throughout.
    """
    quiet_tensorflow()
    report = on_progress or (lambda progress: None)
    stop = stop or threading.Event()
    config = run.config
    status = StatusWriter(run)
    with run.lock(), stop_on_signals(stop), status.beating():
        status.write(state="starting", pid=os.getpid(), epochs=config["epochs"], error=None)
        try:
            return _train(studio, run, config, resume, report, stop, status)
        except KeyboardInterrupt:
            status.write(state="stopped", message="interrupted without a checkpoint", eta_seconds=None)
            raise
        except BaseException as error:
            status.write(state="failed", error=f"{type(error).__name__}: {error}"[:500], eta_seconds=None)
            raise


def _train(
    studio: Studio,
    run: Run,
    config: dict[str, Any],
    resume: bool,
    report: ProgressCallback,
    stop: threading.Event,
    status: StatusWriter,
) -> dict[str, Any]:
    from tui_composer.encoding import read_corpus

    def log(message: str) -> None:
        report(Progress(phase="reading", message=message))

    epochs = int(config["epochs"])
    enc_spec = encoder_spec(studio, config["encoder"])
    mod_spec = model_spec(studio, config["model"])
    saved_state = TrainingState.read(run) if resume else None
    if resume and saved_state is not None and saved_state.epoch >= epochs:
        raise TrainingError(
            f"run {run.name!r} has already trained all {epochs} epochs; train a new run for more epochs"
        )
    if resume and saved_state is not None and saved_state.bad_epochs >= int(config.get("patience", DEFAULT_PATIENCE)):
        raise TrainingError(
            f"run {run.name!r} already stopped early (best epoch {saved_state.best_epoch}); train a new run instead"
        )

    # The corpus, read through the encoder's cache.
    corpus = studio.catalogue.get(config["corpus"])
    report(Progress(phase="reading", message=f"reading corpus {corpus.name!r} with encoder {enc_spec.name!r}"))
    encoded = read_corpus(
        studio.workspace,
        corpus,
        enc_spec,
        config["encoder_params"],
        progress=lambda done, total: report(Progress(phase="reading", batch=done, batches=total)),
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

    # The encoder: fitted on the training split, or restored when resuming.
    if resume and run.encoder_path.is_file():
        encoder = load_encoder(run, enc_spec, config["encoder_params"])
    else:
        encoder = enc_spec.create(config["encoder_params"])
        encoder.fit([reading for _, reading in train_pairs])
        save_encoder(run, enc_spec.name, encoder)
    data: DataSpec = encoder.data_spec()
    train = encode_split(encoder, train_pairs, log)
    valid = encode_split(encoder, encoded.splits.get("valid", []), log)
    run.append_metric(
        {"kind": "data", "train_pieces": len(train), "valid_pieces": len(valid), "skipped": len(encoded.skipped)}
    )

    # The model: fresh, or the last epoch's checkpoint with its optimizer state.
    strategy = make_strategy(config)
    # Every worker of a cluster trains; only the chief writes model files (the others would race it).
    chief = is_chief(strategy)
    if resume and config.get("strategy") == "multi-worker":
        raise TrainingError(
            f"run {run.name!r}: resuming a multi-worker run is not supported (only the chief has checkpoints); "
            "train a new run"
        )
    model_class = mod_spec.model_class()
    last = run.checkpoints_dir / "last.keras"
    if saved_state is not None and last.is_file():
        state = saved_state
        model = mod_spec.load(last, config["model_params"], data, strategy)  # names the file if it can't be read
        run.append_metric({"kind": "resumed", "epoch": state.epoch})
        report(Progress(phase="reading", message=f"resuming run {run.name!r} after epoch {state.epoch}"))
    else:
        state = TrainingState(seed=int(config["seed"]))
        if resume:
            run.append_metric({"kind": "resumed", "epoch": 0})  # killed before its first checkpoint
        seed_everything(epoch_seed(state.seed, 0))
        try:
            model = model_class(config["model_params"], data, strategy)
        except StrategyError as error:  # e.g. streams that the replicas can't share evenly
            raise TrainingError(str(error)) from None
    status.write(state="training", epoch=state.epoch, best_valid_loss=state.best_valid_loss)
    if not chief:
        log(f"run {run.name!r}: a non-chief worker of a multi-worker cluster; the chief writes the model files")

    patience = int(config.get("patience", DEFAULT_PATIENCE))
    time_limit = config.get("time_limit")
    epoch_seconds: list[float] = []
    deadline = time.monotonic() + time_limit * 60 if time_limit else None
    while state.epoch < epochs:
        # no epoch starts that would end past the time limit
        if (
            deadline is not None
            and epoch_seconds
            and time.monotonic() + sum(epoch_seconds) / len(epoch_seconds) > deadline
        ):
            message = f"stopped at the time limit ({time_limit:g} min) after epoch {state.epoch}"
            final = status.write(state="finished", eta_seconds=None, message=message)
            report(Progress(phase="finished", epoch=state.epoch, epochs=epochs, message=message))
            return final
        seed_everything(epoch_seed(state.seed, state.epoch + 1))
        started, cpu_started = time.monotonic(), time.process_time()
        tracker = _BatchTracker(run, status, report, state.epoch, epochs, epoch_seconds, deadline)
        train_loss = model.train_epoch(
            train, state.epoch, EpochProgress(on_batch=tracker.on_batch, stop_requested=stop.is_set)
        )
        if stop.is_set():
            if chief:
                save_model(model, run.checkpoints_dir / "interrupted.keras")
            final = status.write(state="stopped", eta_seconds=None, message="stopped; resume with --resume")
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
        if chief:
            checkpoint_epoch(run, model, state, improved)
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
        run.append_metric(record)
        remaining = epochs - state.epoch
        status.write(
            epoch=state.epoch,
            best_valid_loss=state.best_valid_loss,
            train_loss=record["train_loss"],
            valid_loss=record["valid_loss"],
            valid_bits=record["valid_bits"],
            eta_seconds=round(remaining * sum(epoch_seconds) / len(epoch_seconds), 1),
        )
        report(Progress(phase="epoch", epoch=state.epoch, epochs=epochs, record=record))
        if state.bad_epochs >= patience:
            message = f"stopped early: no better validation loss for {patience} epochs (best: epoch {state.best_epoch})"
            final = status.write(state="finished", eta_seconds=None, message=message)
            report(Progress(phase="finished", epoch=state.epoch, epochs=epochs, message=message))
            return final
    final = status.write(state="finished", eta_seconds=None, message=f"trained {epochs} epochs")
    report(Progress(phase="finished", epoch=state.epoch, epochs=epochs))
    return final


def _finite(value: float | None) -> float | None:
    """JSON has no NaN: a missing measurement is null."""
    return float(value) if value is not None and math.isfinite(value) else None


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

    def on_batch(self, done: int, total: int, loss: float) -> None:
        now = time.monotonic()
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
