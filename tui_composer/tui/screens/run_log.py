"""A run's log, full screen: the run folder's train.log, followed as the training writes to it.

Every training writes there, started from the TUI or from a shell (`tui_composer.services.runlog`); a run
started by an older TUI has its log in the workspace's `logs/RUN.log`, which is shown instead.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, cast

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import ModalScreen
from textual.widgets import Footer, Log, Static

from tui_composer.services.launcher import LOGS_FOLDER
from tui_composer.services.workspace import WorkspaceError

if TYPE_CHECKING:
    from tui_composer.tui.app import ComposerApp

FOLLOW_SECONDS = 1.0
MAX_LOG_BYTES = 256 * 1024  # read from the end of a long log; the rest is in the file
MAX_LOG_LINES = 20_000  # lines kept while following (the oldest go first)


def human_size(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MB" if size >= 1024 * 1024 else f"{size / 1024:.0f} KB"


class RunLogScreen(ModalScreen[None]):
    """`l` on Runs: the selected run's log; Esc or q closes it."""

    BINDINGS = [
        Binding("escape,q,l", "close", "Close"),
        Binding("end", "follow", "Follow the end", show=False),
    ]
    DEFAULT_CSS = """
    RunLogScreen {
        background: $background;
        & > #log-title { height: auto; padding: 0 1; background: $panel; text-style: bold; }
        & > Log { height: 1fr; }
    }
    """

    def __init__(self, run: str) -> None:
        super().__init__()
        self.run_name = run
        self.path: Path | None = None
        self.read_to = 0

    def compose(self) -> ComposeResult:
        yield Static(f"Log of {self.run_name}", id="log-title", markup=False)
        yield Log(max_lines=MAX_LOG_LINES, highlight=False, auto_scroll=True)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.path = self._find()
        title = self.query_one("#log-title", Static)
        if self.path is None:
            title.update(
                f"Log of {self.run_name}: none yet (a training writes runs/{self.run_name}/train.log as it starts)"
            )
        else:
            title.update(f"Log of {self.run_name} · {self.path}")
        self._read()
        self.set_interval(FOLLOW_SECONDS, self._read)
        self.query_one(Log).focus()

    def _find(self) -> Path | None:
        app = cast("ComposerApp", self.app)
        candidates: list[Path] = []
        with contextlib.suppress(WorkspaceError):  # still launching: no run folder yet
            candidates.append(app.studio.runs.get(self.run_name).log_path)
        candidates.append(app.studio.workspace.root / LOGS_FOLDER / f"{self.run_name}.log")
        return next((path for path in candidates if path.is_file()), None)

    def _read(self) -> None:
        """What was appended since the last read (a launch log moved into the run folder: found again)."""
        if self.path is None or not self.path.is_file():
            found = self._find()
            if found is None:
                return
            if found != self.path:
                self.path, self.read_to = found, 0
                self.query_one("#log-title", Static).update(f"Log of {self.run_name} · {found}")
        assert self.path is not None
        log = self.query_one(Log)
        try:
            size = self.path.stat().st_size
            if size < self.read_to:  # replaced: read it again
                log.clear()
                self.read_to = 0
            if size == self.read_to:
                return
            start = max(self.read_to, size - MAX_LOG_BYTES)
            with open(self.path, "rb") as handle:
                handle.seek(start)
                chunk = handle.read(size - start)
        except OSError as error:
            log.write_line(f"(could not read {self.path}: {error.strerror or error})")
            return
        end = chunk.rfind(b"\n") + 1
        if end == 0 and len(chunk) < MAX_LOG_BYTES:
            return  # a half-written line waits for the next read
        end = end or len(chunk)
        begin = 0
        if start > self.read_to:  # skipped the start of a long log: from the first whole line on
            begin = chunk.find(b"\n") + 1
            self.query_one("#log-title", Static).update(
                f"Log of {self.run_name} · the last {human_size(MAX_LOG_BYTES)} of {human_size(size)} · {self.path}"
            )
        self.read_to = start + end
        log.write_lines(chunk[begin:end].decode("utf-8", errors="replace").splitlines())

    def action_follow(self) -> None:
        self.query_one(Log).scroll_end(animate=False)

    def action_close(self) -> None:
        self.dismiss(None)
