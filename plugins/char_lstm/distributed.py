"""The char-LSTM's training step across replicas (`--strategy mirrored` or `multi-worker`).

Keras's stateful LSTMs keep one state per row of a fixed batch in variables, which a distributed batch
can't share: each replica sees only its slice of the rows. Here the recurrent state is carried
explicitly instead: the streams are split evenly across the replicas (replica i continues streams
[i * n, (i + 1) * n) batch after batch), and each replica's step takes its states in and gives the new
ones back. The step runs the network's own layers (`inner_loop` of each LSTM: the same code as the
single-device path) and all-reduces the gradients before clipping, so one update equals the
single-device update on the whole batch: the loss is the weighted mean over the global batch.

Dropout here draws from a stateless generator seeded per epoch, batch and replica (the Keras Dropout
layers' generators are variables a replica can't advance), so a run with dropout is statistically,
not bit-for-bit, the single-device run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import keras
import numpy as np
import tensorflow as tf

from tui_composer.api import (
    EpochProgress,
    Evaluation,
    check_divisible,
    per_replica,
    per_replica_from,
    replica_count,
)

if TYPE_CHECKING:
    from tui_composer_plugins.char_lstm.model import CharLSTM


class ReplicaTrainer:
    """Trains and evaluates a CharLSTM's network with its streams split across the strategy's replicas."""

    def __init__(self, model: CharLSTM) -> None:
        self.model = model
        self.strategy = model.strategy
        self.network = model.network
        self.replicas = replica_count(self.strategy)
        self.rows = check_divisible(int(model.params["streams"]), self.strategy, "streams", "char-lstm")
        self.lstms = [layer for layer in self.network.layers if isinstance(layer, keras.layers.LSTM)]
        self.dropouts = [layer.rate for layer in self.network.layers if isinstance(layer, keras.layers.Dropout)]
        self.clipnorm = float(model.params["clipnorm"] or 0.0)
        self.tokens = model.data.kind == "tokens"
        with self.strategy.scope():
            optimizer = self.network.optimizer
            if not optimizer.built:  # its slots must be mirrored variables, made in the scope
                optimizer.build(self.network.trainable_variables)
        self._train_step = tf.function(self._distributed_step, reduce_retracing=True)
        self._eval_step = tf.function(self._forward_loss, reduce_retracing=True)

    # --- the network, with explicit states -----------------------------------------------------------

    def _forward(self, x: Any, states: list[Any], training: bool, seed: Any) -> tuple[Any, list[Any]]:
        """Probabilities for inputs x [b, T(, F)] from states [(h, c) per layer], and the states after."""
        network = self.network
        h = self.lstms[0].token_inputs(x) if self.tokens else network.get_layer("projection")(x)
        new_states = []
        for index, (lstm, (h0, c0)) in enumerate(zip(self.lstms, states, strict=True)):
            _, h, last = lstm.inner_loop(h, [h0, c0], None, training=training)
            new_states.append((last[0], last[1]))
            rate = self.dropouts[index]
            if training and rate > 0:
                keep = tf.random.stateless_uniform(tf.shape(h), tf.stack([seed[0], seed[1] + index])) >= rate
                h = tf.where(keep, h / (1.0 - rate), 0.0)
        logits = network.get_layer("output")(h)
        return network.layers[-1](logits), new_states

    def _loss_sum(self, y: Any, probabilities: Any, w: Any) -> Any:
        if self.tokens:
            per_step = keras.losses.sparse_categorical_crossentropy(y, probabilities)
        else:
            per_step = keras.losses.binary_crossentropy(y, probabilities)
        return tf.reduce_sum(w * per_step)

    def _forward_loss(self, x: Any, y: Any, w: Any, states: list[Any]) -> tuple[Any, list[Any]]:
        probabilities, states = self._forward(x, states, training=False, seed=tf.zeros([2], tf.int32))
        return self._loss_sum(y, probabilities, w), states

    def _replica_step(self, x: Any, y: Any, w: Any, states: list[Any], total_weight: Any, seed: Any) -> tuple:
        context = tf.distribute.get_replica_context()
        replica_seed = seed + tf.stack([0, 1000 * context.replica_id_in_sync_group])
        variables = self.network.trainable_variables
        with tf.GradientTape() as tape:
            probabilities, states = self._forward(x, states, training=True, seed=replica_seed)
            loss_sum = self._loss_sum(y, probabilities, w)
            objective = tf.math.divide_no_nan(loss_sum, total_weight)  # a share of the global weighted mean
        # Summed over the replicas: the whole batch's gradient, on every replica. The embedding's stays
        # sparse slices (one row per token seen) as on a single device, where Adam squares each row.
        gradients = context.all_reduce(tf.distribute.ReduceOp.SUM, tape.gradient(objective, variables))
        if self.clipnorm > 0:  # Keras's clipnorm, but on the whole batch's gradient, not a replica's share
            gradients = [tf.clip_by_norm(g, self.clipnorm) for g in gradients]
        # The optimizer sums its gradients over the replicas once more: the first gives it all, the rest zeros.
        first = tf.cast(tf.equal(context.replica_id_in_sync_group, 0), tf.float32)
        shares = [
            tf.IndexedSlices(g.values * first, g.indices, g.dense_shape)
            if isinstance(g, tf.IndexedSlices)
            else g * first
            for g in gradients
        ]
        self.network.optimizer.apply_gradients(zip(shares, variables, strict=True))
        return loss_sum, states

    def _distributed_step(self, x: Any, y: Any, w: Any, states: Any, total_weight: Any, seed: Any) -> tuple:
        loss_sums, states = self.strategy.run(self._replica_step, args=(x, y, w, states, total_weight, seed))
        return self.strategy.reduce(tf.distribute.ReduceOp.SUM, loss_sums, axis=None), states

    def _zero_states(self) -> Any:
        def zeros(_: int) -> list[Any]:
            return [
                (tf.zeros([self.rows, lstm.cell.units]), tf.zeros([self.rows, lstm.cell.units])) for lstm in self.lstms
            ]

        return per_replica_from(self.strategy, zeros)

    # --- the epoch -------------------------------------------------------------------------------------

    def train_epoch(self, sequences: Sequence[np.ndarray], epoch: int, progress: EpochProgress) -> float:
        model = self.model
        batches = model.batches(sequences, shuffle=model.params["shuffle"])
        dropout_seed = int(np.random.randint(2**31 - 1))  # from the generator the host seeds each epoch
        states = self._zero_states()
        total_loss = total_weight = 0.0
        for index in range(len(batches)):
            if progress.stop_requested():
                break
            x, y, w = model._batch(batches, index)
            weight = float(w.sum())
            seed = tf.constant([dropout_seed, index], tf.int32)
            loss_sum, states = self._train_step(
                per_replica(self.strategy, x),
                per_replica(self.strategy, y),
                per_replica(self.strategy, w),
                states,
                tf.constant(weight, tf.float32),
                seed,
            )
            total_loss += float(loss_sum)
            total_weight += weight
            progress.on_batch(index + 1, len(batches), total_loss / max(total_weight, 1.0))
        return total_loss / total_weight if total_weight else math.nan

    def evaluate(self, sequences: Sequence[np.ndarray]) -> Evaluation:
        """The whole batch on one device (evaluation has no gradient to share), states carried explicitly."""
        model = self.model
        batches = model.batches(sequences, shuffle=False)
        streams = int(model.params["streams"])
        states = [(tf.zeros([streams, lstm.cell.units]), tf.zeros([streams, lstm.cell.units])) for lstm in self.lstms]
        total_loss = total_weight = 0.0
        for index in range(len(batches)):
            x, y, w = model._batch(batches, index)
            loss_sum, states = self._eval_step(tf.constant(x), tf.constant(y), tf.constant(w), states)
            total_loss += float(loss_sum)
            total_weight += float(w.sum())
        if not total_weight:
            return Evaluation(loss=math.nan, bits=math.nan)
        loss = total_loss / total_weight
        per_item = loss if self.tokens else loss * model.data.size
        return Evaluation(loss=loss, bits=per_item / math.log(2))
