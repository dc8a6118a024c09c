"""The TUI's side of the sampling worker (`tui_composer.services.worker`): one process, kept warm, spoken to
in JSON lines.

The worker loads TensorFlow and the models; this module only starts it, writes requests and reads replies
in a thread, so the TUI process never imports TensorFlow. Each job's replies go to the listener given
with its request (called from the reader thread: post a Textual message from it, which is thread-safe).
A worker that dies is started again, and every job it had gets an `error` reply that says so; a cancel
that the worker does not act on within CANCEL_GRACE_SECONDS (its model may be in the middle of one long
sampling call) stops the process when the user asked (`cancel(stop_worker=True)`), and the next request
starts a fresh one.
"""

from __future__ import annotations

import atexit
import itertools
import json
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from tui_composer.services.launcher import LOGS_FOLDER, child_env
from tui_composer.services.workspace import Workspace

CANCEL_GRACE_SECONDS = 3.0
MAX_LOG_BYTES = 1024 * 1024  # the worker's log starts over at its next start when it is larger
Reply = dict[str, Any]
Listener = Callable[[Reply], None]


class SamplerClient:
    """One worker process for a workspace: started on first use, restarted after it dies."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self.log_path = workspace.root / LOGS_FOLDER / "sampler.log"
        self._lock = threading.Lock()  # the process, the listeners and the pipe's writes
        self._process: subprocess.Popen[str] | None = None
        self._listeners: dict[int, Listener] = {}
        self._ids = itertools.count(1)
        self.restarts = 0
        self.closed = False

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def busy(self) -> bool:
        """Whether any job is still waiting for its `done` or `error`."""
        with self._lock:
            return bool(self._listeners)

    def start(self) -> None:
        """Start the worker now (it loads nothing heavy until a request needs it)."""
        with self._lock:
            self._ensure_started()

    def generate(self, run: str, options: dict[str, Any], listener: Listener, check: bool = True) -> int:
        return self._request({"kind": "generate", "run": run, "options": options, "check": check}, listener)

    def check(self, run: str, files: list[tuple[int, Path]], listener: Listener) -> int:
        items = [{"number": number, "path": str(path)} for number, path in files]
        return self._request({"kind": "check", "run": run, "files": items}, listener)

    def prepare(self, run: str, listener: Listener) -> int:
        """Load the run's model and novelty index ahead of the first generation."""
        return self._request({"kind": "prepare", "run": run}, listener)

    def cancel(self, job: int, stop_worker: bool = False) -> None:
        """Ask the worker to stop `job` at its next step. With `stop_worker` (the user cancelled a generation
        and waits for it), a worker that hasn't stopped it within the grace time is stopped itself; a model
        being loaded or a corpus being indexed may else finish first (the next request still waits less)."""
        with self._lock:
            if job not in self._listeners or self._process is None:
                return
            process = self._process
            self._write(process, {"kind": "cancel", "target": job})
        if not stop_worker:
            return
        timer = threading.Timer(CANCEL_GRACE_SECONDS, self._stop_if_still_running, (job, process))
        timer.daemon = True
        timer.start()

    def close(self) -> None:
        """Stop the worker (the TUI is quitting); its jobs are dropped silently."""
        with self._lock:
            self.closed = True
            self._listeners.clear()
            process, self._process = self._process, None
        if process is not None and process.poll() is None:
            try:
                self._write(process, {"kind": "quit"})
                process.wait(timeout=2)
            except (OSError, subprocess.TimeoutExpired):
                process.kill()
                process.wait()

    # --- inside ---

    def _request(self, request: dict[str, Any], listener: Listener) -> int:
        with self._lock:
            job = next(self._ids)
            process = self._ensure_started()
            self._listeners[job] = listener
            if not self._write(process, {"id": job, **request}):
                self._listeners.pop(job, None)
                listener({"id": job, "kind": "error", "message": self._died_message(process)})
        return job

    def _ensure_started(self) -> subprocess.Popen[str]:
        if self._process is not None and self._process.poll() is None:
            return self._process
        self.closed = False
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if self.log_path.is_file() and self.log_path.stat().st_size > MAX_LOG_BYTES:
            self.log_path.unlink()
        with open(self.log_path, "a", encoding="utf-8") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "tui_composer.services.worker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                encoding="utf-8",
                env=child_env(self.workspace),
                start_new_session=True,  # never on the TUI's terminal, no SIGINT from it
                close_fds=True,
            )
        self._process = process
        reader = threading.Thread(target=self._read, args=(process,), name="sampler-replies", daemon=True)
        reader.start()
        return process

    @staticmethod
    def _write(process: subprocess.Popen[str], request: dict[str, Any]) -> bool:
        assert process.stdin is not None
        try:
            process.stdin.write(json.dumps(request) + "\n")
            process.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):  # ValueError: the pipe was closed
            return False
        return True

    def _read(self, process: subprocess.Popen[str]) -> None:
        """The reader thread of one process: replies to their listeners, then (at EOF) the death notices."""
        stdout: IO[str] | None = process.stdout
        assert stdout is not None
        for line in stdout:
            try:
                reply = json.loads(line)
            except ValueError:
                continue  # not ours: the worker sends only JSON here
            job = reply.get("id") if isinstance(reply, dict) else None
            with self._lock:
                listener = self._listeners.get(job) if isinstance(job, int) else None
                if listener is not None and isinstance(job, int) and reply.get("kind") in ("done", "error"):
                    del self._listeners[job]
            if listener is not None:
                listener(reply)
        process.wait()
        self._died(process)

    def _died(self, process: subprocess.Popen[str]) -> None:
        with self._lock:
            if self._process is not process:
                return  # already replaced (a stopped cancel) or closed
            self._process = None
            orphans, self._listeners = self._listeners, {}
            closed = self.closed
        if closed:
            return
        message = self._died_message(process)
        for job, listener in orphans.items():
            listener({"id": job, "kind": "error", "message": message, "restarted": True})
        if orphans:
            self.restarts += 1
            self.start()  # warm again for the next request

    def _died_message(self, process: subprocess.Popen[str]) -> str:
        code = process.poll()
        return (
            f"the sampling process stopped (exit code {code}); it has been restarted, so generate again "
            f"(its log: {self.log_path})"
        )

    def _stop_if_still_running(self, job: int, process: subprocess.Popen[str]) -> None:
        with self._lock:
            listener = self._listeners.pop(job, None) if self._process is process else None
            if listener is None:
                return  # it stopped in time
            self._process = None
        process.kill()  # a model in one long sampling call: the only way to stop it now
        process.wait()
        listener({"id": job, "kind": "done", "cancelled": True, "seconds": 0.0, "unchecked": [], "restarted": True})
        with self._lock:  # jobs queued behind it died with it
            orphans, self._listeners = self._listeners, {}
        message = (
            f"the sampling process did not stop within {CANCEL_GRACE_SECONDS:g} s of a cancel and was restarted; "
            "ask again"
        )
        for other, waiting in orphans.items():
            waiting({"id": other, "kind": "error", "message": message, "restarted": True})


_clients: dict[Path, SamplerClient] = {}
_clients_lock = threading.Lock()


def sampler_for(workspace: Workspace) -> SamplerClient:
    """The one client of this workspace; another workspace's worker is stopped (a TUI has one workspace)."""
    with _clients_lock:
        client = _clients.get(workspace.root)
        if client is None:
            for other in list(_clients.values()):
                other.close()
            _clients.clear()
            client = _clients[workspace.root] = SamplerClient(workspace)
        return client


def close_samplers() -> None:
    with _clients_lock:
        for client in _clients.values():
            client.close()
        _clients.clear()


atexit.register(close_samplers)
