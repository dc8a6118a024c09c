"""A base class for models trained with Keras: write the layers, the rest of the contract comes with it.

    class GRU(KerasModel):
        def build(self, data: DataSpec) -> list[keras.layers.Layer]:
            units = self.params["units"]
            first = keras.layers.Embedding(data.size, units) if data.kind == "tokens" else keras.layers.Dense(units)
            return [first, keras.layers.GRU(units, **self.RECURRENT), keras.layers.Dense(data.size)]

`build` gives a stack of layers that ends in logits (no softmax or sigmoid): one per id for tokens, one
per feature for frames. KerasModel puts the input in front (`streams` rows of ids, or of float32 frames),
compiles the stack with Adam and a cross-entropy from logits, and gives:

- training over contiguous streams (`stream_batches`): the epoch's pieces, in an order drawn from NumPy's
  global generator (which the host seeds every epoch), are joined into one stream cut into `streams`
  rows; batch b holds steps [b * steps, (b + 1) * steps) of every row, so each batch continues the last
  and the stateful recurrent layers carry the context. States are reset at the start of each epoch;
- the per-batch progress (`EpochProgress.on_batch`) and stop polling (before every batch);
- `evaluate` and the training loss in nats per token (tokens) or per frame (frames: the mean binary
  cross-entropy times the features), and bits = nats / ln 2;
- save and load as `.keras` files (optimizer state included; loaded in Keras safe mode), built, compiled
  and loaded inside the strategy's scope;
- sampling through the core decoder, with a step that runs the stack one position at a time: recurrent
  layers through their cells (with explicit states, one row per sequence), Dropout skipped, every other
  layer applied to the position. A stack whose layers mix positions (convolution, attention) overrides
  `decoding_step`.

Recurrent layers must be `keras.layers.RNN` subclasses (SimpleRNN, GRU, LSTM) made with `**self.RECURRENT`
(stateful, whole sequences out); `optimizer` and `loss` may be overridden. A model trains on one device:
strategies that split batches across replicas (mirrored, multi-worker) are refused with StrategyError.

Nothing here imports TensorFlow or Keras at module level: the methods import them when a model is built.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self

import numpy as np

from tui_composer.plugin.contract import DataSpec, DecodingStep, EpochProgress, Evaluation, Model, StepContext
from tui_composer.plugin.params import Param
from tui_composer.services.distribute import StrategyError, scope_of, splits_batches

if TYPE_CHECKING:
    import keras

KERAS_PARAMS = (
    Param(
        "streams",
        int,
        16,
        "Contiguous streams per batch: the corpus is cut into this many rows and each batch continues them.",
        min=1,
        max=4096,
    ),
    Param("steps", int, 64, "Time steps per batch (the truncated back-propagation length).", min=1, max=4096),
    Param("learning_rate", float, 0.002, "Adam's step size.", min=1e-7, max=10.0),
)
_DEFAULTS = {param.name: param.default for param in KERAS_PARAMS}


# --- contiguous streams -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class StreamBatches:
    """The corpus as one stream cut into contiguous rows, in batches that continue each other.

    Row r covers stream positions [r * row_length, (r + 1) * row_length); batch b, row r holds positions
    r * row_length + b * steps + [0, steps). Targets are the inputs one position on; `weights` is 0 where a
    row ran out (padding), 1 elsewhere.
    """

    inputs: np.ndarray  # (batches, streams, steps) ids or (batches, streams, steps, features)
    targets: np.ndarray
    weights: np.ndarray  # (batches, streams, steps) float32
    row_length: int

    def __len__(self) -> int:
        return len(self.inputs)


def stream_batches(sequences: Sequence[np.ndarray], streams: int, steps: int) -> StreamBatches:
    """The sequences (ids [T] or frames [T, F]) joined and cut into `streams` rows of batches of `steps`."""
    nonempty = [np.asarray(s) for s in sequences if len(s)]
    if not nonempty:
        empty = np.zeros((0, streams, steps), np.float32)
        return StreamBatches(empty.astype(np.int32), empty.astype(np.int32), empty, 0)
    stream = np.concatenate(nonempty, axis=0)
    n = len(stream)
    transitions = n - 1
    row_length = max(1, math.ceil(transitions / streams))
    batches = math.ceil(row_length / steps) if transitions else 0
    offsets = np.arange(batches * steps)
    positions = np.arange(streams)[:, None] * row_length + offsets[None, :]  # (streams, batches * steps)
    valid = (offsets[None, :] < row_length) & (positions + 1 < n)
    mask = valid.reshape(valid.shape + (1,) * (stream.ndim - 1))
    inputs = np.where(mask, stream[np.minimum(positions, n - 1)], 0).astype(stream.dtype)
    targets = np.where(mask, stream[np.minimum(positions + 1, n - 1)], 0).astype(stream.dtype)

    def batched(array: np.ndarray) -> np.ndarray:
        shaped = array.reshape((streams, batches, steps, *array.shape[2:]))
        return np.ascontiguousarray(np.swapaxes(shaped, 0, 1))

    return StreamBatches(batched(inputs), batched(targets), batched(valid.astype(np.float32)), row_length)


# --- the model ---------------------------------------------------------------------------------------------


def _keras() -> Any:
    import os

    os.environ.setdefault("KERAS_BACKEND", "tensorflow")  # the sampling step is a TensorFlow graph
    import keras

    return keras


class KerasModel(Model):
    """A Model whose network is a stack of Keras layers (see the module docstring); subclasses write `build`."""

    RECURRENT: ClassVar[dict[str, Any]] = {"stateful": True, "return_sequences": True}

    def __init__(
        self,
        params: Mapping[str, Any],
        data: DataSpec,
        strategy: Any = None,
        *,
        network: keras.Model | None = None,
    ) -> None:
        super().__init__(_DEFAULTS | dict(params), data, strategy)
        if splits_batches(strategy):
            raise StrategyError(
                f"model {self.label}: it trains on one device (its streams are not split across replicas); "
                "train with --strategy single"
            )
        keras = _keras()
        with scope_of(strategy):  # variables and optimizer slots live where the strategy puts them
            if network is None:
                network = self._stack(data)
            if not network.compiled:
                network.compile(optimizer=self.optimizer(), loss=self.loss())
        self.network = network
        self._check_stack(keras)
        # Keras's loss for frames is a mean over features; a frame's cross-entropy is their sum.
        self._per_step = 1.0 if data.kind == "tokens" else float(data.size)
        self._step: _StackStep | None = None

    @property
    def label(self) -> str:
        return type(self).__name__

    def build(self, data: DataSpec) -> Sequence[keras.layers.Layer]:
        """The layers, first to last; the last gives logits [streams, steps, data.size]."""
        raise NotImplementedError(f"model {self.label}: write build(data), which returns the layers")

    def optimizer(self) -> keras.optimizers.Optimizer:
        return _keras().optimizers.Adam(learning_rate=self.params["learning_rate"])

    def loss(self) -> keras.losses.Loss:
        """Cross-entropy from logits, a mean over the real positions (padding carries weight 0): a loss of
        your own must be a mean per token, or per feature for frames, in nats."""
        losses = _keras().losses
        reduction = "mean_with_sample_weight"
        if self.data.kind == "tokens":
            return losses.SparseCategoricalCrossentropy(from_logits=True, reduction=reduction)
        return losses.BinaryCrossentropy(from_logits=True, reduction=reduction)

    def _stack(self, data: DataSpec) -> keras.Model:
        keras = _keras()
        streams = self.params["streams"]  # stateful layers need a fixed batch
        if data.kind == "tokens":
            inputs = keras.Input(batch_shape=(streams, None), dtype="int32", name="tokens")
        else:
            inputs = keras.Input(batch_shape=(streams, None, data.size), dtype="float32", name="frames")
        return keras.Sequential([inputs, *self.build(data)], name=self.label.lower())

    def _check_stack(self, keras: Any) -> None:
        for layer in self.network.layers:
            if isinstance(layer, keras.layers.RNN) and not (layer.stateful and layer.return_sequences):
                raise ValueError(
                    f"model {self.label}: recurrent layer {layer.name!r} must be made with **self.RECURRENT "
                    "(stateful=True, return_sequences=True): each batch continues the streams of the one before"
                )
        last = self.network.layers[-1]
        if getattr(last, "activation", None) in (keras.activations.softmax, keras.activations.sigmoid):
            raise ValueError(
                f"model {self.label}: the last layer {last.name!r} applies {last.activation.__name__}; "
                "end build() in logits (a Dense without activation): the loss and the decoder take logits"
            )
        if self.network.output_shape[-1] != self.data.size:
            raise ValueError(
                f"model {self.label}: build() gives {self.network.output_shape[-1]} outputs per step; "
                f"expected one per {'id' if self.data.kind == 'tokens' else 'feature'}: {self.data.size}"
            )

    # --- training -----------------------------------------------------------------------------------------

    def batches(self, sequences: Sequence[np.ndarray], *, shuffle: bool) -> StreamBatches:
        """The epoch's batches; shuffled pieces come from NumPy's global generator (the host seeds it)."""
        if shuffle and len(sequences) > 1:
            sequences = [sequences[i] for i in np.random.permutation(len(sequences))]
        return stream_batches(sequences, self.params["streams"], self.params["steps"])

    def reset_states(self) -> None:
        for layer in self.network.layers:
            if getattr(layer, "stateful", False):
                layer.reset_state()

    def reseed_dropout(self) -> None:
        """Restart every dropout stream from NumPy's global generator: a `.keras` file does not keep their
        state, and drawing it from the generator the host seeds each epoch makes a resumed epoch the same."""
        for layer in self.network.layers:
            for owner in (layer, getattr(layer, "cell", None)):
                generator = getattr(owner, "seed_generator", None)
                if generator is not None:
                    start = np.array([np.random.randint(2**31 - 1), 0])
                    generator.state.assign(start.astype(generator.state.dtype))

    def _batch(self, batches: StreamBatches, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x, y = batches.inputs[index], batches.targets[index]
        if self.data.kind == "frames":
            x, y = x.astype(np.float32), y.astype(np.float32)
        return x, y, batches.weights[index]

    def _pass(self, batches: StreamBatches, progress: EpochProgress | None) -> float:
        """The weighted mean loss per token or frame over the batches; trains when `progress` is given."""
        self.reset_states()
        total_loss = total_weight = 0.0
        for index in range(len(batches)):
            if progress is not None and progress.stop_requested():
                break  # the host checkpoints; the epoch is not counted
            x, y, w = self._batch(batches, index)
            if progress is None:
                loss = float(self.network.test_on_batch(x, y, sample_weight=w))
            else:
                loss = float(self.network.train_on_batch(x, y, sample_weight=w))
            weight = float(w.sum())
            total_loss += loss * self._per_step * weight
            total_weight += weight
            if progress is not None:
                progress.on_batch(index + 1, len(batches), total_loss / max(total_weight, 1.0))
        self.reset_states()
        return total_loss / total_weight if total_weight else math.nan

    def train_epoch(self, sequences: Sequence[np.ndarray], epoch: int, progress: EpochProgress) -> float:
        batches = self.batches(sequences, shuffle=True)
        self.reseed_dropout()
        return self._pass(batches, progress)

    def evaluate(self, sequences: Sequence[np.ndarray]) -> Evaluation:
        loss = self._pass(self.batches(sequences, shuffle=False), None)
        return Evaluation(loss=loss, bits=loss / math.log(2))

    # --- files ----------------------------------------------------------------------------------------------

    def save(self, path: Path) -> None:
        self.network.save(Path(path))

    @classmethod
    def load(cls, path: Path, params: Mapping[str, Any], data: DataSpec, strategy: Any = None) -> Self:
        keras = _keras()
        with scope_of(strategy):
            network = keras.saving.load_model(Path(path), safe_mode=True)
        return cls(params, data, strategy, network=network)

    # --- sampling -------------------------------------------------------------------------------------------

    def decoding_step(self) -> DecodingStep:
        if self._step is None:  # the compiled step reads the variables, so training does not stale it
            self._step = _StackStep(self.network, self.data)
        return self._step


@dataclass(frozen=True)
class _Rows:
    """The step's state: the next position's logits and every recurrent layer's states, one row per sequence."""

    logits: Any  # [rows, size]
    states: list[Any]  # one [rows, state size] tensor per state of each recurrent cell, in layer order


