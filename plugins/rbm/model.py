"""The `rbm` model: a binary RBM over a window of W consecutive steps, flattened into one visible vector.

Training: CD-k (or persistent CD) on every window of every sequence; each sequence is padded in front
with W - 1 steps of silence (frames) or begin-of-tune tokens, so windows that start a tune are learned
too and sampling can start from them.

Sampling writes a whole tune, not one window: each new window keeps its first W - hop steps clamped to
what was already written and Gibbs-samples the last `hop` steps (`sample_hop`, default 1), starting from
zeros, noise, or after a primer. At temperature T both conditionals use input / T (p ∝ exp(-E / T)).
In token mode each step is one softmax group, so every step is exactly one token; `top_k` filters each
group. `SampleRequest.constraint` is ignored by this model (the whole loop runs compiled).

Evaluation scores each step by its conditional under the window RBM, -log p(x_t | the W - 1 steps
before it): exact for tokens (one softmax group: V states), estimated by annealed importance sampling for
frames (the conditional of the last frame is itself an RBM whose partition function AIS estimates).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from tui_composer_plugins.rbm import PARAMS
from tui_composer_plugins.rbm.energy import (
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

from tui_composer.api import DataSpec, EpochProgress, Evaluation, Model, SampleRequest
from tui_composer.distribute import scope_of, splits_batches

SERIAL_PACKAGE = "tui_composer_rbm"


def with_defaults(params: Mapping[str, Any]) -> dict[str, Any]:
    """The schema's defaults overlaid with `params` (the host passes resolved values; tests may not)."""
    return {p.name: p.default for p in PARAMS} | dict(params)


def make_optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=learning_rate, momentum=0.9)
    return keras.optimizers.Adam(learning_rate=learning_rate)


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


def checked_primer(primer: np.ndarray | None, data: DataSpec, model: str) -> np.ndarray:
    """The request's primer as ids [T] (tokens) or frames [T, F]; a primer of the wrong shape is refused."""
    if primer is None or len(primer) == 0:
        return np.zeros((0,), np.int32) if data.kind == "tokens" else np.zeros((0, data.size), np.uint8)
    array = np.asarray(primer)
    expected = (1,) if data.kind == "tokens" else (2, data.size)
    if array.ndim != expected[0] or (data.kind == "frames" and array.shape[1] != data.size):
        shape = "a 1-D array of token ids" if data.kind == "tokens" else f"frames of shape (T, {data.size})"
        raise ValueError(f"model {model!r}: a primer of shape {array.shape} does not fit; expected {shape}")
    if data.kind == "tokens":
        if array.min() < 0 or array.max() >= data.size:
            raise ValueError(f"model {model!r}: primer ids must lie in [0, {data.size})")
        return array.astype(np.int32)
    return array.astype(np.uint8)


def padded(sequence: np.ndarray, pad: int, data: DataSpec) -> np.ndarray:
    """The sequence after `pad` steps of silence (frames) or begin-of-tune tokens (tokens)."""
    if data.kind == "tokens":
        return np.concatenate([np.full(pad, data.bos, np.int32), np.asarray(sequence, np.int32)])
    frames = np.asarray(sequence, np.uint8).reshape(-1, data.size)
    return np.concatenate([np.zeros((pad, data.size), np.uint8), frames])


