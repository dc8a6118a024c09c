"""The core decoder: mask, top-k, temperature, ends, lengths and seeds, for tokens and frames.

Most tests drive `decode` with small real steps written here (a bigram table, fixed logits); the last
ones check that the char-LSTM's fused loop gives what the decoder gives over its compiled step.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

from tui_composer.api import DataSpec, DecodingStep, SampleRequest, StepContext, TokenConstraint, decode
from tui_composer.plugin.decoding import frames_drawn, top_k_filter

TOKENS = DataSpec("tokens", 8, bos=0, eos=1)  # 0 bos, 1 eos, 2..7 notes
FRAMES = DataSpec("frames", 6)


class FixedScores(DecodingStep):
    """The same logits at every step; the state is just how many rows there are, and what they were fed."""

    def __init__(self, logits: np.ndarray) -> None:
        self.logits = np.asarray(logits, np.float32)
        self.rows_seen: list[int] = []
        self.primed: list[Any] = []

    def prime(self, primer: np.ndarray, n: int) -> np.ndarray:
        self.primed.append(primer.copy())
        return np.arange(n)

    def scores(self, state: np.ndarray, context: StepContext) -> np.ndarray:
        self.rows_seen.append(len(state))
        return np.repeat(self.logits[None], len(state), axis=0)

    def advance(self, state: np.ndarray, chosen: np.ndarray) -> np.ndarray:
        assert len(chosen) == len(state)
        return state

    def select(self, state: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return state[rows]


class Bigram(DecodingStep):
    """Next-token logits from the last token: a real (tiny) language model."""

    def __init__(self, table: np.ndarray) -> None:
        self.table = np.log(np.asarray(table, np.float64)).astype(np.float32)

    def prime(self, primer: np.ndarray, n: int) -> np.ndarray:
        last = int(primer[-1]) if len(primer) else TOKENS.bos
        return np.full(n, last)

    def scores(self, state: np.ndarray, context: StepContext) -> np.ndarray:
        return self.table[state]

    def advance(self, state: np.ndarray, chosen: np.ndarray) -> np.ndarray:
        return chosen.astype(int)

    def select(self, state: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return state[rows]


def cycle_table(stay: float = 0.0) -> np.ndarray:
    """bos -> 2; 2 -> 3 -> ... -> 7 -> 2 mostly, each with a little weight everywhere else."""
    table = np.full((TOKENS.size, TOKENS.size), 0.02)
    for token in range(2, 8):
        table[token, 2 + (token - 1) % 6] = 1.0
    table[TOKENS.bos, 2] = 1.0
    table[:, TOKENS.eos] = 0.001 + stay
    return table / table.sum(axis=1, keepdims=True)


class OnlyLowNotes(TokenConstraint):
    """Ids 2 and 3 only; eos after `length` of them. The state counts the tokens read (primer included)."""

    def __init__(self, length: int = 5) -> None:
        self.length = length
        self.masks_built = 0

    def start(self) -> int:
        return 0

    def allowed(self, state: int) -> np.ndarray:
        self.masks_built += 1
        mask = np.zeros(TOKENS.size, bool)
        mask[[2, 3]] = state < self.length
        mask[TOKENS.eos] = state >= self.length
        return mask

    def advance(self, state: int, token: int) -> int:
        return state + 1

    def allows(self, state: int, token: int) -> bool:  # one token, without building a mask
        return token in (2, 3) if state < self.length else token == TOKENS.eos


def test_the_mask_comes_before_top_k_so_top_k_never_empties_the_choice() -> None:
    # The likeliest ids are 6 and 7, which the constraint forbids: top-k first would leave nothing (NaN).
    logits = np.array([0, -5, -3, -4, 0, 0, 8, 9], np.float32)
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        tunes = decode(FixedScores(logits), SampleRequest(n=20, top_k=2, seed=1, constraint=OnlyLowNotes(6)), TOKENS)
    assert [len(t) for t in tunes] == [6] * 20
    assert {int(i) for t in tunes for i in t} == {2, 3}  # both allowed ids, never a masked one
    filtered = top_k_filter(np.array([[-np.inf, 1.0, -np.inf, 2.0]], np.float32), 3)
    assert not np.isnan(filtered).any() and np.isfinite(filtered).sum() == 2  # fewer allowed than k: all kept


def test_top_k_of_one_is_greedy_whatever_the_seed_and_temperature() -> None:
    table = cycle_table()
    for seed, temperature in ((0, 1.0), (5, 3.0)):
        request = SampleRequest(n=3, max_length=14, top_k=1, seed=seed, temperature=temperature)
        tunes = decode(Bigram(table), request, TOKENS)
        assert [t.tolist() for t in tunes] == [[2, 3, 4, 5, 6, 7] * 2 + [2, 3]] * 3


def entropy(tokens: np.ndarray, size: int) -> float:
    p = np.bincount(tokens, minlength=size) / len(tokens)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def test_temperature_sharpens_and_flattens_the_distribution() -> None:
    logits = np.array([0, -np.inf, 2.0, 1.0, 0.0, -1.0, -2.0, 0.5], np.float32)
    logits[0] = -np.inf  # bos never comes anyway
    draws = {}
    for temperature in (0.5, 1.0, 2.0):
        request = SampleRequest(n=6000, max_length=1, temperature=temperature, seed=3)
        draws[temperature] = np.concatenate(decode(FixedScores(logits), request, TOKENS))
    entropies = [entropy(draws[t], TOKENS.size) for t in (0.5, 1.0, 2.0)]
    assert entropies[0] < entropies[1] - 0.1 < entropies[2] - 0.2
    expected = np.exp(logits[2:] - logits[2:].max())
    expected /= expected.sum()
    observed = np.bincount(draws[1.0], minlength=TOKENS.size)[2:] / 6000
    np.testing.assert_allclose(observed, expected, atol=0.025)  # T = 1 draws from softmax(logits): 4 s.e.


def test_finished_sequences_leave_the_batch_and_never_return_eos() -> None:
    step = FixedScores(np.zeros(TOKENS.size, np.float32))
    constraint = OnlyLowNotes(4)
    tunes = decode(step, SampleRequest(n=5, max_length=50, seed=2, constraint=constraint), TOKENS)
    assert [len(t) for t in tunes] == [4] * 5 and all(TOKENS.eos not in t for t in tunes)
    assert step.rows_seen == [5, 5, 5, 5, 5]  # the fifth step draws eos for all: nothing after it
    # Sequences of different lengths: rows go as each one ends.
    logits = np.log(cycle_table(stay=0.3)[2])
    step = FixedScores(logits)
    tunes = decode(step, SampleRequest(n=6, max_length=200, seed=4), TOKENS)
    lengths = sorted(len(t) for t in tunes)
    assert len(set(lengths)) > 1
    assert step.rows_seen[0] == 6 and step.rows_seen == sorted(step.rows_seen, reverse=True)
    assert len(step.rows_seen) == lengths[-1] + 1 or lengths[-1] == 200


def test_max_length_counts_the_primer_and_bounds_every_sample() -> None:
    never_ends = np.zeros(TOKENS.size, np.float32)
    never_ends[TOKENS.eos] = -np.inf
    primer = np.array([4, 5, 6], np.int32)
    step = FixedScores(never_ends)
    tunes = decode(step, SampleRequest(n=2, max_length=10, seed=0, primer=primer), TOKENS)
    assert [len(t) for t in tunes] == [10, 10] and all(t[:3].tolist() == [4, 5, 6] for t in tunes)
    assert step.rows_seen == [2] * 7 and step.primed[0].tolist() == [4, 5, 6]
    long_primer = np.arange(2, 8, dtype=np.int32)
    tunes = decode(FixedScores(never_ends), SampleRequest(n=1, max_length=4, primer=long_primer), TOKENS)
    assert tunes[0].tolist() == long_primer.tolist()  # returned whole, nothing after it
    frames = decode(FixedScores(np.zeros(6)), SampleRequest(n=3, max_length=7, primer=np.eye(6)[:2]), FRAMES)
    assert [f.shape for f in frames] == [(7, 6)] * 3 and all(f.dtype == np.uint8 for f in frames)
    np.testing.assert_array_equal(frames[0][:2], np.eye(6)[:2])


def test_a_constraint_starts_after_the_primer_and_the_lazy_mask_is_still_exact() -> None:
    constraint = OnlyLowNotes(5)
    primer = np.array([2, 3], np.int32)
    tunes = decode(FixedScores(np.zeros(8)), SampleRequest(n=4, seed=1, primer=primer, constraint=constraint), TOKENS)
    assert [len(t) for t in tunes] == [5] * 4  # the two primer tokens count towards the five
    # Without top-k most draws need no mask: an allowed id drawn first is kept.
    likes_low = np.array([0, -9, 3, 3, -9, -9, -9, -9], np.float32)
    lazy = OnlyLowNotes(50)
    tunes = decode(FixedScores(likes_low), SampleRequest(n=10, max_length=30, seed=2, constraint=lazy), TOKENS)
    assert lazy.masks_built < 10 * 30 / 10 and all(set(t.tolist()) <= {2, 3} for t in tunes)
    # Drawn first and refused, or masked first: both draw from the masked distribution.
    counts = {}
    for top_k in (0, 8):
        request = SampleRequest(n=3000, max_length=1, seed=5, top_k=top_k, constraint=OnlyLowNotes(5))
        ids = np.concatenate(decode(FixedScores(np.array([0, 0, 1.0, 0, 2, 2, 2, 2])), request, TOKENS))
        counts[top_k] = np.bincount(ids, minlength=8)[2:4] / 3000
    expected = np.exp([1.0, 0.0]) / np.exp([1.0, 0.0]).sum()
    np.testing.assert_allclose(counts[0], expected, atol=0.03)
    np.testing.assert_allclose(counts[8], expected, atol=0.03)


def test_a_step_that_wants_masks_gets_the_constraints_without_bos() -> None:
    class Masked(FixedScores):
        wants_mask = True

        def scores(self, state: np.ndarray, context: StepContext) -> np.ndarray:
            assert context.mask is not None and context.mask.shape == (len(state), TOKENS.size)
            assert not context.mask[:, TOKENS.bos].any()
            self.masks = context.mask
            return super().scores(state, context)

    step = Masked(np.zeros(8))
    decode(step, SampleRequest(n=2, seed=0, constraint=OnlyLowNotes(3)), TOKENS)
    assert step.masks[:, TOKENS.eos].all()  # the last step's mask: only the end


def test_a_primer_that_does_not_fit_is_refused_naming_the_model() -> None:
    with pytest.raises(ValueError, match="model 'rbm': a primer of shape \\(3, 5\\) does not fit; expected frames"):
        decode(FixedScores(np.zeros(6)), SampleRequest(n=1, primer=np.zeros((3, 5), np.uint8)), FRAMES, model="rbm")
    with pytest.raises(ValueError, match="primer ids must lie in \\[0, 8\\)"):
        decode(FixedScores(np.zeros(8)), SampleRequest(n=1, primer=np.array([3, 9])), TOKENS)


def test_a_constraint_that_is_no_token_constraint_is_refused_by_name() -> None:
    class Loose:
        def start(self) -> int:
            return 0

    with pytest.raises(TypeError, match="model 'toy': the constraint is a Loose, not a TokenConstraint"):
        decode(FixedScores(np.zeros(8)), SampleRequest(n=1, constraint=Loose()), TOKENS, model="toy")  # type: ignore[arg-type]


def test_the_same_seed_gives_the_same_samples() -> None:
    def draw(seed: int, data: DataSpec) -> list[np.ndarray]:
        step = Bigram(cycle_table(stay=0.05)) if data.kind == "tokens" else FixedScores(np.zeros(6))
        return decode(step, SampleRequest(n=4, max_length=40, temperature=1.5, seed=seed), data)

    for data in (TOKENS, FRAMES):
        first, again, other = draw(9, data), draw(9, data), draw(10, data)
        assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
        assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))


def test_frames_temperature_is_on_bernoulli_logits_and_top_k_caps_the_notes() -> None:
    logits = np.array([2.0, 1.0, 0.0, -1.0, 3.0, 3.0], np.float32)
    rng = np.random.default_rng(0)
    for temperature in (1.0, 2.0):
        uniform = rng.random((20000, 6))
        noise = np.log(uniform) - np.log1p(-uniform)
        on = frames_drawn(np.repeat(logits[None], 20000, axis=0), noise, np.float32(temperature), 0).mean(axis=0)
        np.testing.assert_allclose(on, 1 / (1 + np.exp(-logits / temperature)), atol=0.02)
    frames = decode(FixedScores(np.full(6, 20.0)), SampleRequest(n=5, max_length=9, top_k=2), FRAMES)
    assert all(f.sum(axis=1).tolist() == [2] * 9 for f in frames)  # every feature sure to sound: exactly 2
    ties = frames_drawn(np.full((1, 6), 20.0), np.zeros((1, 6)), np.float32(1.0), 2)
    assert ties.tolist() == [[1, 1, 0, 0, 0, 0]]  # ties go to the lower features, as tf.math.top_k breaks them


# --- a model's fused fast path gives what the decoder gives ----------------------------------------------


@pytest.fixture(scope="module")
def char_lstms() -> dict[str, Any]:
    keras = pytest.importorskip("keras")
    from tui_composer_plugins.char_lstm.model import CharLSTM

    small = {"embedding": 8, "layers": 2, "units": 16, "streams": 3, "steps": 8, "dropout": 0.0}
    keras.utils.set_random_seed(1)
    tokens = DataSpec("tokens", 10, bos=0, eos=1)
    return {"tokens": CharLSTM(small, tokens), "frames": CharLSTM(small, FRAMES)}


@pytest.mark.parametrize(
    ("kind", "n", "top_k", "primer"),
    [("tokens", 3, 0, [5, 6]), ("tokens", 12, 3, []), ("frames", 3, 0, []), ("frames", 12, 2, [[1, 0, 0, 0, 0, 1]])],
)
def test_the_char_lstm_fused_loop_gives_the_decoders_samples(
    char_lstms: dict[str, Any], kind: str, n: int, top_k: int, primer: list[Any]
) -> None:
    model = char_lstms[kind]
    array = np.asarray(primer, np.int32 if kind == "tokens" else np.uint8)
    request = SampleRequest(n=n, max_length=80, temperature=1.3, top_k=top_k, seed=7, primer=array if primer else None)
    fused = model.sample(request)  # unconstrained: the compiled tf.while_loop
    generic = decode(model.decoding_step(), request, model.data)  # the compiled step under the core decoder
    assert [s.tolist() for s in fused] == [s.tolist() for s in generic]
    if kind == "tokens" and top_k == 0:
        assert len({len(s) for s in fused}) > 1  # tunes ended at different steps and left the batch


@pytest.fixture(scope="module")
def energy_models() -> dict[str, Any]:
    pytest.importorskip("keras")
    from tui_composer_plugins.rbm.model import RBM
    from tui_composer_plugins.rnn_rbm.model import RNNRBM

    np.random.seed(2)
    rbm = RBM({"window": 3, "hidden": 8, "gibbs_steps": 3}, FRAMES)
    rbm_noise = RBM({"window": 1, "hidden": 8, "gibbs_steps": 2, "sample_init": "noise"}, FRAMES)
    rnn_rbm = RNNRBM({"hidden": 8, "recurrent": 8, "gibbs_steps": 3}, FRAMES)
    for model in (rbm, rbm_noise, rnn_rbm):  # weights away from their near-zero start, so frames differ
        for variable in model.network.trainable_variables:
            variable.assign(np.random.default_rng(3).normal(0, 1.0, variable.shape))
    return {"rbm": rbm, "rbm-noise": rbm_noise, "rnn-rbm": rnn_rbm}


@pytest.mark.parametrize(("name", "top_k"), [("rbm", 0), ("rbm-noise", 2), ("rnn-rbm", 0), ("rnn-rbm", 3)])
def test_the_energy_models_fused_loops_give_the_decoders_samples(
    energy_models: dict[str, Any], name: str, top_k: int
) -> None:
    model = energy_models[name]
    primer = np.eye(6, dtype=np.uint8)[:2]
    request = SampleRequest(n=3, max_length=70, temperature=1.2, top_k=top_k, seed=4, primer=primer)
    fused = model.sample(request)  # frames: the compiled tf.while_loop
    generic = decode(model.decoding_step(), request, model.data)  # the chain step under the core decoder
    assert [s.tolist() for s in fused] == [s.tolist() for s in generic]
    assert len({s[2:].tobytes() for s in fused}) == 3  # the tunes differ from each other
