"""What plugins register: specs that describe an encoder, a model, a corpus or a shipped run without importing it.

Plugin code that raises is named here: an encoder or model made from its spec (`create`, `build`,
`load`) turns whatever its read, fit, decode, train_epoch, evaluate or sample raises, other than the
errors meant for the user (EncodeError, ParamError, ...), into a PluginError naming the spec, the plugin,
its distribution and version.
"""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.util
import sys
import traceback
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from tui_composer.plugin.contract import DATA_KINDS, DataKind, DataSpec, EncodeError, Encoder, Model, Piece
from tui_composer.plugin.params import Param, ParamError
from tui_composer.services.distribute import StrategyError
from tui_composer.services.workspace import WorkspaceError, check_name

# A factory is the class itself or "module:attribute", imported only when a run needs it,
# so registering a model never imports TensorFlow.
Factory = Callable[..., Any] | str

# Checks resolved parameters against each other (each alone already passed its Param): returns a
# message naming the keys that contradict each other, or None when they agree. It may also raise ParamError.
ParamsCheck = Callable[[Mapping[str, Any]], str | None]


class ModelFileError(WorkspaceError):
    """A run's `.keras` file that can't be loaded; the message names the file, the reason and what to do."""


def load_factory(factory: Factory) -> Callable[..., Any]:
    if not isinstance(factory, str):
        return factory
    module_name, _, attribute = factory.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


def factory_problem(factory: Factory) -> str | None:
    """Why `factory` can't be resolved, judged without running its module, or None when it can be.

    The module is found on the path and its source read for a top-level `attribute`, so a misspelled
    factory is refused before any run exists, and TensorFlow still loads later, under the run's GPU
    settings. A module that defines names dynamically (`__getattr__`, `import *`) or has no source is
    given the benefit of the doubt: it is judged when it is imported.
    """
    if not isinstance(factory, str):
        return None if callable(factory) else f"factory {factory!r} is neither a class nor 'module:Class'"
    module_name, colon, attribute = factory.partition(":")
    if not (colon and module_name and attribute.isidentifier()):
        return f"factory {factory!r} is not written 'module:Class'"
    if module_name in sys.modules:
        found = hasattr(sys.modules[module_name], attribute)
        return None if found else f"factory {factory!r}: module {module_name!r} defines no {attribute!r}"
    try:
        module_spec = importlib.util.find_spec(module_name)
    except Exception as error:  # noqa: BLE001 - a parent package that is missing or fails to import
        return f"factory {factory!r}: module {module_name!r} can't be found ({type(error).__name__}: {error})"
    if module_spec is None:
        return f"factory {factory!r}: no module {module_name!r} is installed"
    try:
        source = module_spec.loader.get_source(module_name) if module_spec.loader is not None else None  # type: ignore[attr-defined]
        names = _top_level_names(ast.parse(source)) if source is not None else None
    except (AttributeError, ImportError, SyntaxError, ValueError):
        return None  # no readable source: the import will tell
    if names is None or attribute in names or "__getattr__" in names or "*" in names:
        return None
    return f"factory {factory!r}: module {module_name!r} defines no {attribute!r}"


def _top_level_names(tree: ast.Module) -> set[str]:
    """Names a module binds at import: definitions, assignments and imports, also inside if / try / with."""
    names: set[str] = set()
    body: list[ast.stmt] = list(tree.body)
    while body:
        node = body.pop()
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, ast.If | ast.Try | ast.With | ast.For | ast.While):
            for field_name in ("body", "orelse", "finalbody", "handlers"):
                body.extend(getattr(node, field_name, []))
        elif isinstance(node, ast.ExceptHandler):
            body.extend(node.body)
    return names


@dataclass(frozen=True)
class Origin:
    """Which plugin registered a spec; stamped by the host."""

    plugin: str = ""
    distribution: str = ""
    version: str = ""

    def describe(self) -> str:
        """'plugin 'gru' from tui-composer-gru 0.1.0', for messages that name where code came from."""
        if not self.plugin:
            return "no plugin (registered directly)"
        source = " ".join(filter(None, (self.distribution, self.version)))
        return f"plugin {self.plugin!r}" + (f" from {source}" if source else "")


_Guarded = TypeVar("_Guarded")

# Exceptions plugin code raises on purpose, with a message for the user: passed on as they are.
PASSED_THROUGH: tuple[type[BaseException], ...] = (EncodeError, ParamError, StrategyError, WorkspaceError)


