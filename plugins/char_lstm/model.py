"""The `char-lstm` model: Keras 3 on TensorFlow.

Network: Embedding (tokens) or a Dense input projection (frames) -> N x [stateful LSTM -> Dropout] ->
TimeDistributed Dense -> softmax over the vocabulary (tokens) or a sigmoid per feature (frames, binary
cross-entropy).

Training concatenates the pieces into one stream and cuts it into `streams` contiguous rows; batch b
holds steps [b * steps, (b + 1) * steps) of every row, so each batch continues the last one and the
stateful LSTMs carry the context across batches. States are reset at the start of each epoch; nothing
is shuffled across the stream axis (only the order of pieces, before cutting, changes per epoch).

Sampling does not call the Keras layers one character at a time: it reads their weights into one
TensorFlow graph whose `tf.while_loop` runs the recurrent step for a whole batch of tunes, with the
embedding folded into the first layer's input kernel. Constrained sampling (a `TokenConstraint`) runs
the same step, compiled on its own, under the core decoder (`tui_composer.plugin.decoding`), since its masks
come from Python; the fused loop draws the decoder's noise in the decoder's order, so both give the same
samples for the same request.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

# Keras picks its backend when imported; this model is written for TensorFlow.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras
import numpy as np
import tensorflow as tf
from tui_composer_plugins.char_lstm import PARAMS

from tui_composer.api import (
    DataSpec,
    DecodingStep,
    EpochProgress,
    Evaluation,
    Model,
    SampleRequest,
    StepContext,
    StrategyError,
    checked_primer,
    decode,
    frame_noise,
    scope_of,
    splits_batches,
    temperature_of,
    token_noise,
)

SERIAL_PACKAGE = "tui_composer_char_lstm"


def with_defaults(params: Mapping[str, Any]) -> dict[str, Any]:
    """The schema's defaults overlaid with `params` (the host passes resolved values; tests may not)."""
    return {p.name: p.default for p in PARAMS} | dict(params)


# --- the recurrent layer ------------------------------------------------------------------------------


def _gpu_visible() -> bool:
    return bool(tf.config.list_logical_devices("GPU"))


@keras.saving.register_keras_serializable(package=SERIAL_PACKAGE)
class HoistedLSTM(keras.layers.LSTM):
    """`keras.layers.LSTM` whose CPU path multiplies all time steps' inputs by the input kernel at once.

    Keras's generic loop computes `x_t @ kernel` inside the recurrence, one small matmul per step; here it
    is one large matmul before the loop, which leaves only `h @ recurrent_kernel` per step (about twice as
    fast on CPU at 16 streams). Where the parent would use cuDNN (a GPU is visible), or for features this
    path does not handle (masks, going backwards, dropout inside the layer), the parent's code runs.
    """

    def _can_hoist(self, mask: Any) -> bool:
        cell = self.cell
        return (
            mask is None
            and not self.go_backwards
            and not self.unroll
            and cell.dropout == 0
            and cell.recurrent_dropout == 0
            and cell.use_bias
            and cell.activation is keras.activations.tanh
            and cell.recurrent_activation is keras.activations.sigmoid
            and not _gpu_visible()
        )

    def inner_loop(self, sequences: Any, initial_state: Any, mask: Any, training: bool = False) -> Any:
        if not self._can_hoist(mask):
            return super().inner_loop(sequences, initial_state, mask, training=training)
        cell = self.cell
        h0, c0 = initial_state
        time_major = tf.transpose(sequences, [1, 0, 2])
        shape = tf.shape(time_major)
        flat = tf.reshape(time_major, [-1, sequences.shape[-1]])
        projected = tf.reshape(self._input_side(flat) + cell.bias, [shape[0], shape[1], 4 * cell.units])
        recurrent_kernel = tf.convert_to_tensor(cell.recurrent_kernel)

        def step(carry: tuple[Any, Any], z_input: Any) -> tuple[Any, Any]:
            h, c = carry
            z = z_input + tf.matmul(h, recurrent_kernel)
            i, f, g, o = tf.split(z, 4, axis=1)  # Keras's gate order
            c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
            return tf.sigmoid(o) * tf.tanh(c), c

        # tf.scan's automatic gradient measured faster on CPU than a hand-written backward loop.
        hs, cs = tf.scan(step, projected, initializer=(h0, c0))
        outputs = tf.transpose(hs, [1, 0, 2])
        # Keras's TimeDistributed miscounts the steps of an output whose length is not static.
        outputs.set_shape([sequences.shape[0], sequences.shape[1], cell.units])
        return hs[-1], outputs, [hs[-1], cs[-1]]

    def _input_side(self, flat: Any) -> Any:
        """Every position's input times the input kernel, positions flattened: (positions, 4 * units)."""
        return tf.matmul(flat, self.cell.kernel)


