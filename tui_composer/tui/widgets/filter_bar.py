"""The `/` filter over a RowTable: rows with every typed word stay; Enter keeps it, Esc clears it."""

from __future__ import annotations

from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.timer import Timer
from textual.widgets import Input, Label

from tui_composer.tui.widgets.row_table import RowTable

TYPING_PAUSE = 0.12  # seconds after the last key before filtering: 8,514 pieces are searched per filter


class FilterBar(Horizontal):
    DEFAULT_CSS = """
    FilterBar {
        display: none;
        height: 1;
        &.-open { display: block; }
        & > Label { width: 2; color: $text-accent; text-style: bold; }
        & > Input { width: 1fr; }
        & > .filter-count { width: auto; padding-left: 1; color: $text-muted; }
    }
    """
    BINDINGS = [Binding("escape", "close", "Clear filter")]

    def __init__(self, table: RowTable, noun: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.table = table
        self.noun = noun
        self._timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield Label("/")
        words = Input(placeholder="words in any column", compact=True, select_on_focus=False)
        words.can_focus = False  # while closed: Tab and the screen's first focus pass it by
        yield words
        yield Label("", classes="filter-count")

    def open(self) -> None:
        self.add_class("-open")
        words = self.query_one(Input)
        words.can_focus = True
        words.focus()
        self.show_count()

    def show_count(self) -> None:
        self.query_one(".filter-count", Label).update(self.table.count_text(self.noun))

    @on(Input.Changed)
    def _typed(self, event: Input.Changed) -> None:
        event.stop()
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(TYPING_PAUSE, self.apply)

    def apply(self) -> None:
        """Filter now (also called by the pause timer)."""
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        self.table.set_filter(self.query_one(Input).value)
        self.show_count()

    @on(Input.Submitted)
    def _keep(self, event: Input.Submitted) -> None:
        event.stop()
        self.apply()
        self.table.focus()

    def action_close(self) -> None:
        self.query_one(Input).value = ""
        self.apply()
        self.remove_class("-open")
        self.query_one(Input).can_focus = False
        self.table.focus()
