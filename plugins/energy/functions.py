"""Energy functions shared by the `rbm` and `rnn-rbm` models (TensorFlow): free energy, Gibbs, CD, AIS.

A binary RBM over visible units v and hidden units h has energy E(v, h) = -v·b - h·c - v·W·h. Summing out
h gives the free energy F(v) = -v·b - Σ_j softplus(c_j + v·W_j), with p(v) = exp(-F(v)) / Z.

Visible units are either independent binary units (`frames`) or softmax groups of `group` units, one
group per time step (`tokens`): each group is a one-hot vector, so every step is exactly one token.
The energy and free energy are the same for both; only the visible conditional differs (sigmoid per unit
or softmax per group).

Randomness is stateless (`tf.random.stateless_*` with seeds folded from one seed pair), so the same
seed gives the same samples and a resumed training draws the same numbers it would have drawn.

Importing this module imports TensorFlow: only model code imports it, never plugin registration.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

NEG_INF = -1e9  # a logit that a softmax never picks, without the NaNs that -inf brings into sums


def fold(seed: tf.Tensor, index: int | tf.Tensor) -> tf.Tensor:
    """A new stateless seed pair derived from `seed` and `index`."""
    return tf.random.experimental.stateless_fold_in(seed, tf.cast(index, tf.int32))


def free_energy(v: tf.Tensor, vis_bias: tf.Tensor, hid_bias: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
    """F(v) for each row of v [N, D]; the biases are [D] / [H] or per row [N, D] / [N, H]."""
    hidden_input = hid_bias + tf.matmul(v, weights)
    return -tf.reduce_sum(v * vis_bias, axis=-1) - tf.reduce_sum(tf.math.softplus(hidden_input), axis=-1)


def bernoulli(probabilities: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    noise = tf.random.stateless_uniform(tf.shape(probabilities), seed, dtype=probabilities.dtype)
    return tf.cast(noise < probabilities, probabilities.dtype)


def categorical_one_hot(
    logits: tf.Tensor,
    seed: tf.Tensor,
    top_k: int = 0,
    mask: tf.Tensor | None = None,
) -> tf.Tensor:
    """One-hot samples from softmax(logits) over the last axis (Gumbel-max), with optional top-k and mask."""
    if mask is not None:
        logits = tf.where(mask, logits, tf.cast(NEG_INF, logits.dtype))
    if top_k > 0:
        kth = tf.math.top_k(logits, k=min(top_k, logits.shape[-1])).values[..., -1:]
        logits = tf.where(logits < kth, tf.cast(NEG_INF, logits.dtype), logits)
    uniform = tf.random.stateless_uniform(tf.shape(logits), seed, minval=1e-7, maxval=1.0, dtype=logits.dtype)
    gumbel = -tf.math.log(-tf.math.log(uniform))
    return tf.one_hot(tf.argmax(logits + gumbel, axis=-1), tf.shape(logits)[-1], dtype=logits.dtype)


@dataclass(frozen=True)
class VisibleUnits:
    """How the visible vector is grouped: `group` = 0 for binary units, else softmax groups of that size."""

    group: int = 0

    def sample(
        self,
        logits: tf.Tensor,
        seed: tf.Tensor,
        temperature: float | tf.Tensor = 1.0,
        top_k: int = 0,
        mask: tf.Tensor | None = None,
    ) -> tf.Tensor:
        """Sample visible units given their input `logits` [N, D]; `mask` [N, group] limits softmax groups."""
        logits = logits / temperature
        if not self.group:
            return bernoulli(tf.sigmoid(logits), seed)
        grouped = tf.reshape(logits, [tf.shape(logits)[0], -1, self.group])
        if mask is not None:
            mask = mask[:, None, :]
        return tf.reshape(categorical_one_hot(grouped, seed, top_k, mask), tf.shape(logits))

    def mean(self, logits: tf.Tensor) -> tf.Tensor:
        """Expected visible units given their input: sigmoid per unit or softmax per group."""
        if not self.group:
            return tf.sigmoid(logits)
        grouped = tf.reshape(logits, [tf.shape(logits)[0], -1, self.group])
        return tf.reshape(tf.nn.softmax(grouped, axis=-1), tf.shape(logits))

    def log_base_partition(self, vis_bias: tf.Tensor) -> tf.Tensor:
        """log Σ_v exp(v·b) per row of `vis_bias` [N, D]: the visible part of the AIS base model."""
        if not self.group:
            return tf.reduce_sum(tf.math.softplus(vis_bias), axis=-1)
        grouped = tf.reshape(vis_bias, [tf.shape(vis_bias)[0], -1, self.group])
        return tf.reduce_sum(tf.reduce_logsumexp(grouped, axis=-1), axis=-1)


def gibbs(
    v: tf.Tensor,
    hid_input: tf.Tensor,
    vis_bias: tf.Tensor,
    weights: tf.Tensor,
    steps: int | tf.Tensor,
    seed: tf.Tensor,
    units: VisibleUnits,
    temperature: float | tf.Tensor = 1.0,
    top_k: int = 0,
    mask: tf.Tensor | None = None,
) -> tf.Tensor:
    """`steps` rounds of block Gibbs sampling h ~ p(h | v), v ~ p(v | h), starting from v [N, D].

    `hid_input` is the hidden input that does not come from v: the hidden biases, plus the contribution
    of clamped visible units when only part of the visible vector is sampled (the rows of `weights` are
    then those of the free units). At temperature T both conditionals use input / T, i.e. p ∝ exp(-E / T).
    """

    def body(i: tf.Tensor, v: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        step_seed = fold(seed, i)
        h_prob = tf.sigmoid((hid_input + tf.matmul(v, weights)) / temperature)
        h = bernoulli(h_prob, fold(step_seed, 0))
        logits = vis_bias + tf.matmul(h, weights, transpose_b=True)
        return i + 1, units.sample(logits, fold(step_seed, 1), temperature, top_k, mask)

    _, v = tf.while_loop(lambda i, _: i < steps, body, (tf.constant(0), v))
    return v


def reconstruction_error(
    v: tf.Tensor, hid_input: tf.Tensor, vis_bias: tf.Tensor, weights: tf.Tensor, units: VisibleUnits
) -> tf.Tensor:
    """Squared error between each row of v and its mean-field reconstruction, summed over units: [N]."""
    h_prob = tf.sigmoid(hid_input + tf.matmul(v, weights))
    v_mean = units.mean(vis_bias + tf.matmul(h_prob, weights, transpose_b=True))
    return tf.reduce_sum(tf.square(v - v_mean), axis=-1)


def cd_loss(
    v_data: tf.Tensor,
    v_model: tf.Tensor,
    vis_bias: tf.Tensor,
    hid_bias: tf.Tensor,
    weights: tf.Tensor,
    row_weight: tf.Tensor | None = None,
) -> tf.Tensor:
    """The contrastive-divergence surrogate mean F(v_data) - mean F(v_model); its gradient is the CD update.

    `v_model` holds the negative-phase samples (gradient stopped). `row_weight` masks padded rows.
    Gradients reach the biases, so a recurrent network that sets them per step learns through them.
    """
    v_model = tf.stop_gradient(v_model)
    positive = free_energy(v_data, vis_bias, hid_bias, weights)
    negative = free_energy(v_model, vis_bias, hid_bias, weights)
    if row_weight is None:
        return tf.reduce_mean(positive) - tf.reduce_mean(negative)
    total = tf.maximum(tf.reduce_sum(row_weight), 1.0)
    return tf.reduce_sum(row_weight * (positive - negative)) / total


def token_log_probs(vis_bias: tf.Tensor, hid_bias: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
    """Exact log p(token) for an RBM whose visible layer is one softmax group: log-softmax of -F(e_k).

    vis_bias [N, V], hid_bias [N, H], weights [V, H] -> [N, V]. Exact because only V visible states exist.
    """
    hidden_input = hid_bias[:, None, :] + weights[None, :, :]  # [N, V, H]: token k switches on row k of W
    negative_free_energy = vis_bias + tf.reduce_sum(tf.math.softplus(hidden_input), axis=-1)
    return tf.nn.log_softmax(negative_free_energy, axis=-1)


def ais_schedule(temperatures: int) -> np.ndarray:
    """Inverse temperatures 0 = β_0 < ... < β_K = 1, denser near 1 where the distributions change fastest.

    The proportions follow Salakhutdinov and Murray (2008): 500 / 4,000 / 10,000 steps on [0, 0.5],
    [0.5, 0.9] and [0.9, 1], scaled to `temperatures` steps in all.
    """
    temperatures = max(int(temperatures), 3)
    first = max(1, round(temperatures * 500 / 14500))
    second = max(1, round(temperatures * 4000 / 14500))
    third = max(1, temperatures - first - second)
    return np.concatenate(
        [
            np.linspace(0.0, 0.5, first, endpoint=False),
            np.linspace(0.5, 0.9, second, endpoint=False),
            np.linspace(0.9, 1.0, third + 1),
        ]
    ).astype(np.float32)


@tf.function(reduce_retracing=True, autograph=False)
def _ais_log_weights(
    vis_bias: tf.Tensor, hid_bias: tf.Tensor, weights: tf.Tensor, betas: tf.Tensor, seed: tf.Tensor, group: int
) -> tf.Tensor:
    """Log importance weights of one AIS run per row, from the base model exp(v·b) to the RBM."""
    units = VisibleUnits(group)
    v = units.sample(vis_bias, fold(seed, -1))
    log_w = tf.zeros(tf.shape(vis_bias)[:1], dtype=vis_bias.dtype)

    def body(k: tf.Tensor, v: tf.Tensor, log_w: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        beta_prev, beta = betas[k - 1], betas[k]
        hidden_input = hid_bias + tf.matmul(v, weights)
        # p*_β(v) = exp(v·b) Π_j (1 + exp(β (c_j + v·W_j))): the visible term cancels in the ratio.
        log_w += tf.reduce_sum(tf.math.softplus(beta * hidden_input) - tf.math.softplus(beta_prev * hidden_input), -1)
        step_seed = fold(seed, k)
        h = bernoulli(tf.sigmoid(beta * hidden_input), fold(step_seed, 0))
        v = units.sample(vis_bias + beta * tf.matmul(h, weights, transpose_b=True), fold(step_seed, 1))
        return k + 1, v, log_w

    _, _, log_w = tf.while_loop(lambda k, v, w: k < tf.shape(betas)[0], body, (tf.constant(1), v, log_w))
    return log_w


@dataclass(frozen=True)
class PartitionEstimate:
    """log Z per RBM (row), and the estimated variance of each log Z (delta method over the chains)."""

    log_z: np.ndarray
    variance: np.ndarray


def ais_log_partition(
    vis_bias: np.ndarray | tf.Tensor,
    hid_bias: np.ndarray | tf.Tensor,
    weights: tf.Tensor,
    chains: int,
    temperatures: int,
    seed: int,
    group: int = 0,
    rows_per_call: int = 0,
) -> PartitionEstimate:
    """Annealed importance sampling estimate of log Z for N RBMs that share `weights` [D, H].

    Row i of `vis_bias` [N, D] and `hid_bias` [N, H] gives RBM i (the conditional RBM of one time step).
    Each RBM gets `chains` independent AIS runs through `temperatures` inverse temperatures. The base
    model has the RBM's visible biases and no weights, so log Z_0 is exact. Z is estimated without
    bias, so log Z is slightly underestimated on average (Jensen); more chains and temperatures shrink it.
    """
    vis_bias = tf.convert_to_tensor(vis_bias, tf.float32)
    hid_bias = tf.convert_to_tensor(hid_bias, tf.float32)
    weights = tf.cast(weights, tf.float32)
    n_rows, n_hidden = int(vis_bias.shape[0]), int(hid_bias.shape[1])
    betas = tf.constant(ais_schedule(temperatures))
    # Bound the working set (chains x rows x units) to a few tens of MB.
    rows_per_call = rows_per_call or max(1, 2_000_000 // (chains * (int(vis_bias.shape[1]) + n_hidden)))
    units = VisibleUnits(group)
    log_z, variance = [], []
    base_seed = tf.constant([seed, 7919], tf.int32)
    for start in range(0, n_rows, rows_per_call):
        vb = vis_bias[start : start + rows_per_call]
        hb = hid_bias[start : start + rows_per_call]
        rows = int(vb.shape[0])
        log_w = _ais_log_weights(
            tf.repeat(vb, chains, axis=0), tf.repeat(hb, chains, axis=0), weights, betas, fold(base_seed, start), group
        )
        log_w = tf.reshape(log_w, [rows, chains]).numpy().astype(np.float64)
        shift = log_w.max(axis=1, keepdims=True)
        ratios = np.exp(log_w - shift)
        mean = ratios.mean(axis=1)
        log_z0 = units.log_base_partition(vb).numpy().astype(np.float64) + n_hidden * math.log(2.0)
        log_z.append(log_z0 + shift[:, 0] + np.log(mean))
        # Var(log Ẑ) ≈ Var(r) / (chains · mean(r)²) for the ratios r.
        variance.append(ratios.var(axis=1, ddof=1 if chains > 1 else 0) / (chains * mean**2))
    return PartitionEstimate(np.concatenate(log_z), np.concatenate(variance))


@dataclass(frozen=True)
class NegativeLogLikelihood:
    """Mean negative log-likelihood per step in nats, its standard error, and how many steps were scored."""

    nats: float
    standard_error: float
    steps: int

    @property
    def bits(self) -> float:
        return self.nats / math.log(2.0)


def step_nll(
    v: np.ndarray,
    vis_bias: np.ndarray,
    hid_bias: np.ndarray,
    weights: tf.Tensor,
    group: int,
    chains: int,
    temperatures: int,
    seed: int,
    max_rows: int = 0,
) -> NegativeLogLikelihood:
    """-log p(v_t) for N conditional RBMs (one per row), averaged: exact for one softmax group, else AIS.

    v [N, D], vis_bias [N, D], hid_bias [N, H]: row t is step t's visible vector and its RBM's biases.
    With 0 < `max_rows` < N, AIS scores only that many rows, evenly spread (a cheaper estimate).
    """
    if len(v) == 0:
        return NegativeLogLikelihood(float("nan"), float("nan"), 0)
    if not (group and group == v.shape[1]) and 0 < max_rows < len(v):
        rows = np.unique(np.linspace(0, len(v) - 1, max_rows).round().astype(int))
        v, vis_bias, hid_bias = v[rows], vis_bias[rows], hid_bias[rows]
    weights = tf.cast(weights, tf.float32)
    if group and group == v.shape[1]:
        total = 0.0
        for start in range(0, len(v), 512):
            log_probs = token_log_probs(
                tf.constant(vis_bias[start : start + 512], tf.float32),
                tf.constant(hid_bias[start : start + 512], tf.float32),
                weights,
            ).numpy()
            total -= float(np.sum(log_probs * v[start : start + 512]))
        return NegativeLogLikelihood(total / len(v), 0.0, len(v))
    energy = free_energy(
        tf.constant(v, tf.float32), tf.constant(vis_bias, tf.float32), tf.constant(hid_bias, tf.float32), weights
    ).numpy()
    estimate = ais_log_partition(vis_bias, hid_bias, weights, chains, temperatures, seed, group)
    nll = energy.astype(np.float64) + estimate.log_z
    return NegativeLogLikelihood(float(nll.mean()), float(math.sqrt(estimate.variance.sum()) / len(v)), len(v))


def step_vectors(batch: tf.Tensor, size: int, tokens: bool) -> tf.Tensor:
    """Model input as float visible vectors: ids [..., T] -> one-hot [..., T, V]; frames [..., T, F] -> float."""
    if tokens:
        return tf.one_hot(tf.cast(batch, tf.int32), size, dtype=tf.float32)
    return tf.cast(batch, tf.float32)


def visible_bias_init(vectors: np.ndarray, tokens: bool, size: int) -> np.ndarray:
    """Visible biases that match the data's unit frequencies (Hinton's practical guide, section 8.1)."""
    if tokens:
        counts = np.bincount(vectors.ravel(), minlength=size).astype(np.float64) + 1.0
        return np.log(counts / counts.sum()).astype(np.float32)
    frequency = np.clip(vectors.reshape(-1, size).mean(axis=0, dtype=np.float64), 1e-3, 1 - 1e-3)
    return np.log(frequency / (1.0 - frequency)).astype(np.float32)


@tf.function(reduce_retracing=True, autograph=False)
def _marginals(
    vis_bias: tf.Tensor, hid_bias: tf.Tensor, weights: tf.Tensor, steps: int, seed: tf.Tensor, group: int
) -> tf.Tensor:
    units = VisibleUnits(group)
    v = tf.zeros_like(vis_bias)
    total = tf.zeros_like(vis_bias)
    keep_from = steps // 2  # the first half is burn-in

    def body(i: tf.Tensor, v: tf.Tensor, total: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        step_seed = fold(seed, i)
        h = bernoulli(tf.sigmoid(hid_bias + tf.matmul(v, weights)), fold(step_seed, 0))
        logits = vis_bias + tf.matmul(h, weights, transpose_b=True)
        # Rao-Blackwellised: average p(v | h), not the binary samples.
        total += tf.cast(i >= keep_from, total.dtype) * units.mean(logits)
        return i + 1, units.sample(logits, fold(step_seed, 1)), total

    _, _, total = tf.while_loop(lambda i, v, t: i < steps, body, (tf.constant(0), v, total))
    return total / tf.cast(steps - keep_from, total.dtype)


def gibbs_marginals(
    vis_bias: np.ndarray,
    hid_bias: np.ndarray,
    weights: tf.Tensor,
    chains: int,
    steps: int,
    seed: int,
    group: int = 0,
) -> np.ndarray:
    """p(v_i = 1) for each row's RBM, estimated by `chains` Gibbs chains from all-off visible units.

    Each chain runs `steps` steps; the second half's p(v | h) are averaged over steps and chains.
    """
    weights = tf.cast(weights, tf.float32)
    rows_per_call = max(1, 1_000_000 // (chains * (vis_bias.shape[1] + int(weights.shape[1]))))
    out = []
    for start in range(0, len(vis_bias), rows_per_call):
        vb = tf.constant(vis_bias[start : start + rows_per_call], tf.float32)
        hb = tf.constant(hid_bias[start : start + rows_per_call], tf.float32)
        rows = int(vb.shape[0])
        means = _marginals(
            tf.repeat(vb, chains, axis=0),
            tf.repeat(hb, chains, axis=0),
            weights,
            steps,
            tf.constant([seed, start], tf.int32),
            group,
        )
        out.append(tf.reduce_mean(tf.reshape(means, [rows, chains, -1]), axis=1).numpy())
    return np.concatenate(out)
