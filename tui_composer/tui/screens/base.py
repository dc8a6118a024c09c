"""What every main screen shares: the navigation line on top, the footer, and the Studio."""

from __future__ import annotations

import gc
from typing import TYPE_CHECKING, ClassVar, cast

from textual.app import ComposeResult
from textual.events import ScreenResume
from textual.screen import Screen

from tui_composer.services.studio import Studio
from tui_composer.tui.widgets.keys_footer import KeysFooter
from tui_composer.tui.widgets.nav_bar import NavBar

if TYPE_CHECKING:
    from tui_composer.tui.app import ComposerApp


class ComposerScreen(Screen[None]):
    """A main screen (one per app mode). Subclasses compose their body in `compose_body`."""

    MODE: ClassVar[str] = ""
    _built = False
    # Commands for the palette: (title, help, action name on this screen).
    PALETTE: ClassVar[tuple[tuple[str, str, str], ...]] = ()

    @property
    def composer(self) -> ComposerApp:
        return cast("ComposerApp", self.app)

    @property
    def studio(self) -> Studio:
        return self.composer.studio

    def compose(self) -> ComposeResult:
        yield NavBar(self.MODE)
        yield from self.compose_body()
        yield KeysFooter(compact=True)

    def compose_body(self) -> ComposeResult:
        yield from ()

    def on_screen_resume(self, event: ScreenResume | None = None) -> None:
        if not self._built:
            self._built = True
            # What exists once a screen is built lives as long as the app (the screens are kept): the
            # collector's full passes need not scan it again. A full pass over the ~160,000 objects of
            # the five screens took 0.57 s under load, and once froze a screen switch for 0.87 s. Frozen
            # once per screen, so at most what existed at five moments is never collected.
            self.call_after_refresh(gc.freeze)
        if event is not None and self.app.screen is self and self._css_update_count == self.app._css_update_count:
            # Coming back to a screen whose styles are current: restyling every widget (Textual's default)
            # cost most of a screen switch. (Runs before Screen's own handler: subclasses come first.)
            event.refresh_styles = False
        self.query_one(NavBar).training = self.composer.training_count
