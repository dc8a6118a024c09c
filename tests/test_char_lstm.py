"""The char-LSTM model on its own: stream layout, the LSTM layer, training, evaluation, sampling, files."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tui_composer.api import DataSpec, EpochProgress, SampleRequest

keras = pytest.importorskip("keras")
from tui_composer_plugins.char_lstm.model import (  # noqa: E402
    WARM_UP_LENGTH,
    CharLSTM,
    HoistedLSTM,
    TokenLSTM,
    stream_batches,
)

TOKENS = DataSpec(kind="tokens", size=10, bos=0, eos=1)
FRAMES = DataSpec(kind="frames", size=6)
SMALL = {"embedding": 8, "layers": 2, "units": 16, "streams": 3, "steps": 8, "dropout": 0.0}


def cyclic_tunes(count: int = 6, length: int = 40) -> list[np.ndarray]:
    """bos, then 2 3 4 5 6 7 repeated, then eos: a pattern a tiny LSTM learns in a few epochs."""
    body = [2 + (i % 6) for i in range(length)]
    return [np.asarray([0, *body, 1], np.int32) for _ in range(count)]


def random_frames(count: int = 6, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(rng.random((rng.integers(10, 30), FRAMES.size)) < 0.3).astype(np.uint8) for _ in range(count)]


# --- registration -----------------------------------------------------------------------------------


def test_registration_imports_neither_keras_nor_tensorflow() -> None:
    code = (
        "import sys, tui_composer_plugins.char_lstm as p; "
        "assert p.SPEC.name == 'char-lstm'; "
        "print(sorted(m for m in ('tensorflow', 'keras', 'music21') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# --- contiguous streams --------------------------------------------------------------------------------


def test_each_batch_continues_the_streams_of_the_last() -> None:
    # The stream's values are their own positions, so continuity is visible in the numbers.
    sequences = [np.arange(0, 17), np.arange(17, 40), np.arange(40, 50)]
    batches = stream_batches(sequences, streams=3, steps=4)
    assert batches.row_length == math.ceil(49 / 3) == 17
    assert batches.inputs.shape == (5, 3, 4)  # ceil(17 / 4) batches of 3 rows x 4 steps
    for b in range(len(batches) - 1):
        for r in range(3):
            if batches.weights[b + 1, r, 0]:
                assert batches.inputs[b + 1, r, 0] == batches.inputs[b, r, -1] + 1
    # Row r starts at r * row_length; targets are the next position; every transition appears once.
    assert list(batches.inputs[0, :, 0]) == [0, 17, 34]
    real = batches.weights == 1
    assert np.array_equal(batches.targets[real], batches.inputs[real] + 1)
    assert sorted(batches.inputs[real].tolist()) == list(range(49))
    assert batches.transitions == 49


def test_frames_are_streamed_frame_by_frame() -> None:
    frames = [np.arange(12).reshape(6, 2), np.arange(12, 20).reshape(4, 2)]
    batches = stream_batches(frames, streams=2, steps=3)
    assert batches.inputs.shape == (2, 2, 3, 2)
    real = batches.weights == 1
    assert np.array_equal(batches.targets[real], batches.inputs[real] + 2)  # the next frame


def test_nothing_to_stream_gives_no_batches() -> None:
    assert len(stream_batches([], streams=4, steps=8)) == 0
    assert len(stream_batches([np.array([5])], streams=4, steps=8)) == 0


# --- the layer -----------------------------------------------------------------------------------------


def test_hoisted_lstm_computes_what_keras_lstm_computes() -> None:
    import tensorflow as tf

    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 7, 5)).astype(np.float32)
    ours = HoistedLSTM(4, return_sequences=True)
    reference = keras.layers.LSTM(4, return_sequences=True)
    ours.build(x.shape)
    reference.build(x.shape)
    reference.set_weights([w + rng.normal(scale=0.1, size=w.shape).astype(np.float32) for w in ours.get_weights()])
    ours.set_weights(reference.get_weights())
    with tf.GradientTape(persistent=True) as tape:
        ours_out = ours(x)
        reference_out = reference(x)
        ours_loss = tf.reduce_sum(ours_out**2)
        reference_loss = tf.reduce_sum(reference_out**2)
    np.testing.assert_allclose(ours_out.numpy(), reference_out.numpy(), atol=1e-5)
    ours_grads = tape.gradient(ours_loss, ours.trainable_weights)
    reference_grads = tape.gradient(reference_loss, reference.trainable_weights)
    for mine, theirs in zip(ours_grads, reference_grads, strict=True):
        np.testing.assert_allclose(mine.numpy(), theirs.numpy(), atol=1e-4)


def test_token_lstm_computes_what_an_embedding_then_an_lstm_compute() -> None:
    """The folded first layer (ids in, table lookup) against Keras's Embedding -> LSTM, values and gradients."""
    import tensorflow as tf

    rng = np.random.default_rng(2)
    ids = rng.integers(0, 6, size=(3, 7)).astype(np.int32)
    ours = TokenLSTM(4, vocabulary=6, embedding=5, return_sequences=True)
    embedding, reference = keras.layers.Embedding(6, 5), keras.layers.LSTM(4, return_sequences=True)
    ours.build(ids.shape)
    embedding.build(ids.shape)
    reference.build((3, 7, 5))
    table, *lstm = [w + rng.normal(scale=0.1, size=w.shape).astype(np.float32) for w in ours.get_weights()]
    ours.set_weights([table, *lstm])
    embedding.set_weights([table])
    reference.set_weights(lstm)
    with tf.GradientTape(persistent=True) as tape:
        ours_out = ours(ids)
        reference_out = reference(embedding(ids))
        ours_loss = tf.reduce_sum(ours_out**2)
        reference_loss = tf.reduce_sum(reference_out**2)
    np.testing.assert_allclose(ours_out.numpy(), reference_out.numpy(), atol=1e-5)
    ours_grads = tape.gradient(ours_loss, ours.trainable_weights)
    reference_grads = tape.gradient(reference_loss, embedding.trainable_weights + reference.trainable_weights)
    for mine, theirs in zip(ours_grads, reference_grads, strict=True):
        np.testing.assert_allclose(tf.convert_to_tensor(mine).numpy(), tf.convert_to_tensor(theirs).numpy(), atol=1e-4)


