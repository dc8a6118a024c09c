"""Runs: one folder per training, with its config, encoder state, model, checkpoints, metrics, status, samples.

    runs/NAME/
      config.json       corpus, encoder, model, hyperparameters, seed, package versions
      encoder.json      what the encoder learned on the training split
      model.keras       the best model so far
      checkpoints/      epoch-NNNN.keras, last.keras, interrupted.keras, training.json
      metrics.jsonl     one JSON object per line (batch progress and epoch results)
      status.json       state, pid, heartbeat, epoch, progress
      samples/          generated .abc and .mid files
      train.log         output of a detached training process

Status and config writes are atomic; a lock file held by the training process keeps two trainings
from ever writing the same run. A run whose config.json or status.json can't be used (cut short,
empty, binary, the wrong JSON type) is listed as `damaged`, naming the file and why; it spoils no
listing, and training or sampling it is refused with the same reason (`RunDamaged`).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from enum import StrEnum
from importlib import metadata
from pathlib import Path
from typing import Any

from tui_composer.services import workspace as storage
from tui_composer.services.workspace import (
    DamagedFile,
    DiskFullError,
    Workspace,
    WorkspaceError,
    check_name,
    is_disk_full,
    read_json,
    write_json,
)

HEARTBEAT_SECONDS = 5.0
STALE_AFTER_SECONDS = 30.0


def metrics_records(lines: Iterable[bytes]) -> Iterator[dict[str, Any]]:
    """The JSON objects among metrics.jsonl lines; a half-written, binary or non-object line is skipped."""
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:  # JSONDecodeError, or UnicodeDecodeError for binary bytes
            continue
        if isinstance(record, dict):
            yield record


class RunState(StrEnum):
    """The states of a run, as status.json records them (and two that are only listed). A str, so a
    state read from JSON compares equal to its member."""

    CREATED = "created"
    STARTING = "starting"  # the trainer reads and encodes the corpus
    TRAINING = "training"
    FINISHED = "finished"
    STOPPED = "stopped"  # stopped by the user or a time limit, with a checkpoint to resume from
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # listed for a live state whose process has died
    READY = "ready"  # listed for a read-only run a plugin ships
    DAMAGED = "damaged"  # listed for a run whose config.json or status.json can't be used

    @property
    def live(self) -> bool:
        """Whether a trainer process owns the run now."""
        return self in LIVE_STATES


LIVE_STATES = frozenset({RunState.STARTING, RunState.TRAINING})
DAMAGED = RunState.DAMAGED
CONFIG_FILE = "config.json"
STATUS_FILE = "status.json"

# What each kind of field must hold, and how a refusal describes it.
_KINDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "text": (lambda v: isinstance(v, str), "text"),
    "count": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "a whole number"),
    "number": (lambda v: isinstance(v, int | float) and not isinstance(v, bool), "a number"),
    "object": (lambda v: isinstance(v, dict), "a JSON object"),
}
# (kind, may be null) of the fields that tui-composer reads; fields it doesn't know are left alone.
CONFIG_FIELDS = {
    **dict.fromkeys(("corpus", "encoder", "model", "name", "created"), ("text", False)),
    **dict.fromkeys(("encoder_params", "model_params"), ("object", False)),
    **dict.fromkeys(("epochs", "patience", "seed"), ("count", False)),
    "time_limit": ("number", True),
    "strategy": ("text", True),
}
STATUS_FIELDS = {
    "state": ("text", False),
    "pid": ("count", True),
    **dict.fromkeys(("epoch", "batch", "batches"), ("count", False)),
    "epochs": ("count", True),
    "heartbeat_unix": ("number", False),
    **dict.fromkeys(
        ("best_valid_loss", "train_loss", "valid_loss", "valid_bits", "loss", "eta_seconds"), ("number", True)
    ),
    **dict.fromkeys(("message", "error", "updated"), ("text", True)),
    # Before the first epoch: "reading" or "encoding" the corpus, pieces_done of pieces_total.
    "pieces_phase": ("text", True),
    **dict.fromkeys(("pieces_done", "pieces_total"), ("count", True)),
}
# What training or sampling a run reads from its config; a listing needs only what names the run.
REQUIRED_CONFIG = ("corpus", "encoder", "encoder_params", "model", "model_params", "epochs")
NAMING_CONFIG = ("corpus", "encoder", "model")
_PACKAGES = ("tui-composer", "keras", "tensorflow", "music21", "mido", "numpy", "textual")


def package_versions() -> dict[str, str]:
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "true or false", type(None): "null"}
    return names.get(type(value), "a number")


def problem_in(data: Any, fields: dict[str, tuple[str, bool]]) -> str | None:
    """Why a JSON document is not a run file of this shape (completing "the file ..."), or None."""
    if not isinstance(data, dict):
        return f"holds {_json_type(data)}, not a JSON object"
    for key, (kind, nullable) in fields.items():
        if key not in data or (nullable and data[key] is None):
            continue
        accepts, expected = _KINDS[kind]
        if not accepts(data[key]):
            shown = json.dumps(data[key], default=str)
            shown = shown if len(shown) <= 40 else shown[:37] + "..."
            return f"has {key} {shown}, expected {expected}"
    return None


class RunDamaged(WorkspaceError):
    """A run whose config.json or status.json can't be used; names the run, the file, why and what to do."""

    def __init__(self, run: Run, file: str, reason: str) -> None:
        self.run = run.name
        self.file = file
        self.reason = reason  # completes "the file ...": "is empty", "has epoch "abc", expected a whole number"
        if run.read_only:
            advice = "reinstall tui-composer to restore it"
        elif file == STATUS_FILE:
            advice = (
                f"delete {run.status_path} (it holds only the run's state; the model and checkpoints are kept), "
                f"then sample the run or resume it with `tui-composer train --resume {run.name}`"
            )
        else:
            advice = f"restore it from a backup, or delete the run folder {run.path}"
        super().__init__(f"run {run.name!r} is damaged: {file} {reason}; {advice}")

    def to_json(self) -> dict[str, str]:
        return {"file": self.file, "reason": self.reason, "message": str(self)}


