"""Loads plugins from the `tui_composer` entry-point group, one at a time, and collects what they register.

A plugin that fails to import, fails validation or raises in a hook is recorded with its error and
skipped; everything else keeps working. Built-in encoders and models load through the same path.
Registration is all or nothing: a plugin whose hook raises keeps none of its specs, commands or runs,
and what it had registered before it failed is remembered (`PluginInfo.dropped`), so a later error can
say "model X comes from plugin P, which failed to load: ..." (`PluginHost.missing`).

Plugin code (the import and every hook) runs in a daemon thread bounded by `plugin_timeout()`, with
sys.stdout sent to stderr: a plugin that hangs, prints, or raises SystemExit or KeyboardInterrupt is
recorded as failed and can neither stall `--help` nor corrupt `plugins --json` or `runs --json`.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import threading
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType
from typing import Any

import pluggy

from tui_composer.plugin import hookspecs
from tui_composer.plugin.specs import CorpusSpec, EncoderSpec, ModelSpec, Origin, RunSpec, Spec, load_factory, stamped

GROUP = "tui_composer"
SELECTION_VARIABLE = "TUI_COMPOSER_PLUGINS"
BUILTIN_DISTRIBUTION = "tui-composer"
PLUGIN_TIMEOUT = 10.0  # seconds each plugin's import, and each of its hooks, may take
TIMEOUT_VARIABLE = "TUI_COMPOSER_PLUGIN_TIMEOUT"
FACTORY_TIMEOUT = 120.0  # seconds `plugins --check` gives each factory import (a model's loads TensorFlow)

_KINDS: dict[str, tuple[str, type]] = {
    "register_encoders": ("encoder", EncoderSpec),
    "register_models": ("model", ModelSpec),
    "register_corpora": ("corpus", CorpusSpec),
    "register_runs": ("run", RunSpec),
}
_PLURALS = {"encoder": "encoders", "model": "models", "corpus": "corpora", "run": "runs"}


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
    dropped: list[str] = field(default_factory=list)  # "model gru": registered, then dropped when it failed

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
            "dropped": self.dropped,
        }


@dataclass
class Registry:
    encoders: dict[str, EncoderSpec] = field(default_factory=dict)
    models: dict[str, ModelSpec] = field(default_factory=dict)
    corpora: dict[str, CorpusSpec] = field(default_factory=dict)
    runs: dict[str, RunSpec] = field(default_factory=dict)

    def table(self, kind: str) -> dict[str, Any]:
        tables: dict[str, dict[str, Any]] = {
            "encoder": self.encoders,
            "model": self.models,
            "corpus": self.corpora,
            "run": self.runs,
        }
        return tables[kind]

    def names(self) -> list[str]:
        """Everything registered, as "kind name" (the form of `PluginInfo.provides`)."""
        return [f"{kind} {name}" for kind in _PLURALS for name in self.table(kind)]

    def drop(self, plugin: str) -> list[str]:
        """Remove every spec that `plugin` registered; returns them as "kind name"."""
        dropped = []
        for kind in _PLURALS:
            table = self.table(kind)
            for name in [n for n, spec in table.items() if spec.origin.plugin == plugin]:
                del table[name]
                dropped.append(f"{kind} {name}")
        return dropped


def selected_names() -> set[str] | None:
    """Entry-point names chosen by TUI_COMPOSER_PLUGINS (comma separated; empty: none), or None for all."""
    value = os.environ.get(SELECTION_VARIABLE)
    if value is None:
        return None
    return {name.strip() for name in value.split(",") if name.strip()}


def _short_error(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def plugin_timeout() -> float:
    """Seconds a plugin's import or hook may take: TUI_COMPOSER_PLUGIN_TIMEOUT, else PLUGIN_TIMEOUT."""
    text = os.environ.get(TIMEOUT_VARIABLE, "").strip()
    if not text:
        return PLUGIN_TIMEOUT
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not 0 < seconds < math.inf:
        # Loading plugins must not fail (it would take --help down with it): warn and go on.
        print(
            f"tui-composer: {TIMEOUT_VARIABLE}={text!r} is not a number of seconds above 0; using {PLUGIN_TIMEOUT:g} s",
            file=sys.stderr,
        )
        return PLUGIN_TIMEOUT
    return seconds


@dataclass
class PluginCall:
    """What one bounded call into plugin code gave: its value, what it raised, or that it ran out of time."""

    value: Any = None
    error: BaseException | None = None
    trace: str = ""
    timed_out: bool = False


