"""rbm: the energy maths against exact values, CD training, whole-tune sampling, save/load, and music out."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from energy_support import (
    FRAMES,
    PATTERN,
    TOKENS,
    pattern_sequences,
    token_sequences,
    train,
)
from tui_composer_plugins.energy import functions as energy
from tui_composer_plugins.rbm.model import RBM

from tui_composer.plugin.contract import SampleRequest, StepContext

SMALL = {"window": 4, "hidden": 16, "batch_size": 16, "learning_rate": 0.01, "gibbs_steps": 10}


@pytest.fixture(scope="module")
def trained_frames() -> RBM:
    np.random.seed(3)
    model = RBM(SMALL, FRAMES)
    train(model, pattern_sequences(), 12)
    return model


def test_registering_the_models_imports_no_tensorflow() -> None:
    code = (
        "import sys, tui_composer_plugins.rbm, tui_composer_plugins.rnn_rbm\n"
        "heavy = {'tensorflow', 'keras', 'music21'} & set(sys.modules)\n"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_weights_start_with_standard_deviation_001_around_zero() -> None:
    np.random.seed(0)
    kernel = RBM({"window": 15, "hidden": 150}, FRAMES).network.kernel.numpy()
    assert abs(kernel.mean()) < 1e-3
    assert kernel.std() == pytest.approx(0.01, rel=0.05)


def test_free_energy_gradient_matches_a_numerical_estimate() -> None:
    rng = np.random.default_rng(1)
    v = tf.constant(rng.integers(0, 2, (5, 6)), tf.float64)
    params = [tf.Variable(rng.normal(0, 0.5, shape)) for shape in ((6,), (4,), (6, 4))]

    def mean_free_energy() -> tf.Tensor:
        return tf.reduce_mean(energy.free_energy(v, *params))

    with tf.GradientTape() as tape:
        value = mean_free_energy()
    gradients = tape.gradient(value, params)
    eps = 1e-6
    for param, gradient in zip(params, gradients, strict=True):
        flat = param.numpy().ravel()
        numerical = np.zeros_like(flat)
        for i in range(flat.size):
            for sign in (1, -1):
                shifted = flat.copy()
                shifted[i] += sign * eps
                param.assign(shifted.reshape(param.shape))
                numerical[i] += sign * float(mean_free_energy()) / (2 * eps)
            param.assign(flat.reshape(param.shape))
        np.testing.assert_allclose(gradient.numpy().ravel(), numerical, rtol=1e-5, atol=1e-8)
    # The analytic CD gradient for the visible biases: mean over data of -v (here, the positive phase only).
    np.testing.assert_allclose(gradients[0].numpy(), -v.numpy().mean(axis=0))


def exact_log_partition(vis_bias: np.ndarray, hid_bias: np.ndarray, weights: np.ndarray, group: int = 0) -> float:
    """log Z by enumerating every visible state (binary units, or one softmax group)."""
    size = len(vis_bias)
    states = np.eye(size) if group else np.array(list(itertools.product([0, 1], repeat=size)), float)
    negative_energy = states @ vis_bias + np.logaddexp(0, hid_bias + states @ weights).sum(axis=1)
    return float(np.logaddexp.reduce(negative_energy))


def test_ais_estimates_the_exact_partition_function() -> None:
    rng = np.random.default_rng(2)
    vis_bias, hid_bias = rng.normal(-1, 1, (2, 10)), rng.normal(0, 1, (2, 8))
    weights = rng.normal(0, 1.0, (10, 8))
    estimate = energy.ais_log_partition(vis_bias, hid_bias, tf.constant(weights), 200, 500, seed=0)
    for row in range(2):
        exact = exact_log_partition(vis_bias[row], hid_bias[row], weights)
        assert estimate.log_z[row] == pytest.approx(exact, abs=max(0.05, 4 * math.sqrt(estimate.variance[row])))


def test_token_probabilities_are_exact_for_one_softmax_group() -> None:
    rng = np.random.default_rng(4)
    vis_bias, hid_bias, weights = rng.normal(0, 1, 5), rng.normal(0, 1, 3), rng.normal(0, 1, (5, 3))
    log_probs = energy.token_log_probs(
        tf.constant(vis_bias[None]), tf.constant(hid_bias[None]), tf.constant(weights)
    ).numpy()[0]
    log_z = exact_log_partition(vis_bias, hid_bias, weights, group=5)
    negative_free_energy = -energy.free_energy(tf.constant(np.eye(5)), vis_bias, hid_bias, weights).numpy()
    np.testing.assert_allclose(log_probs, negative_free_energy - log_z, atol=1e-9)


def test_reconstruction_error_falls_during_training() -> None:
    np.random.seed(5)
    errors = train(RBM(SMALL, FRAMES), pattern_sequences(), 12)
    assert errors[-1] < 0.6 * errors[0]
    assert errors[-1] < errors[len(errors) // 2] < errors[0]


def test_persistent_cd_learns_too() -> None:
    np.random.seed(6)
    model = RBM(SMALL | {"persistent": True}, FRAMES)
    before = model.evaluate(pattern_sequences(2)).loss
    train(model, pattern_sequences(), 12)
    assert model.evaluate(pattern_sequences(2)).loss < before - 1.0


def test_sampling_writes_whole_tunes_window_after_window(trained_frames: RBM) -> None:
    samples = trained_frames.sample(SampleRequest(n=3, max_length=40, seed=1, primer=PATTERN[:3]))
    assert [s.shape for s in samples] == [(40, 8)] * 3
    for sample in samples:
        assert sample.dtype == np.uint8 and set(np.unique(sample)) <= {0, 1}
        np.testing.assert_array_equal(sample[:3], PATTERN[:3])  # the primer opens the tune


def test_token_sampling_writes_one_token_per_step_and_a_hop_is_one_chain() -> None:
    np.random.seed(8)
    model = RBM(SMALL | {"window": 5, "sample_hop": 2, "sample_init": "noise", "gibbs_steps": 5}, TOKENS)
    train(model, token_sequences(), 6)
    step = model.decoding_step()
    state = step.prime(np.zeros(0, np.int32), 4)
    logits = step.scores(state, StepContext(1.0, np.random.default_rng(3)))
    # One chain samples both free steps of the window; the decoder draws them one after the other.
    assert logits.shape == (4, TOKENS.size) and state.pending is not None and state.pending.shape == (4, 2, 7)
    after = step.advance(state, np.full(4, 3, np.int32))
    np.testing.assert_array_equal(step.scores(after, StepContext(1.0, np.random.default_rng(4))), state.pending[:, 1])
    assert after.history[:, -1].argmax(axis=1).tolist() == [3] * 4
    for ids in model.sample(SampleRequest(n=4, max_length=30, seed=2)):
        assert ids.dtype == np.int32 and len(ids) <= 30
        assert TOKENS.eos not in ids and TOKENS.bos not in ids
