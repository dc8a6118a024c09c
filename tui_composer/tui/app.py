"""The Textual application: the screens (one app mode each), global bindings and the command palette.

The TUI calls the same services as the CLI (the Studio) and never model code: training, sampling and
importing run as `tui-composer` subprocesses, so TensorFlow never loads into this process.
"""

from __future__ import annotations

import gc
import importlib
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from typing import Any, ClassVar, cast

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.notifications import SeverityLevel
from textual.screen import Screen

from tui_composer.services.launcher import Launched
from tui_composer.services.runs import LIVE_STATES, RunState
from tui_composer.services.studio import Studio
from tui_composer.services.workspace import WorkspaceError
from tui_composer.tui.runwatch import LAUNCHING, RunRow
from tui_composer.tui.screens.base import ComposerScreen
from tui_composer.tui.screens.corpora import CorporaScreen
from tui_composer.tui.screens.help import HelpScreen
from tui_composer.tui.widgets.nav_bar import SCREENS, NavBar

STATE_WATCH_SECONDS = 2.0


# Where each mode's screen is defined; all but Corpora are imported when first shown (or asked about).
SCREEN_CLASSES = {
    "corpora": ("corpora", "CorporaScreen"),
    "new": ("new_run", "NewRunScreen"),
    "runs": ("runs", "RunsScreen"),
    "samples": ("samples", "SamplesScreen"),
    "plugins": ("plugins", "PluginsScreen"),
}


def screen_class(mode: str) -> type[ComposerScreen]:
    module, name = SCREEN_CLASSES[mode]
    screen: type[ComposerScreen] = getattr(importlib.import_module(f"tui_composer.tui.screens.{module}"), name)
    return screen


def _lazy(mode: str) -> Callable[[], Screen]:
    """A screen imported when first shown: the first paint doesn't wait for screens not yet seen."""

    def make() -> Screen:
        return screen_class(mode)()

    return make


class ComposerApp(App[None]):
    """tui-composer's terminal UI over one Studio (a workspace and its plugins)."""

    TITLE = "tui-composer"
    CSS_PATH = "app.tcss"
    MODES: ClassVar = {
        "corpora": CorporaScreen,
        "new": _lazy("new"),
        "runs": _lazy("runs"),
        "samples": _lazy("samples"),
        "plugins": _lazy("plugins"),
    }
    BINDINGS: ClassVar[list[BindingType]] = [
        # Priority: handled as the key arrives, before the next key is sent to the focused widget. Else
        # a key typed right after Tab (or F2) still lands in the field (or screen) being left.
        Binding("tab", "focus_next", "Next field", show=False, priority=True),
        Binding("shift+tab", "focus_previous", "Previous field", show=False, priority=True),
        *(Binding(key, f"switch_mode('{mode}')", label, show=False, priority=True) for mode, key, label in SCREENS),
        Binding("question_mark", "help", "Help"),
        Binding("escape", "hide_help_panel", "Close the keys panel", show=False),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    def __init__(self, studio: Studio) -> None:
        self.studio = studio
        self.launched: dict[str, Launched] = {}
        self.training_count = 0
        self._states: dict[str, str] = {}
        # Reattach: with a run training, open on Runs; otherwise on Corpora, where a new user starts.
        self.DEFAULT_MODE = "runs" if self._live_runs() else "corpora"  # type: ignore[misc]
        super().__init__()

    def _live_runs(self) -> list[str]:
        try:
            # Run.state(): a damaged run is listed as `damaged`, and never keeps the app from opening.
            return [r.name for r in self.studio.runs.list() if r.state() in LIVE_STATES]
        except (WorkspaceError, OSError):  # the runs folder itself can't be read
            return []

    def on_mount(self) -> None:
        self.set_interval(STATE_WATCH_SECONDS, self._watch_states)
        self._watch_states()

    def on_unmount(self) -> None:
        gc.unfreeze()  # what the screens froze (ComposerScreen) is collectable again once the app is gone

    # --- runs started from here --------------------------------------------------------------------

    def track(self, launched: Launched) -> None:
        """Remember a process we started, to show it before its run folder exists and to reap it."""
        self.launched[launched.run] = launched

    def launching_rows(self, existing: set[str]) -> list[RunRow]:
        """Rows for launched trainings whose run folder isn't there yet (or that died before making it)."""
        rows = []
        for name, launched in list(self.launched.items()):
            if name in existing:
                continue
            code = launched.exit_code()
            state = LAUNCHING if code is None else f"failed ({code})"
            rows.append(RunRow(name, state, 0, None, None, "", "", "", "", False))
        return rows

    # --- watching states (for the nav line and notifications) -----------------------------------

    @work(thread=True, exclusive=True, group="states")
    def _watch_states(self) -> None:
        try:
            states = {r.name: r.state() for r in self.studio.runs.list()}
        except (WorkspaceError, OSError):
            return
        for launched in self.launched.values():
            launched.exit_code()  # reap finished children
        self.call_from_thread(self._states_changed, states)

    def _states_changed(self, states: dict[str, str]) -> None:
        for name, state in states.items():
            before = self._states.get(name)
            if before in LIVE_STATES and state not in LIVE_STATES:
                done = state in (RunState.FINISHED, RunState.STOPPED)
                severity: SeverityLevel = "information" if done else "error"
                self.notify(f"Run {name} is {state}", severity=severity, timeout=8)
        self._states = states
        self.training_count = sum(1 for s in states.values() if s in LIVE_STATES)
        for nav in self.screen.query(NavBar):
            nav.training = self.training_count

    # --- navigation --------------------------------------------------------------------------------

    async def show_run(self, name: str) -> None:
        await self.switch_mode("runs")
        cast(Any, self.screen).follow(name)  # the Runs screen

    async def show_samples(self, run: str) -> None:
        await self.switch_mode("samples")
        cast(Any, self.screen).preselect(run)  # the Samples screen

    async def new_run_from(self, run: str, settings: Mapping[str, Any]) -> None:
        """New run, filled with the settings `run` was trained with."""
        await self.switch_mode("new")
        await cast(Any, self.screen).fill_from(run, settings)  # the New run screen

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """Every screen and every main action of every screen, in the command palette (ctrl+p), from anywhere.

        An action of another screen switches to that screen first, then runs there.
        """
        for mode, key, label in SCREENS:
            yield SystemCommand(f"{label} screen", f"Show {label} ({key.upper()})", partial(self.switch_mode, mode))
        yield SystemCommand("Help", "Every key of every screen (?)", self.action_help)
        current = screen.MODE if isinstance(screen, ComposerScreen) else ""
        for mode, _key, label in SCREENS:
            for title, help_text, action in screen_class(mode).PALETTE:
                where = "" if mode == current else f" · on {label}"
                yield SystemCommand(title, help_text + where, partial(self.run_on, mode, action))
        yield from super().get_system_commands(screen)

    async def run_on(self, mode: str, action: str) -> None:
        """Run a screen's action on that screen (switching to it first)."""
        if self.current_mode != mode:
            await self.switch_mode(mode)
        while not isinstance(self.screen, ComposerScreen):  # a dialog or the help over it: closed first
            await self.pop_screen()
        await self.screen.run_action(action)

    async def action_quit(self) -> None:
        live = [name for name, state in self._states.items() if state in LIVE_STATES]
        message = None
        if live:
            message = (
                f"Still training in the background: {', '.join(live)}. "
                "Run tui-composer again to watch, or `tui-composer runs` to list."
            )
        self.exit(message=message)