class _StackStep(DecodingStep):
    """The stack one position at a time, compiled once: recurrent layers through their cells."""

    def __init__(self, network: keras.Model, data: DataSpec) -> None:
        import tensorflow as tf

        keras = _keras()
        self.data = data
        self.layers = [layer for layer in network.layers if not isinstance(layer, keras.layers.Dropout)]
        self.wrapped = [isinstance(layer, keras.layers.TimeDistributed) for layer in self.layers]
        self.sizes: list[list[int]] = []  # per layer: the sizes of its cell's states ([] for other layers)
        for layer in self.layers:
            size = layer.cell.state_size if isinstance(layer, keras.layers.RNN) else []
            self.sizes.append(list(size) if isinstance(size, list | tuple) else [size])
        tokens = data.kind == "tokens"
        x_spec = tf.TensorSpec([None], tf.int32) if tokens else tf.TensorSpec([None, data.size], tf.float32)
        state_specs = [tf.TensorSpec([None, size], tf.float32) for sizes in self.sizes for size in sizes]
        self._step = tf.function(self._graph, input_signature=[x_spec, state_specs])
        self._dtype = np.int32 if tokens else np.float32

    def _graph(self, x: Any, states: list[Any]) -> tuple[Any, list[Any]]:
        new: list[Any] = []
        at = 0
        for layer, sizes, wrapped in zip(self.layers, self.sizes, self.wrapped, strict=True):
            if sizes:
                x, after = layer.cell(x, list(states[at : at + len(sizes)]), training=False)
                new.extend(after if isinstance(after, list | tuple) else [after])
                at += len(sizes)
            else:
                x = (layer.layer if wrapped else layer)(x)  # TimeDistributed: its own layer, per position
        return x, new

    def prime(self, primer: np.ndarray, n: int) -> _Rows:
        import tensorflow as tf

        data = self.data
        # In the training stream a tune follows its bos (tokens) or the previous piece (frames: silence here).
        start = [data.bos if data.bos is not None else 0] if data.kind == "tokens" else np.zeros((1, data.size))
        inputs = np.concatenate([start, primer]).astype(self._dtype)
        states = [tf.zeros([1, size]) for sizes in self.sizes for size in sizes]
        logits = None
        for position in inputs:
            logits, states = self._step(tf.constant(position[None]), states)
        return _Rows(tf.tile(logits, [n, 1]), [tf.tile(state, [n, 1]) for state in states])

    def scores(self, state: _Rows, context: StepContext) -> np.ndarray:
        return np.asarray(state.logits, np.float32)

    def advance(self, state: _Rows, chosen: np.ndarray) -> _Rows:
        import tensorflow as tf

        logits, states = self._step(tf.constant(chosen.astype(self._dtype)), state.states)
        return _Rows(logits, list(states))

    def select(self, state: _Rows, rows: np.ndarray) -> _Rows:
        import tensorflow as tf

        return _Rows(tf.gather(state.logits, rows), [tf.gather(s, rows) for s in state.states])