def call_plugin(function: Callable[[], Any], timeout: float, name: str) -> PluginCall:
    """Run plugin code in a daemon thread for at most `timeout` seconds, its stdout sent to stderr.

    A thread because a hung import can't be interrupted, only abandoned (it ends with the process);
    whatever the code raises, SystemExit and KeyboardInterrupt included, is caught there and returned.
    """
    outcome = PluginCall()

    def target() -> None:
        try:
            outcome.value = function()
        except BaseException as error:  # noqa: BLE001 - a plugin's sys.exit() must not end the command
            outcome.error = error
            outcome.trace = traceback.format_exc(limit=-3)

    thread = threading.Thread(target=target, name=f"plugin {name}", daemon=True)
    # What a plugin prints would land in the middle of `plugins --json`: send it to stderr.
    with contextlib.redirect_stdout(sys.stderr):
        thread.start()
        thread.join(timeout)
    outcome.timed_out = thread.is_alive()
    return outcome


def _too_slow(what: str, timeout: float) -> str:
    return f"{what} took longer than {timeout:g} s (a plugin that hangs?); set {TIMEOUT_VARIABLE} to allow more"


class PluginHost:
    """A pluggy manager plus the record of every plugin's fate and everything they registered."""

    def __init__(self) -> None:
        self.manager = pluggy.PluginManager(GROUP)
        self.manager.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self._registry: Registry | None = None
        self._command_owners: dict[str, str] | None = None  # CLI command name -> plugin ("" for built-ins)

    # --- loading -------------------------------------------------------------------------------

    def load_entry_points(self, eps: Iterable[EntryPoint] | None = None) -> None:
        """Load every selected entry point of the group, isolating failures."""
        chosen = selected_names()
        timeout = plugin_timeout()
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
            call = call_plugin(ep.load, timeout, ep.name)
            if call.timed_out:
                info.fail(_too_slow("import", timeout))
                continue
            if call.error is not None:  # any import failure, SystemExit included, must not stop the app
                info.fail(f"import failed: {_short_error(call.error)}")
                info.errors.append(call.trace)
                continue
            self._register(call.value, info)

    def register_module(
        self, module: ModuleType | object, name: str, distribution: str = "", version: str = ""
    ) -> PluginInfo:
        """Register a plugin object directly (tests, and apps embedding tui-composer)."""
        info = PluginInfo(name, getattr(module, "__name__", repr(module)), distribution, version)
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
        """Call every plugin's hooks, one plugin at a time, keeping a plugin's specs only if all its hooks ran."""
        registry = Registry()
        timeout = plugin_timeout()
        hooks: dict[str, list[tuple[str, Any]]] = {}  # plugin name -> its (hook name, implementation)
        for hook_name in _KINDS:
            for impl in getattr(self.manager.hook, hook_name).get_hookimpls():
                hooks.setdefault(impl.plugin_name, []).append((hook_name, impl))
        for name in [n for n in self.plugins if n in hooks]:  # load order: built-ins first, the first name wins
            info = self.plugins[name]
            if info.status == "failed":
                continue
            staged = Registry()  # this plugin's specs, kept only if every one of its hooks runs through
            for hook_name, impl in hooks[name]:
                kind, spec_type = _KINDS[hook_name]
                open_ = [True]
                register = self._registrar(registry, staged, kind, spec_type, info, open_)
                call = call_plugin(partial(impl.function, register=register), timeout, info.name)
                open_[0] = False  # a hook abandoned after its timeout registers nothing later
                if call.timed_out:
                    info.fail(_too_slow(hook_name, timeout))
                elif call.error is not None:
                    info.fail(f"{hook_name} raised {_short_error(call.error)}")
                if info.status == "failed":
                    break
            if info.status == "failed":
                info.dropped.extend(staged.names())
                continue
            for kind in _PLURALS:
                registry.table(kind).update(staged.table(kind))
            info.provides.extend(staged.names())
        return registry

    def _registrar(
        self, registry: Registry, staged: Registry, kind: str, spec_type: type, info: PluginInfo, open_: list[bool]
    ) -> Callable[[Spec], None]:
        table, own = registry.table(kind), staged.table(kind)

        def register(spec: Spec) -> None:
            if not open_[0]:
                return
            if not isinstance(spec, spec_type):
                raise TypeError(f"{kind} hook registered a {type(spec).__name__}, expected {spec_type.__name__}")
            if spec.name in table or spec.name in own:
                other = (table.get(spec.name) or own[spec.name]).origin.plugin
                info.errors.append(
                    f"{kind} {spec.name!r} refused: plugin {other!r} already registered that name; "
                    f"plugin {info.name!r} must rename its {kind}"
                )
                if info.status == "ok":
                    info.status = "partial"
                return
            own[spec.name] = stamped(spec, Origin(info.name, info.distribution, info.version))

        return register

    def _fail_whole(self, info: PluginInfo, message: str) -> None:
        """Record a plugin's failure after its specs were registered: all or nothing, so they go."""
        info.fail(message)
        if self._registry is not None:
            dropped = self._registry.drop(info.name)
            info.dropped.extend(dropped)
            info.provides = [name for name in info.provides if name not in dropped]

    def add_commands(self, cli: Any) -> None:
        """Let each plugin add its CLI commands; one that raises or hangs is recorded and skipped.

        A command named like a built-in or another plugin's is refused like a clashing spec: the first
        one stays, and the plugin is listed as partial with a message naming both.
        """
        timeout = plugin_timeout()
        if self._command_owners is None:
            self._command_owners = dict.fromkeys(cli.commands, "")  # what the group holds now is built in
        owners = self._command_owners
        self.registry  # noqa: B018 - the spec hooks run first: a plugin failing there adds no command
        for impl in self.manager.hook.register_commands.get_hookimpls():
            info = self.plugins[impl.plugin_name]
            if info.status == "failed":
                continue
            before = dict(cli.commands)
            call = call_plugin(partial(impl.function, cli=cli), timeout, info.name)
            for name, command in before.items():
                if cli.commands.get(name) is not command:  # replaced (or removed): put the first one back
                    cli.commands[name] = command
                    self._refuse_command(info, name, owners.get(name, ""))
            added = sorted(set(cli.commands) - set(before))
            failure = None
            if call.timed_out:
                failure = _too_slow("register_commands", timeout)
            elif call.error is not None:
                failure = f"register_commands raised {_short_error(call.error)}"
            if failure is not None:  # all or nothing: the commands it added before failing go too
                for name in added:
                    del cli.commands[name]
                info.dropped.extend(f"command {name}" for name in added)
                self._fail_whole(info, failure)
                continue
            for name in added:
                owners[name] = info.name
                info.provides.append(f"command {name}")

    def commands(self) -> dict[str, str]:
        """Plugin commands added to the CLI, each with the plugin that added it."""
        return {name: owner for name, owner in (self._command_owners or {}).items() if owner}

    def check_factories(self) -> None:
        """Import every encoder's and model's factory (`plugins --check`); a plugin whose factory fails fails.

        Each import is bounded by FACTORY_TIMEOUT (a model's factory loads TensorFlow). A failed plugin
        keeps none of its specs, as when a hook raises.
        """
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up notices are not results
        registry = self.registry
        timeout = max(FACTORY_TIMEOUT, plugin_timeout())
        for kind in ("encoder", "model"):
            for name, spec in list(registry.table(kind).items()):
                info = self.plugins.get(spec.origin.plugin)
                if info is None or info.status == "failed":
                    continue
                call = call_plugin(partial(load_factory, spec.factory), timeout, info.name)
                where = f"{kind} {name!r}: its factory {spec.factory!r}"
                if call.timed_out:
                    self._fail_whole(info, f"importing {where} took longer than {timeout:g} s (a plugin that hangs?)")
                elif call.error is not None:
                    self._fail_whole(info, f"{where} can't be imported: {_short_error(call.error)}")
                    info.errors.append(call.trace)
                elif not callable(call.value):
                    self._fail_whole(info, f"{where} is a {type(call.value).__name__}, not a class")

    def missing(self, kind: str, name: str, plugin: str | None = None) -> str:
        """Why no `kind` called `name` is registered, for an error message (`plugin`: where a run says it came from).

        A plugin that registered it and then failed, or the plugin a run names, is named with its error.
        """
        failed = [info for info in self.plugins.values() if info.status == "failed"]
        for info in failed:
            if f"{kind} {name}" in info.dropped or info.name == plugin:
                return (
                    f"{kind} {name!r} comes from plugin {info.name!r}, which failed to load: {info.errors[0]}; "
                    "fix or reinstall it (`tui-composer plugins` shows why it failed)"
                )
        known = ", ".join(sorted(self.registry.table(kind))) or "none installed"
        message = f"no {kind} named {name!r}; {_PLURALS[kind]}: {known}"
        if plugin:
            message += f" (it came from plugin {plugin!r}, which is not installed now)"
        guess = next((info for info in failed if info.name == name), None)
        if guess is not None:
            message += f"; plugin {guess.name!r}, which may provide it, failed to load: {guess.errors[0]}"
        elif failed:
            names = ", ".join(info.name for info in failed)
            message += f"; plugins that failed to load: {names} (see `tui-composer plugins`)"
        return message

    @staticmethod
    def _refuse_command(info: PluginInfo, name: str, owner: str) -> None:
        first = f"plugin {owner!r} already registered that name" if owner else "it is a built-in command"
        info.errors.append(f"command {name!r} refused: {first}; plugin {info.name!r} must rename its command")
        if info.status == "ok":
            info.status = "partial"

    def failures(self) -> list[PluginInfo]:
        self.registry  # noqa: B018 - collecting may record hook failures
        return [p for p in self.plugins.values() if p.status != "ok"]


def load_host() -> PluginHost:
    """The host with every installed (and selected) plugin loaded."""
    host = PluginHost()
    host.load_entry_points()
    return host
