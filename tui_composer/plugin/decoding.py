"""The one decoder: every model's samples, tokens and frames, from the model's `DecodingStep`.

A model gives the state after a primer and, for each state, the logits of the next step (see
`tui_composer.plugin.contract.DecodingStep`). `decode` does the rest, in this order at every token step:

1. scores / temperature; the begin-of-tune id is never drawn;
2. the constraint's mask (`SampleRequest.constraint`): disallowed ids get -inf;
3. top-k over what is left: the k likeliest *allowed* ids (fewer are allowed: all of them), so the
   choice is never empty and no NaN can appear;
4. one draw per row by Gumbel-max: argmax(scores + Gumbel noise) is a draw from softmax(scores).

Without top-k and with a constraint, step 2 is lazy: each row draws from its unmasked distribution and
keeps the draw when `constraint.allows` it; a refused row is drawn again from its masked distribution.
That is the masked distribution exactly (a refusal leaves the allowed ids in proportion), and most steps
build no mask. A row whose mask allows nothing ends (or takes its likeliest id where there is no eos).

Frames: each feature is on where its logit / temperature exceeds logistic noise, i.e. with probability
sigmoid(logit / T); top-k lets only the k features with the largest logits be on (at most k notes per
frame). A Gibbs-sampling model runs its chain inside `scores`, at the temperature and from the generator
the context gives it, and the decoder makes the chain's last visible draw.

Lengths and ends: `max_length` counts the primer (and, for tokens, the end-of-tune step, which is not
returned); a primer longer than that is returned whole. A sequence that draws eos leaves the batch
(`DecodingStep.select`); decoding stops when none is left or at `max_length`.

Seeds: everything random comes from one `np.random.default_rng(request.seed)`, in a fixed order: per
step, noise for all `n` rows (rows that finished included, so row i's noise never depends on the
others), then any redraws. The host seeds nothing else for sampling. A model's fused fast path draws its
noise with `token_noise` / `frame_noise` in the same order and gets the same samples.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tui_composer.plugin.contract import DataSpec, DecodingStep, SampleRequest, StepContext, TokenConstraint

MIN_TEMPERATURE = 1e-4  # below this logits / T overflows float32; the draw is greedy long before
_TINY = np.finfo(np.float32).tiny


def temperature_of(request: SampleRequest) -> np.float32:
    return np.float32(max(float(request.temperature), MIN_TEMPERATURE))


def token_noise(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Gumbel noise (float32, always finite): argmax(logits + noise) draws from softmax(logits)."""
    return -np.log(np.maximum(rng.standard_exponential(shape, dtype=np.float32), _TINY))


