"""Model plugin `char-lstm`: an embedding, a stack of stateful LSTM layers and a time-distributed output.

Registration imports nothing heavy: the model class lives in `.model` and is imported (with Keras and
TensorFlow) only when a run builds, trains or samples it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tui_composer.api import ModelSpec, Param, RunSpec, hookimpl

PRECISIONS = ("float32", "mixed_float16")

PARAMS = (
    Param(
        "embedding",
        int,
        512,
        "Size of the token embedding (tokens) or of the dense input projection (frames).",
        min=1,
        max=8192,
    ),
    Param("layers", int, 3, "Stacked LSTM layers.", min=1, max=16),
    Param("units", int, 256, "Units per LSTM layer.", min=1, max=8192),
    Param(
        "dropout",
        float,
        0.2,
        "Dropout after the input and after each LSTM layer (never recurrent dropout, so cuDNN stays usable).",
        min=0.0,
        max=0.9,
    ),
    Param(
        "streams",
        int,
        16,
        "Contiguous streams per batch: the corpus is cut into this many rows and each batch continues them.",
        min=1,
        max=65536,
    ),
    Param("steps", int, 64, "Time steps per batch (the truncated back-propagation length).", min=1, max=65536),
    Param("learning_rate", float, 0.002, "Adam's step size in the first epoch.", min=1e-7, max=10.0),
    Param(
        "learning_rate_decay",
        float,
        1.0,
        "Multiply the step size by this at every epoch after the first (1: constant): anneals a short training.",
        min=0.01,
        max=1.0,
    ),
    Param("clipnorm", float, 5.0, "Clip each gradient to this norm (0: no clipping).", min=0.0, max=1e6),
    Param(
        "shuffle",
        bool,
        True,
        "Shuffle the order of the pieces before cutting the streams, differently each epoch.",
    ),
    Param(
        "precision",
        str,
        "float32",
        "Arithmetic of the layers: float32, or mixed_float16 (float16 maths, float32 weights, loss scaling) "
        "for a GPU's tensor cores; single-device training only.",
        choices=PRECISIONS,
    ),
    Param(
        "jit_compile",
        bool,
        False,
        "Compile the training step with XLA (slower than TensorFlow's graph on CPU in our measurements).",
    ),
)

SPEC = ModelSpec(
    name="char-lstm",
    description=(
        "Stateful LSTM stack (default 3 x 256) over contiguous streams, softmax over the vocabulary "
        "(tokens) or a sigmoid per feature (frames); samples many tunes at once in a compiled loop."
    ),
    factory="tui_composer_plugins.char_lstm.model:CharLSTM",
    params=PARAMS,
)


@hookimpl
def register_models(register: Callable[[ModelSpec], None]) -> None:
    register(SPEC)


# Trained runs that ship with this plugin (package data), read-only: see pretrained/oneills-default/README.md.
PRETRAINED = Path(__file__).parent / "pretrained"


@hookimpl
def register_runs(register: Callable[[RunSpec], None]) -> None:
    register(
        RunSpec(
            name="oneills-default",
            path=PRETRAINED / "oneills-default",
            description="char-lstm trained 15 minutes on O'Neill's tunes (abc encoder): samples right after install",
        )
    )
