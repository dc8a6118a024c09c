"""Training, sampling and importing as separate processes, so the TUI never loads TensorFlow.

A training is started detached: in its own session, with no terminal (stdin from /dev/null, output to
a log file), so closing the TUI or dropping the SSH connection doesn't stop it and TensorFlow's logging
never reaches the screen. The TUI finds it again through the run's status file, whose heartbeat and pid
say whether it is still alive. The log ends up in the run folder as `train.log`, where a training
started from a shell writes its log too (`tui_composer.services.runlog`).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tui_composer.services.jobs import SampleOptions, TrainingRequest
from tui_composer.services.runlog import LAUNCH_LOG_VARIABLE
from tui_composer.services.runs import LIVE_STATES, Run
from tui_composer.services.workspace import HOME_VARIABLE, Workspace, WorkspaceError

LOGS_FOLDER = "logs"


def cli_argv(workspace: Workspace, *args: str) -> list[str]:
    """The `tui-composer` command line for this workspace, run with the TUI's own interpreter."""
    return [sys.executable, "-m", "tui_composer", "--workspace", str(workspace.root), *args]


def child_env(workspace: Workspace) -> dict[str, str]:
    """The environment of a child: TensorFlow's C++ logging silenced, output unbuffered for the log."""
    env = dict(os.environ)
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    env["PYTHONUNBUFFERED"] = "1"
    env[HOME_VARIABLE] = str(workspace.root)
    # A child must never draw on the TUI's terminal, even if something in it probes the terminal.
    env.pop("TEXTUAL", None)
    return env


def new_run_name(model: str) -> str:
    """A short, readable, unique-enough run name; the TUI names runs so it knows which one to follow."""
    return f"{model}-{dt.datetime.now():%m%d-%H%M%S}"


def train_arguments(request: TrainingRequest) -> list[str]:
    """The `train` arguments (after `tui-composer --workspace WS`) for a request; parameters as typed."""
    return request.argv()


def constrained_by_default() -> bool:
    """Whether `sample` constrains by default (`--constrain/--no-constrain`, default on)."""
    return SampleOptions().constrain


def constraint_flags(constrained: bool) -> list[str]:
    """The `sample` flag for grammar-constrained sampling or not."""
    return ["--constrain"] if constrained else ["--no-constrain"]


@dataclass
class Launched:
    """A detached training process the TUI started."""

    run: str
    pid: int
    log_path: Path  # where the output went first; the trainer moves it to `run_log_path`
    process: subprocess.Popen[bytes] = field(repr=False)
    run_log_path: Path | None = None

    def exit_code(self) -> int | None:
        """None while it runs; polling also reaps it, so a finished child never lingers as a zombie."""
        return self.process.poll()

    def log_tail(self, lines: int = 8) -> str:
        for path in (self.log_path, self.run_log_path):
            try:
                text = path.read_text(encoding="utf-8", errors="replace") if path is not None else None
            except FileNotFoundError:
                continue
            if text is not None:
                return "\n".join(text.splitlines()[-lines:])
        return ""


def launch_log(workspace: Workspace, run: str) -> Path:
    """Where a launched process writes its output.

    Outside the run folder: the trainer creates that folder itself (atomically, refusing one that
    exists), and a failure before that point (a bad hyperparameter) must still leave its message.
    """
    folder = workspace.root / LOGS_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{run}.log"


def start_detached(workspace: Workspace, arguments: Sequence[str], run: str, log_path: Path | None = None) -> Launched:
    """Start `tui-composer ARGS` in a new session with its output appended to `log_path`.

    By default the launch log; the trainer moves that into its run folder as train.log once it made it.
    """
    log_path = log_path or launch_log(workspace, run)
    env = child_env(workspace)
    env[LAUNCH_LOG_VARIABLE] = str(log_path)
    with open(log_path, "ab") as log:
        log.write(f"$ tui-composer {' '.join(arguments)}\n".encode())
        log.flush()
        process = subprocess.Popen(
            cli_argv(workspace, *arguments),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # not in the TUI's process group: no SIGHUP/SIGINT from its terminal
            close_fds=True,
        )
    run_log_path = workspace.runs_dir / run / "train.log"
    return Launched(run=run, pid=process.pid, log_path=log_path, process=process, run_log_path=run_log_path)


def start_training(workspace: Workspace, request: TrainingRequest) -> Launched:
    if not request.name:
        raise ValueError("name the run, so the TUI can follow it (see new_run_name)")
    return start_detached(workspace, train_arguments(request), request.name)


def resume_training(workspace: Workspace, run: Run) -> Launched:
    state = run.status().get("state")
    if run.read_only:
        raise WorkspaceError(f"run {run.name!r} ships with tui-composer and is read-only; train a new run instead")
    if state in LIVE_STATES:
        raise WorkspaceError(f"run {run.name!r} is still training; stop it before resuming")
    return start_detached(workspace, ["train", "--resume", run.name], run.name, run.log_path)


def stop_training(run: Run) -> int:
    """Ask a run's trainer to stop (SIGINT, like Ctrl-C): it checkpoints and marks itself stopped."""
    status = run.status()
    pid = status.get("pid")
    if status.get("state") not in LIVE_STATES or not pid:
        raise WorkspaceError(f"run {run.name!r} is not training (state {status.get('state', 'created')})")
    try:
        os.kill(int(pid), signal.SIGINT)
    except ProcessLookupError:
        raise WorkspaceError(f"run {run.name!r}: its process {pid} has already ended") from None
    return int(pid)


# --- short commands whose result the TUI waits for (in a worker thread) -------------------------------


class CommandFailed(Exception):
    """A child command exited with an error; the message is its own error line."""


def run_command(workspace: Workspace, arguments: Sequence[str], timeout: float | None = None) -> str:
    """Run `tui-composer ARGS` to completion without a terminal; its stdout, or CommandFailed."""
    try:
        completed = subprocess.run(
            cli_argv(workspace, *arguments),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            env=child_env(workspace),
            timeout=timeout,
            start_new_session=True,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise CommandFailed(f"tui-composer {arguments[0]} took longer than {timeout:g} s and was stopped") from None
    stdout = completed.stdout.decode("utf-8", errors="replace")
    if completed.returncode != 0:
        stderr = completed.stderr.decode("utf-8", errors="replace").strip()
        raise CommandFailed(_error_line(stderr) or f"tui-composer {arguments[0]} exited with {completed.returncode}")
    return stdout


def _error_line(stderr: str) -> str:
    """The user-facing line of a failed command: click's `Error: ...`, else the last line."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("Error:"):
            return line.removeprefix("Error:").strip()
    return lines[-1] if lines else ""


def parse_json_output(stdout: str) -> Any:
    """The JSON a `--json` command printed (skipping any line a library printed before it)."""
    start = min((i for i in (stdout.find("["), stdout.find("{")) if i >= 0), default=-1)
    if start < 0:
        raise CommandFailed(f"expected JSON output, got: {stdout.strip()[:200] or 'nothing'}")
    try:
        return json.loads(stdout[start:])
    except json.JSONDecodeError as error:
        raise CommandFailed(f"could not read the command's JSON output ({error})") from None
