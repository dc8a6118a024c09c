"""Model plugin `rnn-rbm` (Boulanger-Lewandowski, Bengio and Vincent, ICML 2012).

A recurrent network whose state sets the visible and hidden biases of an RBM at every step; one RBM weight
matrix is shared by all steps. Registration imports nothing heavy: the model class lives in `.model`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tui_composer_plugins.energy import LIKELIHOOD_PARAMS

from tui_composer.api import ModelSpec, Param, RunSpec, hookimpl

PARAMS = (
    Param("hidden", int, 150, "Hidden units of the RBM at each step.", min=1, max=8192),
    Param("recurrent", int, 100, "Units of the recurrent state.", min=1, max=8192),
    Param("cell", str, "tanh", "Recurrent cell: the paper's tanh RNN, or a GRU.", choices=("tanh", "gru")),
    Param("cd_steps", int, 15, "Gibbs steps k of contrastive divergence (CD-k) per step and update.", min=1, max=1000),
    Param("batch_size", int, 16, "Streams per update: sequences are laid end to end in this many streams.", min=1),
    Param("bptt_steps", int, 100, "Steps per update along each stream (truncated backpropagation).", min=1),
    Param("optimizer", str, "adam", "Update rule for the CD gradient.", choices=("adam", "sgd")),
    Param(
        "learning_rate",
        float,
        0.0,
        "Step size of the optimizer (0: by the data, 0.003 for frames and 0.001 for tokens).",
        min=0.0,
        max=10.0,
    ),
    Param(
        "dropout",
        float,
        0.0,
        "Fraction of the recurrent network's inputs dropped while training (regularises small corpora).",
        min=0.0,
        max=0.9,
    ),
    Param("clip_norm", float, 0.0, "Clip each update's gradient to this global norm (0: no clipping).", min=0.0),
    Param(
        "pretrain_epochs",
        int,
        0,
        "First epochs train the RBM alone (all steps share its biases) before the recurrent part learns.",
        min=0,
    ),
    Param("gibbs_steps", int, 25, "Gibbs steps per generated step when sampling.", min=1, max=10000),
    Param(
        "sample_init",
        str,
        "zeros",
        "Start of each step's Gibbs chain when sampling: all units off, or random.",
        choices=("zeros", "noise"),
    ),
    Param(
        "token_sampling",
        str,
        "gibbs",
        "Tokens: Gibbs-sample each step's softmax group, or draw from its exact distribution.",
        choices=("gibbs", "exact"),
    ),
    *LIKELIHOOD_PARAMS,
)

# The step size that `learning_rate=0` picks. Frames (piano-roll on bach-chorales) learn 2.5 times as fast at
# 0.003 as at 0.001 (validation 7.1 nats per frame after 8 epochs, against 20 epochs); tokens keep 0.001.
DATA_LEARNING_RATES = {"frames": 0.003, "tokens": 0.001}

SPEC = ModelSpec(
    name="rnn-rbm",
    description=(
        "RNN-RBM (Boulanger-Lewandowski et al. 2012): a recurrent state sets an RBM's biases at every step; "
        "CD-k training through the recurrence, compiled Gibbs sampling of many tunes at once."
    ),
    factory="tui_composer_plugins.rnn_rbm.model:RNNRBM",
    params=PARAMS,
)


@hookimpl
def register_models(register: Callable[[ModelSpec], None]) -> None:
    register(SPEC)


# Trained runs that ship with this plugin (package data), read-only: see pretrained/chorales-default/README.md.
PRETRAINED = Path(__file__).parent / "pretrained"


@hookimpl
def register_runs(register: Callable[[RunSpec], None]) -> None:
    register(
        RunSpec(
            name="chorales-default",
            path=PRETRAINED / "chorales-default",
            description="rnn-rbm trained 10 minutes on Bach chorales (piano-roll encoder): four-voice chorales",
        )
    )
