"""The footer: Textual's own, recomposed only when the keys it shows change.

Textual's Footer mounts all its keys again whenever the screen's bindings might have changed: on every
screen switch and every focus change. On a loaded machine that cost a screen switch a tenth of a second;
most of the time the keys are the same ones.
"""

from __future__ import annotations

from typing import Any

from textual.screen import Screen
from textual.widgets import Footer


class KeysFooter(Footer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._composed_keys: tuple[tuple[Any, ...], ...] | None = None

    def bindings_changed(self, screen: Screen) -> None:
        keys = tuple(
            (binding.key, binding.description, binding.show, enabled, tooltip)
            for _node, binding, enabled, tooltip in screen.active_bindings.values()
        )
        if keys == self._composed_keys:
            return
        if screen.app.app_focus and self.is_attached and screen is self.screen:
            self._composed_keys = keys  # what the recompose below will show
        super().bindings_changed(screen)
