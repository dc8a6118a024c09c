"""The `rnn-rbm` model (Boulanger-Lewandowski, Bengio and Vincent, ICML 2012).

At step t an RBM with one shared weight matrix W models the step's visible vector v_t; its biases come
from the recurrent state before the step: b_v(t) = b_v + u_{t-1} W_uv, b_h(t) = b_h + u_{t-1} W_uh, and
u_t = tanh(b_u + v_t W_vu + u_{t-1} W_uu) (or a GRU cell). u_0 is learned.

Training lays the sequences end to end in `batch_size` streams and walks them `bptt_steps` steps at a
time, carrying the recurrent state (reset at each sequence start). Each update runs the recurrence over
the chunk (compiled `tf.scan`), Gibbs-samples all steps' RBMs in parallel for CD-k, and differentiates the
free-energy surrogate F(v) - F(v~) through the biases into the recurrent part.

Sampling runs through the core decoder (`tui_composer.plugin.decoding`), n tunes at once: at each step a
compiled Gibbs chain in the step's RBM (`gibbs_steps` - 1 full steps and a last hidden draw; the decoder
makes the last visible draw from the logits it gives), then the compiled recurrence. A primer is fed first
(teacher forcing) and kept at the start of every sample. Temperature T samples p ∝ exp(-E / T) (both
conditionals use input / T; with `token_sampling=exact` the decoder divides the exact token
log-probabilities by T). In token mode each step's visible group is one softmax unit, so every step is
exactly one token; the decoder's top-k filters it, and a `SampleRequest.constraint` masks it (the chain's
visible draws too).

Evaluation gives -log p(v_t | v_<t) per step: exact for tokens (one softmax group), AIS estimates of each
step's partition function for frames.
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
    cd_loss,
    fold,
    gibbs,
    reconstruction_error,
    step_nll,
    step_vectors,
    token_log_probs,
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
from tui_composer_plugins.rnn_rbm import DATA_LEARNING_RATES, PARAMS

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

SERIAL_PACKAGE = "tui_composer_rnn_rbm"


def with_defaults(params: Mapping[str, Any], data: DataSpec) -> dict[str, Any]:
    """The schema's defaults overlaid with `params` (the host passes resolved values; tests may not), with
    the data's step size where `learning_rate` is 0."""
    resolved = {p.name: p.default for p in PARAMS} | dict(params)
    if not resolved["learning_rate"]:
        resolved["learning_rate"] = DATA_LEARNING_RATES[data.kind]
    return resolved


@dataclass
class ChunkGradients:
    """What one chunk's CD step gives: the gradients, and what the reconstruction error needs."""

    network: RNNRBMNetwork
    gradients: list[tf.Tensor]
    variables: list[Any]
    v_flat: tf.Tensor
    vis_bias: tf.Tensor
    hid_bias: tf.Tensor
    row_weight: tf.Tensor
    last: tf.Tensor

    def error(self) -> tf.Tensor:
        """Reconstruction error per step [B * T] with the biases the step used."""
        net = self.network
        return reconstruction_error(self.v_flat, self.hid_bias, self.vis_bias, net.kernel, net.units)


