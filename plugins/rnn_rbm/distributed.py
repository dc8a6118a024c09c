"""The RNN-RBM's chunk update across replicas (`--strategy mirrored` or `multi-worker`).

The streams are split evenly across the replicas: replica i continues streams [i * n, (i + 1) * n)
chunk after chunk, carrying their recurrent states (a per-replica value between chunks). Each replica
runs the negative phase on its streams; the surrogate's gradients are weighted by the replica's share
of the chunk's step weights and summed over the replicas, clipped to `clip_norm` as a whole, and
applied once. Each replica draws its own Gibbs and dropout noise (the update's seed folded with its
index), so a distributed run agrees with a single-device one statistically, not bit for bit.

The number of streams (`batch_size`, or fewer when there are fewer sequences) must divide evenly by
the replica count; otherwise the epoch is refused with a message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import tensorflow as tf
from tui_composer_plugins.energy.functions import fold

from tui_composer.api import check_divisible, per_replica

if TYPE_CHECKING:
    from tui_composer_plugins.rnn_rbm.model import RNNRBM

Update = Callable[[np.ndarray, np.ndarray, np.ndarray, Any], tuple[tf.Tensor, Any]]


def replica_updates(model: RNNRBM) -> tuple[Update, Update]:
    """Drop-ins for the model's `_update` and `_pretrain`: (batch, reset, weight, state) -> (error, state)."""
    network, strategy, p = model.network, model.strategy, model.params
    cd_steps, clip_norm, dropout = int(p["cd_steps"]), float(p["clip_norm"]), float(p["dropout"])

    def replica_step(
        batch: tf.Tensor, reset: tf.Tensor, weight: tf.Tensor, state: tf.Tensor, total: tf.Tensor, pretrain: bool
    ) -> tuple[tf.Tensor, tf.Tensor]:
        context = tf.distribute.get_replica_context()
        seed = fold(fold(tf.constant([network.seed, 2], tf.int32), network.updates), context.replica_id_in_sync_group)
        local = tf.maximum(tf.reduce_sum(weight), 1.0)
        # cd_loss is this replica's weighted mean; times its share of the weight, the sum is the chunk's mean.
        step = network.cd_gradients(batch, reset, weight, state, seed, cd_steps, pretrain, dropout, local / total)
        variables = step.variables
        gradients = context.all_reduce(tf.distribute.ReduceOp.SUM, step.gradients)
        if clip_norm > 0:
            gradients, _ = tf.clip_by_global_norm(gradients, clip_norm)
        # The optimizer sums over the replicas once more: the first replica gives it all, the rest zeros.
        first = tf.cast(tf.equal(context.replica_id_in_sync_group, 0), tf.float32)
        network.optimizer.apply_gradients(zip([g * first for g in gradients], variables, strict=True))
        return tf.reduce_sum(step.row_weight * step.error()), step.last

    def compiled(pretrain: bool) -> Any:
        def step(batch: Any, reset: Any, weight: Any, state: Any, total: tf.Tensor) -> tuple[tf.Tensor, Any]:
            errors, last = strategy.run(replica_step, args=(batch, reset, weight, state, total, pretrain))
            network.updates.assign_add(1)
            return strategy.reduce(tf.distribute.ReduceOp.SUM, errors, axis=None) / total, last

        return tf.function(step, autograph=False, reduce_retracing=True)

    def make(pretrain: bool) -> Update:
        function = compiled(pretrain)

        def update(batch: np.ndarray, reset: np.ndarray, weight: np.ndarray, state: Any) -> tuple[tf.Tensor, Any]:
            check_divisible(len(batch), strategy, "streams", "rnn-rbm")
            if isinstance(state, (tf.Tensor, np.ndarray)):  # the epoch's first chunk: split the initial states
                state = per_replica(strategy, state)
            total = tf.constant(max(float(weight.sum()), 1.0), tf.float32)
            return function(
                per_replica(strategy, batch), per_replica(strategy, reset), per_replica(strategy, weight), state, total
            )

        return update

    return make(False), make(True)
