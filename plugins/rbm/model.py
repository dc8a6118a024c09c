"""The `rbm` model: a binary RBM over a window of W consecutive steps, flattened into one visible vector.

Training: CD-k (or persistent CD) on every window of every sequence; each sequence is padded in front
with W - 1 steps of silence (frames) or begin-of-tune tokens, so windows that start a tune are learned
too and sampling can start from them.

Sampling writes a whole tune, not one window, through the core decoder (`tui_composer.plugin.decoding`): each
new window keeps its first W - hop steps clamped to what was already written and Gibbs-samples the last
`hop` steps (`sample_hop`, default 1), starting from zeros or noise, after an optional primer. The chain
runs `gibbs_steps` - 1 full Gibbs steps and a last hidden draw; the decoder makes the last visible draw,
one step at a time, from the logits that hidden sample gives (given h the window's steps are
independent). At temperature T both conditionals use input / T (p ∝ exp(-E / T)). In token mode each
step is one softmax group, so every step is exactly one token; the decoder's top-k filters it, and a
`SampleRequest.constraint` masks it (then every visible draw of the chain, and the hop is 1).

Evaluation scores each step by its conditional under the window RBM, -log p(x_t | the W - 1 steps
before it): exact for tokens (one softmax group: V states), estimated by annealed importance sampling for
frames (the conditional of the last frame is itself an RBM whose partition function AIS estimates).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from tui_composer_plugins.energy.functions import (
    NegativeLogLikelihood,
    VisibleUnits,
    ais_log_partition,
    cd_loss,
    fold,
    free_energy,
    gibbs,
    reconstruction_error,
    step_nll,
    step_vectors,
    visible_bias_init,
)
from tui_composer_plugins.energy.model import (
    EnergyModel,
    chain_logits,
    chain_seed,
    drawn_frames,
    fused_frames,
    make_optimizer,
    visible_vectors,
)
from tui_composer_plugins.rbm import PARAMS

from tui_composer.api import (
    DataSpec,
    DecodingStep,
    EpochProgress,
    SampleRequest,
    StepContext,
    decode,
    scope_of,
    splits_batches,
)

SERIAL_PACKAGE = "tui_composer_rbm"


def with_defaults(params: Mapping[str, Any]) -> dict[str, Any]:
    """The schema's defaults overlaid with `params` (the host passes resolved values; tests may not)."""
    return {p.name: p.default for p in PARAMS} | dict(params)


