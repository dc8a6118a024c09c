"""What the `rbm` and `rnn-rbm` models share: the base of their Keras-backed models, the Gibbs chain
the core decoder samples through, and their optimizers (TensorFlow).

Importing this module imports TensorFlow and Keras: only model code imports it, never registration.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from tui_composer_plugins.energy.functions import NegativeLogLikelihood, VisibleUnits, bernoulli, fold, gibbs

from tui_composer.api import (
    DataSpec,
    Evaluation,
    Model,
    SampleRequest,
    checked_primer,
    frame_noise,
    scope_of,
    temperature_of,
)

NOISE_CHUNK = 64  # frames a fused loop draws per call: bounds its noise to 64 x n x features


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


def drawn_frames(scores: tf.Tensor, noise: tf.Tensor, temperature: tf.Tensor, top_k: int) -> tf.Tensor:
    """`tui_composer.plugin.decoding.frames_drawn` in TensorFlow, the same arithmetic in the same order: on where
    noise < scores / T, and with top-k only the k largest (ties to the lower feature, as argsort's)."""
    scaled = scores / temperature
    on = noise < scaled
    features = int(scores.shape[-1])
    if 0 < top_k < features:
        likeliest = tf.math.top_k(scaled, top_k).indices
        on &= tf.reduce_any(tf.one_hot(likeliest, features, True, False, dtype=tf.bool), axis=1)
    return tf.cast(on, tf.float32)


def fused_frames(
    loop: Callable[[Any, tf.Tensor, tf.Tensor, tf.Tensor], tuple[tf.Tensor, Any]],
    prime: Callable[[np.ndarray, int], Any],
    request: SampleRequest,
    data: DataSpec,
    model: str,
) -> list[np.ndarray]:
    """Frames from a model's compiled loop over its decoding step, drawing what the core decoder draws.

    The decoder's order per frame is the chain's seed (`chain_seed`), then the frame's noise; they are
    drawn here, from the same generator in the same order, `NOISE_CHUNK` frames at a time, and
    `loop(state, seeds [steps, 2], noise [steps, n, F], temperature)` gives (frames [steps, n, F], state).
    """
    primer = checked_primer(request.primer, data, model)
    rng = np.random.default_rng(request.seed)
    n, steps = request.n, max(request.max_length, len(primer)) - len(primer)
    temperature = tf.constant(temperature_of(request))
    state = prime(primer, n)
    pieces = [np.zeros((0, n, data.size), np.uint8)]
    for first in range(0, steps, NOISE_CHUNK):
        count = min(NOISE_CHUNK, steps - first)
        seeds = np.empty((count, 2), np.int32)
        noise = np.empty((count, n, data.size), np.float32)
        for t in range(count):
            seeds[t] = rng.integers(0, 2**31 - 1, size=2)  # as chain_seed draws it
            noise[t] = frame_noise(rng, (n, data.size))
        written, state = loop(state, tf.constant(seeds), tf.constant(noise), temperature)
        pieces.append(written.numpy().astype(np.uint8))
    frames = np.concatenate(pieces)
    return [np.concatenate([primer, frames[:, row]]) for row in range(n)]


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