def rewrite_in_place(path: Path, data: bytes) -> None:
    """Overwrite a file where its bytes lie: a full disk's last resort, as no new file is needed."""
    with open(path, "r+b", buffering=0) as handle:
        handle.write(data)
        handle.truncate(len(data))
        os.fsync(handle.fileno())


class Run:
    def __init__(self, path: Path, read_only: bool = False) -> None:
        self.path = path
        self.read_only = read_only

    @property
    def name(self) -> str:
        return self.path.name

    # --- files ------------------------------------------------------------------------------------

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    @property
    def encoder_path(self) -> Path:
        return self.path / "encoder.json"

    @property
    def model_path(self) -> Path:
        return self.path / "model.keras"

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / "checkpoints"

    @property
    def samples_dir(self) -> Path:
        return self.path / "samples"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def status_path(self) -> Path:
        return self.path / "status.json"

    @property
    def log_path(self) -> Path:
        return self.path / "train.log"

    # --- config -----------------------------------------------------------------------------------

    def _checked(self, file: str, fields: dict[str, tuple[str, bool]]) -> dict[str, Any] | None:
        """A run file as read, None when missing; RunDamaged when it can't be read or holds the wrong types."""
        try:
            data = read_json(self.path / file)
        except DamagedFile as error:
            raise RunDamaged(self, file, error.reason) from None
        if data is None:
            return None
        problem = problem_in(data, fields)
        if problem is not None:
            raise RunDamaged(self, file, problem)
        return data

    @property
    def config(self) -> dict[str, Any]:
        """config.json with every setting a training or sampling reads.

        RunDamaged, naming the file and why, when config.json lacks a setting or either config.json or
        status.json can't be used: a damaged run is refused by every command until it is mended.
        """
        config = self._checked(CONFIG_FILE, CONFIG_FIELDS)
        if config is None:
            raise RunDamaged(self, CONFIG_FILE, "is missing")
        missing = [key for key in REQUIRED_CONFIG if key not in config]
        if missing:
            raise RunDamaged(self, CONFIG_FILE, f"lacks {', '.join(missing)}")
        self._checked(STATUS_FILE, STATUS_FIELDS)
        return config

    def settings(self) -> dict[str, Any]:
        """config.json as far as it goes ({} when missing), to show the run; RunDamaged if it can't be read."""
        return self._checked(CONFIG_FILE, CONFIG_FIELDS) or {}

    def damage(self) -> RunDamaged | None:
        """Why the run can't be listed as it is (config.json or status.json unusable), or None."""
        try:
            config = self._checked(CONFIG_FILE, CONFIG_FIELDS)
            if config is None:
                return RunDamaged(self, CONFIG_FILE, "is missing")
            if not any(key in config for key in NAMING_CONFIG):  # `{}`: nothing says what the run is
                missing = [key for key in REQUIRED_CONFIG if key not in config]
                return RunDamaged(self, CONFIG_FILE, f"lacks {', '.join(missing)}")
            self._checked(STATUS_FILE, STATUS_FIELDS)
        except RunDamaged as damaged:
            return damaged
        return None

    def write_config(self, config: dict[str, Any]) -> None:
        self._check_writable()
        write_json(self.config_path, config)

    # --- status -----------------------------------------------------------------------------------

    def raw_status(self) -> dict[str, Any]:
        """status.json as written ({} before the first write); RunDamaged when it can't be read."""
        return self._checked(STATUS_FILE, STATUS_FIELDS) or {}

    def state(self) -> str:
        """The state to list: `damaged` when config.json or status.json can't be used, else `status()`'s
        (a RunState, or the text a newer version wrote)."""
        if self.damage() is not None:
            return DAMAGED
        return str(self.status().get("state", RunState.CREATED))

    def status(self) -> dict[str, Any]:
        """The status as written, with a live state whose process has died shown as `interrupted`."""
        status = self.raw_status()
        state = status.get("state", RunState.CREATED)
        if self.read_only:
            status["state"] = RunState.READY
        elif state in LIVE_STATES and not self.is_alive(status):
            status["state"] = RunState.INTERRUPTED
        return status

    def is_alive(self, status: dict[str, Any] | None = None) -> bool:
        status = status if status is not None else self.raw_status()
        if not pid_alive(status.get("pid")):
            return False
        heartbeat = status.get("heartbeat_unix", 0.0)
        return time.time() - heartbeat < STALE_AFTER_SECONDS

    def write_status(self, **fields: Any) -> dict[str, Any]:
        """Merge fields into status.json (atomically) and beat the heartbeat."""
        self._check_writable()
        status = self.raw_status()
        status.update(fields)
        status["heartbeat_unix"] = time.time()
        status["updated"] = now_iso()
        try:
            write_json(self.status_path, status)
        except DiskFullError:
            # No room for the new file: the state (often "failed: disk full") still has to be told.
            if not self.status_path.is_file():
                raise
            text = json.dumps(status, indent=2, sort_keys=True, default=str) + "\n"
            rewrite_in_place(self.status_path, text.encode("utf-8"))
        return status

    # --- metrics ----------------------------------------------------------------------------------

    def append_metric(self, record: dict[str, Any]) -> None:
        """Append one JSON line with one write call; a failed write is cut off, never left half a line."""
        self._check_writable()
        line = (json.dumps({"time": time.time(), **record}, sort_keys=True) + "\n").encode("utf-8")
        try:
            with open(self.metrics_path, "ab", buffering=0) as handle:
                size = os.fstat(handle.fileno()).st_size
                try:
                    storage.write_bytes(handle, line)  # looked up here: the seam a test fills the disk at
                except BaseException:
                    os.ftruncate(handle.fileno(), size)  # the next record must start on a line of its own
                    raise
        except OSError as error:
            if is_disk_full(error) and not isinstance(error, DiskFullError):
                raise DiskFullError(self.metrics_path) from error
            raise

    def metrics(self) -> list[dict[str, Any]]:
        """Every complete record of the metrics log; a half-written, binary or non-object line is skipped."""
        try:
            lines = self.metrics_path.read_bytes().splitlines()
        except FileNotFoundError:
            return []
        return list(metrics_records(lines))

    # --- locking ----------------------------------------------------------------------------------

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run's training lock; a second trainer of the same run is refused."""
        self._check_writable()
        handle = open(self.path / ".lock", "a+")  # noqa: SIM115 - held for the context's lifetime
        try:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                try:
                    pid = self.raw_status().get("pid")
                except RunDamaged:
                    pid = "unknown"
                raise WorkspaceError(
                    f"run {self.name!r} is being trained by another process (pid {pid}); wait for it or stop it first"
                ) from None
            yield
        finally:
            handle.close()

    def is_locked(self) -> bool:
        lock_path = self.path / ".lock"
        if self.read_only or not lock_path.exists():
            return False
        with open(lock_path, "a+") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        return False

    def _check_writable(self) -> None:
        if self.read_only:
            raise WorkspaceError(
                f"run {self.name!r} ships with tui-composer and is read-only; "
                "train a new run to change it (samples go to --out or the workspace)"
            )

    def summary(self) -> dict[str, Any]:
        """One row of `tui-composer runs`; a damaged run is a row too, with `damaged` naming the file and why."""
        damaged = self.damage()
        config: dict[str, Any] = {}
        status: dict[str, Any] = {"state": DAMAGED} if damaged is not None else self.status()
        if damaged is None or damaged.file != CONFIG_FILE:
            config = self.settings()
        return {
            "name": self.name,
            "corpus": config.get("corpus"),
            "encoder": config.get("encoder"),
            "model": config.get("model"),
            "state": status.get("state", RunState.CREATED),
            "epoch": status.get("epoch", 0),
            "epochs": config.get("epochs"),
            "best_valid_loss": status.get("best_valid_loss"),
            "device": status.get("device"),  # where it trains or trained: `CPU`, `GPU:0 (NVIDIA H200)`...
            "started": config.get("created"),
            "read_only": self.read_only,
            "path": str(self.path),
            "damaged": damaged.to_json() if damaged is not None else None,
        }