@keras.saving.register_keras_serializable(package=SERIAL_PACKAGE)
class TokenLSTM(HoistedLSTM):
    """The first layer of a token network: an embedding and an LSTM in one; token ids in.

    An embedding followed by an LSTM multiplies every position's embedded token by the input kernel. The
    product of the two matrices has one row per symbol, so the hoisted path computes that table once per
    batch and looks each position's row up: the default network's largest matmul (a quarter of its
    multiply-adds) becomes a gather. The gradients are the same: only the order of the products differs.
    On the parent's path (cuDNN) the embedded tokens go in as usual.
    """

    def __init__(self, units: int, *, vocabulary: int, embedding: int, **kwargs: Any) -> None:
        super().__init__(units, **kwargs)
        self.input_spec = keras.layers.InputSpec(ndim=2)  # (streams, steps) ids
        self.vocabulary = vocabulary
        self.embedding = embedding

    def build(self, sequences_shape: Any, initial_state_shape: Any = None) -> None:
        # Keras's Embedding layer's initializer, so the network starts where the two layers would.
        self.embeddings = self.add_weight(
            shape=(self.vocabulary, self.embedding), initializer="uniform", name="embeddings"
        )
        super().build((*sequences_shape, self.embedding), initial_state_shape)

    def token_inputs(self, ids: Any, mask: Any = None) -> Any:
        """What `inner_loop` takes for token ids: rows of the folded table where the loop is hoisted,
        the embedded tokens otherwise."""
        if self._can_hoist(mask):
            return tf.gather(tf.matmul(self.embeddings, self.cell.kernel), ids)
        return tf.gather(self.embeddings, ids)

    def call(self, sequences: Any, initial_state: Any = None, mask: Any = None, training: bool = False) -> Any:
        inputs = self.token_inputs(sequences, mask)
        return super().call(inputs, initial_state=initial_state, mask=mask, training=training)

    def _input_side(self, flat: Any) -> Any:
        return flat  # token_inputs looked the products up already

    def get_config(self) -> dict[str, Any]:
        return super().get_config() | {"vocabulary": self.vocabulary, "embedding": self.embedding}


# --- contiguous streams -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class StreamBatches:
    """The corpus as one stream cut into contiguous rows, in batches that continue each other.

    Row r covers stream positions [r * row_length, (r + 1) * row_length); batch b, row r holds
    positions r * row_length + b * steps + [0, steps). Targets are the inputs shifted by one position.
    `weights` is 0 where a row ran out (padding), 1 elsewhere.
    """

    inputs: np.ndarray  # (batches, streams, steps) ids or (batches, streams, steps, features)
    targets: np.ndarray
    weights: np.ndarray  # (batches, streams, steps) float32
    row_length: int

    def __len__(self) -> int:
        return len(self.inputs)

    @property
    def transitions(self) -> int:
        return int(self.weights.sum())


def stream_batches(sequences: Sequence[np.ndarray], streams: int, steps: int) -> StreamBatches:
    """Cut the concatenated sequences into `streams` contiguous rows of batches of `steps` positions."""
    nonempty = [np.asarray(s) for s in sequences if len(s)]
    if not nonempty:
        empty = np.zeros((0, streams, steps), np.float32)
        return StreamBatches(empty.astype(np.int32), empty.astype(np.int32), empty, 0)
    stream = np.concatenate(nonempty, axis=0)
    n = len(stream)
    transitions = max(n - 1, 0)
    row_length = max(1, math.ceil(transitions / streams))
    batches = math.ceil(row_length / steps) if transitions else 0
    offsets = np.arange(batches * steps)
    positions = np.arange(streams)[:, None] * row_length + offsets[None, :]  # (streams, batches * steps)
    valid = (offsets[None, :] < row_length) & (positions + 1 < n)
    inputs = stream[np.minimum(positions, n - 1)]
    targets = stream[np.minimum(positions + 1, n - 1)]
    mask = valid.reshape(valid.shape + (1,) * (stream.ndim - 1))
    inputs = np.where(mask, inputs, 0).astype(stream.dtype)
    targets = np.where(mask, targets, 0).astype(stream.dtype)

    def batched(array: np.ndarray) -> np.ndarray:
        shaped = array.reshape((streams, batches, steps, *array.shape[2:]))
        return np.ascontiguousarray(np.swapaxes(shaped, 0, 1))

    return StreamBatches(batched(inputs), batched(targets), batched(valid.astype(np.float32)), row_length)


