"""Small modal dialogs: confirm, import a folder, export samples. Each dismisses with its answer."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from tui_composer.services.workspace import WorkspaceError, check_name
from tui_composer.tui.widgets.path_input import PathInput


class ConfirmDialog(ModalScreen[bool]):
    """A yes/no question; `y` or Enter confirm, `n` or Escape cancel."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str, confirm: str = "Yes") -> None:
        super().__init__()
        self.question = question
        self.confirm = confirm

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.question, classes="dialog-text")
            with Horizontal(classes="dialog-buttons"):
                yield Button(f"{self.confirm} (y)", variant="error", id="yes", compact=True)
                yield Button("Cancel (n)", id="no", compact=True)

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


@dataclass(frozen=True)
class ImportRequest:
    path: Path
    name: str
    licence: str


def corpus_name_for(path: Path) -> str:
    """A corpus name from a folder name: the characters a name allows, others as '-'."""
    stem = path.expanduser().resolve().name if str(path).strip() else ""
    name = "".join(c if c.isalnum() or c in "._-" else "-" for c in (path.stem if path.is_file() else stem))
    return name.strip("-._")[:64]


class ImportDialog(ModalScreen[ImportRequest | None]):
    """Import a file or folder of music as a new corpus."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static("Import a file or folder of .abc, .mid, .xml or .mxl files", classes="dialog-title")
            yield Label("Path (→ completes)")
            yield PathInput(placeholder="~/music/tunes", id="import-path", compact=True)
            yield Label("Corpus name")
            yield Input(placeholder="from the folder name", id="import-name", compact=True)
            yield Label("Licence of the music (optional)")
            yield Input(id="import-licence", compact=True)
            yield Static("", id="import-error", classes="dialog-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Import (enter)", variant="primary", id="import", compact=True)
                yield Button("Cancel (esc)", id="cancel", compact=True)

    @on(Input.Changed, "#import-path")
    def _suggest_name(self, event: Input.Changed) -> None:
        name_input = self.query_one("#import-name", Input)
        name_input.placeholder = corpus_name_for(Path(event.value)) if event.value.strip() else "from the folder name"

    @on(Input.Submitted)
    @on(Button.Pressed, "#import")
    def _submit(self) -> None:
        path = self.query_one("#import-path", PathInput).path
        name = self.query_one("#import-name", Input).value.strip() or corpus_name_for(path)
        error = self.query_one("#import-error", Static)
        if not str(path).strip() or not path.exists():
            error.update(f"{path} does not exist; type the path of a music file or a folder of them")
            return
        try:
            check_name(name, "corpus")
        except WorkspaceError as problem:
            error.update(str(problem))
            return
        self.dismiss(ImportRequest(path, name, self.query_one("#import-licence", Input).value.strip()))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


class ExportDialog(ModalScreen[Path | None]):
    """Where to copy samples' .abc and .mid files."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, what: str, default: Path) -> None:
        super().__init__()
        self.what = what
        self.default = default

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(f"Export {self.what} (.abc and .mid) to a folder", classes="dialog-title")
            yield Label("Folder (created if missing; → completes)")
            yield PathInput(str(self.default), id="export-path", compact=True)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Export (enter)", variant="primary", id="export", compact=True)
                yield Button("Cancel (esc)", id="cancel", compact=True)

    @on(Input.Submitted)
    @on(Button.Pressed, "#export")
    def _submit(self) -> None:
        self.dismiss(self.query_one("#export-path", PathInput).path)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