# --- tokens ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained_tokens() -> CharLSTM:
    keras.utils.set_random_seed(0)
    model = CharLSTM({**SMALL, "learning_rate": 0.02}, TOKENS)
    for epoch in range(8):
        model.train_epoch(cyclic_tunes(), epoch, EpochProgress())
    return model


def test_training_lowers_the_loss_and_reports_batches() -> None:
    keras.utils.set_random_seed(0)
    model = CharLSTM({**SMALL, "learning_rate": 0.02}, TOKENS)
    seen: list[tuple[int, int]] = []
    before = model.evaluate(cyclic_tunes(2))
    first = model.train_epoch(cyclic_tunes(), 0, EpochProgress(on_batch=lambda d, t, loss: seen.append((d, t))))
    for epoch in range(1, 4):
        last = model.train_epoch(cyclic_tunes(), epoch, EpochProgress())
    after = model.evaluate(cyclic_tunes(2))
    total = len(stream_batches(cyclic_tunes(), SMALL["streams"], SMALL["steps"]))
    assert seen == [(i, total) for i in range(1, total + 1)]
    assert last < first
    assert after.loss < before.loss
    assert after.bits == pytest.approx(after.loss / math.log(2))
    assert before.bits == pytest.approx(math.log2(TOKENS.size), abs=0.3)  # untrained: about uniform


def test_the_step_size_decays_by_epoch_number() -> None:
    """Epoch k trains with learning_rate * decay**k, set from k, so a resumed run steps like an unbroken one."""
    model = CharLSTM({**SMALL, "learning_rate": 0.01, "learning_rate_decay": 0.5}, TOKENS)
    step_sizes = []
    for epoch in (0, 1, 3, 1):
        model.train_epoch(cyclic_tunes(1), epoch, EpochProgress())
        step_sizes.append(float(model.network.optimizer.learning_rate.numpy()))
    assert step_sizes == pytest.approx([0.01, 0.005, 0.00125, 0.005])


def test_a_trained_model_continues_the_pattern(trained_tokens: CharLSTM) -> None:
    greedy = trained_tokens.sample(SampleRequest(n=2, max_length=20, top_k=1, seed=0))
    pattern = [2 + (i % 6) for i in range(20)]
    assert [tune.tolist() for tune in greedy] == [pattern, pattern]
    assert trained_tokens.evaluate(cyclic_tunes(2)).bits < 0.5


def test_the_loop_stops_at_eos(trained_tokens: CharLSTM) -> None:
    first = trained_tokens.sample(SampleRequest(n=6, max_length=200, temperature=1.5, seed=7))
    for tune in first:
        assert TOKENS.bos not in tune and TOKENS.eos not in tune
        assert tune.dtype == np.int32
    # The tunes it learned end after 40 notes: at least one sample stops at eos before max_length.
    assert min(len(t) for t in first) < 200


def test_primer_starts_every_sample(trained_tokens: CharLSTM) -> None:
    primer = np.array([5, 6, 7], np.int32)
    tunes = trained_tokens.sample(SampleRequest(n=3, max_length=12, top_k=1, primer=primer))
    for tune in tunes:
        assert tune[:3].tolist() == [5, 6, 7]
        assert tune[3:6].tolist() == [2, 3, 4]  # and the pattern goes on from there