# --- the network -----------------------------------------------------------------------------------------


_STACKED = {"return_sequences": True, "stateful": True}


def build_network(params: Mapping[str, Any], data: DataSpec) -> keras.Model:
    """The training network: fixed batch of `streams` rows (stateful layers need it), any length.

    With `precision=mixed_float16` every layer computes in float16 and keeps float32 weights; the
    output activation (and so the loss) stays float32.
    """
    streams = params["streams"]
    units = params["units"]
    layer = {"dtype": params["precision"]}
    if data.kind == "tokens":
        x = inputs = keras.Input(batch_shape=(streams, None), dtype="int32", name="tokens")
        first = TokenLSTM(
            units, vocabulary=data.size, embedding=params["embedding"], **_STACKED, **layer, name="lstm_1"
        )
    else:
        inputs = keras.Input(batch_shape=(streams, None, data.size), dtype="float32", name="frames")
        x = keras.layers.Dense(params["embedding"], **layer, name="projection")(inputs)
        first = HoistedLSTM(units, **_STACKED, **layer, name="lstm_1")
    for index in range(1, params["layers"] + 1):
        lstm = first if index == 1 else HoistedLSTM(units, **_STACKED, **layer, name=f"lstm_{index}")
        x = lstm(x)
        x = keras.layers.Dropout(params["dropout"], **layer, name=f"dropout_{index}")(x)
    x = keras.layers.TimeDistributed(keras.layers.Dense(data.size, **layer), **layer, name="output")(x)
    activation = "softmax" if data.kind == "tokens" else "sigmoid"
    outputs = keras.layers.Activation(activation, dtype="float32", name=activation)(x)
    return keras.Model(inputs, outputs, name="char_lstm")


def compile_network(network: keras.Model, params: Mapping[str, Any], data: DataSpec) -> None:
    # Padding positions carry weight 0, so the mean is over the real positions only.
    reduction = "mean_with_sample_weight"
    if data.kind == "tokens":
        loss: keras.losses.Loss = keras.losses.SparseCategoricalCrossentropy(reduction=reduction)
    else:
        loss = keras.losses.BinaryCrossentropy(reduction=reduction)
    optimizer = keras.optimizers.Adam(learning_rate=params["learning_rate"], clipnorm=params["clipnorm"] or None)
    if params["precision"] == "mixed_float16":
        # float16 gradients underflow to zero; the loss is scaled up and the gradients back down.
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    network.compile(optimizer=optimizer, loss=loss, jit_compile=bool(params["jit_compile"]))


# --- the model -----------------------------------------------------------------------------------------------


