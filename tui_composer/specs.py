"""What plugins register: specs that describe an encoder, a model or a corpus without importing it."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from tui_composer.contract import DATA_KINDS, DataKind, Encoder, Model, Piece
from tui_composer.params import Param

# A factory is the class itself or "module:attribute", imported only when a run needs it,
# so registering a model never imports TensorFlow.
Factory = Callable[..., Any] | str


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

    def __post_init__(self) -> None:
        if self.makes not in DATA_KINDS:
            raise ValueError(f"encoder {self.name!r}: makes must be one of {DATA_KINDS}, not {self.makes!r}")

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

    def model_class(self) -> type[Model]:
        return load_factory(self.factory)


@dataclass(frozen=True)
class CorpusSpec:
    name: str
    description: str
    licence: str
    pieces: Callable[[], list[Piece]]  # lists the pieces cheaply: no music21 parsing here
    source: str = ""  # where the music comes from, in words
    origin: Origin = field(default_factory=Origin)


Spec = EncoderSpec | ModelSpec | CorpusSpec


def stamped(spec: Spec, origin: Origin) -> Spec:
    return replace(spec, origin=origin)
