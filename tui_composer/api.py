"""The public API for plugin authors: everything a third-party plugin imports comes from here.

from tui_composer.api import hookimpl, EncoderSpec, Encoder, Param
"""

from tui_composer.contract import (
    DATA_KINDS,
    DataKind,
    DataSpec,
    EncodeError,
    Encoder,
    EpochProgress,
    Evaluation,
    Model,
    Piece,
    SampleRequest,
    TokenConstraint,
    TokenEncoder,
    Vocabulary,
)
from tui_composer.hookspecs import hookimpl
from tui_composer.params import Param, ParamError
from tui_composer.specs import CorpusSpec, EncoderSpec, ModelSpec

__all__ = [
    "DATA_KINDS",
    "CorpusSpec",
    "DataKind",
    "DataSpec",
    "EncodeError",
    "Encoder",
    "EncoderSpec",
    "EpochProgress",
    "Evaluation",
    "Model",
    "ModelSpec",
    "Param",
    "ParamError",
    "Piece",
    "SampleRequest",
    "TokenConstraint",
    "TokenEncoder",
    "Vocabulary",
    "hookimpl",
]
