"""What plugins register: specs that describe an encoder, a model or a corpus without importing it."""

from __future__ import annotations

import importlib
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tui_composer.contract import DATA_KINDS, DataKind, DataSpec, Encoder, Model, Piece
from tui_composer.params import Param, ParamError
from tui_composer.workspace import WorkspaceError

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


@dataclass(frozen=True)
class Origin:
    """Which plugin registered a spec; stamped by the host."""

    plugin: str = ""
    distribution: str = ""
    version: str = ""


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

    def create(self, params: dict[str, Any]) -> Encoder:
        return load_factory(self.factory)(**params)


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
        return load_factory(self.factory)

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
                return model_class.load(path, params, data)
            return model_class.load(path, params, data, strategy)
        except Exception as error:  # Keras raises ValueError, TypeError, OSError, KeyError...
            raise ModelFileError(
                f"{path} could not be loaded by model {self.name!r}: {_load_failure(error)}; {_MODEL_FILE_ADVICE}"
            ) from error


@dataclass(frozen=True)
class CorpusSpec:
    name: str
    description: str
    licence: str
    pieces: Callable[[], list[Piece]]  # lists the pieces cheaply: no music21 parsing here
    source: str = ""  # where the music comes from, in words
    origin: Origin = field(default_factory=Origin)


Spec = EncoderSpec | ModelSpec | CorpusSpec

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
