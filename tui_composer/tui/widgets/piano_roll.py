"""A piano roll drawn with block characters: time runs left to right, pitch bottom to top."""

from __future__ import annotations

import math
from collections.abc import Sequence

from rich.style import Style
from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from tui_composer.music.notes import Note

NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
# Quarter notes per column, finest first: a short tune is drawn in sixteenths, a long one squeezed to fit.
TIME_STEPS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
LABEL_WIDTH = 4
# Two pitches share a character cell: the upper one in the top half, the lower one in the bottom half.
HALF_BLOCKS = {(False, False): " ", (True, False): "▀", (False, True): "▄", (True, True): "█"}


def pitch_name(midi: int) -> str:
    return f"{NOTE_NAMES[midi % 12]}{midi // 12 - 1}"


def time_step(length: float, columns: int) -> float:
    """The finest step from TIME_STEPS at which `length` quarter notes fit in `columns`."""
    for step in TIME_STEPS:
        if length / step <= columns:
            return step
    return length / max(columns, 1)


class PianoRoll(Widget):
    """Notes as a grid of half blocks, with octave labels on the left; a message while there are none."""

    COMPONENT_CLASSES = {"piano-roll--note", "piano-roll--label", "piano-roll--octave"}

    DEFAULT_CSS = """
    PianoRoll {
        height: 1fr;
        min-height: 4;
        & > .piano-roll--note { color: $accent; }
        & > .piano-roll--label { color: $text-muted; }
        & > .piano-roll--octave { background: $boost; }
    }
    """

    notes: reactive[tuple[Note, ...]] = reactive(())
    message: reactive[str] = reactive("")

    def show(self, notes: Sequence[Note]) -> None:
        self.message = "" if notes else "no notes"
        self.notes = tuple(notes)

    def show_message(self, message: str) -> None:
        self.notes = ()
        self.message = message

    def render(self) -> Text:
        width, height = self.size.width, self.size.height
        if not self.notes or width <= LABEL_WIDTH + 1 or height < 1:
            return Text(self.message, style=self.get_component_rich_style("piano-roll--label"), justify="center")
        return self.draw(self.notes, width, height)

    def draw(self, notes: Sequence[Note], width: int, height: int) -> Text:
        columns = width - LABEL_WIDTH
        low = min(n.pitch for n in notes)
        high = max(n.pitch for n in notes)
        # Semitones per half cell: 1 unless the range is taller than the widget.
        span = high - low + 1
        per_dot = max(1, math.ceil(span / (2 * height)))
        dots = math.ceil(span / per_dot)
        rows = min(height, math.ceil(dots / 2))
        # Centre the range in the rows drawn, so a narrow tune isn't glued to the bottom.
        top = high + (rows * 2 * per_dot - span) // 2

        length = max(n.end for n in notes)
        step = time_step(length, columns)
        grid = [[False] * columns for _ in range(rows * 2)]
        for note in notes:
            dot = (top - note.pitch) // per_dot
            if not 0 <= dot < rows * 2:
                continue
            first = int(note.start / step)
            # The note's last column is the one its end falls in, minus a hair so touching notes stay apart.
            last = max(first, math.ceil(note.end / step - 1e-6) - 1)
            for column in range(first, min(last + 1, columns)):
                grid[dot][column] = True

        note_style = self.get_component_rich_style("piano-roll--note")
        label_style = self.get_component_rich_style("piano-roll--label")
        # Rows with a C get a faint band: the note colour stays, only the background changes.
        octave_style = note_style + Style(bgcolor=self.get_component_rich_style("piano-roll--octave").bgcolor)
        row_pitches = [range(top - row * 2 * per_dot, top - (row + 1) * 2 * per_dot, -1) for row in range(rows)]
        c_rows = {
            row: next(p for p in pitches if p % 12 == 0)
            for row, pitches in enumerate(row_pitches)
            if any(p % 12 == 0 for p in pitches)
        }
        labels = {row: pitch_name(pitch) for row, pitch in c_rows.items()}
        if not labels:  # a narrow range without a C: name the top and bottom rows instead
            labels = {0: pitch_name(row_pitches[0][0]), rows - 1: pitch_name(row_pitches[-1][-1])}
        text = Text(no_wrap=True, overflow="crop")
        for row in range(rows):
            c_pitches = row in c_rows
            text.append(f"{labels.get(row, ''):<{LABEL_WIDTH}}", style=label_style)
            cells = "".join(HALF_BLOCKS[(grid[row * 2][c], grid[row * 2 + 1][c])] for c in range(columns))
            text.append(cells, style=octave_style if c_pitches else note_style)
            if row < rows - 1:
                text.append("\n")
        return text
