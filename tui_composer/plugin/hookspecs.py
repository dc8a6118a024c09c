"""The hooks a tui-composer plugin can implement. Each registers things through a callback."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("tui_composer")
hookimpl = pluggy.HookimplMarker("tui_composer")


@hookspec
def register_encoders(register: Callable[[Any], None]) -> None:
    """Call `register(EncoderSpec(...))` for each encoder the plugin provides."""


@hookspec
def register_models(register: Callable[[Any], None]) -> None:
    """Call `register(ModelSpec(...))` for each model the plugin provides."""


@hookspec
def register_corpora(register: Callable[[Any], None]) -> None:
    """Call `register(CorpusSpec(...))` for each corpus source the plugin provides."""


@hookspec
def register_runs(register: Callable[[Any], None]) -> None:
    """Call `register(RunSpec(name, path, description))` for each trained run the plugin ships (read-only)."""


@hookspec
def register_commands(cli: Any) -> None:
    """Add click commands to the `tui-composer` group, e.g. with `@cli.command()`."""
