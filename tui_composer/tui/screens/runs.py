"""Runs: every run with its state; the selected one's live loss chart and progress; stop, resume, delete.

Also its log (`l`, the run folder's train.log however the run was started) and a new run with its
settings (`c`, into New run).
"""

from __future__ import annotations

from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.events import ScreenResume
from textual.widgets import DataTable, ProgressBar, Static

from tui_composer.services.launcher import resume_training, stop_training
from tui_composer.services.runs import LIVE_STATES, RunState
from tui_composer.services.workspace import WorkspaceError
from tui_composer.tui.messages import RunsPolled, TrainingLaunched
from tui_composer.tui.runwatch import (
    DONE_STATES,
    LAUNCHING,
    RunDetail,
    RunRow,
    RunWatcher,
    _short_time,
    format_duration,
)
from tui_composer.tui.screens.base import ComposerScreen
from tui_composer.tui.screens.dialogs import ConfirmDialog
from tui_composer.tui.screens.run_log import RunLogScreen
from tui_composer.tui.widgets.filter_bar import FilterBar
from tui_composer.tui.widgets.loss_chart import LossChart
from tui_composer.tui.widgets.row_table import Column, RowTable

POLL_SECONDS = 0.5


def _loss(value: float | None) -> str:
    return f"{value:.3f}" if value is not None else "-"


# At 80 columns the corpus and the start time give way (the line under the title has them).
RUN_COLUMNS = (
    Column("name", "run", 12, whole=True),
    Column("state", "status", 11),
    Column("epoch", "epoch", 5, align="right"),
    Column("best", "best", 6, format=_loss, align="right"),
    Column("pair", "encoder/model", 13, whole=True),
    Column("corpus", "corpus", 7, grow=1, drop=2),
    Column("started", "start", 5, format=_short_time, drop=1),
)


def epochs_cell(row: RunRow) -> str:
    """`2/5` while a run has epochs ahead of it; a finished run's epochs alone (it may stop before the plan)."""
    if row.state in DONE_STATES or not row.epochs:
        return str(row.epoch)
    return f"{row.epoch}/{row.epochs}"


