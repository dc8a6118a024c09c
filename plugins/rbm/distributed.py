"""The RBM's CD-k update across replicas (`--strategy mirrored` or `multi-worker`).

Each update's windows are split evenly across the replicas; each replica runs the negative phase on its
share, the gradients of the CD surrogate are summed over the replicas (the share of each is weighted by
its rows, so the sum is the whole batch's mean), and one optimizer step applies them everywhere. A
batch that the replicas can't share evenly (the last of an epoch) drops its last few windows (fewer
than the replica count). Each replica draws its own Gibbs noise (the update's seed folded with the
replica's index), so a distributed run agrees with a single-device one statistically, not bit for bit.

Not supported: persistent CD (`persistent=true`): its chains are one variable that every replica would
overwrite; such a run is refused with a message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import tensorflow as tf
from tui_composer_plugins.energy.functions import cd_loss, fold, gibbs, reconstruction_error

from tui_composer.api import StrategyError, check_divisible, per_replica, replica_count

if TYPE_CHECKING:
    from tui_composer_plugins.rbm.model import RBM


def replica_update(model: RBM) -> Callable[[np.ndarray], tuple[tf.Tensor, tf.Tensor]]:
    """A drop-in for the model's `_update(windows)`: (surrogate loss, reconstruction error per step)."""
    network, strategy = model.network, model.strategy
    if network.persistent_chains is not None:
        raise StrategyError(
            "model 'rbm': persistent CD (persistent=true) is not supported across replicas; "
            "set persistent=false or train with --strategy single"
        )
    replicas = replica_count(strategy)
    check_divisible(int(model.params["batch_size"]), strategy, "batch_size", "rbm")
    cd_steps = int(model.params["cd_steps"])
    variables = [network.kernel, network.vis_bias, network.hid_bias]

    def replica_step(windows: tf.Tensor, total_rows: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        context = tf.distribute.get_replica_context()
        v_data = network.flatten(windows)
        seed = fold(fold(tf.constant([network.seed, 1], tf.int32), network.updates), context.replica_id_in_sync_group)
        v_model = gibbs(v_data, network.hid_bias, network.vis_bias, network.kernel, cd_steps, seed, network.units)
        share = tf.cast(tf.shape(v_data)[0], tf.float32) / total_rows
        with tf.GradientTape() as tape:
            loss = cd_loss(v_data, v_model, network.vis_bias, network.hid_bias, network.kernel) * share
        gradients = context.all_reduce(tf.distribute.ReduceOp.SUM, tape.gradient(loss, variables))
        # The optimizer sums over the replicas once more: the first replica gives it all, the rest zeros.
        first = tf.cast(tf.equal(context.replica_id_in_sync_group, 0), tf.float32)
        network.optimizer.apply_gradients(zip([g * first for g in gradients], variables, strict=True))
        error = reconstruction_error(v_data, network.hid_bias, network.vis_bias, network.kernel, network.units)
        return loss, tf.reduce_sum(error)

    def step(windows: Any, total_rows: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        losses, errors = strategy.run(replica_step, args=(windows, total_rows))
        network.updates.assign_add(1)
        loss = strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)
        error = strategy.reduce(tf.distribute.ReduceOp.SUM, errors, axis=None)
        return loss, error / total_rows / network.window

    compiled = tf.function(step, autograph=False, reduce_retracing=True)

    def update(windows: np.ndarray) -> tuple[tf.Tensor, tf.Tensor]:
        if len(windows) < replicas:  # repeating the few windows keeps their mean gradient
            windows = np.resize(windows, (replicas, *windows.shape[1:]))
        rows = len(windows) - len(windows) % replicas
        return compiled(per_replica(strategy, windows[:rows]), tf.constant(rows, tf.float32))

    return update
