"""The top line: the screens with their F-keys, the current one highlighted, and how many runs train."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

# (mode, key, label): the screens in F-key order.
SCREENS = (
    ("corpora", "f1", "Corpora"),
    ("new", "f2", "New run"),
    ("runs", "f3", "Runs"),
    ("samples", "f4", "Samples"),
    ("plugins", "f5", "Plugins"),
)


class NavBar(Widget):
    COMPONENT_CLASSES = {"nav-bar--key", "nav-bar--current", "nav-bar--live"}

    DEFAULT_CSS = """
    NavBar {
        height: 1;
        background: $panel;
        & > .nav-bar--key { color: $text-accent; text-style: bold; }
        & > .nav-bar--current { background: $primary; color: $text; text-style: bold; }
        & > .nav-bar--live { color: $text-success; }
    }
    """

    current: reactive[str] = reactive("")
    training: reactive[int] = reactive(0)

    def __init__(self, current: str) -> None:
        super().__init__()
        self.current = current

    def render(self) -> Text:
        key_style = self.get_component_rich_style("nav-bar--key")
        current_style = self.get_component_rich_style("nav-bar--current")
        text = Text(no_wrap=True, overflow="crop")
        for mode, key, label in SCREENS:
            style = current_style if mode == self.current else ""
            text.append(f" {key.upper()}", style=key_style + current_style if style else key_style)
            text.append(f" {label} ", style=style)
        if self.training:
            live = f"● {self.training} training "
            pad = self.size.width - text.cell_len - len(live)
            if pad > 0:
                text.append(" " * pad)
                text.append(live, style=self.get_component_rich_style("nav-bar--live"))
        return text