class CharLSTM(Model):
    """A stateful LSTM stack over contiguous streams; any encoder (tokens or frames)."""

    def __init__(
        self,
        params: Mapping[str, Any],
        data: DataSpec,
        strategy: Any = None,
        *,
        network: keras.Model | None = None,
    ) -> None:
        super().__init__(with_defaults(params), data, strategy)
        if self.params["precision"] != "float32" and splits_batches(strategy):
            # The replicas' own training step (distributed.py) applies gradients without loss scaling.
            raise StrategyError(
                f"model 'char-lstm': precision={self.params['precision']} trains on one device only; "
                "use --strategy single, or precision=float32 to train on several devices"
            )
        # Issue 8's strategies build and compile inside their scope; None is the default device.
        with scope_of(strategy):
            if network is None:
                network = build_network(self.params, data)
            if not network.compiled:
                compile_network(network, self.params, data)
        self.network = network
        self._sampler: _Sampler | None = None
        # Mirrored and multi-worker strategies split the streams across replicas (see distributed.py).
        self._replicas: Any = None
        if splits_batches(strategy):
            from tui_composer_plugins.char_lstm.distributed import ReplicaTrainer

            self._replicas = ReplicaTrainer(self)

    def reset_states(self) -> None:
        for layer in self.network.layers:
            if isinstance(layer, keras.layers.RNN):
                layer.reset_state()

    # --- training ---------------------------------------------------------------------------------------

    def batches(self, sequences: Sequence[np.ndarray], *, shuffle: bool) -> StreamBatches:
        """The epoch's batches; with `shuffle`, the pieces' order comes from NumPy's global generator,
        which the host seeds each epoch (so a resumed run cuts the same streams)."""
        if shuffle and len(sequences) > 1:
            sequences = [sequences[i] for i in np.random.permutation(len(sequences))]
        return stream_batches(sequences, self.params["streams"], self.params["steps"])

    def _batch(self, batches: StreamBatches, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x, y = batches.inputs[index], batches.targets[index]
        if self.data.kind == "frames":
            x, y = x.astype(np.float32), y.astype(np.float32)
        return x, y, batches.weights[index]

    def reseed_dropout(self) -> None:
        """Restart the dropout layers' random streams from NumPy's global generator.

        Keras does not save their state in a `.keras` file; drawing it from the generator the host
        seeds each epoch makes a resumed epoch drop the same units as the uninterrupted one.
        """
        for layer in self.network.layers:
            generator = getattr(layer, "seed_generator", None)
            if generator is not None:
                start = np.array([np.random.randint(2**31 - 1), 0])
                generator.state.assign(start.astype(generator.state.dtype))

    def train_epoch(self, sequences: Sequence[np.ndarray], epoch: int, progress: EpochProgress) -> float:
        self._sampler = None  # the weights change
        # Set from the epoch number, not decayed in place, so a resumed run steps as the uninterrupted one.
        step_size = self.params["learning_rate"] * self.params["learning_rate_decay"] ** epoch
        self.network.optimizer.learning_rate.assign(step_size)
        if self._replicas is not None:
            return self._replicas.train_epoch(sequences, epoch, progress)
        batches = self.batches(sequences, shuffle=self.params["shuffle"])
        self.reseed_dropout()
        self.reset_states()
        total_loss = total_weight = 0.0
        for index in range(len(batches)):
            if progress.stop_requested():
                break
            x, y, w = self._batch(batches, index)
            loss = float(self.network.train_on_batch(x, y, sample_weight=w))
            weight = float(w.sum())
            total_loss += loss * weight
            total_weight += weight
            progress.on_batch(index + 1, len(batches), total_loss / max(total_weight, 1.0))
        return total_loss / total_weight if total_weight else math.nan

    def evaluate(self, sequences: Sequence[np.ndarray]) -> Evaluation:
        if self._replicas is not None:
            return self._replicas.evaluate(sequences)
        batches = self.batches(sequences, shuffle=False)
        self.reset_states()
        total_loss = total_weight = 0.0
        for index in range(len(batches)):
            x, y, w = self._batch(batches, index)
            loss = float(self.network.test_on_batch(x, y, sample_weight=w))
            total_loss += loss * float(w.sum())
            total_weight += float(w.sum())
        self.reset_states()
        if not total_weight:
            return Evaluation(loss=math.nan, bits=math.nan)
        loss = total_loss / total_weight
        # Binary cross-entropy is a mean over the features; a frame's bits are their sum.
        per_item = loss if self.data.kind == "tokens" else loss * self.data.size
        return Evaluation(loss=loss, bits=per_item / math.log(2))

    # --- files --------------------------------------------------------------------------------------------

    def save(self, path: Path, *, include_optimizer: bool = True) -> None:
        """Write a `.keras` file; without the optimizer it is a third of the size (for shipping)."""
        if include_optimizer:
            self.network.save(path)
            return
        bare = build_network(self.params, self.data)
        bare.set_weights(self.network.get_weights())
        bare.save(path)

    @classmethod
    def load(cls, path: Path, params: Mapping[str, Any], data: DataSpec, strategy: Any = None) -> CharLSTM:
        with scope_of(strategy):
            network = keras.saving.load_model(path, safe_mode=True)
        return cls(params, data, strategy, network=network)

    # --- sampling -----------------------------------------------------------------------------------------

    def sampler(self) -> _Sampler:
        """The compiled sampler over the current weights (rebuilt after training changes them)."""
        if self._sampler is None:
            self._sampler = _Sampler(self.network, self.data)
        return self._sampler

    def decoding_step(self) -> DecodingStep:
        return _CharLSTMStep(self.sampler())

    def sample(self, request: SampleRequest) -> list[np.ndarray]:
        """Constrained token sampling runs the core decoder over the compiled step; everything else the
        fused loop, which draws the decoder's noise in the decoder's order and so gives the same samples."""
        if request.constraint is not None and self.data.kind == "tokens":
            return decode(self.decoding_step(), request, self.data, model="char-lstm")
        return self.sampler().run(request)


# --- the sampler -------------------------------------------------------------------------------------------


FEW_TUNES = 8  # up to this many tunes, the sampler's step runs the layers' matmuls apart (`_step_graph`)
WARM_UP_LENGTH = 2000  # steps a sampler's warm-up tune may take (it ends at its end-of-tune, far sooner)
NOISE_CHUNK = 64  # steps of noise the fused loop takes per call: bounds its noise to 64 x n x vocabulary


def _gates_last(matrix: np.ndarray, units: int) -> np.ndarray:
    """Keras's gate columns i, f, g, o reordered to i, f, o, g: one sigmoid over the first three."""
    i, f, g, o = np.split(matrix, 4, axis=-1)
    return np.concatenate([i, f, o, g], axis=-1)


def _token_embeddings(network: keras.Model, first: keras.layers.LSTM) -> np.ndarray:
    """The embedding matrix: the first layer's own, or (in runs saved before it had one) a layer's."""
    if isinstance(first, TokenLSTM):
        return first.embeddings.numpy()
    return network.get_layer("embedding").embeddings.numpy()


@dataclass(frozen=True)
class _Batch:
    """The sampler's state for the rows of a batch: the next step's logits and every layer's h, then c."""

    logits: Any  # [rows, size]
    packed: Any  # [rows, 2 * sum(units)]


class _CharLSTMStep(DecodingStep):
    """The compiled LSTM step, for the core decoder."""

    def __init__(self, sampler: _Sampler) -> None:
        self.sampler = sampler
        self.rows = FEW_TUNES + 1

    def prime(self, primer: np.ndarray, n: int) -> _Batch:
        # One form of the step for the whole batch, the fused loop's: each form costs a trace per
        # process, and a batch that shrinks below FEW_TUNES gains less than a trace costs.
        self.rows = n
        return self.sampler.prime(primer, n)

    def scores(self, state: _Batch, context: StepContext) -> np.ndarray:
        return state.logits.numpy()

    def advance(self, state: _Batch, chosen: np.ndarray) -> _Batch:
        x = tf.constant(chosen.astype(np.int32 if self.sampler.data.kind == "tokens" else np.float32))
        logits, packed = self.sampler.packed_step(self.rows)(x, state.packed)
        return _Batch(logits, packed)

    def select(self, state: _Batch, rows: np.ndarray) -> _Batch:
        return _Batch(tf.gather(state.logits, rows), tf.gather(state.packed, rows))


class _Sampler:
    """The network's weights in one TensorFlow graph: an LSTM step for a batch of tunes, in a loop.

    An upper layer multiplies [input, h] by its stacked kernels (gates reordered so that one sigmoid
    covers three of them; a few tunes take the two halves apart, see `_step_graph`); the first layer's
    input side is a table: the embedding (or input projection) times the input kernel, computed once.
    The fused loop runs as a `tf.while_loop` in a `tf.function` (on CPU, XLA for the whole loop measured
    several times slower; only the gates' arithmetic is XLA-compiled, for a batch). It draws what the
    core decoder would draw: the decoder's noise, from the request's generator, in the decoder's order.
    """

    def __init__(self, network: keras.Model, data: DataSpec) -> None:
        self.data = data
        lstms = [layer for layer in network.layers if isinstance(layer, keras.layers.LSTM)]
        self.units = [layer.cell.units for layer in lstms]
        first = lstms[0].cell
        kernel = first.kernel.numpy()
        if data.kind == "tokens":
            # Each step looks up one row per tune, so the bias goes into every row: one add fewer.
            table = _token_embeddings(network, lstms[0]) @ kernel + first.bias.numpy()
            first_bias = np.zeros_like(first.bias.numpy())
        else:
            projection = network.get_layer("projection")
            table = projection.kernel.numpy() @ kernel
            first_bias = projection.bias.numpy() @ kernel + first.bias.numpy()
        units = self.units[0]
        self.table = tf.constant(_gates_last(table, units))
        self.first_recurrent = tf.constant(_gates_last(first.recurrent_kernel.numpy(), units))
        self.first_bias = tf.constant(_gates_last(first_bias, units))
        self.stacked = []
        self.biases = []
        for layer in lstms[1:]:
            cell = layer.cell
            stacked = np.concatenate([cell.kernel.numpy(), cell.recurrent_kernel.numpy()], axis=0)
            self.stacked.append(tf.constant(_gates_last(stacked, cell.units)))
            self.biases.append(tf.constant(_gates_last(cell.bias.numpy(), cell.units)))
        dense = network.get_layer("output").layer
        self.out_kernel = tf.constant(dense.kernel.numpy())
        self.out_bias = tf.constant(dense.bias.numpy())
        # The end-of-tune id where the encoding has one: a tune ends there, and the warm-up ends there.
        self.eos = data.eos if data.kind == "tokens" else None
        banned = np.zeros(data.size, bool)
        if data.kind == "tokens" and data.bos is not None:
            banned[data.bos] = True  # a tune never restarts inside itself (the decoder bans it too)
        self.banned = tf.constant(banned)
        if data.kind == "tokens":
            input_spec = tf.TensorSpec([None], tf.int32)
        else:
            input_spec = tf.TensorSpec([None, data.size], tf.float32)
        logits_spec = tf.TensorSpec([None, data.size], tf.float32)
        packed_state_spec = tf.TensorSpec([None, 2 * sum(self.units)], tf.float32)
        signature = [
            logits_spec,  # the first free step's logits, one row per tune
            packed_state_spec,  # the state they came with (every layer's h, then c)
            tf.TensorSpec([None, None, data.size], tf.float32),  # the decoder's noise: steps x tunes x size
            tf.TensorSpec([], tf.float32),  # temperature
            tf.TensorSpec([], tf.int32),  # top k
            tf.TensorSpec([None], tf.bool),  # the tunes that ended already
        ]
        # Four graphs, each traced on first use: the top-k filter costs a sort per step, so it is only in
        # the graphs that use it; and few tunes run the layers' matmuls apart (see `_step_graph`).
        self._loops = {
            (filtered, few): tf.function(
                partial(self._loop_graph, filtered=filtered, few=few), input_signature=signature
            )
            for filtered in (False, True)
            for few in (False, True)
        }
        # The primer goes through the step for one tune; every tune of the batch starts from its state.
        self._force = tf.function(self._force_graph, input_signature=[input_spec, packed_state_spec])
        # The core decoder calls a step from Python a thousand times: one state tensor (every layer's h
        # then c) and a concrete function halve TensorFlow's per-call overhead. Traced on first use.
        self._packed_spec = [input_spec, packed_state_spec]
        self._packed: dict[bool, Any] = {}
        # The cell's elementwise ops fused by XLA (only those: XLA's CPU matmuls are slower than oneDNN's).
        self._fused_cell = tf.function(self._cell, jit_compile=True, reduce_retracing=True)
        self._warm: Any = None  # the start state, after a warm-up tune: see `start_state`

    # --- graph pieces ----------------------------------------------------------------------------------

    @staticmethod
    def _cell(z: Any, c: Any, units: int) -> tuple[Any, Any]:
        gates = tf.sigmoid(z[:, : 3 * units])
        c = gates[:, units : 2 * units] * c + gates[:, :units] * tf.tanh(z[:, 3 * units :])
        return gates[:, 2 * units :] * tf.tanh(c), c

    def _step_graph(
        self, x: Any, hs: list[Any], cs: list[Any], few: bool = False, fuse: bool = False
    ) -> tuple[Any, list[Any], list[Any]]:
        """One step for a batch: inputs (ids or frames) and states -> output logits and new states.

        With `few` tunes, an upper layer multiplies the layer below and its own last state apart: the
        second matmul does not wait for the layers below, so TensorFlow runs it beside them (one tune:
        1.4x faster). For a batch, one matmul of the two stacked is faster, and with `fuse` the gates'
        elementwise ops, which then cost more than the matmuls, run as one XLA-compiled kernel. Only
        where the batch keeps its size: XLA compiles once per shape, and the core decoder's batch
        shrinks as tunes end.
        """
        if self.data.kind == "tokens":
            z = tf.gather(self.table, x) + tf.matmul(hs[0], self.first_recurrent)
        else:
            z = tf.matmul(x, self.table) + tf.matmul(hs[0], self.first_recurrent) + self.first_bias
        cell = self._fused_cell if fuse else self._cell
        h, c = cell(z, cs[0], self.units[0])
        new_hs, new_cs = [h], [c]
        for index, (stacked, bias) in enumerate(zip(self.stacked, self.biases, strict=True), start=1):
            if few:
                units = self.units[index]
                z = tf.matmul(h, stacked[:units]) + tf.matmul(hs[index], stacked[units:]) + bias
            else:
                z = tf.matmul(tf.concat([h, hs[index]], axis=1), stacked) + bias
            h, c = cell(z, cs[index], self.units[index])
            new_hs.append(h)
            new_cs.append(c)
        return tf.matmul(h, self.out_kernel) + self.out_bias, new_hs, new_cs

    def _packed_step_graph(self, x: Any, state: Any, few: bool = False, fuse: bool = False) -> tuple[Any, Any]:
        """`_step_graph` with the states packed in one tensor: inputs and state -> logits and state."""
        parts = tf.split(state, self.units + self.units, axis=1)
        layers = len(self.units)
        logits, hs, cs = self._step_graph(x, parts[:layers], parts[layers:], few, fuse)
        return logits, tf.concat(hs + cs, axis=1)

    def packed_step(self, rows: int = FEW_TUNES + 1) -> Any:
        """The compiled packed step for a batch of `rows` tunes, traced once per form and sampler."""
        few = rows <= FEW_TUNES
        if few not in self._packed:
            # Exactly the two inputs of the signature: with `partial`'s extra parameters every call failed to
            # bind, and TensorFlow printed the tensors into the error it then dropped (a third of the
            # constrained sampling's CPU time).
            def step(x: Any, state: Any) -> tuple[Any, Any]:
                return self._packed_step_graph(x, state, few=few)

            self._packed[few] = tf.function(step, input_signature=self._packed_spec).get_concrete_function()
        return self._packed[few]

    def _force_graph(self, inputs: Any, state: Any) -> tuple[Any, Any]:
        """Teacher forcing: the inputs [steps(, F)] through the step for one tune -> last logits, state."""

        def body(t: Any, logits: Any, state: Any) -> tuple[Any, Any, Any]:
            logits, state = self._packed_step_graph(inputs[t : t + 1], state, few=True)
            return t + 1, logits, state

        initial = (tf.constant(0), tf.zeros([tf.shape(state)[0], self.data.size]), state)
        _, logits, state = tf.while_loop(lambda t, *_: t < tf.shape(inputs)[0], body, initial)
        return logits, state

    def _loop_graph(
        self,
        logits: Any,
        state: Any,
        noise: Any,
        temperature: Any,
        top_k: Any,
        done: Any,
        *,
        filtered: bool,
        few: bool,
    ) -> tuple[Any, Any, Any, Any]:
        """The fused loop over `len(noise)` steps: the decoder's draw (tokens.decoding), then the step.

        The same arithmetic as `tui_composer.plugin.decoding` in the same order, on the same noise: scores / T,
        bos banned, top-k by the k-th largest value (tokens) or the k largest features (frames), then
        Gumbel-max (tokens) or noise < scores (frames). A finished tune only pads with eos.
        """
        steps = tf.shape(noise)[0]
        tokens = self.data.kind == "tokens"
        eos = self.eos
        k = tf.minimum(tf.maximum(top_k, 1), self.data.size)
        written = tf.TensorArray(tf.int32 if tokens else tf.float32, size=steps)

        # One packed state tensor, not a tensor per layer: every loop variable costs control-flow ops
        # at every step, and one tune is limited by such per-op costs, not by arithmetic.
        def body(t: Any, logits: Any, state: Any, written: Any, done: Any) -> tuple[Any, ...]:
            scaled = logits / temperature
            if tokens:
                scaled = tf.where(self.banned, tf.constant(-np.inf, tf.float32), scaled)
                if filtered:
                    kth = tf.math.top_k(scaled, k).values[:, -1:]
                    scaled = tf.where(scaled < kth, tf.constant(-np.inf, tf.float32), scaled)
                x = tf.argmax(scaled + noise[t], axis=1, output_type=tf.int32)
                if eos is not None:
                    x = tf.where(done, eos, x)  # a finished tune only pads
                    done = done | tf.equal(x, eos)
            else:
                on = noise[t] < scaled
                if filtered:
                    likeliest = tf.math.top_k(scaled, k).indices
                    on &= tf.reduce_any(tf.one_hot(likeliest, self.data.size, True, False, dtype=tf.bool), axis=1)
                x = tf.cast(on, tf.float32)
            logits, state = self._packed_step_graph(x, state, few, fuse=not few)
            return t + 1, logits, state, written.write(t, x), done

        def cond(t: Any, logits: Any, state: Any, written: Any, done: Any) -> Any:
            return (t < steps) & ~tf.reduce_all(done)

        t, logits, state, written, done = tf.while_loop(cond, body, (tf.constant(0), logits, state, written, done))
        return written.stack()[:t], logits, state, done

    # --- entry points ----------------------------------------------------------------------------------

    def _inputs(self, primer: np.ndarray) -> np.ndarray:
        """What the step reads before the first free step: the tune's start, then the primer."""
        if self.data.kind == "frames":
            return np.concatenate([np.zeros((1, self.data.size), np.float32), primer.astype(np.float32)])
        # In the training stream a tune follows bos, or the previous tune's eos.
        start = self.data.bos if self.data.bos is not None else (self.data.eos or 0)
        return np.concatenate([[start], primer]).astype(np.int32)

    def _primed(self, primer: np.ndarray, n: int, state: Any) -> _Batch:
        logits, packed = self._force(tf.constant(self._inputs(primer)), state)
        return _Batch(tf.tile(logits, [n, 1]), tf.tile(packed, [n, 1]))

    def prime(self, primer: np.ndarray, n: int) -> _Batch:
        """n tunes after their start and the primer, from the warm start state (see `start_state`)."""
        return self._primed(primer, n, self.start_state())

    def start_state(self) -> Any:
        """The packed state every tune starts from: where the network is after a tune of its own.

        Training streams are contiguous, so the network only meets a tune's start after the end of the
        tune before; from a zero state it writes a garbled first line (a model trained on `oneills` put
        `X` after `<bos>` with probability 0.05 from zero, and 1.0 after a tune). So the sampler writes
        one warm-up tune (seed 0, never shown), feeds its end-of-tune, and starts every sample there.
        Encodings without an end-of-tune start from zero.
        """
        if self._warm is None:
            zero = tf.zeros([1, 2 * sum(self.units)])
            self._warm = zero
            if self.eos is not None:
                _, batch, ended = self._free(self._primed(np.zeros(0, np.int32), 1, zero), WARM_UP_LENGTH, 0, 1.0, 0)
                packed = batch.packed
                if not ended.all():  # it ran out of length: end it here
                    _, packed = self.packed_step(1)(tf.constant([self.eos], tf.int32), packed)
                self._warm = packed  # the loop fed the tune's end-of-tune already
        return self._warm

    def _free(
        self, batch: _Batch, steps: int, seed: int, temperature: float, top_k: int
    ) -> tuple[np.ndarray, _Batch, np.ndarray]:
        """Up to `steps` free steps for the batch: written [steps', n(, F)], the state after, which ended."""
        n = int(batch.logits.shape[0])
        rng = np.random.default_rng(seed)
        noise_of = token_noise if self.data.kind == "tokens" else frame_noise
        loop = self._loops[top_k > 0, n <= FEW_TUNES]
        done = tf.zeros([n], tf.bool)
        pieces = []
        logits, packed = batch.logits, batch.packed
        for first in range(0, steps, NOISE_CHUNK):
            noise = noise_of(rng, (min(NOISE_CHUNK, steps - first), n, self.data.size))
            written, logits, packed, done = loop(logits, packed, tf.constant(noise), temperature, top_k, done)
            pieces.append(written.numpy())
            if self.eos is not None and bool(tf.reduce_all(done)):
                break
        empty = np.zeros((0, n, *([self.data.size] if self.data.kind == "frames" else [])))
        written = np.concatenate(pieces) if pieces else empty
        return written, _Batch(logits, packed), done.numpy()

    def run(self, request: SampleRequest) -> list[np.ndarray]:
        """`request.n` tunes in one batch through the fused loop; the same samples as `decode` gives."""
        primer = checked_primer(request.primer, self.data, "char-lstm")
        steps = max(request.max_length, len(primer)) - len(primer)
        batch = self.prime(primer, request.n)
        temperature = float(temperature_of(request))
        written, _, _ = self._free(batch, steps, request.seed, temperature, int(request.top_k))
        tunes = np.swapaxes(written, 0, 1)  # (n, steps[, features])
        if self.data.kind == "frames":
            return [np.concatenate([primer, tune.astype(np.uint8)]) for tune in tunes]
        return [self._until_eos(np.concatenate([primer, tune.astype(np.int32)])) for tune in tunes]

    def _until_eos(self, tune: np.ndarray) -> np.ndarray:
        if self.eos is None:
            return tune
        ends = np.flatnonzero(tune == self.eos)
        return tune[: ends[0]] if len(ends) else tune