def test_the_compiled_sampler_computes_what_the_network_computes(trained_tokens: CharLSTM) -> None:
    import tensorflow as tf

    trained_tokens.sample(SampleRequest(n=1, max_length=2))
    sampler = trained_tokens._sampler
    assert sampler is not None
    sequence = cyclic_tunes(1, 10)[0]
    batch = np.zeros((SMALL["streams"], len(sequence)), np.int32)
    batch[0] = sequence
    trained_tokens.reset_states()
    expected = trained_tokens.network.predict_on_batch(batch)[0]
    trained_tokens.reset_states()
    for few, fuse in ((False, False), (True, False), (False, True)):  # every form of the step
        hs = [tf.zeros([1, u]) for u in sampler.units]
        cs = [tf.zeros([1, u]) for u in sampler.units]
        for position, token in enumerate(sequence):
            logits, hs, cs = sampler._step_graph(tf.constant([token], tf.int32), hs, cs, few, fuse)
            np.testing.assert_allclose(tf.nn.softmax(logits)[0].numpy(), expected[position], atol=1e-5)


def test_samples_start_where_the_network_meets_tunes_in_training(trained_tokens: CharLSTM) -> None:
    """In the contiguous streams a tune always follows another one's end, never a zero state: every sample
    starts from the state after a warm-up tune of the model's own (seed 0) and its end-of-tune."""
    import tensorflow as tf

    sampler = trained_tokens.sampler()
    zero = tf.zeros([1, 2 * sum(sampler.units)])
    written, _, ended = sampler._free(sampler._primed(np.zeros(0, np.int32), 1, zero), WARM_UP_LENGTH, 0, 1.0, 0)
    warm_up = sampler._until_eos(written[:, 0])
    assert 0 < len(warm_up) < WARM_UP_LENGTH and ended.all()  # it ended at its end-of-tune
    state = zero
    for token in [TOKENS.bos, *warm_up.tolist(), TOKENS.eos]:
        _, state = sampler.packed_step(1)(tf.constant([token], tf.int32), state)
    assert np.abs(state.numpy()).max() > 0.1
    np.testing.assert_allclose(sampler.start_state().numpy(), state.numpy(), atol=1e-5)


def test_save_and_load_keep_weights_and_optimizer(trained_tokens: CharLSTM, tmp_path: Path) -> None:
    path = tmp_path / "model.keras"
    trained_tokens.save(path)
    loaded = CharLSTM.load(path, trained_tokens.params, TOKENS)
    for mine, theirs in zip(trained_tokens.network.get_weights(), loaded.network.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)
    assert int(loaded.network.optimizer.iterations) == int(trained_tokens.network.optimizer.iterations) > 0
    bare = tmp_path / "bare.keras"
    trained_tokens.save(bare, include_optimizer=False)
    assert bare.stat().st_size < path.stat().st_size  # no Adam moments
    shipped = CharLSTM.load(bare, trained_tokens.params, TOKENS)
    assert int(shipped.network.optimizer.iterations) == 0
    request = SampleRequest(n=2, max_length=30, seed=4)
    expected = [t.tolist() for t in trained_tokens.sample(request)]
    assert [t.tolist() for t in shipped.sample(request)] == expected


# --- frames ---------------------------------------------------------------------------------------------------


def test_frames_train_evaluate_and_sample() -> None:
    keras.utils.set_random_seed(0)
    model = CharLSTM({**SMALL, "learning_rate": 0.02}, FRAMES)
    before = model.evaluate(random_frames(2, seed=1))
    for epoch in range(3):
        model.train_epoch(random_frames(), epoch, EpochProgress())
    after = model.evaluate(random_frames(2, seed=1))
    assert after.loss < before.loss
    # Bits per frame: the binary cross-entropy summed over the frame's features.
    assert after.bits == pytest.approx(after.loss * FRAMES.size / math.log(2))
    primer = np.eye(FRAMES.size, dtype=np.uint8)[:2]
    request = SampleRequest(n=3, max_length=12, seed=2, primer=primer)
    tunes = model.sample(request)
    assert [t.shape for t in tunes] == [(12, FRAMES.size)] * 3
    assert all(t.dtype == np.uint8 and set(np.unique(t)) <= {0, 1} for t in tunes)
    assert all(np.array_equal(t[:2], primer) for t in tunes)
    assert all(np.array_equal(a, b) for a, b in zip(tunes, model.sample(request), strict=True))
    # Top-k keeps at most k features on per frame.
    capped = model.sample(SampleRequest(n=3, max_length=12, seed=2, top_k=1, temperature=5.0))
    assert max(int(t.sum(axis=1).max()) for t in capped) <= 1