class EnergyModel(Model):
    """What `rbm` and `rnn-rbm` share: evaluation by the per-step likelihood, and their `.keras` files."""

    network_class: type[keras.Model]
    label: str
    network: keras.Model

    def negative_log_likelihood(
        self, sequences: Sequence[np.ndarray], chains: int, temperatures: int, seed: int = 0, max_frames: int = 0
    ) -> NegativeLogLikelihood:
        raise NotImplementedError

    def evaluate(self, sequences: Sequence[np.ndarray]) -> Evaluation:
        """Cross-entropy per step: exact for tokens; for frames an AIS estimate on `eval_frames` frames."""
        p = self.params
        nll = self.negative_log_likelihood(
            sequences, int(p["ais_chains"]), int(p["ais_temperatures"]), max_frames=int(p["eval_frames"])
        )
        return Evaluation(loss=nll.nats, bits=nll.bits)

    def save(self, path: Path) -> None:
        self.network.save(Path(path))

    @classmethod
    def load(cls, path: Path, params: Mapping[str, Any], data: DataSpec, strategy: Any = None) -> EnergyModel:
        with scope_of(strategy):
            network = keras.saving.load_model(Path(path), safe_mode=True, compile=True)
        if not isinstance(network, cls.network_class):
            raise ValueError(f"{path}: not an {cls.label} model (it holds a {type(network).__name__})")
        return cls(params, data, strategy, network=network)


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
        self._generate = tf.function(partial(_generate_windows, network), reduce_retracing=True, autograph=False)
        self._window_step = tf.function(self._sample_last_step, reduce_retracing=True, autograph=False)

    def _sample_last_step(
        self, context: tf.Tensor, mask: tf.Tensor, seed: tf.Tensor, temperature: tf.Tensor, top_k: int
    ) -> tf.Tensor:
        """The last step of a window [n, D], Gibbs-sampled with the W - 1 steps before it clamped to `context`."""
        network, size = self.network, self.data.size
        rows = (self.window - 1) * size
        hid_input = network.hid_bias + tf.matmul(context, network.kernel[:rows]) if rows else network.hid_bias
        start = tf.zeros([tf.shape(mask)[0], size])
        if self.params["sample_init"] == "noise":
            start = network.units.sample(start, fold(seed, -1))
        steps = int(self.params["gibbs_steps"])
        kernel, vis_bias = network.kernel[rows:], network.vis_bias[rows:]
        return gibbs(start, hid_input, vis_bias, kernel, steps, seed, network.units, temperature, top_k, mask)

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
        v, hid_bias = [], []
        for chunk in range(0, len(starts), 4096):  # windows are W times larger than steps: build them in parts
            windows = self._flat(self._gather(stream, starts[chunk : chunk + 4096]))
            v.append(windows[:, context:])
            hid_bias.append(network.hid_bias.numpy() + windows[:, :context] @ kernel[:context])
        v = np.concatenate(v)
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

    def sample(self, request: SampleRequest) -> list[np.ndarray]:
        """`request.n` tunes of up to `max_length` steps (primer included), Gibbs-sampled window by window."""
        data = self.data
        hop = min(int(self.params["sample_hop"]), max(self.window - 1, 1))
        primer = checked_primer(request.primer, data, "rbm")
        prefix = self._prefix(primer)
        new_steps = max(0, request.max_length - len(primer))
        if new_steps == 0:
            return [self._output(primer) for _ in range(request.n)]
        steps = step_vectors(tf.constant(prefix.astype(np.int32)), data.size, self.tokens).numpy()
        if self.tokens and request.constraint is not None:
            generated = self._constrained(steps, new_steps, request)
            return [self._output(np.concatenate([primer, self._decode(sample)])) for sample in generated]
        generated = self._generate(
            tf.constant(steps),
            n=tf.constant(request.n),
            new_steps=tf.constant(new_steps),
            hop=hop,
            gibbs_steps=int(self.params["gibbs_steps"]),
            noise_start=self.params["sample_init"] == "noise",
            temperature=tf.constant(request.temperature, tf.float32),
            top_k=int(request.top_k) if self.tokens else 0,
            seed=tf.constant([request.seed, 0], tf.int32),
            eos=-1 if data.eos is None or not self.tokens else int(data.eos),
            mask=self._token_mask(),
        ).numpy()  # [n, new_steps, D]
        return [self._output(np.concatenate([primer, self._decode(sample)])) for sample in generated]

    def _constrained(self, prefix: np.ndarray, new_steps: int, request: SampleRequest) -> np.ndarray:
        """Token sampling under a TokenConstraint: one compiled window step (hop 1) per token, masked.

        Returns one-hot steps [n, steps, V]; it stops once every tune has written eos.
        """
        constraint, n, eos, context = request.constraint, request.n, self.data.eos, self.window - 1
        states = [constraint.start() for _ in range(n)]
        for token in request.primer if request.primer is not None else ():
            states = [constraint.advance(s, int(token)) for s in states]
        allowed = self._token_mask().numpy()[0]
        history = np.repeat(prefix[None, max(0, len(prefix) - context) :], n, axis=0)  # the last W - 1 steps
        done, written = np.zeros(n, bool), []
        for t in range(new_steps):
            mask = np.stack([constraint.allowed(s) & allowed for s in states])
            v = self._window_step(
                tf.constant(history.reshape(n, -1)),
                tf.constant(mask),
                fold(tf.constant([request.seed, 0], tf.int32), t),
                tf.constant(request.temperature, tf.float32),
                int(request.top_k),
            ).numpy()
            written.append(v)
            history = np.concatenate([history[:, 1:], v[:, None]], axis=1) if context else history
            tokens = v.argmax(axis=-1)
            states = [s if d else constraint.advance(s, int(k)) for s, d, k in zip(states, done, tokens, strict=True)]
            done |= tokens == eos
            if done.all():
                break
        return np.stack(written, axis=1)

    def _token_mask(self) -> tf.Tensor | None:
        """Tokens that sampling may write: every one but the begin-of-tune token."""
        if not self.tokens or self.data.bos is None:
            return None
        allowed = np.ones((1, self.data.size), bool)
        allowed[0, self.data.bos] = False
        return tf.constant(allowed)

    def _prefix(self, primer: np.ndarray) -> np.ndarray:
        if self.tokens:
            return np.concatenate([np.full(self.window, self.data.bos, np.int32), primer.astype(np.int32)])
        return padded(primer, self.window - 1, self.data)

    def _decode(self, vectors: np.ndarray) -> np.ndarray:
        if self.tokens:
            return vectors.argmax(axis=-1).astype(np.int32)
        return vectors.astype(np.uint8)

    def _output(self, sequence: np.ndarray) -> np.ndarray:
        """Ids stop before the first end-of-tune token; frames are uint8 time x features."""
        if not self.tokens:
            return sequence.astype(np.uint8).reshape(-1, self.data.size)
        ids = sequence.astype(np.int32)
        ends = np.flatnonzero(ids == self.data.eos) if self.data.eos is not None else []
        return ids[: ends[0]] if len(ends) else ids