class PluginError(WorkspaceError):
    """Plugin code raised: the message names the spec, its plugin, distribution and version, and the call.

    `trace` holds the plugin's traceback (training writes it into the run's train.log and metrics);
    `advice` says where to find it and what to do.
    """

    def __init__(self, spec: Spec, action: str, error: BaseException | str, trace: str = "") -> None:
        self.kind = spec_kind(spec)
        self.spec = spec.name
        self.origin = spec.origin
        self.action = action
        self.cause = error if isinstance(error, str) else _short(error)
        if not trace and isinstance(error, BaseException):
            trace = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        self.trace = trace
        self.advice = "if it is not about your settings or data, report it to the plugin's authors with the traceback"
        super().__init__(str(self))

    @property
    def reason(self) -> str:  # what a per-item report (`parallel.reason_of`) shows
        return str(self)

    def __str__(self) -> str:
        return (
            f"{self.kind} {self.spec!r} ({self.origin.describe()}) raised {self.cause} in {self.action}; {self.advice}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "spec_kind": self.kind,
            "spec": self.spec,
            "plugin": self.origin.plugin,
            "distribution": self.origin.distribution,
            "version": self.origin.version,
            "action": self.action,
            "error": self.cause,
            "traceback": self.trace,
        }


def _short(error: BaseException) -> str:
    text = str(error).strip()
    first = text.splitlines()[0][:_REASON_CHARACTERS] if text else ""
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


@contextmanager
def plugin_code(spec: Spec, action: str) -> Iterator[None]:
    """Run plugin code: whatever it raises that is not meant for the user becomes a PluginError naming it."""
    try:
        yield
    except PASSED_THROUGH:
        raise
    except Exception as error:
        raise PluginError(spec, action, error) from error


def _guard(spec: Spec, instance: _Guarded, actions: Sequence[str]) -> _Guarded:
    """The instance with each of its `actions` methods raising PluginError (an instance attribute each)."""
    for action in actions:
        method = getattr(instance, action, None)
        if method is None:
            continue

        def guarded(*args: Any, _method: Callable[..., Any] = method, _action: str = action, **kwargs: Any) -> Any:
            with plugin_code(spec, _action):
                return _method(*args, **kwargs)

        try:
            setattr(instance, action, functools.wraps(method)(guarded))
        except (AttributeError, TypeError):  # __slots__ or a frozen class: its errors go unnamed
            return instance
    return instance


# What core calls on an encoder or a model it got from a spec, and names the plugin for when it raises.
ENCODER_ACTIONS = ("read", "fit", "decode", "to_abc", "encode_primer")
MODEL_ACTIONS = ("train_epoch", "evaluate", "sample")


