"""Reading runs from their files for the Runs screen: status rows, loss curves and progress.

The trainer is another process; all the TUI knows is what it writes (status.json with a heartbeat,
metrics.jsonl). Metrics are read incrementally, from where the last poll stopped, so a long training
costs the same per poll as a short one.
"""

from __future__ import annotations

import datetime as dt
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tui_composer.services.launcher import LOGS_FOLDER
from tui_composer.services.runs import DAMAGED, LIVE_STATES, Run, RunState, RunStore, metrics_records
from tui_composer.services.workspace import WorkspaceError

# Batch points kept per curve: the chart is at most a screen wide, so older detail is thinned out.
MAX_TRAIN_POINTS = 2000
# A run done training: finished, or shipped with the package (`ready`). Either may have stopped before
# its planned epochs (a time limit, early stopping): done is done, whatever the plan said.
DONE_STATES = frozenset({RunState.FINISHED, RunState.READY})
# States whose detail shows the log's tail: what went wrong, or what a starting trainer is doing.
# Shown from a launch until the trainer writes its first state (a TUI-only state, never in status.json).
LAUNCHING = "launching"
LOG_WORTHY = frozenset({RunState.FAILED, RunState.INTERRUPTED, RunState.CREATED, RunState.STARTING})


@dataclass(frozen=True)
class RunRow:
    """One line of the Runs table."""

    name: str
    state: str
    epoch: int
    epochs: int | None
    best_valid_loss: float | None
    corpus: str
    encoder: str
    model: str
    started: str
    read_only: bool
    damaged: str = ""  # for state "damaged": the file and why, with what to do
    started_at: str = ""  # when it was created, ISO 8601 (`started` is the short form the table shows)

    @property
    def pair(self) -> str:
        return f"{self.encoder}/{self.model}"


@dataclass
class RunDetail:
    """The selected run: its curves and how far it has come."""

    name: str
    state: str
    train: list[tuple[float, float]] = field(default_factory=list)  # (epochs done, loss) per batch or epoch
    valid: list[tuple[float, float]] = field(default_factory=list)  # (epoch, loss) per epoch
    epochs_done: int = 0
    epochs: int | None = None
    batch: int = 0  # within the epoch being trained (0 between epochs)
    batches: int = 0
    eta_seconds: float | None = None
    valid_bits: float | None = None
    device: str = ""  # where it trains or trained, as the trainer wrote it ("GPU:0 (NVIDIA H200)")
    pieces_phase: str = ""  # before the first epoch: "reading" or "encoding" the corpus...
    pieces_done: int = 0  # ...this many of pieces_total pieces
    pieces_total: int = 0
    message: str = ""
    error: str = ""
    log: str = ""

    @property
    def fraction(self) -> float:
        """How much of the planned training is done, in [0, 1]."""
        if self.state in DONE_STATES:
            return 1.0
        if not self.epochs:
            return 0.0
        done = self.epochs_done + (self.batch / self.batches if self.batches else 0.0)
        return max(0.0, min(1.0, done / self.epochs))


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


