"""Loads plugins from the `tui_composer` entry-point group, one at a time, and collects what they register.

A plugin that fails to import, fails validation or raises in a hook is recorded with its error and
skipped; everything else keeps working. Built-in encoders and models load through the same path.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType
from typing import Any

import pluggy

from tui_composer import hookspecs
from tui_composer.specs import CorpusSpec, EncoderSpec, ModelSpec, Origin, Spec, stamped

GROUP = "tui_composer"
SELECTION_VARIABLE = "TUI_COMPOSER_PLUGINS"
BUILTIN_DISTRIBUTION = "tui-composer"

_KINDS: dict[str, tuple[str, type]] = {
    "register_encoders": ("encoder", EncoderSpec),
    "register_models": ("model", ModelSpec),
    "register_corpora": ("corpus", CorpusSpec),
}


@dataclass
class PluginInfo:
    """One plugin as the user sees it in `tui-composer plugins`."""

    name: str
    module: str
    distribution: str = ""
    version: str = ""
    status: str = "ok"  # ok | failed | partial (some of its names were refused)
    errors: list[str] = field(default_factory=list)
    provides: list[str] = field(default_factory=list)

    def fail(self, message: str) -> None:
        self.status = "failed"
        self.errors.append(message)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "module": self.module,
            "distribution": self.distribution,
            "version": self.version,
            "status": self.status,
            "errors": self.errors,
            "provides": self.provides,
        }


@dataclass
class Registry:
    encoders: dict[str, EncoderSpec] = field(default_factory=dict)
    models: dict[str, ModelSpec] = field(default_factory=dict)
    corpora: dict[str, CorpusSpec] = field(default_factory=dict)

    def table(self, kind: str) -> dict[str, Any]:
        return {"encoder": self.encoders, "model": self.models, "corpus": self.corpora}[kind]


def selected_names() -> set[str] | None:
    """Entry-point names chosen by TUI_COMPOSER_PLUGINS (comma separated; empty: none), or None for all."""
    value = os.environ.get(SELECTION_VARIABLE)
    if value is None:
        return None
    return {name.strip() for name in value.split(",") if name.strip()}


def _short_error(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


class PluginHost:
    """A pluggy manager plus the record of every plugin's fate and everything they registered."""

    def __init__(self) -> None:
        self.manager = pluggy.PluginManager(GROUP)
        self.manager.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self._registry: Registry | None = None

    # --- loading -------------------------------------------------------------------------------

    def load_entry_points(self, eps: Iterable[EntryPoint] | None = None) -> None:
        """Load every selected entry point of the group, isolating failures."""
        chosen = selected_names()
        found = list(eps if eps is not None else entry_points(group=GROUP))
        # Built-ins first, so a third party can never take a built-in name.
        found.sort(key=lambda ep: (ep.dist is None or ep.dist.name != BUILTIN_DISTRIBUTION, ep.name))
        for ep in found:
            if chosen is not None and ep.name not in chosen:
                continue
            distribution = ep.dist.name if ep.dist else ""
            version = ep.dist.version if ep.dist else ""
            info = PluginInfo(ep.name, ep.value, distribution, version)
            if ep.name in self.plugins:
                info.fail(f"entry point name {ep.name!r} is already used by {self.plugins[ep.name].module}")
                self.plugins[f"{ep.name} ({distribution})"] = info
                continue
            self.plugins[ep.name] = info
            try:
                module = ep.load()
            except Exception as error:  # noqa: BLE001 - any import failure must not stop the app
                info.fail(f"import failed: {_short_error(error)}")
                info.errors.append(traceback.format_exc(limit=-3))
                continue
            self._register(module, info)

    def register_module(self, module: ModuleType | object, name: str, distribution: str = "") -> PluginInfo:
        """Register a plugin object directly (tests, and apps embedding tui-composer)."""
        info = PluginInfo(name, getattr(module, "__name__", repr(module)), distribution)
        self.plugins[name] = info
        self._register(module, info)
        return info

    def _register(self, module: object, info: PluginInfo) -> None:
        self._registry = None
        try:
            self.manager.register(module, name=info.name)
            self.manager.check_pending()
        except Exception as error:  # noqa: BLE001 - pluggy validation errors, misspelled hooks
            if self.manager.is_registered(module):
                self.manager.unregister(module)
            info.fail(f"invalid plugin: {_short_error(error)}")

    # --- collecting ------------------------------------------------------------------------------

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self._registry = self._collect()
        return self._registry

    def _collect(self) -> Registry:
        registry = Registry()
        for hook_name, (kind, spec_type) in _KINDS.items():
            hook = getattr(self.manager.hook, hook_name)
            # Call each plugin's implementation on its own, so one that raises spoils only itself.
            for impl in hook.get_hookimpls():  # registration order: the first name wins
                info = self.plugins[impl.plugin_name]
                if info.status == "failed":
                    continue
                register = self._registrar(registry, kind, spec_type, info)
                try:
                    impl.function(register=register)
                except Exception as error:  # noqa: BLE001
                    info.fail(f"{hook_name} raised {_short_error(error)}")
        return registry

    def _registrar(self, registry: Registry, kind: str, spec_type: type, info: PluginInfo) -> Callable[[Spec], None]:
        table = registry.table(kind)

        def register(spec: Spec) -> None:
            if not isinstance(spec, spec_type):
                raise TypeError(f"{kind} hook registered a {type(spec).__name__}, expected {spec_type.__name__}")
            if spec.name in table:
                other = table[spec.name].origin.plugin
                info.errors.append(
                    f"{kind} {spec.name!r} refused: plugin {other!r} already registered that name; "
                    f"plugin {info.name!r} must rename its {kind}"
                )
                if info.status == "ok":
                    info.status = "partial"
                return
            table[spec.name] = stamped(spec, Origin(info.name, info.distribution, info.version))
            info.provides.append(f"{kind} {spec.name}")

        return register

    def add_commands(self, cli: Any) -> None:
        """Let each plugin add its CLI commands; one that raises is recorded and skipped."""
        for impl in self.manager.hook.register_commands.get_hookimpls():
            info = self.plugins[impl.plugin_name]
            if info.status == "failed":
                continue
            try:
                impl.function(cli=cli)
            except Exception as error:  # noqa: BLE001
                info.fail(f"register_commands raised {_short_error(error)}")

    def failures(self) -> list[PluginInfo]:
        self.registry  # noqa: B018 - collecting may record hook failures
        return [p for p in self.plugins.values() if p.status != "ok"]


def load_host() -> PluginHost:
    """The host with every installed (and selected) plugin loaded."""
    host = PluginHost()
    host.load_entry_points()
    return host
