"""`?`: every key of every screen, read from the bindings themselves so it never disagrees with them."""

from __future__ import annotations

import importlib
from collections.abc import Iterable

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

# Keys that are not any one screen's bindings, or that Textual's widgets bring (Tab, arrows, the palette).
GENERAL = (
    ("F1 … F5", "Corpora, New run, Runs, Samples, Plugins"),
    ("tab / shift+tab", "next / previous field"),
    ("↑ ↓ pgup pgdn", "move in a list; enter opens a list of choices"),
    ("ctrl+p", "command palette: every action of every screen"),
    ("?", "this help"),
    ("esc", "close a dialog, a filter, the keys panel, a preview"),
    ("ctrl+q", "quit (trainings go on in the background)"),
)
TABLE_KEYS = (
    ("o / O", "sort by the next column / reverse (or click a header)"),
    ("/", "filter by the words typed (enter keeps, esc clears)"),
)
# (title, module, class): the screens in F-key order, imported here only to read their bindings.
SCREENS = (
    ("F1 Corpora", "corpora", "CorporaScreen"),
    ("F2 New run", "new_run", "NewRunScreen"),
    ("F3 Runs", "runs", "RunsScreen"),
    ("F4 Samples", "samples", "SamplesScreen"),
    ("F5 Plugins", "plugins", "PluginsScreen"),
)
KEY_NAMES = {"slash": "/", "question_mark": "?", "escape": "esc", "space": "space"}


def key_text(keys: str) -> str:
    """`slash` as `/`, `escape,q` as `esc / q`."""
    return " / ".join(KEY_NAMES.get(key.strip(), key.strip()) for key in keys.split(","))


def described(bindings: Iterable[BindingType]) -> list[tuple[str, str]]:
    rows = []
    for binding in bindings:
        if isinstance(binding, Binding):
            rows.append((key_text(binding.key), binding.description))
        else:
            key, _action, *description = binding
            rows.append((key_text(key), description[0] if description else ""))
    return [(key, text) for key, text in rows if text]


def help_text() -> str:
    def section(title: str, rows: Iterable[tuple[str, str]]) -> list[str]:
        return [f"[b]{escape(title)}[/b]", *(f"  [b $accent]{escape(k):<22}[/] {escape(t)}" for k, t in rows), ""]

    lines = section("Everywhere", GENERAL) + section("Lists", TABLE_KEYS)
    for title, module, name in SCREENS:
        screen = getattr(importlib.import_module(f"tui_composer.tui.screens.{module}"), name)
        lines += section(title, described(screen.BINDINGS))
    return "\n".join(lines).rstrip()


class HelpScreen(ModalScreen[None]):
    """The keys of the app and of each screen; Esc, q or ? closes it."""

    BINDINGS = [Binding("escape,q,question_mark", "close", "Close")]
    DEFAULT_CSS = """
    HelpScreen {
        align: center middle;
        & > VerticalScroll {
            width: 84;
            max-width: 100%;
            height: 100%;
            padding: 0 1;
            border: round $primary;
            border-title-align: center;
            background: $surface;
        }
    }
    """

    def compose(self) -> ComposeResult:
        with VerticalScroll() as scroll:
            scroll.border_title = "Keys (esc closes)"
            yield Static(help_text(), id="help-text")

    def on_mount(self) -> None:
        self.query_one(VerticalScroll).focus()

    def action_close(self) -> None:
        self.dismiss(None)