def _generate_windows(
    network: WindowRBMNetwork,
    prefix: tf.Tensor,
    n: tf.Tensor,
    new_steps: tf.Tensor,
    hop: int,
    gibbs_steps: int,
    noise_start: bool,
    temperature: tf.Tensor,
    top_k: int,
    seed: tf.Tensor,
    eos: int,
    mask: tf.Tensor | None,
) -> tf.Tensor:
    """Gibbs-sample `new_steps` steps after `prefix` [P, D] for n tunes, `hop` steps per window.

    Each window's first W - hop steps are clamped to the steps already written; only the last `hop` steps
    are sampled. Runs as one compiled loop; in token mode it stops once every tune has written eos.
    """
    window, size, units = network.window, network.step_size, network.units
    clamped_rows = (window - hop) * size
    kernel_clamped, kernel_free = network.kernel[:clamped_rows], network.kernel[clamped_rows:]
    vis_bias_free = network.vis_bias[clamped_rows:]
    history = tf.TensorArray(tf.float32, size=0, dynamic_size=True, clear_after_read=False, element_shape=[None, size])
    prefix_length = tf.shape(prefix)[0]
    history = history.scatter(tf.range(prefix_length), tf.tile(prefix[:, None, :], [1, n, 1]))

    def body(t: tf.Tensor, history: tf.TensorArray, done: tf.Tensor) -> tuple:
        step_seed = fold(seed, t)
        position = prefix_length + t
        hid_input = network.hid_bias
        if clamped_rows:
            clamped = history.gather(tf.range(position + hop - window, position))  # [W - hop, n, D]
            clamped = tf.reshape(tf.transpose(clamped, [1, 0, 2]), [n, clamped_rows])
            hid_input = hid_input + tf.matmul(clamped, kernel_clamped)
        free = tf.zeros([n, hop * size])
        if noise_start:
            free = units.sample(tf.zeros([n, hop * size]), fold(step_seed, 0))
        free = gibbs(
            free,
            hid_input,
            vis_bias_free,
            kernel_free,
            gibbs_steps,
            fold(step_seed, 1),
            units,
            temperature,
            top_k,
            mask,
        )
        new = tf.transpose(tf.reshape(free, [n, hop, size]), [1, 0, 2])  # [hop, n, D]
        history = history.scatter(position + tf.range(hop), new)
        if eos >= 0:
            done = done | tf.reduce_any(new[:, :, eos] > 0.5, axis=0)
        return t + hop, history, done

    def unfinished(t: tf.Tensor, history: tf.TensorArray, done: tf.Tensor) -> tf.Tensor:
        return (t < new_steps) & ~tf.reduce_all(done)

    t, history, _ = tf.while_loop(unfinished, body, (tf.constant(0), history, tf.zeros([n], tf.bool)))
    written = history.gather(tf.range(prefix_length, prefix_length + tf.minimum(t, new_steps)))
    return tf.transpose(written, [1, 0, 2])
