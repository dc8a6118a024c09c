"""KerasModel, the base class for Keras-trained model plugins: what the conformance kit does not see.

The kit runs over the example plugin built on it (test_example_model_plugin.py); here, its stream
batches, that its one-position sampling step computes what the training network computes, and the
stacks and strategies it refuses, with the reason.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tui_composer.api import KerasModel, StrategyError, stream_batches
from tui_composer.plugin.contract import DataSpec, EpochProgress, StepContext

keras = pytest.importorskip("keras")

TOKENS = DataSpec("tokens", 9, bos=0, eos=1)
FRAMES = DataSpec("frames", 6)


def test_streams_are_contiguous_rows_whose_batches_continue_each_other() -> None:
    # Two pieces, 10 ids in all: 9 transitions over 2 rows of 5, in batches of 3 steps.
    batches = stream_batches([np.arange(0, 6, dtype=np.int32), np.arange(6, 10, dtype=np.int32)], streams=2, steps=3)
    assert (len(batches), batches.row_length) == (2, 5)
    assert batches.inputs.tolist() == [[[0, 1, 2], [5, 6, 7]], [[3, 4, 0], [8, 0, 0]]]
    assert batches.targets.tolist() == [[[1, 2, 3], [6, 7, 8]], [[4, 5, 0], [9, 0, 0]]]
    assert batches.weights.tolist() == [[[1, 1, 1], [1, 1, 1]], [[1, 1, 0], [1, 0, 0]]]
    frames = stream_batches([np.eye(4, dtype=np.uint8)], streams=1, steps=2)
    assert frames.inputs.shape == (2, 1, 2, 4) and frames.targets[1, 0, 0].tolist() == [0, 0, 0, 1]
    assert len(stream_batches([], streams=2, steps=3)) == 0


class Stack(KerasModel):
    """Every kind of layer the step walks: an input layer, two recurrent cells, dropout, a wrapped Dense."""

    def build(self, data: DataSpec) -> list[Any]:
        first = keras.layers.Embedding(data.size, 5) if data.kind == "tokens" else keras.layers.Dense(5)
        return [
            first,
            keras.layers.LSTM(7, **self.RECURRENT),
            keras.layers.Dropout(0.5),
            keras.layers.GRU(6, **self.RECURRENT),
            keras.layers.TimeDistributed(keras.layers.Dense(data.size)),
        ]


PARAMS = {"streams": 2, "steps": 4, "learning_rate": 0.01}


@pytest.mark.parametrize("data", [TOKENS, FRAMES], ids=["tokens", "frames"])
def test_the_sampling_step_computes_what_the_training_network_computes(data: DataSpec) -> None:
    keras.utils.set_random_seed(3)
    model = Stack(PARAMS, data)
    rng = np.random.default_rng(0)
    if data.kind == "tokens":
        piece = np.concatenate([[0], rng.integers(2, data.size, 7)]).astype(np.int32)  # bos, then ids
        rows = np.stack([piece, piece])
    else:
        piece = np.concatenate([np.zeros((1, data.size)), rng.integers(0, 2, (7, data.size))]).astype(np.float32)
        rows = np.stack([piece, piece])  # the step starts a piece from a silent frame
    model.reset_states()
    expected = np.asarray(model.network(rows, training=False))[0]  # logits after each position
    step = model.decoding_step()
    context = StepContext(1.0, np.random.default_rng(0))
    for position in range(len(piece)):
        state = step.prime(piece[1 : position + 1], n=3)
        np.testing.assert_allclose(step.scores(state, context), np.tile(expected[position], (3, 1)), atol=1e-5)
    state = step.prime(piece[1:3], n=3)
    state = step.advance(step.select(state, np.array([2, 0])), piece[3:5][[0, 0]])
    np.testing.assert_allclose(step.scores(state, context), np.tile(expected[3], (2, 1)), atol=1e-5)


def test_losses_are_nats_per_frame_and_bits_their_base_two() -> None:
    keras.utils.set_random_seed(0)
    model = Stack(PARAMS, FRAMES)
    for layer in model.network.layers[-1:]:  # zero logits: every feature a fair coin, ln 2 nats each
        layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])
    evaluation = model.evaluate([np.random.default_rng(0).integers(0, 2, (9, FRAMES.size)).astype(np.uint8)])
    assert math.isclose(evaluation.loss, FRAMES.size * math.log(2), rel_tol=1e-5)
    assert math.isclose(evaluation.bits, FRAMES.size, rel_tol=1e-5)


class Stateless(KerasModel):
    def build(self, data: DataSpec) -> list[Any]:
        return [keras.layers.Embedding(data.size, 4), keras.layers.GRU(4, return_sequences=True), keras.layers.Dense(9)]


class Softmax(KerasModel):
    def build(self, data: DataSpec) -> list[Any]:
        return [keras.layers.Embedding(data.size, 4), keras.layers.Dense(data.size, activation="softmax")]


class Narrow(KerasModel):
    def build(self, data: DataSpec) -> list[Any]:
        return [keras.layers.Embedding(data.size, 4), keras.layers.Dense(3)]


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (Stateless, r"model Stateless: recurrent layer 'gru\w*' must be made with \*\*self.RECURRENT"),
        (Softmax, r"model Softmax: the last layer 'dense\w*' applies softmax; end build\(\) in logits"),
        (Narrow, r"model Narrow: build\(\) gives 3 outputs per step; expected one per id: 9"),
    ],
)
def test_a_stack_that_breaks_the_rules_is_refused_naming_the_model(model: type[KerasModel], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        model(PARAMS, TOKENS)


def test_strategies_reach_the_model_through_their_scope_and_splitting_ones_are_refused(tmp_path: Path) -> None:
    import tensorflow as tf

    single = tf.distribute.OneDeviceStrategy("/cpu:0")
    model = Stack(PARAMS, TOKENS, single)
    assert all(single.extended.variable_created_in_scope(v.value) for v in model.network.trainable_variables)
    model.train_epoch([np.arange(9, dtype=np.int32)] * 2, 0, EpochProgress())  # the optimizer state goes in the file
    model.save(tmp_path / "stack.keras")
    loaded = Stack.load(tmp_path / "stack.keras", PARAMS, TOKENS, single)
    assert loaded.evaluate([np.arange(9, dtype=np.int32)]) == model.evaluate([np.arange(9, dtype=np.int32)])
    with pytest.raises(StrategyError, match=r"model Stack: it trains on one device .* --strategy single"):
        Stack(PARAMS, TOKENS, tf.distribute.MirroredStrategy(["/cpu:0"]))