class MetricsTail:
    """The curves of one run's metrics.jsonl, updated from the bytes appended since the last read.

    Records (written by `tui_composer.services.training`): `batch` (epoch counted from 1, batch, batches, loss),
    `epoch` (epochs done, train_loss, valid_loss, valid_bits) and `resumed` (epochs kept on resume).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.train: list[tuple[float, float]] = []
        self.valid: list[tuple[float, float]] = []
        self.epochs_done = 0
        self.batch = 0
        self.batches = 0
        self.valid_bits: float | None = None
        self.epoch_seconds: list[float] = []  # how long each epoch took, for the ETA

    def read(self) -> None:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return
        if size < self.offset:  # replaced (a run deleted and made again): start over
            self.__init__(self.path)  # type: ignore[misc]
        if size == self.offset:
            return
        with open(self.path, "rb") as handle:
            handle.seek(self.offset)
            chunk = handle.read(size - self.offset)
        end = chunk.rfind(b"\n") + 1  # a half-written last line waits for the next poll
        self.offset += end
        for record in metrics_records(chunk[:end].splitlines()):
            self.add(record)

    def add(self, record: dict[str, Any]) -> None:
        """Take one metrics record."""
        kind, epoch = record.get("kind"), record.get("epoch")
        if not isinstance(epoch, int) or isinstance(epoch, bool):
            return
        if kind == "resumed":
            # The unfinished epoch is trained again: drop what it had drawn.
            self._truncate(self.train, epoch + 1e-9)
            self._truncate(self.valid, epoch + 1e-9)
            self.epochs_done, self.batch = epoch, 0
        elif kind == "epoch":
            self.epochs_done, self.batch = epoch, 0
            self._truncate(self.valid, epoch)
            valid_loss = _number(record.get("valid_loss"))
            if valid_loss is not None:
                self.valid.append((float(epoch), valid_loss))
            self.valid_bits = _number(record.get("valid_bits"))
            seconds = _number(record.get("seconds"))
            if seconds is not None:
                self.epoch_seconds.append(seconds)
            train_loss = _number(record.get("train_loss"))
            if train_loss is not None and not any(x > epoch - 1 for x, _ in self.train):
                self.train.append((float(epoch), train_loss))  # no batch points: one per epoch
        elif kind == "batch":
            loss = _number(record.get("loss"))
            batch, batches = record.get("batch"), record.get("batches")
            if loss is None or not isinstance(batch, int) or not isinstance(batches, int) or batches <= 0:
                return
            x = epoch - 1 + batch / batches
            self._truncate(self.train, x)  # a repeated epoch's points replace the old ones
            self.train.append((x, loss))
            if len(self.train) > MAX_TRAIN_POINTS:
                self.train = self.train[::2]
            self.batch, self.batches = batch, batches

    def eta_seconds(self, epochs: int) -> float | None:
        """Time left for the planned epochs, from the last few epochs' durations (None before the first).

        Recent epochs only: the first one also pays for TensorFlow's tracing and would inflate it.
        """
        if not self.epoch_seconds:
            return None
        per_epoch = statistics.median(self.epoch_seconds[-3:])
        current = per_epoch * (1 - self.batch / self.batches) if self.batches else per_epoch
        return current + max(0, epochs - self.epochs_done - 1) * per_epoch

    @staticmethod
    def _truncate(points: list[tuple[float, float]], x: float) -> None:
        while points and points[-1][0] >= x:
            points.pop()


class RunWatcher:
    """Polls a RunStore: every run's status row, and the selected run's metrics (incrementally)."""

    def __init__(self, runs: RunStore) -> None:
        self.runs = runs
        self._tails: dict[str, MetricsTail] = {}

    def rows(self) -> list[RunRow]:
        rows = []
        for run in self.runs.list():
            try:
                summary = run.summary()  # a damaged run is a row of its own (state "damaged")
            except (WorkspaceError, OSError) as error:  # e.g. a folder that can't be read at all
                rows.append(RunRow(run.name, DAMAGED, 0, None, None, "", "", "", "", run.read_only, damaged=str(error)))
                continue
            rows.append(
                RunRow(
                    name=run.name,
                    state=str(summary["state"]),
                    epoch=int(summary.get("epoch") or 0),
                    epochs=summary.get("epochs"),
                    best_valid_loss=_number(summary.get("best_valid_loss")),
                    corpus=str(summary.get("corpus") or ""),
                    encoder=str(summary.get("encoder") or ""),
                    model=str(summary.get("model") or ""),
                    started=_short_time(summary.get("started")),
                    read_only=run.read_only,
                    damaged=(summary.get("damaged") or {}).get("message", ""),
                    started_at=str(summary.get("started") or ""),
                )
            )
        return rows

    def detail(self, name: str) -> RunDetail | None:
        try:
            run = self.runs.get(name)
        except WorkspaceError:
            return None
        tail = self._tails.get(name)
        if tail is None or tail.path != run.metrics_path:
            tail = self._tails[name] = MetricsTail(run.metrics_path)
        tail.read()
        damaged = run.damage()
        if damaged is not None:
            return RunDetail(name=name, state=DAMAGED, error=str(damaged))
        try:
            status = run.status()
            config = run.settings()
        except (WorkspaceError, OSError) as error:  # changed since `damage` looked
            return RunDetail(name=name, state=DAMAGED, error=str(error))
        state = str(status.get("state", "created"))
        epochs = config.get("epochs") if isinstance(config.get("epochs"), int) else None
        detail = RunDetail(
            name=name,
            state=state,
            train=list(tail.train),
            valid=list(tail.valid),
            epochs_done=max(tail.epochs_done, int(status.get("epoch") or 0)),
            epochs=epochs,
            batch=tail.batch,
            batches=tail.batches,
            valid_bits=tail.valid_bits,
            device=str(status.get("device") or ""),
            pieces_phase=str(status.get("pieces_phase") or ""),
            pieces_done=int(status.get("pieces_done") or 0),
            pieces_total=int(status.get("pieces_total") or 0),
            message=str(status.get("message") or ""),
            error=str(status.get("error") or ""),
        )
        if state in LIVE_STATES:
            ours = tail.eta_seconds(epochs) if epochs else None
            detail.eta_seconds = ours if ours is not None else _number(status.get("eta_seconds"))
        if state in LOG_WORTHY or detail.error:
            detail.log = _log_tail(run, self.runs.workspace.root / LOGS_FOLDER / f"{name}.log")
        return detail

    def forget(self, name: str) -> None:
        self._tails.pop(name, None)


def _log_tail(run: Run, launch_log: Path, lines: int = 6) -> str:
    """The end of the run's output: its own train.log if it has one, else the log the TUI launched it with."""
    path = run.log_path if run.log_path.exists() else launch_log
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _short_time(value: Any, today: dt.date | None = None) -> str:
    """'2025-11-20T23:30:00+00:00' in local time: 'HH:MM' if today, else 'MM-DD' (the table is narrow)."""
    if not isinstance(value, str) or not value:
        return ""
    try:
        stamp = dt.datetime.fromisoformat(value).astimezone()
    except ValueError:
        return value[:5]
    return stamp.strftime("%H:%M") if stamp.date() == (today or dt.date.today()) else stamp.strftime("%m-%d")


def format_duration(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
