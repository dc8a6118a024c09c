"""What the `rbm` and `rnn-rbm` models share: the base of their Keras-backed models, the Gibbs chain
the core decoder samples through, and their optimizers (TensorFlow).

Importing this module imports TensorFlow and Keras: only model code imports it, never registration.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from tui_composer_plugins.energy.functions import NegativeLogLikelihood, VisibleUnits, bernoulli, fold, gibbs

from tui_composer.api import DataSpec, Evaluation, Model, scope_of


def make_optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    """The update rule both models offer: SGD with momentum 0.9, or Adam."""
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=learning_rate, momentum=0.9)
    return keras.optimizers.Adam(learning_rate=learning_rate)


def chain_logits(
    start: tf.Tensor,
    hid_input: tf.Tensor,
    vis_bias: tf.Tensor,
    weights: tf.Tensor,
    gibbs_steps: int | tf.Tensor,
    seed: tf.Tensor,
    units: VisibleUnits,
    temperature: tf.Tensor,
    mask: tf.Tensor | None,
) -> tf.Tensor:
    """A Gibbs chain's `gibbs_steps` - 1 full steps from `start`, then a hidden draw: the input of the last
    visible conditional [n, D], before temperature. The core decoder makes that last visible draw."""
    v = gibbs(start, hid_input, vis_bias, weights, gibbs_steps - 1, fold(seed, 0), units, temperature, 0, mask)
    h_prob = tf.sigmoid((hid_input + tf.matmul(v, weights)) / temperature)
    h = bernoulli(h_prob, fold(seed, 1))
    return vis_bias + tf.matmul(h, weights, transpose_b=True)


def chain_seed(rng: np.random.Generator) -> tf.Tensor:
    """A stateless seed for one step's Gibbs chain, from the decoder's generator."""
    return tf.constant(rng.integers(0, 2**31 - 1, size=2), tf.int32)


def visible_vectors(chosen: np.ndarray, data: DataSpec) -> np.ndarray:
    """The decoder's choice as visible vectors [rows, D]: one-hot ids (tokens) or the frames."""
    if data.kind == "tokens":
        return np.eye(data.size, dtype=np.float32)[chosen]
    return chosen.astype(np.float32)


class EnergyModel(Model):
    """What `rbm` and `rnn-rbm` share: evaluation by the per-step likelihood, and their `.keras` files."""

    network_class: type[keras.Model]
    label: str
    network: keras.Model

    def negative_log_likelihood(
        self, sequences: Sequence[np.ndarray], chains: int, temperatures: int, seed: int = 0, max_frames: int = 0
    ) -> NegativeLogLikelihood:
        raise NotImplementedError

    def evaluate(self, sequences: Sequence[np.ndarray]) -> Evaluation:
        """Cross-entropy per step: exact for tokens; for frames an AIS estimate on `eval_frames` frames."""
        p = self.params
        nll = self.negative_log_likelihood(
            sequences, int(p["ais_chains"]), int(p["ais_temperatures"]), max_frames=int(p["eval_frames"])
        )
        return Evaluation(loss=nll.nats, bits=nll.bits)

    def save(self, path: Path) -> None:
        self.network.save(Path(path))

    @classmethod
    def load(cls, path: Path, params: Mapping[str, Any], data: DataSpec, strategy: Any = None) -> EnergyModel:
        with scope_of(strategy):
            network = keras.saving.load_model(Path(path), safe_mode=True, compile=True)
        if not isinstance(network, cls.network_class):
            raise ValueError(f"{path}: not an {cls.label} model (it holds a {type(network).__name__})")
        return cls(params, data, strategy, network=network)  # type: ignore[call-arg]  # each model takes one