@keras.saving.register_keras_serializable(package=SERIAL_PACKAGE)
class WindowRBMNetwork(keras.Model):
    """Weights and biases of an RBM over `window` steps of `step_size` units, and its CD-k update.

    In token mode (`tokens`) each step's units form one softmax group. `chains` > 0 keeps that many
    persistent negative chains (persistent CD). `seed` roots all the model's stateless randomness; the
    update counter advances it, so a resumed run draws the numbers the uninterrupted one would have.
    """

    def __init__(
        self,
        window: int,
        step_size: int,
        hidden: int,
        tokens: bool,
        chains: int = 0,
        seed: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.window, self.step_size, self.hidden = window, step_size, hidden
        self.tokens, self.chains, self.seed = tokens, chains, seed
        self.units = VisibleUnits(step_size if tokens else 0)
        n_visible = window * step_size
        # Standard deviation 0.01 (Hinton's practical guide), not mean 0.01.
        self.kernel = self.add_weight(
            shape=(n_visible, hidden),
            initializer=keras.initializers.RandomNormal(stddev=0.01, seed=seed),
            name="kernel",
        )
        self.vis_bias = self.add_weight(shape=(n_visible,), initializer="zeros", name="vis_bias")
        self.hid_bias = self.add_weight(shape=(hidden,), initializer="zeros", name="hid_bias")
        self.updates = self.add_weight(shape=(), initializer="zeros", dtype="int32", trainable=False, name="updates")
        self.persistent_chains = (
            self.add_weight(shape=(chains, n_visible), initializer="zeros", trainable=False, name="persistent_chains")
            if chains
            else None
        )
        self.built = True

    def get_config(self) -> dict[str, Any]:
        return super().get_config() | {
            "window": self.window,
            "step_size": self.step_size,
            "hidden": self.hidden,
            "tokens": self.tokens,
            "chains": self.chains,
            "seed": self.seed,
        }

    def call(self, visible: tf.Tensor) -> tf.Tensor:
        """Free energy of each flattened window [N, W * step_size]."""
        return free_energy(visible, self.vis_bias, self.hid_bias, self.kernel)

    def flatten(self, windows: tf.Tensor) -> tf.Tensor:
        """Windows of ids [N, W] or frames [N, W, F] as visible vectors [N, W * step_size]."""
        vectors = step_vectors(windows, self.step_size, self.tokens)
        return tf.reshape(vectors, [tf.shape(vectors)[0], self.window * self.step_size])

    def cd_update(self, windows: tf.Tensor, cd_steps: int) -> tuple[tf.Tensor, tf.Tensor]:
        """One CD-k update on a batch of windows; returns the surrogate loss and reconstruction error per step."""
        v_data = self.flatten(windows)
        seed = fold(tf.constant([self.seed, 1], tf.int32), self.updates)
        start = self.persistent_chains if self.persistent_chains is not None else v_data
        v_model = gibbs(start, self.hid_bias, self.vis_bias, self.kernel, cd_steps, seed, self.units)
        if self.persistent_chains is not None:
            self.persistent_chains.assign(v_model)
        with tf.GradientTape() as tape:
            loss = cd_loss(v_data, v_model, self.vis_bias, self.hid_bias, self.kernel)
        variables = [self.kernel, self.vis_bias, self.hid_bias]
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        self.updates.assign_add(1)
        error = reconstruction_error(v_data, self.hid_bias, self.vis_bias, self.kernel, self.units)
        return loss, tf.reduce_mean(error) / self.window


def padded(sequence: np.ndarray, pad: int, data: DataSpec) -> np.ndarray:
    """The sequence after `pad` steps of silence (frames) or begin-of-tune tokens (tokens)."""
    if data.kind == "tokens":
        return np.concatenate([np.full(pad, data.bos, np.int32), np.asarray(sequence, np.int32)])
    frames = np.asarray(sequence, np.uint8).reshape(-1, data.size)
    return np.concatenate([np.zeros((pad, data.size), np.uint8), frames])


class RBM(EnergyModel):
    """The `rbm` model plugin (see the module docstring)."""

    network_class = WindowRBMNetwork
    label = "rbm"

    def __init__(
        self,
        params: Mapping[str, Any],
        data: DataSpec,
        strategy: Any = None,
        *,
        network: WindowRBMNetwork | None = None,
    ) -> None:
        """A new RBM from the hyperparameters, or one around a loaded `network`."""
        super().__init__(with_defaults(params), data, strategy)
        p = self.params
        self.tokens = data.kind == "tokens"
        if network is None:
            chains = int(p["batch_size"]) if p["persistent"] else 0
            seed = int(np.random.randint(0, 2**31 - 1))  # the host seeds numpy; the network keeps its seed
            with scope_of(strategy):
                network = WindowRBMNetwork(int(p["window"]), data.size, int(p["hidden"]), self.tokens, chains, seed)
                network.compile(optimizer=make_optimizer(p["optimizer"], float(p["learning_rate"])))
                network.optimizer.build(network.trainable_variables)
        self.network = network
        self.window = network.window
        cd_steps = int(p["cd_steps"])
        shape = [None, network.window] + ([] if self.tokens else [network.step_size])
        signature = [tf.TensorSpec(shape, tf.int32 if self.tokens else tf.uint8)]
        self._update = tf.function(
            lambda windows: network.cd_update(windows, cd_steps), input_signature=signature, autograph=False
        )
        if splits_batches(strategy):  # mirrored or multi-worker: each replica updates on its share
            from tui_composer_plugins.rbm.distributed import replica_update

            self._update = replica_update(self)
        self._window_logits = tf.function(self._free_logits, reduce_retracing=True, autograph=False)
        self._fused = tf.function(self._fused_graph, reduce_retracing=True, autograph=False)

    def _free_logits(
        self, clamped: tf.Tensor, hop: int, seed: tf.Tensor, temperature: tf.Tensor, mask: tf.Tensor | None
    ) -> tf.Tensor:
        """The last `hop` steps of a window, given its first W - hop steps `clamped` [n, (W - hop) * D]:
        the chain's last visible input [n, hop * D] (see `chain_logits`)."""
        network, size = self.network, self.data.size
        rows = (self.window - hop) * size
        hid_input = network.hid_bias + tf.matmul(clamped, network.kernel[:rows]) if rows else network.hid_bias
        start = tf.zeros([tf.shape(clamped)[0], hop * size])
        if self.params["sample_init"] == "noise":
            start = network.units.sample(start, fold(seed, -1))
        steps = int(self.params["gibbs_steps"])
        kernel, vis_bias = network.kernel[rows:], network.vis_bias[rows:]
        return chain_logits(start, hid_input, vis_bias, kernel, steps, seed, network.units, temperature, mask)

    def _fused_graph(
        self, history: tf.Tensor, seeds: tf.Tensor, noise: tf.Tensor, temperature: tf.Tensor, top_k: int
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """Frames with a hop of one, the loop compiled: what `_WindowStep` does under the core decoder,
        on the decoder's seeds and noise (see `fused_frames`). history [n, W - 1, D]."""
        size, context = self.data.size, self.window - 1
        written = tf.TensorArray(tf.float32, size=tf.shape(noise)[0])

        def body(t: tf.Tensor, history: tf.Tensor, written: tf.TensorArray) -> tuple:
            clamped = tf.reshape(history, [tf.shape(history)[0], context * size])
            v = drawn_frames(self._free_logits(clamped, 1, seeds[t], temperature, None), noise[t], temperature, top_k)
            if context:
                history = tf.concat([history[:, 1:], v[:, None]], axis=1)
            return t + 1, history, written.write(t, v)

        _, history, written = tf.while_loop(
            lambda t, *_: t < tf.shape(noise)[0], body, (tf.constant(0), history, written)
        )
        return written.stack(), history

    # --- training ----------------------------------------------------------------------------------

    def windows(self, sequences: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """All padded sequences in one stream, and the start of every window that lies inside one sequence."""
        pad = self.window - 1
        streams = [padded(s, pad, self.data) for s in sequences if len(s)]
        if not streams:
            raise ValueError("model 'rbm': no training sequences (every sequence is empty)")
        lengths = np.array([len(s) for s in streams])
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        starts = np.concatenate([o + np.arange(n - self.window + 1) for o, n in zip(offsets, lengths, strict=True)])
        return np.concatenate(streams), starts

    def _gather(self, stream: np.ndarray, starts: np.ndarray) -> np.ndarray:
        return stream[starts[:, None] + np.arange(self.window)]

    def train_epoch(self, sequences: Sequence[np.ndarray], epoch: int, progress: EpochProgress) -> float:
        """One pass of CD-k over every window in shuffled order; returns the mean reconstruction error per step."""
        network = self.network
        stream, starts = self.windows(sequences)
        if int(network.updates.numpy()) == 0:
            bias = visible_bias_init(np.concatenate(list(sequences)), self.tokens, self.data.size)
            network.vis_bias.assign(np.tile(bias, self.window))
            if network.persistent_chains is not None:  # start the persistent chains at data
                chosen = np.random.default_rng(network.seed).choice(starts, network.chains)
                network.persistent_chains.assign(self._flat(self._gather(stream, chosen)))
        order = np.random.default_rng([network.seed, epoch]).permutation(starts)
        batch = int(self.params["batch_size"])
        total = math.ceil(len(order) / batch)
        errors = []
        for index in range(total):
            _, error = self._update(self._gather(stream, order[index * batch : (index + 1) * batch]))
            errors.append(float(error))
            progress.on_batch(index + 1, total, errors[-1])
            if progress.stop_requested():
                break
        return float(np.mean(errors))

    def _flat(self, windows: np.ndarray) -> np.ndarray:
        return self.network.flatten(tf.constant(windows)).numpy()

    # --- evaluation --------------------------------------------------------------------------------

    def conditionals(self, sequences: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray, tf.Tensor]:
        """For every scored step: its visible vector, and the biases of its RBM given the W - 1 steps before.

        Returns (v [N, D], vis_bias [N, D], hid_bias [N, H], weights [D, H]). Every frame is scored; for
        tokens every token after the begin-of-tune token.
        """
        network, context = self.network, (self.window - 1) * self.data.size
        stream, starts = self.windows(sequences)
        if self.tokens:
            starts = starts[stream[starts + self.window - 1] != self.data.bos]  # the step scored is not a bos
        kernel = network.kernel.numpy()
        visible, hid_bias = [], []
        for chunk in range(0, len(starts), 4096):  # windows are W times larger than steps: build them in parts
            windows = self._flat(self._gather(stream, starts[chunk : chunk + 4096]))
            visible.append(windows[:, context:])
            hid_bias.append(network.hid_bias.numpy() + windows[:, :context] @ kernel[:context])
        v = np.concatenate(visible)
        vis_bias = np.broadcast_to(network.vis_bias.numpy()[context:], v.shape)
        return v, vis_bias, np.concatenate(hid_bias), tf.constant(kernel[context:])

    def negative_log_likelihood(
        self, sequences: Sequence[np.ndarray], chains: int, temperatures: int, seed: int = 0, max_frames: int = 0
    ) -> NegativeLogLikelihood:
        """Mean -log p(x_t | W - 1 steps before) in nats per step (AIS for frames, exact for tokens)."""
        v, vis_bias, hid_bias, weights = self.conditionals(sequences)
        if self.window == 1 and not self.tokens:
            # Every frame has the same RBM: one AIS estimate, with the chains of 64 frames, serves them all.
            estimate = ais_log_partition(vis_bias[:1], hid_bias[:1], weights, chains * 64, temperatures, seed)
            energy = free_energy(tf.constant(v), vis_bias[:1], hid_bias[:1], weights).numpy()
            nats = float(energy.astype(np.float64).mean() + estimate.log_z[0])
            return NegativeLogLikelihood(nats, float(math.sqrt(estimate.variance[0])), len(v))
        group = self.data.size if self.tokens else 0
        return step_nll(v, vis_bias, hid_bias, weights, group, chains, temperatures, seed, max_frames)

    # --- sampling ----------------------------------------------------------------------------------

    def decoding_step(self) -> DecodingStep:
        return _WindowStep(self)

    def sample(self, request: SampleRequest) -> list[np.ndarray]:
        """`request.n` tunes of up to `max_length` steps (primer included), Gibbs-sampled window by window.

        Frames with a hop of one take the compiled loop (`_fused_graph`), which gives what the core
        decoder gives; tokens (whose finished tunes leave the batch) and longer hops take the decoder.
        """
        step = _WindowStep(self)
        if self.tokens or step.hop != 1:
            return decode(step, request, self.data, model="rbm")

        def loop(state: _Window, seeds: tf.Tensor, noise: tf.Tensor, temperature: tf.Tensor) -> tuple:
            written, history = self._fused(tf.constant(state.history), seeds, noise, temperature, int(request.top_k))
            return written, _Window(history.numpy())

        return fused_frames(loop, step.prime, request, self.data, "rbm")

    def _prefix(self, primer: np.ndarray) -> np.ndarray:
        if self.tokens:
            return np.concatenate([np.full(self.window, self.data.bos, np.int32), primer.astype(np.int32)])
        return padded(primer, self.window - 1, self.data)


@dataclass
class _Window:
    """The rbm's decoding state: each row's last W - 1 steps, and the logits of a window's steps not yet
    drawn (a hop of several steps is sampled by one chain; the decoder draws them one at a time)."""

    history: np.ndarray  # [rows, W - 1, D] float32
    pending: np.ndarray | None = None  # [rows, steps left, D]


class _WindowStep(DecodingStep):
    """The rbm's step for the core decoder: a Gibbs chain over the window's free steps, the rest clamped."""

    def __init__(self, model: RBM) -> None:
        self.model = model
        self.tokens = model.tokens
        self.wants_mask = model.tokens  # the chain masks every visible draw of a token step
        self.hop = min(int(model.params["sample_hop"]), max(model.window - 1, 1))
        self.banned = np.zeros(model.data.size, bool)
        if model.tokens and model.data.bos is not None:
            self.banned[model.data.bos] = True  # the chain never writes the begin-of-tune token

    def prime(self, primer: np.ndarray, n: int) -> _Window:
        model = self.model
        steps = step_vectors(tf.constant(model._prefix(primer).astype(np.int32)), model.data.size, self.tokens)
        last = steps.numpy()[len(steps) - (model.window - 1) :] if model.window > 1 else steps.numpy()[:0]
        return _Window(np.repeat(last[None], n, axis=0))

    def scores(self, state: _Window, context: StepContext) -> np.ndarray:
        if state.pending is None:
            rows, size = len(state.history), self.model.data.size
            mask = None
            if self.tokens:
                mask = context.mask if context.mask is not None else np.broadcast_to(~self.banned, (rows, size))
            # Under a constraint each token is masked as it comes: one step per window.
            hop = 1 if context.mask is not None else self.hop
            clamped_steps = self.model.window - hop
            clamped = state.history[:, state.history.shape[1] - clamped_steps :].reshape(rows, clamped_steps * size)
            logits = self.model._window_logits(
                tf.constant(clamped),
                hop,
                chain_seed(context.rng),
                tf.constant(context.temperature, tf.float32),
                None if mask is None else tf.constant(mask),
            )
            state.pending = logits.numpy().reshape(rows, hop, size)
        return state.pending[:, 0]

    def advance(self, state: _Window, chosen: np.ndarray) -> _Window:
        v = visible_vectors(chosen, self.model.data)[:, None]
        history = np.concatenate([state.history[:, 1:], v], axis=1) if state.history.shape[1] else state.history
        pending = state.pending[:, 1:] if state.pending is not None and state.pending.shape[1] > 1 else None
        return _Window(history, pending)

    def select(self, state: _Window, rows: np.ndarray) -> _Window:
        return _Window(state.history[rows], None if state.pending is None else state.pending[rows])
