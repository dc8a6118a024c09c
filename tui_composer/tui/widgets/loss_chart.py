"""Training and validation loss drawn with braille dots (2 x 4 per character), axes labelled in text."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import groupby, pairwise

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

Points = Sequence[tuple[float, float]]
AXIS_WIDTH = 7
# Bit of each dot in a braille cell, by (column, row) within the cell.
_DOT_BITS = ((0x01, 0x02, 0x04, 0x40), (0x08, 0x10, 0x20, 0x80))


def _line(x0: int, y0: int, x1: int, y1: int) -> list[tuple[int, int]]:
    """Dots from (x0, y0) to (x1, y1), both ends included (Bresenham)."""
    dots = []
    dx, dy = abs(x1 - x0), -abs(y1 - y0)
    sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
    error = dx + dy
    while True:
        dots.append((x0, y0))
        if x0 == x1 and y0 == y1:
            return dots
        double = 2 * error
        if double >= dy:
            error += dy
            x0 += sx
        if double <= dx:
            error += dx
            y0 += sy


def _thin(dots: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """One dot per dot column (the mean height of the points that fall in it): a long training's
    thousands of batch points cost no more to draw than the chart has columns."""
    columns: dict[int, list[int]] = {}
    for x, y in dots:
        columns.setdefault(x, []).append(y)
    return [(x, round(sum(ys) / len(ys))) for x, ys in columns.items()]


def _label(value: float) -> str:
    """The value in at most AXIS_WIDTH - 2 characters (a longer one pushed its row past the chart's width
    and the epoch axis off the bottom), with as many significant digits as fit."""
    width = AXIS_WIDTH - 2
    for text in (f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}", f"{value:.2g}", f"{value:.1g}"):
        if len(text) <= width:
            return text
    return f"{value:.0e}".replace("e-0", "e-").replace("e+0", "e")[:width]


class LossChart(Widget):
    """Loss against epochs: the training curve (per batch when known) and validation (per epoch)."""

    COMPONENT_CLASSES = {"loss-chart--train", "loss-chart--valid", "loss-chart--axis"}

    DEFAULT_CSS = """
    LossChart {
        height: 1fr;
        min-height: 4;
        /* Hues that stay apart on 16-colour terminals too (green and red there). */
        & > .loss-chart--train { color: $success; }
        & > .loss-chart--valid { color: $warning; }
        & > .loss-chart--axis { color: $text-muted; }
    }
    """

    train: reactive[tuple[tuple[float, float], ...]] = reactive(())
    valid: reactive[tuple[tuple[float, float], ...]] = reactive(())
    epochs: reactive[int] = reactive(0)  # planned epochs: the x axis spans them from the start

    def plot(self, train: Points, valid: Points, epochs: int | None) -> None:
        """Replace the curves; repaints only when something changed (reactives compare values)."""
        self.epochs = epochs or 0
        self.train = tuple(train)
        self.valid = tuple(valid)

    def render(self) -> Text:
        axis = self.get_component_rich_style("loss-chart--axis")
        width, height = self.size.width, self.size.height
        if not self.train and not self.valid:
            return Text("no loss recorded yet", style=axis, justify="center")
        if width <= AXIS_WIDTH + 2 or height < 3:
            return Text("")
        columns, rows = width - AXIS_WIDTH, height - 1
        values = [y for _, y in (*self.train, *self.valid)]
        low, high = min(values), max(values)
        if high - low < 1e-9:
            low, high = low - 0.5, high + 0.5
        x_end = max(float(self.epochs), *(x for x, _ in (*self.train, *self.valid)), 1.0)
        dot_w, dot_h = columns * 2, rows * 4

        def to_dot(x: float, y: float) -> tuple[int, int]:
            dx = round(x / x_end * (dot_w - 1))
            dy = round((high - y) / (high - low) * (dot_h - 1))
            return min(max(dx, 0), dot_w - 1), min(max(dy, 0), dot_h - 1)

        layers = []
        for points in (self.train, self.valid):
            cells: dict[tuple[int, int], int] = {}
            dots = _thin([to_dot(x, y) for x, y in points])
            path = [dots[0]] if len(dots) == 1 else []
            for start, end in pairwise(dots):
                path += _line(*start, *end)
            for dx, dy in path:
                key = (dy // 4, dx // 2)
                cells[key] = cells.get(key, 0) | _DOT_BITS[dx % 2][dy % 4]
            layers.append(cells)
        train_cells, valid_cells = layers
        # Each epoch's validation loss is also marked with a dot: readable without colour.
        markers = {(dy // 4, dx // 2) for dx, dy in (to_dot(x, y) for x, y in self.valid)}

        train_style = self.get_component_rich_style("loss-chart--train")
        valid_style = self.get_component_rich_style("loss-chart--valid")
        text = Text(no_wrap=True, overflow="crop")
        for row in range(rows):
            if row == 0:
                label = _label(high)
            elif row == rows - 1:
                label = _label(low)
            else:
                label = ""
            text.append(f"{label:>{AXIS_WIDTH - 2}} ┤" if label else " " * (AXIS_WIDTH - 1) + "│", style=axis)
            row_cells: list[tuple[str, bool]] = []
            for column in range(columns):
                bits_valid = valid_cells.get((row, column), 0)
                bits = train_cells.get((row, column), 0) | bits_valid
                if (row, column) in markers:
                    row_cells.append(("•", True))
                else:
                    row_cells.append((chr(0x2800 + bits) if bits else " ", bool(bits_valid)))
            # One append per run of equally styled cells: appending cell by cell costs most of a repaint.
            for is_valid, run in groupby(row_cells, key=lambda cell: cell[1]):
                text.append("".join(char for char, _ in run), style=valid_style if is_valid else train_style)
            text.append("\n")
        text.append(" " * (AXIS_WIDTH - 1) + "└", style=axis)
        legend = Text.assemble(("━ train", train_style), "  ", ("•─ valid", valid_style))
        end_label = f"epoch {_label(x_end)}"
        gap = max(1, columns - len("0") - legend.cell_len - len(end_label) - 2)
        text.append("0", style=axis)
        text.append(" " * (gap // 2))
        text.append_text(legend)
        text.append(" " * (gap - gap // 2))
        text.append(end_label, style=axis)
        return text