class RunStore:
    """The runs of a workspace, plus the read-only runs that plugins ship (`register_runs`).

    `shipped` maps a run's name to its folder (the plugins' RunSpecs, `Studio` passes them); `bundled` is
    a folder of such run folders (tests, and apps embedding tui-composer). Core ships no run of its own.
    """

    def __init__(
        self, workspace: Workspace, bundled: Path | None = None, shipped: Mapping[str, Path] | None = None
    ) -> None:
        self.workspace = workspace
        self.bundled = bundled
        self.shipped = dict(shipped or {})

    def _bundled_runs(self) -> list[Run]:
        runs = [Run(Path(path), read_only=True) for _, path in sorted(self.shipped.items())]
        if self.bundled is not None and self.bundled.is_dir():
            names = set(self.shipped)
            folders = sorted(p for p in self.bundled.iterdir() if (p / "config.json").is_file() and p.name not in names)
            runs += [Run(p, read_only=True) for p in folders]
        return runs

    def list(self) -> list[Run]:
        runs_dir = self.workspace.runs_dir
        own = []
        if runs_dir.is_dir():
            own = [Run(p) for p in sorted(runs_dir.iterdir()) if p.is_dir() and not p.name.startswith(".")]
        names = {r.name for r in own}
        return own + [r for r in self._bundled_runs() if r.name not in names]

    def get(self, name: str) -> Run:
        for run in self.list():
            if run.name == name:
                return run
        known = ", ".join(r.name for r in self.list()) or "none yet"
        raise WorkspaceError(f"no run named {name!r} in {self.workspace.runs_dir}; runs: {known}")

    def create(self, config: dict[str, Any], name: str | None = None) -> Run:
        """A new run folder; mkdir is atomic, so two trainings never get the same folder."""
        self.workspace.runs_dir.mkdir(parents=True, exist_ok=True)
        if name is not None:
            check_name(name, "run")
            if any(r.name == name for r in self._bundled_runs()):
                raise WorkspaceError(f"run name {name!r} is taken by a bundled run; choose another --name")
        for _ in range(20):
            candidate = name or self._generated_name(config)
            path = self.workspace.runs_dir / candidate
            try:
                path.mkdir()
            except FileExistsError:
                if name is not None:
                    raise WorkspaceError(
                        f"a run named {name!r} already exists; choose another --name or resume it "
                        f"with `tui-composer train --resume {name}`"
                    ) from None
                continue
            run = Run(path)
            for folder in (run.checkpoints_dir, run.samples_dir):
                folder.mkdir()
            run.write_config({**config, "name": candidate, "created": now_iso(), "versions": package_versions()})
            run.write_status(state=RunState.CREATED, pid=None)
            return run
        raise WorkspaceError("could not find a free run name; pass --name")

    @staticmethod
    def _generated_name(config: dict[str, Any]) -> str:
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        return f"{config.get('model', 'run')}-{stamp}-{secrets.token_hex(2)}"

    def delete(self, name: str) -> None:
        run = self.get(name)
        run._check_writable()
        if run.is_locked() or run.state() in LIVE_STATES:  # a damaged run can be deleted
            raise WorkspaceError(f"run {name!r} is training; stop it before deleting it")
        shutil.rmtree(run.path)
