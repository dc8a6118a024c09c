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
from ever writing the same run.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

from tui_composer.workspace import Workspace, WorkspaceError, check_name, read_json, write_json

BUNDLED_RUNS = Path(__file__).parent / "pretrained"
HEARTBEAT_SECONDS = 5.0
STALE_AFTER_SECONDS = 30.0
LIVE_STATES = ("starting", "training")
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

    @property
    def config(self) -> dict[str, Any]:
        config = read_json(self.config_path)
        if config is None:
            raise WorkspaceError(f"run {self.name!r} has no config.json; delete the folder {self.path}")
        return config

    def write_config(self, config: dict[str, Any]) -> None:
        self._check_writable()
        write_json(self.config_path, config)

    # --- status -----------------------------------------------------------------------------------

    def raw_status(self) -> dict[str, Any]:
        return read_json(self.status_path, default={}) or {}

    def status(self) -> dict[str, Any]:
        """The status as written, with a live state whose process has died shown as `interrupted`."""
        status = self.raw_status()
        state = status.get("state", "created")
        if self.read_only:
            status["state"] = "ready"
        elif state in LIVE_STATES and not self.is_alive(status):
            status["state"] = "interrupted"
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
        write_json(self.status_path, status)
        return status

    # --- metrics ----------------------------------------------------------------------------------

    def append_metric(self, record: dict[str, Any]) -> None:
        """Append one JSON line; a line is written whole with one write call."""
        self._check_writable()
        line = json.dumps({"time": time.time(), **record}, sort_keys=True) + "\n"
        with open(self.metrics_path, "a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()

    def metrics(self) -> list[dict[str, Any]]:
        """Every complete line of the metrics log (a half-written last line is ignored)."""
        try:
            lines = self.metrics_path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        records = []
        for line in lines:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return records

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
                pid = self.raw_status().get("pid")
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
        """One row of `tui-composer runs`."""
        config = read_json(self.config_path, default={}) or {}
        status = self.status()
        return {
            "name": self.name,
            "corpus": config.get("corpus"),
            "encoder": config.get("encoder"),
            "model": config.get("model"),
            "state": status.get("state", "created"),
            "epoch": status.get("epoch", 0),
            "epochs": config.get("epochs"),
            "best_valid_loss": status.get("best_valid_loss"),
            "started": config.get("created"),
            "read_only": self.read_only,
            "path": str(self.path),
        }


class RunStore:
    """The runs of a workspace, plus the read-only runs that ship with the package."""

    def __init__(self, workspace: Workspace, bundled: Path | None = BUNDLED_RUNS) -> None:
        self.workspace = workspace
        self.bundled = bundled

    def _bundled_runs(self) -> list[Run]:
        if self.bundled is None or not self.bundled.is_dir():
            return []
        return [Run(p, read_only=True) for p in sorted(self.bundled.iterdir()) if (p / "config.json").is_file()]

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
            run.write_status(state="created", pid=None)
            return run
        raise WorkspaceError("could not find a free run name; pass --name")

    @staticmethod
    def _generated_name(config: dict[str, Any]) -> str:
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        return f"{config.get('model', 'run')}-{stamp}-{secrets.token_hex(2)}"

    def delete(self, name: str) -> None:
        run = self.get(name)
        run._check_writable()
        if run.is_locked() or run.status().get("state") in LIVE_STATES:
            raise WorkspaceError(f"run {name!r} is training; stop it before deleting it")
        shutil.rmtree(run.path)
