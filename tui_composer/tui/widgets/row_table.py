"""A table that keeps its rows as data: columns fitted to the width, sorting, filtering and a row cap.

DataTable draws what it is given; RowTable decides what that is. Its columns take the width there is:
each has the least width it needs, the ones that `grow` share what is left (up to their longest value)
and, on a narrow terminal, the ones with a `drop` rank are left out, highest rank first (their values are
in the screen's detail pane). A value cut to fit ends in `…`. `o` sorts by the next column (and `O` turns
the order round), as does a click on a header; a filter keeps the rows with every typed word in some
column. At most `max_rows` rows are drawn (DataTable measures every cell it holds: 8,514 pieces take
seconds); the rest are reached by filtering, and `count_text` says so.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual import events, on
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable

WHOLE_MAX = 40  # a column that is never cut still stops growing here (a name can be 64 characters)


def plain(value: Any) -> str:
    """A value as a cell shows it: None as blank, everything else as str."""
    return "" if value is None else str(value)


@dataclass(frozen=True)
class Column:
    """How one column of a RowTable is laid out and shown."""

    key: str
    label: str
    width: int  # the least it gets while shown
    grow: int = 0  # takes room left over, up to its longest value; higher first
    drop: int = 0  # 0: always shown; otherwise left out on a narrow terminal, highest first
    whole: bool = False  # never cut: at least as wide as its longest value (up to WHOLE_MAX)
    format: Callable[[Any], str] = plain
    align: str = "left"


def sort_key(value: Any) -> tuple[tuple[int, float, str], ...]:
    """Numbers by value, text in natural order (`abc#2` before `abc#10`), blanks last."""
    if value is None or value == "":
        return ((2, 0.0, ""),)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return ((0, float(value), ""),)
    parts = re.split(r"(\d+)", str(value).casefold())
    return tuple((0, float(p), "") if p.isdigit() else (1, 0.0, p) for p in parts if p)


def layout(columns: Sequence[Column], longest: Mapping[str, int], room: int) -> list[tuple[Column, int]]:
    """The columns shown in `room` cells and their widths (each also takes 2 cells of padding)."""

    def least(column: Column) -> int:
        whole = min(longest.get(column.key, 0), WHOLE_MAX) if column.whole else 0
        return max(column.width, whole)

    shown = list(columns)
    while sum(least(c) + 2 for c in shown) > room and any(c.drop for c in shown):
        shown.remove(max((c for c in shown if c.drop), key=lambda c: c.drop))
    widths = {c.key: least(c) for c in shown}
    spare = room - sum(w + 2 for w in widths.values())
    for column in sorted((c for c in shown if c.grow), key=lambda c: -c.grow):
        if spare <= 0:
            break
        wanted = max(len(column.label) + 2, longest.get(column.key, 0)) - widths[column.key]
        if wanted > 0:
            widths[column.key] += min(wanted, spare)
            spare -= min(wanted, spare)
    return [(c, widths[c.key]) for c in shown]


class RowTable(DataTable[Text]):
    """A DataTable over rows of data (row key -> column key -> value); see the module docstring."""

    BINDINGS = [
        Binding("o", "sort_next", "Sort"),
        Binding("O", "sort_reverse", "Reverse sort", show=False),
    ]

    class Redrawn(Message):
        """The rows drawn changed (filtered, sorted, replaced): counts shown elsewhere may change."""

        def __init__(self, table: RowTable) -> None:
            super().__init__()
            self.table = table

        @property
        def control(self) -> RowTable:
            return self.table

    def __init__(self, columns: Sequence[Column], *, max_rows: int | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("cursor_type", "row")
        super().__init__(**kwargs)
        self.spec = list(columns)
        self.max_rows = max_rows
        self.records: dict[str, dict[str, Any]] = {}
        self.query_text = ""
        self.sort_column: str | None = None
        self.sort_reverse = False
        self.shown: list[str] = []  # the row keys drawn, in order
        self.matching = 0  # rows that pass the filter (drawn or beyond the cap)
        self._layout: list[tuple[Column, int]] = []

    # --- data ----------------------------------------------------------------------------------------

    def set_rows(self, rows: Iterable[tuple[str, Mapping[str, Any]]]) -> None:
        """Replace every row (in their given order, which is the order when unsorted)."""
        self.records = {key: dict(values) for key, values in rows}
        self.rebuild()

    def sync_rows(self, rows: Iterable[tuple[str, Mapping[str, Any]]]) -> None:
        """Take a fresh reading of the rows: changed cells are updated in place, new or gone rows rebuild."""
        fresh = {key: dict(values) for key, values in rows}
        if list(fresh) != list(self.records):
            self.set_rows(fresh.items())
            return
        changed_columns: set[str] = set()
        changed_rows: dict[str, list[str]] = {}
        for key, values in fresh.items():
            columns = [c for c, v in values.items() if self.records[key].get(c) != v]
            if columns:
                changed_rows[key] = columns
                changed_columns.update(columns)
        self.records = fresh
        if not changed_rows:
            return
        if self.sort_column in changed_columns or self.query_text or self._widths_changed():
            self.rebuild()  # the order, the rows that match or the widths may change
            return
        for key, columns in changed_rows.items():
            if key not in self.rows:
                continue
            for column, _ in self._layout:
                if column.key in columns:
                    self.update_cell(key, column.key, self._cell(column, self.records[key].get(column.key)))

    def update_value(self, key: str, column: str, value: Any) -> None:
        """Change one cell's value (e.g. a count that a worker has just read)."""
        if key not in self.records:
            return
        self.sync_rows((k, {**v, column: value} if k == key else v) for k, v in self.records.items())

    @property
    def selected_key(self) -> str | None:
        if not self.row_count:
            return None
        return str(self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value)

    def select(self, key: str) -> bool:
        """Move the cursor to a row, if it is drawn."""
        if key not in self.rows:
            return False
        self.move_cursor(row=self.get_row_index(key), animate=False)
        return True

    # --- filter and sort -----------------------------------------------------------------------------

    def set_filter(self, text: str) -> None:
        if text.strip() != self.query_text:
            self.query_text = text.strip()
            self.rebuild()

    def sort_by(self, column: str | None, reverse: bool | None = None) -> None:
        """Sort by a column (again on the same one: the other way round); None: the given order."""
        if reverse is None:
            reverse = not self.sort_reverse if column == self.sort_column and column is not None else False
        self.sort_column, self.sort_reverse = column, reverse
        self.rebuild()

    def action_sort_next(self) -> None:
        """The next column shown, and after the last one the given order again."""
        keys = [c.key for c, _ in self._layout]
        if self.sort_column not in keys:
            self.sort_by(keys[0] if keys else None, False)
        elif keys.index(self.sort_column) + 1 < len(keys):
            self.sort_by(keys[keys.index(self.sort_column) + 1], False)
        else:
            self.sort_by(None, False)
        self.notify(f"Sorted by {self.sort_label()}", timeout=2)

    def action_sort_reverse(self) -> None:
        if self.sort_column is not None:
            self.sort_by(self.sort_column, not self.sort_reverse)
            self.notify(f"Sorted by {self.sort_label()}", timeout=2)

    def sort_label(self) -> str:
        column = next((c for c in self.spec if c.key == self.sort_column), None)
        if column is None:
            return "the listed order"
        return f"{column.label} ({'descending' if self.sort_reverse else 'ascending'})"

    @on(DataTable.HeaderSelected)
    def _header_clicked(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        self.sort_by(str(event.column_key.value))

    def count_text(self, noun: str) -> str:
        """E.g. `12 of 8,514 pieces`, or `first 1,000 of 8,514 pieces: / to filter`."""
        total = len(self.records)
        if len(self.shown) < self.matching:
            return f"first {len(self.shown):,} of {self.matching:,} {noun}: / to filter"
        if self.query_text:
            return f"{self.matching:,} of {total:,} {noun}"
        return f"{total:,} {noun}"

    # --- drawing -------------------------------------------------------------------------------------

    def _keys_to_show(self) -> list[str]:
        keys = list(self.records)
        if self.query_text:
            words = self.query_text.casefold().split()
            keys = [k for k in keys if all(w in self._row_text(k) for w in words)]
        self.matching = len(keys)
        if self.sort_column is not None:
            column = self.sort_column
            keys.sort(key=lambda k: sort_key(self.records[k].get(column)), reverse=self.sort_reverse)
        return keys[: self.max_rows] if self.max_rows is not None else keys

    def _row_text(self, key: str) -> str:
        values = self.records[key]
        return " ".join(c.format(values.get(c.key)) for c in self.spec).casefold()

    def _longest(self, keys: Iterable[str]) -> dict[str, int]:
        longest = {c.key: 0 for c in self.spec}
        for key in keys:
            values = self.records[key]
            for column in self.spec:
                longest[column.key] = max(longest[column.key], len(column.format(values.get(column.key))))
        return longest

    def _room(self, rows: int) -> int:
        width = self.size.width or sum(c.width + 2 for c in self.spec)
        scrollbar = self.styles.scrollbar_size_vertical if rows + 1 > self.size.height else 0
        return width - scrollbar

    def _widths_changed(self) -> bool:
        return layout(self.spec, self._longest(self.shown), self._room(len(self.shown))) != self._layout

    def _label(self, column: Column) -> Text:
        arrow = (" ▼" if self.sort_reverse else " ▲") if column.key == self.sort_column else ""
        return Text(column.label + arrow, no_wrap=True, overflow="ellipsis")

    def _cell(self, column: Column, value: Any) -> Text:
        return Text(column.format(value), no_wrap=True, overflow="ellipsis", justify=column.align)  # type: ignore[arg-type]

    def rebuild(self) -> None:
        """Draw the rows again: filtered, sorted, capped, in columns fitted to the width now."""
        selected = self.selected_key
        self.shown = self._keys_to_show()
        self._layout = layout(self.spec, self._longest(self.shown), self._room(len(self.shown)))
        self.clear(columns=True)
        for column, width in self._layout:
            self.add_column(self._label(column), key=column.key, width=width)
        for key in self.shown:
            values = self.records[key]
            self.add_row(*(self._cell(c, values.get(c.key)) for c, _ in self._layout), key=key)
        if selected is not None:
            self.select(selected)
        self.post_message(self.Redrawn(self))

    def on_resize(self, event: events.Resize) -> None:
        if self._widths_changed():
            self.rebuild()
