"""An import as it runs: `tui-composer corpus import` in a subprocess, its `parsing N/M pieces` lines as a
progress bar in a small dialog. Esc hides the dialog; the import goes on and a note says when it is done."""

from __future__ import annotations

import re
import subprocess
import threading
from collections.abc import Callable, Sequence

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import ProgressBar, Static

from tui_composer.services.launcher import CommandFailed, child_env, cli_argv
from tui_composer.services.workspace import Workspace

IMPORT_TIMEOUT = 3600.0  # one import at most an hour (250,000 files are allowed); stopped after that
_PARSING = re.compile(r"^parsing (\d+)/(\d+) pieces$")


def run_import(workspace: Workspace, arguments: Sequence[str], progress: Callable[[int, int], None]) -> str:
    """Run `tui-composer corpus import ...`, calling `progress(done, total)` for each progress line it writes
    on stderr; its stdout, or CommandFailed with its error line."""
    process = subprocess.Popen(
        cli_argv(workspace, *arguments),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_env(workspace),
        text=True,
        encoding="utf-8",
        errors="replace",
        start_new_session=True,
    )
    assert process.stderr is not None and process.stdout is not None
    report: list[str] = []  # read beside stderr: a long list of skipped files would fill the pipe
    reader = threading.Thread(target=lambda: report.append(process.stdout.read()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    deadline = threading.Timer(IMPORT_TIMEOUT, process.kill)
    deadline.daemon = True
    deadline.start()
    other: list[str] = []
    for line in process.stderr:
        match = _PARSING.match(line.strip())
        if match:
            progress(int(match.group(1)), int(match.group(2)))
        elif line.strip():
            other = [*other[-20:], line.strip()]
    code = process.wait()
    reader.join()
    if not deadline.is_alive() and code != 0:
        raise CommandFailed(f"the import took longer than {IMPORT_TIMEOUT:g} s and was stopped")
    deadline.cancel()
    if code != 0:
        errors = [line.removeprefix("Error:").strip() for line in other if line.startswith("Error:")]
        raise CommandFailed((errors or other or [f"tui-composer corpus import exited with {code}"])[-1])
    return "".join(report)


class ImportProgressDialog(ModalScreen[None]):
    """What an import has done so far; the corpora screen feeds it with `show`."""

    BINDINGS = [Binding("escape", "hide", "Hide (the import goes on)")]

    def __init__(self, what: str) -> None:
        super().__init__()
        self.what = what

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(f"Importing {self.what}", classes="dialog-title", markup=False)
            yield ProgressBar(total=None, show_eta=False, id="import-bar")
            yield Static("reading the files…", id="import-progress", markup=False)
            yield Static("esc: hide (the import goes on; a note says when it is done)", classes="dialog-text")

    def show(self, done: int, total: int) -> None:
        if not self.is_mounted:
            return
        self.query_one("#import-bar", ProgressBar).update(total=max(total, 1), progress=done)
        self.query_one("#import-progress", Static).update(f"parsed {done} of {total} pieces")

    def action_hide(self) -> None:
        self.dismiss(None)
