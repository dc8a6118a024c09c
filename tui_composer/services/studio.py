"""The services the CLI and the TUI share: plugins, corpora and runs of one workspace."""

from __future__ import annotations

from functools import cached_property

from tui_composer.plugin.host import PluginHost, Registry, load_host
from tui_composer.services.corpora import Catalogue
from tui_composer.services.runs import RunStore
from tui_composer.services.workspace import Workspace


class Studio:
    def __init__(self, workspace: Workspace | None = None, host: PluginHost | None = None) -> None:
        self.workspace = workspace or Workspace()
        self.host = host or load_host()

    @property
    def registry(self) -> Registry:
        return self.host.registry

    @cached_property
    def catalogue(self) -> Catalogue:
        return Catalogue(self.workspace, self.registry.corpora)

    @cached_property
    def runs(self) -> RunStore:
        # The read-only runs come from plugins (`register_runs`), as everything else a plugin adds.
        return RunStore(self.workspace, shipped={name: spec.path for name, spec in self.registry.runs.items()})