def frame_noise(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Logistic noise (float32, finite): a feature whose logit exceeds it is on with probability sigmoid(logit)."""
    uniform = np.maximum(rng.random(shape, dtype=np.float32), _TINY)
    return np.log(uniform) - np.log1p(-uniform)


def top_k_filter(scaled: np.ndarray, top_k: int) -> np.ndarray:
    """-inf below each row's k-th largest score; a row with fewer than k finite scores keeps them all."""
    size = scaled.shape[1]
    if top_k <= 0 or top_k >= size:
        return scaled
    kth = np.partition(scaled, size - top_k, axis=1)[:, size - top_k : size - top_k + 1]
    return np.where(scaled < kth, np.float32(-np.inf), scaled)


def frames_drawn(scores: np.ndarray, noise: np.ndarray, temperature: np.float32, top_k: int) -> np.ndarray:
    """One frame per row: features on with probability sigmoid(score / T), at most k of them with top-k."""
    scaled = np.asarray(scores, np.float32) / temperature
    on = noise < scaled
    size = scaled.shape[1]
    if 0 < top_k < size:
        # The k largest, ties to the lower index (as tf.math.top_k breaks them).
        likeliest = np.argsort(-scaled, axis=1, kind="stable")[:, :top_k]
        eligible = np.zeros_like(on)
        np.put_along_axis(eligible, likeliest, True, axis=1)
        on &= eligible
    return on.astype(np.uint8)


def checked_primer(primer: np.ndarray | None, data: DataSpec, model: str) -> np.ndarray:
    """The request's primer as ids [P] (tokens) or frames [P, F] (frames); one that does not fit is refused."""
    if primer is None or len(primer) == 0:
        return np.zeros((0,), np.int32) if data.kind == "tokens" else np.zeros((0, data.size), np.uint8)
    array = np.asarray(primer)
    tokens = data.kind == "tokens"
    if array.ndim != (1 if tokens else 2) or (not tokens and array.shape[1] != data.size):
        shape = "a 1-D array of token ids" if tokens else f"frames of shape (T, {data.size})"
        raise ValueError(
            f"model {model!r}: a primer of shape {array.shape} does not fit; expected {shape} "
            "(encode it with the run's encoder: Encoder.encode_primer)"
        )
    if tokens:
        if array.min() < 0 or array.max() >= data.size:
            raise ValueError(f"model {model!r}: primer ids must lie in [0, {data.size}) (this model's vocabulary)")
        return array.astype(np.int32)
    return array.astype(np.uint8)


def decode(step: DecodingStep, request: SampleRequest, data: DataSpec, *, model: str = "model") -> list[np.ndarray]:
    """`request.n` samples (see the module docstring): int32 ids without bos and eos, or uint8 frames."""
    primer = checked_primer(request.primer, data, model)
    rng = np.random.default_rng(request.seed)
    if data.kind == "frames":
        return _decode_frames(step, request, data, primer, rng)
    constraint = request.constraint
    if constraint is not None and not isinstance(constraint, TokenConstraint):
        raise TypeError(
            f"model {model!r}: the constraint is a {type(constraint).__name__}, not a TokenConstraint "
            "(subclass tui_composer.api.TokenConstraint)"
        )
    return _decode_tokens(step, request, data, primer, rng, constraint)


def _decode_frames(
    step: DecodingStep, request: SampleRequest, data: DataSpec, primer: np.ndarray, rng: np.random.Generator
) -> list[np.ndarray]:
    n, temperature = request.n, temperature_of(request)
    length = max(request.max_length, len(primer))
    state = step.prime(primer, n)
    written: list[np.ndarray] = []
    for t in range(len(primer), length):
        scores = step.scores(state, StepContext(float(temperature), rng))
        frames = frames_drawn(scores, frame_noise(rng, (n, data.size)), temperature, request.top_k)
        written.append(frames)
        if t + 1 < length:
            state = step.advance(state, frames)
    new = np.stack(written, axis=1) if written else np.zeros((n, 0, data.size), np.uint8)
    return [np.concatenate([primer, frames]) for frames in new]


class _TokenDraw:
    """The choice of each row's next id: temperature, ban, mask, top-k, Gumbel-max (module docstring)."""

    def __init__(self, request: SampleRequest, data: DataSpec, constraint: TokenConstraint | None) -> None:
        self.temperature = temperature_of(request)
        self.top_k = int(request.top_k)
        self.constraint = constraint
        self.eos = data.eos
        self.banned = np.zeros(data.size, bool)
        if data.bos is not None:
            self.banned[data.bos] = True  # a tune never restarts inside itself

    def masks(self, states: list[Any]) -> np.ndarray:
        assert self.constraint is not None
        allowed = np.stack([np.asarray(self.constraint.allowed(state), bool) for state in states])
        return allowed & ~self.banned

    def choose(
        self,
        scores: np.ndarray,
        noise: np.ndarray,
        states: list[Any],
        masks: np.ndarray | None,
        rng: np.random.Generator,
    ) -> np.ndarray:
        scaled = np.asarray(scores, np.float32) / self.temperature
        scaled[:, self.banned] = -np.inf
        if self.constraint is None:
            return np.argmax(top_k_filter(scaled, self.top_k) + noise, axis=1).astype(np.int32)
        if masks is None and self.top_k <= 0:
            chosen = np.argmax(scaled + noise, axis=1).astype(np.int32)
            allows = self.constraint.allows
            refused = np.asarray([row for row, state in enumerate(states) if not allows(state, int(chosen[row]))], int)
            if len(refused):
                again = self._masked(scaled[refused], scores[refused], self.masks([states[r] for r in refused]), rng)
                chosen[refused] = again
            return chosen
        if masks is None:
            masks = self.masks(states)
        return self._masked(scaled, scores, masks, rng, noise)

    def _masked(
        self,
        scaled: np.ndarray,
        scores: np.ndarray,
        masks: np.ndarray,
        rng: np.random.Generator,
        noise: np.ndarray | None = None,
    ) -> np.ndarray:
        """Draws from the masked, then top-k filtered, scores; fresh noise unless given."""
        if noise is None:
            noise = token_noise(rng, scaled.shape)
        masked = top_k_filter(np.where(masks, scaled, np.float32(-np.inf)), self.top_k)
        drawn = np.argmax(masked + noise, axis=1).astype(np.int32)
        stuck = ~masks.any(axis=1)
        if stuck.any():  # nothing may follow: end the piece, or take the likeliest id where there is no end
            fallback = np.full(len(drawn), self.eos) if self.eos is not None else np.argmax(scores, axis=1)
            drawn = np.where(stuck, fallback, drawn).astype(np.int32)
        return drawn


def _decode_tokens(
    step: DecodingStep,
    request: SampleRequest,
    data: DataSpec,
    primer: np.ndarray,
    rng: np.random.Generator,
    constraint: TokenConstraint | None,
) -> list[np.ndarray]:
    n, size, eos = request.n, data.size, data.eos
    length = max(request.max_length, len(primer))
    draw = _TokenDraw(request, data, constraint)
    states: list[Any] = []
    if constraint is not None:
        for _ in range(n):
            state = constraint.start()
            for token in primer.tolist():
                state = constraint.advance(state, token)
            states.append(state)
    tunes: list[list[int]] = [primer.tolist() for _ in range(n)]
    batch = step.prime(primer, n)
    active = np.arange(n)  # the sequences still being written: rows of the batch, in order
    wants_mask = constraint is not None and (step.wants_mask or request.top_k > 0)
    for t in range(len(primer), length):
        current = [states[i] for i in active] if constraint is not None else []
        masks = draw.masks(current) if wants_mask else None
        scores = step.scores(batch, StepContext(float(draw.temperature), rng, masks if step.wants_mask else None))
        noise = token_noise(rng, (n, size))[active]
        chosen = draw.choose(scores, noise, current, masks, rng)
        ended = chosen == eos if eos is not None else np.zeros(len(active), bool)
        for row, i in enumerate(active.tolist()):
            if ended[row]:
                if request.on_finished is not None:  # written by the caller while the others go on
                    request.on_finished(i, np.asarray(tunes[i], np.int32))
                continue
            token = int(chosen[row])
            tunes[i].append(token)
            if constraint is not None:
                states[i] = constraint.advance(states[i], token)
        if ended.all() or t + 1 == length:
            break
        if ended.any():
            keep = np.flatnonzero(~ended)
            batch, active, chosen = step.select(batch, keep), active[keep], chosen[keep]
        batch = step.advance(batch, chosen)
    return [np.asarray(tune, np.int32) for tune in tunes]