@keras.saving.register_keras_serializable(package=SERIAL_PACKAGE)
class RNNRBMNetwork(keras.Model):
    """Parameters of an RNN-RBM over steps of `step_size` units, its recurrence and its CD-k update."""

    def __init__(
        self,
        step_size: int,
        hidden: int,
        recurrent: int,
        tokens: bool,
        cell: str = "tanh",
        seed: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.step_size, self.hidden, self.recurrent = step_size, hidden, recurrent
        self.tokens, self.cell, self.seed = tokens, cell, seed
        self.units = VisibleUnits(step_size if tokens else 0)
        gates = 3 if cell == "gru" else 1
        small = keras.initializers.RandomNormal(stddev=0.01, seed=seed)
        self.kernel = self.add_weight(shape=(step_size, hidden), initializer=small, name="kernel")
        self.vis_bias = self.add_weight(shape=(step_size,), initializer="zeros", name="vis_bias")
        self.hid_bias = self.add_weight(shape=(hidden,), initializer="zeros", name="hid_bias")
        # The recurrent part starts silent (zero output weights): training begins as a plain RBM.
        self.rec_to_vis = self.add_weight(shape=(recurrent, step_size), initializer="zeros", name="rec_to_vis")
        self.rec_to_hid = self.add_weight(shape=(recurrent, hidden), initializer="zeros", name="rec_to_hid")
        self.vis_to_rec = self.add_weight(
            shape=(step_size, gates * recurrent),
            initializer=keras.initializers.GlorotUniform(seed=seed + 1),
            name="vis_to_rec",
        )
        self.rec_kernel = self.add_weight(
            shape=(recurrent, gates * recurrent),
            initializer=keras.initializers.Orthogonal(seed=seed + 2),
            name="rec_kernel",
        )
        self.rec_bias = self.add_weight(shape=(gates * recurrent,), initializer="zeros", name="rec_bias")
        self.initial_state = self.add_weight(shape=(recurrent,), initializer="zeros", name="initial_state")
        self.updates = self.add_weight(shape=(), initializer="zeros", dtype="int32", trainable=False, name="updates")
        self.epochs_done = self.add_weight(
            shape=(), initializer="zeros", dtype="int32", trainable=False, name="epochs_done"
        )
        self.built = True

    def get_config(self) -> dict[str, Any]:
        return super().get_config() | {
            "step_size": self.step_size,
            "hidden": self.hidden,
            "recurrent": self.recurrent,
            "tokens": self.tokens,
            "cell": self.cell,
            "seed": self.seed,
        }

    @property
    def rbm_variables(self) -> list[keras.Variable]:
        return [self.kernel, self.vis_bias, self.hid_bias]

    # --- the recurrence ------------------------------------------------------------------------------

    def step(self, v: tf.Tensor, state: tf.Tensor) -> tf.Tensor:
        """The recurrent state after visible vectors v [N, D], from `state` [N, U]."""
        return self.cell_from_input(tf.matmul(v, self.vis_to_rec) + self.rec_bias, state)

    def cell_from_input(self, x: tf.Tensor, state: tf.Tensor) -> tf.Tensor:
        """One cell update given the visible input already projected (x = v W_vu + b_u)."""
        if self.cell == "gru":
            x_z, x_r, x_n = tf.split(x, 3, axis=-1)
            r_z, r_r, r_n = tf.split(self.rec_kernel, 3, axis=-1)
            update = tf.sigmoid(x_z + tf.matmul(state, r_z))
            reset = tf.sigmoid(x_r + tf.matmul(state, r_r))
            candidate = tf.tanh(x_n + tf.matmul(reset * state, r_n))
            return update * state + (1.0 - update) * candidate
        return tf.tanh(x + tf.matmul(state, self.rec_kernel))

    def states(self, v: tf.Tensor, reset: tf.Tensor, state: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Teacher-forced recurrence over v [B, T, D]: the state before each step [B, T, U] and the last state.

        Where `reset` [B, T] is true a new sequence starts: the state before that step is u_0.
        """
        inputs = tf.einsum("btd,du->btu", v, self.vis_to_rec) + self.rec_bias
        batch = tf.shape(v)[0]
        initial = tf.broadcast_to(self.initial_state, [batch, self.recurrent])

        def scan_step(carry: tuple[tf.Tensor, tf.Tensor], elems: tuple[tf.Tensor, tf.Tensor]) -> tuple:
            _, state = carry
            x, starts = elems
            before = tf.where(starts[:, None], initial, state)
            return before, self.cell_from_input(x, before)

        before, after = tf.scan(
            scan_step,
            (tf.transpose(inputs, [1, 0, 2]), tf.transpose(reset)),
            initializer=(state, state),
        )
        return tf.transpose(before, [1, 0, 2]), after[-1]

    def biases(self, state: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """The RBM's visible and hidden biases given the recurrent state before a step."""
        return (
            self.vis_bias + tf.matmul(state, self.rec_to_vis),
            self.hid_bias + tf.matmul(state, self.rec_to_hid),
        )

    def chunk_biases(
        self, v: tf.Tensor, reset: tf.Tensor, state: tf.Tensor, recurrent_input: tf.Tensor | None = None
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """Per-step biases [B * T, D] and [B * T, H] for a chunk, and the state after it.

        `recurrent_input` replaces v as the recurrence's input (training feeds it with dropout applied).
        """
        before, last = self.states(v if recurrent_input is None else recurrent_input, reset, state)
        flat = tf.reshape(before, [-1, self.recurrent])
        vis_bias, hid_bias = self.biases(flat)
        return vis_bias, hid_bias, last

    # --- training ------------------------------------------------------------------------------------

    def surrogate(
        self, v: tf.Tensor, v_model: tf.Tensor, reset: tf.Tensor, weight: tf.Tensor, state: tf.Tensor
    ) -> tf.Tensor:
        """The CD surrogate for visible vectors v [B, T, D] and fixed negative samples v_model [B * T, D].

        Its gradient is the CD-k update of every parameter, the recurrent ones through the biases.
        """
        vis_bias, hid_bias, _ = self.chunk_biases(v, reset, state)
        v_flat = tf.reshape(v, [-1, self.step_size])
        return cd_loss(v_flat, v_model, vis_bias, hid_bias, self.kernel, tf.reshape(weight, [-1]))

    def cd_update(
        self,
        batch: tf.Tensor,
        reset: tf.Tensor,
        weight: tf.Tensor,
        state: tf.Tensor,
        cd_steps: int,
        clip_norm: float,
        pretrain: bool,
        dropout: float = 0.0,
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """One CD-k update on a chunk of streams [B, T(, F)]; returns the reconstruction error and last state.

        `weight` [B, T] is 0 on padding (and on begin-of-tune tokens, which are given, not predicted).
        With `pretrain` only the RBM learns, with its own biases at every step. `dropout` drops units of the
        recurrence's input (not of the visible vectors the RBM models), a regulariser for small corpora.
        """
        seed = fold(tf.constant([self.seed, 2], tf.int32), self.updates)
        step = self.cd_gradients(batch, reset, weight, state, seed, cd_steps, pretrain, dropout)
        gradients, variables = step.gradients, step.variables
        if clip_norm > 0:
            gradients, _ = tf.clip_by_global_norm(gradients, clip_norm)
        self.optimizer.apply_gradients(zip(gradients, variables, strict=True))
        self.updates.assign_add(1)
        error = tf.reduce_sum(step.row_weight * step.error()) / tf.maximum(tf.reduce_sum(step.row_weight), 1.0)
        return error, step.last

    def cd_gradients(
        self,
        batch: tf.Tensor,
        reset: tf.Tensor,
        weight: tf.Tensor,
        state: tf.Tensor,
        seed: tf.Tensor,
        cd_steps: int,
        pretrain: bool,
        dropout: float,
        loss_scale: tf.Tensor | float = 1.0,
    ) -> ChunkGradients:
        """The surrogate's gradients for one chunk (the part of an update the single-device and the
        per-replica steps share); `loss_scale` weights a replica's share of the chunk."""
        v = step_vectors(batch, self.step_size, self.tokens)
        v_flat = tf.reshape(v, [-1, self.step_size])
        row_weight = tf.reshape(weight, [-1])
        with tf.GradientTape() as tape:
            if pretrain:
                vis_bias, hid_bias, last = self.vis_bias[None, :], self.hid_bias[None, :], state
            else:
                recurrent_input = v
                if dropout > 0:
                    keep = tf.random.stateless_uniform(tf.shape(v), fold(seed, -1)) >= dropout
                    recurrent_input = tf.where(keep, v / (1.0 - dropout), 0.0)
                vis_bias, hid_bias, last = self.chunk_biases(v, reset, state, recurrent_input)
            v_model = gibbs(
                v_flat,
                tf.stop_gradient(hid_bias),
                tf.stop_gradient(vis_bias),
                self.kernel,
                cd_steps,
                seed,
                self.units,
            )
            loss = cd_loss(v_flat, v_model, vis_bias, hid_bias, self.kernel, row_weight) * loss_scale
        variables = self.rbm_variables if pretrain else self.trainable_variables
        return ChunkGradients(
            self, tape.gradient(loss, variables), variables, v_flat, vis_bias, hid_bias, row_weight, last
        )

    # --- sampling ------------------------------------------------------------------------------------

    def next_logits(
        self,
        state: tf.Tensor,
        seed: tf.Tensor,
        gibbs_steps: tf.Tensor,
        temperature: tf.Tensor,
        noise_start: bool,
        exact_tokens: bool,
        mask: tf.Tensor | None,
    ) -> tf.Tensor:
        """The logits of the next step's visible units [n, D] given the recurrent states [n, U], for the
        core decoder's draw: exact token log-probabilities (`exact_tokens`), else the input of the last
        visible conditional of a Gibbs chain in the step's RBM (`chain_logits`; `mask` [n, D] limits its
        token draws)."""
        vis_bias, hid_bias = self.biases(state)
        if exact_tokens:
            return token_log_probs(vis_bias, hid_bias, self.kernel)
        start = tf.zeros_like(vis_bias)
        if noise_start:
            start = self.units.sample(start, fold(seed, -1))
        return chain_logits(start, hid_bias, vis_bias, self.kernel, gibbs_steps, seed, self.units, temperature, mask)


class Streams:
    """Sequences laid end to end in B streams: steps [B, T(, F)], sequence starts [B, T], step weights [B, T]."""

    def __init__(self, sequences: Sequence[np.ndarray], count: int, data: DataSpec, chunk: int) -> None:
        tokens = data.kind == "tokens"
        count = max(1, min(count, len(sequences)))
        lanes: list[list[np.ndarray]] = [[] for _ in range(count)]
        lengths = np.zeros(count, np.int64)
        for sequence in sequences:  # each sequence goes to the shortest stream so far
            lane = int(np.argmin(lengths))
            lanes[lane].append(sequence)
            lengths[lane] += len(sequence)
        total = max(chunk, math.ceil(lengths.max() / chunk) * chunk)
        shape = (count, total) if tokens else (count, total, data.size)
        self.steps = np.zeros(shape, np.int32 if tokens else np.uint8)
        self.reset = np.zeros((count, total), bool)
        self.weight = np.zeros((count, total), np.float32)
        for lane, parts in enumerate(lanes):
            position = 0
            for sequence in parts:
                end = position + len(sequence)
                self.steps[lane, position:end] = sequence
                self.reset[lane, position] = True
                self.weight[lane, position:end] = 1.0
                if tokens:
                    self.weight[lane, position] = 0.0  # the begin-of-tune token is given, not predicted
                position = end
        self.count, self.chunk = count, chunk
        self.chunks = total // chunk

    def part(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        window = slice(index * self.chunk, (index + 1) * self.chunk)
        return self.steps[:, window], self.reset[:, window], self.weight[:, window]


class RNNRBM(EnergyModel):
    """The `rnn-rbm` model plugin (see the module docstring)."""

    network_class = RNNRBMNetwork
    label = "rnn-rbm"

    def __init__(
        self,
        params: Mapping[str, Any],
        data: DataSpec,
        strategy: Any = None,
        *,
        network: RNNRBMNetwork | None = None,
    ) -> None:
        """A new RNN-RBM from the hyperparameters, or one around a loaded `network`."""
        super().__init__(with_defaults(params, data), data, strategy)
        p = self.params
        self.tokens = data.kind == "tokens"
        if network is None:
            seed = int(np.random.randint(0, 2**31 - 4))  # the host seeds numpy; the network keeps its seed
            with scope_of(strategy):
                network = RNNRBMNetwork(
                    data.size, int(p["hidden"]), int(p["recurrent"]), self.tokens, str(p["cell"]), seed
                )
                network.compile(optimizer=make_optimizer(p["optimizer"], float(p["learning_rate"])))
                network.optimizer.build(network.trainable_variables)
        self.network = network
        self._compile_functions()

    def _compile_functions(self) -> None:
        network, p = self.network, self.params
        steps_spec = (
            tf.TensorSpec([None, None], tf.int32) if self.tokens else tf.TensorSpec([None, None, None], tf.uint8)
        )
        chunk_specs = [
            steps_spec,
            tf.TensorSpec([None, None], tf.bool),
            tf.TensorSpec([None, None], tf.float32),
            tf.TensorSpec([None, network.recurrent], tf.float32),
        ]
        cd_steps, clip_norm, dropout = int(p["cd_steps"]), float(p["clip_norm"]), float(p["dropout"])

        def update(batch: tf.Tensor, reset: tf.Tensor, weight: tf.Tensor, state: tf.Tensor) -> tuple:
            return network.cd_update(batch, reset, weight, state, cd_steps, clip_norm, pretrain=False, dropout=dropout)

        def pretrain(batch: tf.Tensor, reset: tf.Tensor, weight: tf.Tensor, state: tf.Tensor) -> tuple:
            return network.cd_update(batch, reset, weight, state, cd_steps, clip_norm, pretrain=True)

        def biases(batch: tf.Tensor, reset: tf.Tensor, state: tf.Tensor) -> tuple:
            v = step_vectors(batch, network.step_size, self.tokens)
            return network.chunk_biases(v, reset, state)

        self._update = tf.function(update, input_signature=chunk_specs, autograph=False)
        self._pretrain = tf.function(pretrain, input_signature=chunk_specs, autograph=False)
        self._biases = tf.function(
            biases, input_signature=[chunk_specs[0], chunk_specs[1], chunk_specs[3]], autograph=False
        )
        if splits_batches(self.strategy):  # mirrored or multi-worker: each replica continues its own streams
            from tui_composer_plugins.rnn_rbm.distributed import replica_updates

            self._update, self._pretrain = replica_updates(self)
        self._next_logits = tf.function(network.next_logits, reduce_retracing=True, autograph=False)
        self._fused = tf.function(self._fused_graph, reduce_retracing=True, autograph=False)
        self._step = tf.function(network.step, reduce_retracing=True, autograph=False)

    def _fused_graph(
        self, state: tf.Tensor, seeds: tf.Tensor, noise: tf.Tensor, temperature: tf.Tensor, top_k: int
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """Frames, the loop over time compiled: what `_RecurrentStep` does under the core decoder, on the
        decoder's seeds and noise (see `fused_frames`)."""
        network, gibbs_steps = self.network, tf.constant(int(self.params["gibbs_steps"]))
        noise_start = self.params["sample_init"] == "noise"
        written = tf.TensorArray(tf.float32, size=tf.shape(noise)[0])

        def body(t: tf.Tensor, state: tf.Tensor, written: tf.TensorArray) -> tuple:
            logits = network.next_logits(state, seeds[t], gibbs_steps, temperature, noise_start, False, None)
            v = drawn_frames(logits, noise[t], temperature, top_k)
            return t + 1, network.step(v, state), written.write(t, v)

        _, state, written = tf.while_loop(lambda t, *_: t < tf.shape(noise)[0], body, (tf.constant(0), state, written))
        return written.stack(), state

    # --- training ----------------------------------------------------------------------------------

    def _initial_states(self, count: int) -> tf.Tensor:
        return tf.broadcast_to(self.network.initial_state, [count, self.network.recurrent])

    def train_epoch(self, sequences: Sequence[np.ndarray], epoch: int, progress: EpochProgress) -> float:
        """One pass over every stream chunk; returns the mean reconstruction error per step.

        The first `pretrain_epochs` epochs train the RBM alone (optional pre-training).
        """
        network, p = self.network, self.params
        sequences = [s for s in sequences if len(s)]
        if not sequences:
            raise ValueError("model 'rnn-rbm': no training sequences (every sequence is empty)")
        if int(network.updates.numpy()) == 0:
            network.vis_bias.assign(visible_bias_init(np.concatenate(sequences), self.tokens, self.data.size))
        order = np.random.default_rng([network.seed, epoch]).permutation(len(sequences))
        streams = Streams([sequences[i] for i in order], int(p["batch_size"]), self.data, int(p["bptt_steps"]))
        update = self._pretrain if int(network.epochs_done.numpy()) < int(p["pretrain_epochs"]) else self._update
        state = self._initial_states(streams.count)
        errors = []
        for index in range(streams.chunks):
            batch, reset, weight = streams.part(index)
            error, state = update(batch, reset, weight, state)
            errors.append(float(error))
            progress.on_batch(index + 1, streams.chunks, errors[-1])
            if progress.stop_requested():
                return float(np.mean(errors))
        network.epochs_done.assign_add(1)
        return float(np.mean(errors))

    # --- evaluation --------------------------------------------------------------------------------

    def conditionals(self, sequences: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray, tf.Tensor]:
        """For every scored step: its visible vector and the biases of its RBM given the steps before.

        Returns (v [N, D], vis_bias [N, D], hid_bias [N, H], weights [D, H]). Every frame is scored; for
        tokens every token after the begin-of-tune token.
        """
        streams = Streams([s for s in sequences if len(s)], 64, self.data, 256)
        state = self._initial_states(streams.count)
        v, vis_bias, hid_bias = [], [], []
        for index in range(streams.chunks):
            batch, reset, weight = streams.part(index)
            chunk_vis, chunk_hid, state = self._biases(batch, reset, state)
            keep = weight.reshape(-1) > 0
            v.append(step_vectors(batch, self.data.size, self.tokens).numpy().reshape(-1, self.data.size)[keep])
            vis_bias.append(chunk_vis.numpy()[keep])
            hid_bias.append(chunk_hid.numpy()[keep])
        return np.concatenate(v), np.concatenate(vis_bias), np.concatenate(hid_bias), self.network.kernel.value

    def negative_log_likelihood(
        self, sequences: Sequence[np.ndarray], chains: int, temperatures: int, seed: int = 0, max_frames: int = 0
    ) -> NegativeLogLikelihood:
        """Mean -log p(v_t | v_<t) in nats per step (AIS per frame, exact per token)."""
        v, vis_bias, hid_bias, weights = self.conditionals(sequences)
        group = self.data.size if self.tokens else 0
        return step_nll(v, vis_bias, hid_bias, weights, group, chains, temperatures, seed, max_frames)

    # --- sampling ----------------------------------------------------------------------------------

    def decoding_step(self) -> DecodingStep:
        return _RecurrentStep(self)

    def sample(self, request: SampleRequest) -> list[np.ndarray]:
        """`request.n` tunes of up to `max_length` steps (primer included), sampled in one batch.

        Frames take the compiled loop (`_fused_graph`), which gives what the core decoder gives; tokens
        (whose finished tunes leave the batch, so the chains' noise could not match) take the decoder.
        """
        step = _RecurrentStep(self)
        if self.tokens:
            return decode(step, request, self.data, model="rnn-rbm")

        def loop(state: tf.Tensor, seeds: tf.Tensor, noise: tf.Tensor, temperature: tf.Tensor) -> tuple:
            return self._fused(state, seeds, noise, temperature, int(request.top_k))

        return fused_frames(loop, step.prime, request, self.data, "rnn-rbm")

    @property
    def _exact_tokens(self) -> bool:
        return self.tokens and self.params["token_sampling"] == "exact"

    def _primed_state(self, primer: np.ndarray, n: int) -> tf.Tensor:
        """The recurrent state after the primer (after the begin-of-tune token for tokens), for n tunes."""
        steps = np.concatenate([[self.data.bos], primer]).astype(np.int32) if self.tokens else primer
        if len(steps) == 0:
            return self._initial_states(n)
        reset = np.zeros((1, len(steps)), bool)
        reset[0, 0] = True
        _, _, state = self._biases(steps[None], reset, self._initial_states(1))
        return tf.tile(state, [n, 1])


class _RecurrentStep(DecodingStep):
    """The rnn-rbm's step for the core decoder: the state is the recurrent u [rows, U]."""

    def __init__(self, model: RNNRBM) -> None:
        self.model = model
        self.exact = model._exact_tokens
        self.wants_mask = model.tokens and not self.exact  # the chain masks each visible draw
        self.allowed = np.ones(model.data.size, bool)
        if model.tokens and model.data.bos is not None:
            self.allowed[model.data.bos] = False  # the chain never writes the begin-of-tune token

    def prime(self, primer: np.ndarray, n: int) -> tf.Tensor:
        return self.model._primed_state(primer, n)

    def scores(self, state: tf.Tensor, context: StepContext) -> np.ndarray:
        model, rows = self.model, int(state.shape[0])
        mask = None
        if model.tokens and not self.exact:
            everything = np.broadcast_to(self.allowed, (rows, len(self.allowed)))
            mask = context.mask if context.mask is not None else everything
        logits = model._next_logits(
            state,
            chain_seed(context.rng) if not self.exact else tf.zeros([2], tf.int32),
            tf.constant(int(model.params["gibbs_steps"])),
            tf.constant(context.temperature, tf.float32),
            noise_start=model.params["sample_init"] == "noise",
            exact_tokens=self.exact,
            mask=None if mask is None else tf.constant(mask),
        )
        return logits.numpy()

    def advance(self, state: tf.Tensor, chosen: np.ndarray) -> tf.Tensor:
        return self.model._step(tf.constant(visible_vectors(chosen, self.model.data)), state)

    def select(self, state: tf.Tensor, rows: np.ndarray) -> tf.Tensor:
        return tf.gather(state, rows)