@dataclass(frozen=True)
class EncoderSpec:
    name: str
    description: str
    makes: DataKind
    factory: Factory  # an Encoder subclass, called with the resolved parameters
    params: Sequence[Param] = ()
    version: str = "1"  # bump when the encoding changes, so cached encodings are rebuilt
    origin: Origin = field(default_factory=Origin)
    check: ParamsCheck | None = None  # parameters that contradict each other, e.g. low above high

    def __post_init__(self) -> None:
        if self.makes not in DATA_KINDS:
            raise ValueError(f"encoder {self.name!r}: makes must be one of {DATA_KINDS}, not {self.makes!r}")

    def check_params(self, params: Mapping[str, Any]) -> None:
        """Raise ParamError, naming the encoder, when its `check` finds the parameters contradictory."""
        _run_check(self.check, params, f"encoder {self.name!r}")

    def encoder_class(self) -> type[Encoder]:
        """The factory, imported; PluginError naming the plugin when that fails."""
        with plugin_code(self, f"import of its factory {self.factory!r}"):
            return load_factory(self.factory)  # type: ignore[return-value]

    def create(self, params: dict[str, Any]) -> Encoder:
        """A new encoder whose read, fit and decode name the plugin in what they raise (PluginError)."""
        factory = self.encoder_class()
        with plugin_code(self, "__init__"):
            encoder = factory(**params)
        return _guard(self, encoder, ENCODER_ACTIONS)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    factory: Factory  # a Model subclass
    params: Sequence[Param] = ()
    takes: tuple[DataKind, ...] = DATA_KINDS
    origin: Origin = field(default_factory=Origin)
    check: ParamsCheck | None = None  # parameters that contradict each other

    def model_class(self) -> type[Model]:
        """The factory, imported (with TensorFlow, for most models); PluginError naming the plugin on failure."""
        with plugin_code(self, f"import of its factory {self.factory!r}"):
            return load_factory(self.factory)  # type: ignore[return-value]

    def build(self, params: Mapping[str, Any], data: DataSpec, strategy: Any = None) -> Model:
        """A new model whose train_epoch, evaluate and sample name the plugin in what they raise."""
        model_class = self.model_class()
        with plugin_code(self, "build"):
            model = model_class(params, data, strategy)
        return _guard(self, model, MODEL_ACTIONS)

    def check_params(self, params: Mapping[str, Any]) -> None:
        """Raise ParamError, naming the model, when its `check` finds the parameters contradictory."""
        _run_check(self.check, params, f"model {self.name!r}")

    def load(self, path: Path, params: Mapping[str, Any], data: DataSpec, strategy: Any = None) -> Model:
        """The model saved at `path`, read by the plugin (Keras safe mode on).

        Every failure to read the file (damaged, truncated, not a `.keras` zip, code that safe mode
        refuses) raises ModelFileError naming the file and the reason; sampling and resuming both load here.
        """
        model_class = self.model_class()  # a plugin that fails to import is not the file's fault
        path = Path(path)
        if not path.is_file():
            raise ModelFileError(f"{path} is missing; {_MODEL_FILE_ADVICE}")
        if not zipfile.is_zipfile(path):  # Keras reports these as "File not found"
            raise ModelFileError(
                f"{path} is not a Keras model (a .keras file is a zip archive): it is damaged, truncated or "
                f"was replaced; {_MODEL_FILE_ADVICE}"
            )
        try:
            if strategy is None:
                model = model_class.load(path, params, data)
            else:
                model = model_class.load(path, params, data, strategy)
        except Exception as error:  # Keras raises ValueError, TypeError, OSError, KeyError...
            raise ModelFileError(
                f"{path} could not be loaded by model {self.name!r}: {_load_failure(error)}; {_MODEL_FILE_ADVICE}"
            ) from error
        return _guard(self, model, MODEL_ACTIONS)


@dataclass(frozen=True)
class CorpusSpec:
    name: str
    description: str
    licence: str
    pieces: Callable[[], list[Piece]]  # lists the pieces cheaply: no music21 parsing here
    source: str = ""  # where the music comes from, in words
    origin: Origin = field(default_factory=Origin)


@dataclass(frozen=True)
class RunSpec:
    """A trained run that ships with a plugin: listed by `tui-composer runs` and sampled, never written.

    `path` is the run folder as `tui-composer train` leaves it (config.json, encoder.json, model.keras,
    status.json), installed as the plugin's package data. A workspace run of the same name hides it.
    """

    name: str
    path: Path
    description: str = ""
    origin: Origin = field(default_factory=Origin)

    def __post_init__(self) -> None:
        check_name(self.name, "run")  # it is listed and sampled by name, like a workspace run
        if Path(self.path).name != self.name:
            raise ValueError(f"run {self.name!r}: its folder {self.path} must be named {self.name!r}")


Spec = EncoderSpec | ModelSpec | CorpusSpec | RunSpec


def spec_kind(spec: Spec) -> str:
    """'encoder', 'model' or 'corpus': how messages and `tui-composer plugins` name the kind of a spec."""
    return {EncoderSpec: "encoder", ModelSpec: "model", CorpusSpec: "corpus", RunSpec: "run"}.get(type(spec), "spec")


_MODEL_FILE_ADVICE = "restore the file from a backup, or train the run again"
_REASON_CHARACTERS = 300


def _load_failure(error: Exception) -> str:
    """Why a model file did not load, in one short line."""
    text = str(error)
    if "safe_mode" in text or "unsafe" in text.lower():
        return (
            "it holds Python code (a Lambda layer or a custom function) that Keras safe mode refuses to run, "
            "and tui-composer never runs code from a model file"
        )
    first_line = text.strip().splitlines()[0] if text.strip() else ""
    return f"{type(error).__name__}: {first_line[:_REASON_CHARACTERS]}"


def _run_check(check: ParamsCheck | None, params: Mapping[str, Any], owner: str) -> None:
    if check is None:
        return
    try:
        message = check(params)
    except ParamError as error:
        message = str(error)
    except Exception as error:  # noqa: BLE001 - a plugin's check that breaks must not look like the user's fault
        raise ParamError(f"{owner}: its parameter check failed ({type(error).__name__}: {error}); report it") from None
    if message:
        raise ParamError(f"{owner}: {message}")


def stamped(spec: Spec, origin: Origin) -> Spec:
    return replace(spec, origin=origin)