class RunsScreen(ComposerScreen):
    MODE = "runs"
    BINDINGS = [
        Binding("s", "stop", "Stop"),
        Binding("r", "resume", "Resume"),
        Binding("d", "delete", "Delete"),
        Binding("g", "samples", "Sample"),
        Binding("l", "log", "Log"),
        Binding("c", "clone", "Clone"),
        Binding("slash", "filter", "Filter"),
    ]
    PALETTE = (
        ("Stop run", "Stop the selected run's training (it checkpoints first) (s)", "stop"),
        ("Resume run", "Continue the selected run's training from its last checkpoint (r)", "resume"),
        ("Delete run", "Delete the selected run and its files (d)", "delete"),
        ("Sample from run", "Open Samples for the selected run (g)", "samples"),
        ("Run log", "Show the selected run's train.log, following it as it grows (l)", "log"),
        ("New run from this one", "Copy the selected run's settings into New run (c)", "clone"),
        ("Filter runs", "Keep the runs with every typed word in some column (/)", "filter"),
    )

    def __init__(self) -> None:
        super().__init__()
        self.watcher: RunWatcher | None = None
        self.selected = ""
        self.rows: dict[str, RunRow] = {}
        self._polling = False
        self._follow = ""
        self.table = RowTable(RUN_COLUMNS, id="runs", zebra_stripes=True)
        self._log_text = ""  # what the log line shows (blanked for a moment after a highlight)

    def compose_body(self) -> ComposeResult:
        yield FilterBar(self.table, "runs", id="runs-filter")
        yield self.table
        with Vertical(id="run-detail"):
            yield Static("No run selected. Start one from New run (F2).", id="run-title", markup=False)
            with Horizontal(id="run-progress-line"):
                yield ProgressBar(total=1.0, show_eta=False, show_percentage=True, id="run-progress")
                yield Static("", id="run-eta")
            yield Static("", id="run-about", markup=False)
            yield LossChart(id="loss")
            yield Static("", id="run-log", markup=False)

    def on_mount(self) -> None:
        self.watcher = RunWatcher(self.studio.runs)
        self.set_interval(POLL_SECONDS, self.poll)

    def on_screen_resume(self, event: ScreenResume | None = None) -> None:
        super().on_screen_resume()  # no event: the base restyles, as coming back here needs
        self.poll()

    def follow(self, name: str) -> None:
        """Select `name` as soon as it appears (a run just launched creates its folder a moment later)."""
        self._follow = name
        self.selected = name
        self.poll()

    # --- polling -----------------------------------------------------------------------------------

    def poll(self) -> None:
        if self._polling or not self.is_current:
            return
        self._polling = True
        self._read_runs(self.selected)

    @work(thread=True, group="poll")
    def _read_runs(self, selected: str) -> None:
        try:
            assert self.watcher is not None
            rows = self.watcher.rows()
            rows += self.composer.launching_rows({r.name for r in rows})
            detail = self.watcher.detail(selected) if selected else None
            self.post_message(RunsPolled(rows, detail))
        finally:
            self._polling = False

    def on_runs_polled(self, message: RunsPolled) -> None:
        table = self.table
        self.rows = {row.name: row for row in message.rows}
        table.sync_rows((row.name, self._cells(row)) for row in message.rows)
        if self._follow and table.select(self._follow):
            self._follow = ""
        if not self.selected and table.row_count:
            self.selected = table.selected_key or ""
        if message.detail is not None and message.detail.name == self.selected:
            self._show_detail(message.detail)
        elif self.selected in self.rows and self.rows[self.selected].state == LAUNCHING:
            self._show_launching(self.rows[self.selected])

    def _cells(self, row: RunRow) -> dict[str, Any]:
        return {
            "name": row.name + (" (ro)" if row.read_only else ""),
            "state": row.state,
            "epoch": epochs_cell(row),
            "best": row.best_valid_loss,
            "pair": row.pair if row.encoder or row.model else "",
            "corpus": row.corpus,
            "started": row.started_at,
        }

    @on(DataTable.RowHighlighted, "#runs")
    def _run_highlighted(self, event: DataTable.RowHighlighted) -> None:
        name = str(event.row_key.value)
        if name == self.selected:
            return
        self.selected = name
        row = self.rows.get(name)
        # Show what is known at once; the rest follows with the next poll (started right away). Nothing of
        # the run shown before may stay: its ETA beside a finished run's bar read as that run's.
        self._text("#run-title", f"{name}  {row.state if row else ''}")
        self.query_one("#run-progress", ProgressBar).update(progress=0)
        self._text("#run-eta", "")
        self._text("#run-about", self._about(row) if row else "")
        self.query_one(LossChart).plot((), (), None)
        self._text("#run-eta", "")  # the ETA and device of the run shown before
        self._blank_log()
        self.call_after_refresh(self.poll)  # the title first, then the files

    def _about(self, row: RunRow) -> str:
        """The line under the progress bar: what the table leaves out at 80 columns."""
        parts = [f"corpus {row.corpus}" if row.corpus else "", row.pair if row.encoder else ""]
        if row.started_at:
            parts.append(f"started {row.started_at[:16].replace('T', ' ')}")
        if row.read_only:
            parts.append("shipped, read-only")
        return " · ".join(part for part in parts if part)

    def _show_detail(self, detail: RunDetail) -> None:
        parts = [detail.name, detail.state]
        # Before its first epoch a run reads and encodes its corpus: minutes for a big one the first time.
        reading = detail.state == RunState.STARTING and detail.pieces_total > 0
        if reading:
            parts.append(f"{detail.pieces_phase} {detail.pieces_done}/{detail.pieces_total} pieces")
        elif detail.state in LIVE_STATES and detail.epochs:
            parts.append(f"epoch {min(detail.epochs_done + 1, detail.epochs)}/{detail.epochs}")
            if detail.batches:
                parts.append(f"batch {detail.batch}/{detail.batches}")
        elif detail.state in DONE_STATES:
            # It may have stopped before the planned epochs (time limit, early stopping): its message says.
            planned = f" of {detail.epochs}" if detail.epochs and detail.epochs_done < detail.epochs else ""
            parts.append(f"{detail.epochs_done}{planned} epochs")
        elif detail.epochs:
            parts.append(f"epoch {detail.epochs_done}/{detail.epochs}")
        if detail.valid:
            best = min(loss for _, loss in detail.valid)
            bits = f" ({detail.valid_bits:.2f} bits)" if detail.valid_bits is not None else ""
            parts.append(f"best val {best:.3f}{bits}")
        self._text("#run-title", "  ".join(parts))
        fraction = detail.pieces_done / detail.pieces_total if reading else detail.fraction
        self.query_one("#run-progress", ProgressBar).update(progress=fraction)
        eta = f"ETA {format_duration(detail.eta_seconds)}" if detail.eta_seconds is not None else ""
        # Beside the bar, not in the title: the title is one line and already full at 80 columns.
        device = f"device: {detail.device}" if detail.device else ""
        self._text("#run-eta", "  ".join(part for part in (eta, device) if part))
        row = self.rows.get(detail.name)
        self._text("#run-about", self._about(row) if row else "")
        # While it trains the x axis spans the planned epochs; once done, those it trained (a time limit or
        # early stopping may end a run at 24 of 1000, whose curve would sit in the chart's first column).
        done = detail.state in DONE_STATES and detail.epochs_done
        self.query_one(LossChart).plot(detail.train, detail.valid, detail.epochs_done if done else detail.epochs)
        hint = ""
        if detail.state == RunState.INTERRUPTED:
            hint = "Its process is gone: press r to resume from the last checkpoint."
        elif detail.state == RunState.STOPPED:
            hint = "Stopped: press r to resume."
        elif detail.state == RunState.FAILED:
            hint = "Failed (l: the whole log):"
        # The trainer's own message, unless it only repeats the hint (e.g. "stopped; resume with --resume").
        message = detail.message if detail.state not in (RunState.TRAINING, RunState.STOPPED) else ""
        lines = [hint, message, detail.error, detail.log]
        self._show_log("\n".join(line for line in lines if line))

    def _text(self, selector: str, text: str, layout: bool = False) -> None:
        """Static.update lays the whole screen out again, even for the same text, and a poll every half second
        mostly brings the same text: only a change is drawn, and the one-line fields (their size fixed by the
        stylesheet) without a layout. Under load those layouts kept keys waiting for seconds."""
        static = self.query_one(selector, Static)
        if static.content != text:
            static.update(text, layout=layout)

    def _show_log(self, text: str) -> None:
        log = self.query_one("#run-log", Static)
        same_lines = text == self._log_text  # blanked by a highlight, and the same again: the same height
        self._log_text = text
        if log.content != text:
            log.update(text, layout=not same_lines)  # its height follows its lines
        log.set_class(bool(text), "-shown")

    def _blank_log(self) -> None:
        """On a highlight: nothing of the run shown before stays, and nothing moves until the next poll (an
        arrow key held down would otherwise lay the screen out twice per row)."""
        self.query_one("#run-log", Static).update("", layout=False)

    def _show_launching(self, row: RunRow) -> None:
        self._text("#run-title", f"{row.name}  {row.state}…")
        launched = self.composer.launched.get(row.name)
        if launched is not None:
            self._show_log(launched.log_tail())

    # --- actions -----------------------------------------------------------------------------------

    def _selected_run(self) -> str | None:
        if not self.selected or self.selected not in self.rows:
            self.notify("Select a run first (Runs, F3)", severity="warning")
            return None
        return self.selected

    def action_filter(self) -> None:
        self.query_one("#runs-filter", FilterBar).open()

    def action_stop(self) -> None:
        name = self._selected_run()
        if name is None:
            return
        try:
            pid = stop_training(self.studio.runs.get(name))
        except WorkspaceError as error:
            self.notify(str(error), severity="warning")
            return
        self.notify(f"Asked {name} (pid {pid}) to stop; it saves a checkpoint first.")

    def action_resume(self) -> None:
        name = self._selected_run()
        if name is None:
            return
        try:
            launched = resume_training(self.studio.workspace, self.studio.runs.get(name))
        except (WorkspaceError, OSError) as error:
            self.notify(str(error), severity="warning")
            return
        self.composer.track(launched)
        self.post_message(TrainingLaunched(name, launched.pid))

    def on_training_launched(self, message: TrainingLaunched) -> None:
        self.notify(f"Resuming {message.run} (pid {message.pid})")
        self.poll()

    def action_delete(self) -> None:
        name = self._selected_run()
        if name is None:
            return
        row = self.rows[name]
        if row.read_only:
            self.notify(f"{name} ships with tui-composer and can't be deleted", severity="warning")
            return
        if row.state in LIVE_STATES:
            self.notify(f"{name} is training; stop it (s) before deleting it", severity="warning")
            return

        def answered(yes: bool | None) -> None:
            if not yes:
                return
            try:
                self.studio.runs.delete(name)
            except WorkspaceError as error:
                self.notify(str(error), severity="error")
                return
            if self.watcher is not None:
                self.watcher.forget(name)
            self.selected = ""
            self.notify(f"Deleted {name}")
            self.poll()

        self.app.push_screen(ConfirmDialog(f"Delete run {name} and all its files?", "Delete"), answered)

    async def action_samples(self) -> None:
        name = self._selected_run()
        if name is not None:
            await self.composer.show_samples(name)

    def action_log(self) -> None:
        name = self._selected_run()
        if name is not None:
            self.app.push_screen(RunLogScreen(name))

    async def action_clone(self) -> None:
        name = self._selected_run()
        if name is None:
            return
        try:
            settings = self.studio.runs.get(name).settings()
        except (WorkspaceError, OSError) as error:
            self.notify(f"Can't copy the settings of {name}: {error}", severity="error")
            return
        await self.composer.new_run_from(name, settings)
