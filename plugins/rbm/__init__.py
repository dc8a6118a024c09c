"""Model plugin `rbm`: a binary restricted Boltzmann machine over a window of consecutive steps.

Registration imports nothing heavy: the model class lives in `.model` and is imported (with TensorFlow)
only when a run builds it.
"""

from __future__ import annotations

from collections.abc import Callable

from tui_composer_plugins.energy import LIKELIHOOD_PARAMS

from tui_composer.api import ModelSpec, Param, hookimpl

PARAMS = (
    Param("window", int, 15, "Consecutive steps (frames or tokens) in one visible vector.", min=1, max=256),
    Param("hidden", int, 150, "Hidden units.", min=1, max=8192),
    Param("cd_steps", int, 1, "Gibbs steps k of contrastive divergence (CD-k) per update.", min=1, max=1000),
    Param("persistent", bool, False, "Persistent CD: negative chains carry over between updates."),
    Param("batch_size", int, 64, "Windows per update.", min=1, max=65536),
    Param("optimizer", str, "adam", "Update rule for the CD gradient.", choices=("adam", "sgd")),
    Param("learning_rate", float, 0.001, "Step size of the optimizer.", min=1e-7, max=10.0),
    Param("gibbs_steps", int, 25, "Gibbs steps per window when sampling.", min=1, max=10000),
    Param(
        "sample_hop",
        int,
        1,
        "New steps per window when sampling; the other window - hop steps are clamped to what came before.",
        min=1,
        max=256,
    ),
    Param(
        "sample_init",
        str,
        "zeros",
        "Start of each window's free units before Gibbs sampling: all off, or random.",
        choices=("zeros", "noise"),
    ),
    *LIKELIHOOD_PARAMS,
)


SPEC = ModelSpec(
    name="rbm",
    description=(
        "Binary RBM over a window of W steps, trained by CD-k or persistent CD; writes whole tunes by Gibbs "
        "sampling each new window with its overlap with the previous one clamped."
    ),
    factory="tui_composer_plugins.rbm.model:RBM",
    params=PARAMS,
)


@hookimpl
def register_models(register: Callable[[ModelSpec], None]) -> None:
    register(SPEC)
