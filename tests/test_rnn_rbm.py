"""rnn-rbm: learns a repeating pattern, gradients through the recurrence, token sampling, save/load, music out."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from energy_support import (
    FRAMES,
    PATTERN,
    TOKENS,
    bay_accuracy,
    pattern_sequences,
    token_sequences,
    train,
)
from tui_composer_plugins.energy import functions as energy
from tui_composer_plugins.rnn_rbm.model import RNNRBM, Streams

from tui_composer.plugin.contract import DataSpec, SampleRequest, StepContext

SMALL = {
    "hidden": 16,
    "recurrent": 16,
    "cd_steps": 5,
    "batch_size": 8,
    "bptt_steps": 8,
    "learning_rate": 0.01,
    "gibbs_steps": 10,
}


@pytest.fixture(scope="module")
def pattern_model() -> RNNRBM:
    np.random.seed(1)
    model = RNNRBM(SMALL, FRAMES)
    train(model, pattern_sequences(), 30)
    return model


def test_learns_to_continue_a_repeating_four_frame_pattern(pattern_model: RNNRBM) -> None:
    samples = pattern_model.sample(SampleRequest(n=8, max_length=26, seed=0, primer=PATTERN[:2]))
    expected = np.tile(PATTERN, (7, 1))[2:26]
    accuracy = bay_accuracy(np.stack([s[2:] for s in samples]), np.stack([expected] * 8))
    assert accuracy >= 0.9


def test_the_pattern_is_likely_and_noise_is_not(pattern_model: RNNRBM) -> None:
    pattern = pattern_model.evaluate(pattern_sequences(2)).bits
    noise = [np.random.default_rng(0).integers(0, 2, (24, 8)).astype(np.uint8)]
    assert pattern < 1.5 < 8.0 < pattern_model.evaluate(noise).bits  # 8 independent fair bits: 8 bits a frame


def test_surrogate_gradient_through_the_recurrence_matches_a_numerical_estimate() -> None:
    np.random.seed(2)
    network = RNNRBM(SMALL | {"cell": "gru"}, FRAMES).network
    for variable in network.trainable_variables:  # away from the zero start, so every path carries gradient
        variable.assign(np.random.default_rng(3).normal(0, 0.3, variable.shape))
    v = tf.constant(np.stack(pattern_sequences(2, 6)), tf.float32)
    v_model = tf.constant(np.random.default_rng(4).integers(0, 2, (12, 8)), tf.float32)
    reset = tf.constant([[True] + [False] * 5] * 2)
    weight = tf.ones([2, 6])
    state = tf.zeros([2, 16])

    def loss() -> tf.Tensor:
        return network.surrogate(v, v_model, reset, weight, state)

    with tf.GradientTape() as tape:
        value = loss()
    gradients = tape.gradient(value, network.trainable_variables)
    rng = np.random.default_rng(5)
    directions = [rng.normal(0, 1, g.shape) for g in gradients]
    analytic = sum(float(np.sum(g.numpy() * d)) for g, d in zip(gradients, directions, strict=True))
    originals = [variable.numpy() for variable in network.trainable_variables]
    eps, numerical = 1e-3, 0.0
    for sign in (1, -1):
        for variable, original, direction in zip(network.trainable_variables, originals, directions, strict=True):
            variable.assign(original + sign * eps * direction)
        numerical += sign * float(loss()) / (2 * eps)
    assert abs(analytic) > 0.1
    assert numerical == pytest.approx(analytic, rel=0.02)
    by_name = {
        variable.name: gradient for variable, gradient in zip(network.trainable_variables, gradients, strict=True)
    }
    assert np.abs(by_name["vis_to_rec"].numpy()).sum() > 0  # the CD gradient reaches the recurrent weights


def test_streams_lay_sequences_end_to_end_and_mark_starts() -> None:
    streams = Streams([np.full((n, 2), n, np.uint8) for n in (5, 3, 2, 4)], 2, DataSpec("frames", 2), 4)
    # Each sequence joins the shortest stream: 5 | 3, 2 | then 4 after the 5. Streams pad to whole chunks.
    assert streams.steps.shape == (2, 12, 2) and streams.chunks == 3
    assert streams.steps[:, :, 0].tolist() == [[5] * 5 + [4] * 4 + [0] * 3, [3] * 3 + [2] * 2 + [0] * 7]
    assert streams.reset.astype(int).tolist() == [[1, 0, 0, 0, 0, 1] + [0] * 6, [1, 0, 0, 1] + [0] * 8]
    assert streams.weight.tolist()[1] == [1] * 5 + [0] * 7  # padding does not count
    tokens = Streams([np.array([0, 5, 6, 1])], 1, TOKENS, 4)
    assert tokens.weight.tolist() == [[0, 1, 1, 1]]  # the begin-of-tune token is given, not predicted


def test_pretraining_epochs_train_the_rbm_alone() -> None:
    np.random.seed(6)
    model = RNNRBM(SMALL | {"pretrain_epochs": 1}, FRAMES)
    network = model.network
    recurrent_before = network.rec_to_vis.numpy().copy()
    kernel_before = network.kernel.numpy().copy()
    train(model, pattern_sequences(), 1)
    np.testing.assert_array_equal(network.rec_to_vis.numpy(), recurrent_before)
    assert not np.array_equal(network.kernel.numpy(), kernel_before)
    train(model, pattern_sequences(), 1)[0]
    assert not np.array_equal(network.rec_to_vis.numpy(), recurrent_before)


@pytest.fixture(scope="module")
def token_model() -> RNNRBM:
    np.random.seed(7)
    model = RNNRBM(SMALL | {"batch_size": 4}, TOKENS)
    train(model, token_sequences(), 25)
    return model


def test_token_sampling_writes_one_token_per_step(token_model: RNNRBM) -> None:
    step = token_model.decoding_step()
    state = step.prime(np.zeros(0, np.int32), 5)
    logits = step.scores(state, StepContext(1.0, np.random.default_rng(1)))
    assert logits.shape == (5, TOKENS.size) and np.isfinite(logits).all()
    samples = token_model.sample(SampleRequest(n=6, max_length=40, seed=3))
    for ids in samples:
        assert ids.dtype == np.int32 and 0 < len(ids) <= 40 and TOKENS.eos not in ids and TOKENS.bos not in ids
    # The tune it learned: 3 4 5 6 over and over.
    assert np.mean([np.mean(ids[1:] == (ids[:-1] - 3 + 1) % 4 + 3) for ids in samples]) > 0.8


def test_token_evaluation_is_the_exact_cross_entropy(token_model: RNNRBM) -> None:
    sequence = token_sequences(1)
    v, vis_bias, hid_bias, weights = token_model.conditionals(sequence)
    log_probs = energy.token_log_probs(tf.constant(vis_bias), tf.constant(hid_bias), weights).numpy()
    expected = -np.mean(log_probs[np.arange(len(v)), sequence[0][1:]])
    assert len(v) == len(sequence[0]) - 1  # every token after bos, eos included
    assert token_model.evaluate(sequence).loss == pytest.approx(expected, rel=1e-6)


def test_the_default_step_size_follows_the_data() -> None:
    # Frames learn 2.5 times as fast at 0.003 (piano-roll on bach-chorales, issue 14); tokens keep 0.001.
    small = {**SMALL, "learning_rate": 0.0}
    frames, tokens = RNNRBM(small, FRAMES), RNNRBM(small, TOKENS)
    assert frames.params["learning_rate"] == 0.003 and tokens.params["learning_rate"] == 0.001
    assert float(frames.network.optimizer.learning_rate.numpy()) == pytest.approx(0.003)
    assert RNNRBM(SMALL, FRAMES).params["learning_rate"] == 0.01  # a step size set by hand is kept
