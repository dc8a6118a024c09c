"""rbm: the energy maths against exact values, CD training, whole-tune sampling, save/load, and music out."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from energy_support import (
    FRAMES,
    PATTERN,
    TOKENS,
    OnlyEvenTokens,
    abc_primer,
    assert_midi_has_notes,
    assert_same_after_reload,
    encoded_tunes,
    pattern_sequences,
    token_sequences,
    train,
)
from tui_composer_plugins.rbm import energy
from tui_composer_plugins.rbm.model import RBM

from tui_composer.contract import EpochProgress, SampleRequest
from tui_composer.export import score_to_midi

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


def test_training_reports_every_batch_and_stops_when_asked() -> None:
    np.random.seed(7)
    model = RBM(SMALL, FRAMES)
    seen: list[tuple[int, int]] = []
    progress = EpochProgress(on_batch=lambda done, total, loss: seen.append((done, total)), stop_requested=lambda: True)
    model.train_epoch(pattern_sequences(), 0, progress)
    assert seen == [(1, math.ceil(8 * 24 / 16))]  # 8 sequences x 24 windows (3 padding steps each), 16 per batch


def test_sampling_writes_whole_tunes_window_after_window(trained_frames: RBM) -> None:
    samples = trained_frames.sample(SampleRequest(n=3, max_length=40, seed=1, primer=PATTERN[:3]))
    assert [s.shape for s in samples] == [(40, 8)] * 3
    for sample in samples:
        assert sample.dtype == np.uint8 and set(np.unique(sample)) <= {0, 1}
        np.testing.assert_array_equal(sample[:3], PATTERN[:3])  # the primer opens the tune


def test_the_same_seed_gives_the_same_samples(trained_frames: RBM) -> None:
    def draw(seed: int) -> list[np.ndarray]:
        return trained_frames.sample(SampleRequest(n=2, max_length=20, seed=seed))

    first, again, other = draw(11), draw(11), draw(12)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))


def test_token_sampling_writes_exactly_one_token_per_step() -> None:
    np.random.seed(8)
    model = RBM(SMALL | {"window": 5}, TOKENS)
    train(model, token_sequences(), 6)
    prefix = tf.constant(np.eye(TOKENS.size, dtype=np.float32)[[0] * 5])
    raw = model._generate(
        prefix,
        n=tf.constant(4),
        new_steps=tf.constant(30),
        hop=2,
        gibbs_steps=5,
        noise_start=True,
        temperature=tf.constant(1.0),
        top_k=0,
        seed=tf.constant([3, 0]),
        eos=-1,
        mask=model._token_mask(),
    ).numpy()
    assert raw.shape == (4, 30, TOKENS.size)
    np.testing.assert_array_equal(raw.sum(axis=-1), 1.0)  # one unit of each step's softmax group is on
    assert not raw[:, :, TOKENS.bos].any()  # never the begin-of-tune token
    for ids in model.sample(SampleRequest(n=4, max_length=30, seed=2)):
        assert ids.dtype == np.int32 and len(ids) <= 30
        assert TOKENS.eos not in ids and TOKENS.bos not in ids


def test_a_token_constraint_masks_every_step() -> None:
    np.random.seed(12)
    model = RBM(SMALL | {"window": 3}, TOKENS)
    train(model, token_sequences(2), 2)
    samples = model.sample(SampleRequest(n=4, max_length=12, seed=5, constraint=OnlyEvenTokens()))
    for ids in samples:
        assert len(ids) >= 3 and set(ids.tolist()) <= {4, 6}


def test_a_primer_of_the_wrong_shape_is_refused(trained_frames: RBM) -> None:
    with pytest.raises(ValueError, match="primer of shape"):
        trained_frames.sample(SampleRequest(n=1, max_length=8, primer=np.zeros((3, 5), np.uint8)))


def test_save_and_load_round_trip_gives_identical_outputs_and_resumes_exactly(tmp_path: Path) -> None:
    np.random.seed(9)
    model = RBM(SMALL | {"persistent": True}, FRAMES)
    sequences = pattern_sequences()
    train(model, sequences, 2)
    model.save(tmp_path / "model.keras")
    loaded = RBM.load(tmp_path / "model.keras", SMALL | {"persistent": True}, FRAMES)
    request = SampleRequest(n=2, max_length=16, seed=4)
    assert_same_after_reload(model, loaded, sequences, request)


@pytest.mark.parametrize("encoder_name", ["abc", "midi-events", "piano-roll"])
def test_a_sample_decodes_through_each_encoder_and_writes_midi(encoder_name: str) -> None:
    tunes = encoded_tunes(encoder_name)
    np.random.seed(10)
    model = RBM({"window": 8, "hidden": 32, "batch_size": 32, "learning_rate": 0.01, "gibbs_steps": 10}, tunes.data)
    train(model, tunes.sequences, 2)
    primer = tunes.sequences[0][1:40] if tunes.data.kind == "tokens" else tunes.sequences[0][:8]
    if encoder_name == "abc":  # the header and the first line of notes: music21 keeps the lines that parse
        primer = abc_primer(tunes)
    sample = model.sample(SampleRequest(n=1, max_length=80, seed=0, primer=primer))[0]
    midi = score_to_midi(tunes.encoder.decode(sample))
    assert_midi_has_notes(midi, encoder_name)
