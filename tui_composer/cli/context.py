"""What every command receives: the studio of the chosen workspace, built on first use."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from tui_composer.plugin.host import PluginHost
from tui_composer.services.studio import Studio
from tui_composer.services.workspace import Workspace


class StudioContext:
    """Built lazily, so `--help` stays fast and a bad workspace path errors only when it is used."""

    def __init__(self, host: PluginHost, workspace: Path | None) -> None:
        self._host = host
        self._workspace = workspace
        self._studio: Studio | None = None

    @property
    def studio(self) -> Studio:
        if self._studio is None:
            self._studio = Studio(Workspace(self._workspace), self._host)
        return self._studio


pass_studio = click.make_pass_decorator(StudioContext)


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def fail(error: Exception) -> None:
    raise click.ClickException(str(error))
