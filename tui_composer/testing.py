"""Conformance checks for plugin authors: the contract every model and encoder keeps, as tests.

    from tui_composer.testing import check_encoder, check_model

    def test_my_model_keeps_the_contract(tmp_path):
        check_model(MY_MODEL_SPEC, {"hidden": 16}, workdir=tmp_path)   # small hyperparameters: fast

    def test_my_encoder_keeps_the_contract():
        check_encoder(MY_ENCODER_SPEC)

As scikit-learn's `check_estimator` does for estimators, the project runs these same checks on its own
built-in plugins (tests/test_conformance.py). Each check that fails raises ConformanceError naming the
model or encoder, the check and what was expected; each returns the names of the checks it ran.

check_model, for each kind of data the model takes (on tiny tokens and frames of its own):
  - units: untrained, on uniform noise, the loss is in nats and `bits` is per token or per frame
    (about log2(vocabulary) bits a token, one bit a feature for fair-coin frames);
  - epoch: a tiny epoch gives a finite loss, reports batches (done, total) in order, and stops after the
    batch where `stop_requested` first answers yes;
  - samples: what `Model.sample` returns (int32 ids without bos and eos, or uint8 binary frames [T, F]),
    at most `max_length` steps with the primer included and opening every sample;
  - seed: the same request gives the same samples, another seed other samples;
  - constraint (tokens): every id of every sample is allowed by the constraint at its step, top-k or not
    (top-k after the mask: the likeliest ids may all be forbidden);
  - files: saved and loaded (`ModelSpec.load`, Keras safe mode), it samples and evaluates the same, and
    one more epoch from the file matches one more epoch in memory (the host resumes runs that way);
and for each encoder given (by default the installed ones whose data the model takes): a model trained
briefly on two tunes samples after a primer, and the sample decodes and writes MIDI with notes.

check_encoder: readings depend only on the piece; the fitted state survives JSON and `load_state`;
`encode` gives what `data_spec` says; encodings decode to scores that write MIDI; `encode_primer` gives a
primer the models accept; `symbols_text` gives text; a `constraint()` is a TokenConstraint that accepts
the tunes the encoder read, and ends where they end.

Importing this module imports no TensorFlow, Keras or music21; the checks build and train real models.
"""

from __future__ import annotations

import io
import json
import math
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tui_composer.plugin.contract import (
    DataKind,
    DataSpec,
    Encoder,
    EpochProgress,
    Model,
    Piece,
    SampleRequest,
    TokenConstraint,
)
from tui_composer.plugin.params import resolve
from tui_composer.plugin.specs import EncoderSpec, ModelSpec

# Two short tunes every encoder must read, and their opening (a header and one line of notes) as a primer.
TUNES = (
    "X:1\nT:Kit Jig\nM:6/8\nL:1/8\nK:G\nGAB cBA|GAB c2d|edc BAG|A3 G3|\nd2B cAF|GBd g2d|edc BAG|A3 G3|]\n",
    "X:2\nT:Kit Reel\nM:4/4\nL:1/8\nK:D\nDFAd fdAF|GBdg fdAF|DFAd fdAF|E2F2 D4|\n"
    "A2FA dAFA|B2GB dBGB|ABAF GFED|E2F2 D4|]\n",
)
PRIMER = "M:6/8\nL:1/8\nK:G\nGAB cBA|GAB c2d|edc BAG|A3 G3|\n"

# The kit's own tiny data: ids 0 bos, 1 eos, 2 unk, 3..6 a repeating tune; frames of a repeating chord pattern.
TOKENS = DataSpec("tokens", 7, bos=0, eos=1)
FEATURES = 8
FRAMES = DataSpec("frames", FEATURES)
ALLOWED_IDS = (4, 6)  # what the kit's constraint lets through, and eos after three of them


class ConformanceError(AssertionError):
    """A plugin that breaks the contract; the message names the plugin, the check and what was expected."""


def _fail(owner: str, check: str, message: str) -> None:
    raise ConformanceError(f"{owner}: {check}: {message}")


def token_sequences(count: int = 8, repeats: int = 6) -> list[np.ndarray]:
    return [np.array([TOKENS.bos, *([3, 4, 5, 6] * repeats), TOKENS.eos], np.int32) for _ in range(count)]


def frame_sequences(count: int = 8, length: int = 24) -> list[np.ndarray]:
    """A four-frame pattern of two notes a frame, repeated, starting at every phase."""
    pattern = np.zeros((4, FEATURES), np.uint8)
    for row, notes in enumerate([[0, 4], [1, 5], [2, 6], [3, 7]]):
        pattern[row, notes] = 1
    return [np.tile(pattern, (length // 4 + 2, 1))[i % 4 : i % 4 + length] for i in range(count)]


class KitConstraint(TokenConstraint):
    """Ids 4 and 6 only, and the end once three have come; the state counts the ids read."""

    def start(self) -> int:
        return 0

    def allowed(self, state: int) -> np.ndarray:
        mask = np.zeros(TOKENS.size, bool)
        mask[list(ALLOWED_IDS)] = True
        mask[TOKENS.eos] = state >= 3
        return mask

    def advance(self, state: int, token: int) -> int:
        return state + 1


# --- models -------------------------------------------------------------------------------------------------


def _build(spec: ModelSpec, params: Mapping[str, Any], data: DataSpec, seed: int) -> Model:
    np.random.seed(seed)  # the host seeds numpy before a model is built and before every epoch
    return spec.model_class()(resolve(spec.params, params, owner=f"model {spec.name!r}"), data)


def _epoch(model: Model, sequences: Sequence[np.ndarray], epoch: int, seed: int) -> float:
    np.random.seed(seed * 1000 + epoch)
    return model.train_epoch(sequences, epoch, EpochProgress())


def _same(first: Sequence[np.ndarray], second: Sequence[np.ndarray]) -> bool:
    return len(first) == len(second) and all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))


def check_model(
    spec: ModelSpec,
    params: Mapping[str, Any] | None = None,
    *,
    encoders: Sequence[EncoderSpec] | None = None,
    workdir: Path | None = None,
    epochs: int = 2,
    seed: int = 0,
) -> list[str]:
    """Every check of the module docstring for one model; raises ConformanceError at the first that fails.

    `params` overrides the schema's defaults (keep the model small); `encoders` defaults to the installed
    ones; `workdir` holds the saved files (a temporary folder by default).
    """
    params = dict(params or {})
    done: list[str] = []
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(workdir) if workdir is not None else Path(scratch)
        for kind in spec.takes:
            done += [f"{kind}: {name}" for name in _check_kind(spec, params, kind, folder, epochs, seed)]
        if encoders is None:
            from tui_composer.plugin.host import load_host

            encoders = list(load_host().registry.encoders.values())
        for encoder_spec in encoders:
            if encoder_spec.makes in spec.takes:
                _check_music(spec, params, encoder_spec, epochs, seed)
                done.append(f"{encoder_spec.name}: decodes and writes MIDI")
    return done


def _check_kind(
    spec: ModelSpec, params: dict[str, Any], kind: DataKind, folder: Path, epochs: int, seed: int
) -> list[str]:
    owner = f"model {spec.name!r} on {kind}"
    data = TOKENS if kind == "tokens" else FRAMES
    sequences = token_sequences() if kind == "tokens" else frame_sequences()
    model = _build(spec, params, data, seed)
    _check_units(owner, model, data)
    _check_epoch(owner, model, sequences, seed)
    for epoch in range(1, epochs):
        _epoch(model, sequences, epoch, seed)
    primer = sequences[0][1:4] if kind == "tokens" else sequences[0][:3]
    request = SampleRequest(n=4, max_length=24, temperature=1.2, seed=seed + 5, primer=primer)
    samples = model.sample(request)
    _check_samples(owner, samples, request, data)
    if not _same(samples, model.sample(request)):
        _fail(owner, "seed", "the same request gave other samples")
    if _same(samples, model.sample(SampleRequest(n=4, max_length=24, temperature=1.2, seed=seed + 6, primer=primer))):
        _fail(owner, "seed", "another seed gave the same samples")
    checks = ["units", "epoch", "samples", "seed"]
    if kind == "tokens":
        for top_k in (0, 2):
            check_constraint(
                owner, model, SampleRequest(n=4, max_length=12, top_k=top_k, seed=seed, constraint=KitConstraint())
            )
        checks.append("constraint")
    _check_files(
        owner, spec, params, model, data, sequences, request, folder / f"{spec.name}-{kind}.keras", seed, epochs
    )
    return [*checks, "files"]


def _check_units(owner: str, model: Model, data: DataSpec) -> None:
    rng = np.random.default_rng(1)
    if data.kind == "tokens":
        noise = [
            np.concatenate([[TOKENS.bos], rng.integers(3, TOKENS.size, 40), [TOKENS.eos]]).astype(np.int32)
            for _ in range(4)
        ]
        expected, unit = math.log2(data.size), "token"
    else:
        noise = [rng.integers(0, 2, (24, data.size)).astype(np.uint8) for _ in range(4)]
        expected, unit = float(data.size), "frame (one bit a fair-coin feature)"
    evaluation = model.evaluate(noise)
    if not (math.isfinite(evaluation.loss) and math.isfinite(evaluation.bits)):
        _fail(
            owner, "units", f"evaluate gave loss {evaluation.loss} and bits {evaluation.bits}; expected finite numbers"
        )
    if abs(evaluation.bits - expected) > max(0.5, 0.25 * expected):
        _fail(
            owner,
            "units",
            f"an untrained model scores noise at {evaluation.bits:.3f} bits a {unit}; expected about {expected:.3f}",
        )
    if data.kind == "tokens" and not math.isclose(evaluation.bits, evaluation.loss / math.log(2), rel_tol=1e-4):
        _fail(owner, "units", f"bits {evaluation.bits:.5f} is not the loss {evaluation.loss:.5f} nats / ln 2")


def _check_epoch(owner: str, model: Model, sequences: Sequence[np.ndarray], seed: int) -> None:
    seen: list[tuple[int, int]] = []
    np.random.seed(seed * 1000)
    loss = model.train_epoch(sequences, 0, EpochProgress(on_batch=lambda done, total, _: seen.append((done, total))))
    if not math.isfinite(loss):
        _fail(owner, "epoch", f"train_epoch returned {loss}; expected the epoch's finite mean loss")
    if not seen or [d for d, _ in seen] != list(range(1, len(seen) + 1)) or seen[-1][0] != seen[-1][1]:
        _fail(owner, "epoch", f"on_batch reported {seen[:5]}...; expected (1, total), (2, total) ... (total, total)")
    stopped: list[int] = []
    progress = EpochProgress(on_batch=lambda done, total, _: stopped.append(done), stop_requested=lambda: bool(stopped))
    model.train_epoch(sequences, 0, progress)
    if stopped != [1]:
        _fail(owner, "epoch", f"stop_requested said yes after batch 1, and batches {stopped} ran; expected only [1]")


def _check_samples(owner: str, samples: list[np.ndarray], request: SampleRequest, data: DataSpec) -> None:
    if len(samples) != request.n:
        _fail(owner, "samples", f"asked for {request.n} samples, got {len(samples)}")
    primer = np.asarray(request.primer)
    for number, sample in enumerate(samples, start=1):
        where = f"sample {number}"
        if data.kind == "tokens":
            if sample.ndim != 1 or sample.dtype != np.int32:
                _fail(owner, "samples", f"{where} is {sample.dtype} of shape {sample.shape}; expected 1-D int32 ids")
            if data.bos in sample or data.eos in sample:
                _fail(owner, "samples", f"{where} holds bos or eos; expected the ids between them")
            if not 0 < len(sample) <= request.max_length:
                _fail(owner, "samples", f"{where} has {len(sample)} ids; expected 1 to max_length {request.max_length}")
        else:
            if sample.dtype != np.uint8 or sample.shape != (request.max_length, data.size) or sample.max() > 1:
                _fail(
                    owner,
                    "samples",
                    f"{where} is {sample.dtype} of shape {sample.shape}; expected binary uint8 frames of shape "
                    f"({request.max_length}, {data.size})",
                )
        if not np.array_equal(sample[: len(primer)], primer):
            _fail(owner, "samples", f"{where} does not open with the primer")


def check_constraint(owner: str, model: Model, request: SampleRequest) -> None:
    """Every id of every sample is allowed by `request.constraint` where it stands; a sample shorter
    than `max_length` ends where the constraint allows the end."""
    assert request.constraint is not None
    for number, sample in enumerate(model.sample(request), start=1):
        constraint, state = request.constraint, request.constraint.start()
        for step, token in enumerate(sample.tolist()):
            if not constraint.allowed(state)[token]:
                _fail(
                    owner,
                    "constraint",
                    f"with top-k {request.top_k}, sample {number} wrote id {token} at step {step}, which the "
                    "constraint forbids",
                )
            state = constraint.advance(state, token)
        if len(sample) < request.max_length and not constraint.allowed(state)[TOKENS.eos]:
            _fail(
                owner,
                "constraint",
                f"sample {number} ended after {len(sample)} ids where the constraint forbids the end",
            )


def _check_files(
    owner: str,
    spec: ModelSpec,
    params: dict[str, Any],
    model: Model,
    data: DataSpec,
    sequences: Sequence[np.ndarray],
    request: SampleRequest,
    path: Path,
    seed: int,
    epoch: int,
) -> None:
    model.save(path)
    loaded = spec.load(path, resolve(spec.params, params, owner=f"model {spec.name!r}"), data)
    if not _same(model.sample(request), loaded.sample(request)):
        _fail(owner, "files", f"the model loaded from {path.name} samples otherwise than the one saved")
    if model.evaluate(sequences[:2]) != loaded.evaluate(sequences[:2]):
        _fail(owner, "files", f"the model loaded from {path.name} evaluates otherwise than the one saved")
    _epoch(model, sequences, epoch, seed)
    _epoch(loaded, sequences, epoch, seed)
    trained, resumed = model.evaluate(sequences[:2]).loss, loaded.evaluate(sequences[:2]).loss
    if not math.isclose(trained, resumed, rel_tol=1e-5, abs_tol=1e-7):
        _fail(
            owner,
            "files",
            f"an epoch after loading gives loss {resumed:.6f}, in memory {trained:.6f}; resuming must continue "
            "the same training",
        )


def _check_music(spec: ModelSpec, params: dict[str, Any], encoder_spec: EncoderSpec, epochs: int, seed: int) -> None:
    owner = f"model {spec.name!r} with encoder {encoder_spec.name!r}"
    encoder = _fitted(encoder_spec)
    sequences = [encoder.encode(encoder.read(piece)) for piece in _pieces()] * 4
    model = _build(spec, params, encoder.data_spec(), seed)
    for epoch in range(epochs):
        _epoch(model, sequences, epoch, seed)
    primer = encoder.encode_primer(PRIMER)
    sample = model.sample(SampleRequest(n=1, max_length=len(primer) + 40, seed=seed, primer=primer))[0]
    _check_plays(owner, encoder, sample, "the sample")


# --- encoders -----------------------------------------------------------------------------------------------


def _pieces() -> list[Piece]:
    return [
        Piece(key=f"kit.abc#{i}", title=f"kit {i}", format="abc", path=Path("kit.abc"), text=text)
        for i, text in enumerate(TUNES, start=1)
    ]


def _fitted(spec: EncoderSpec, params: Mapping[str, Any] | None = None) -> Encoder:
    encoder = spec.create(resolve(spec.params, params or {}, owner=f"encoder {spec.name!r}"))
    encoder.fit([encoder.read(piece) for piece in _pieces()])
    return encoder


def _check_plays(owner: str, encoder: Encoder, array: np.ndarray, what: str) -> None:
    import mido

    from tui_composer.music.export import score_to_midi

    score = encoder.decode(array)
    midi = mido.MidiFile(file=io.BytesIO(score_to_midi(score)))
    if not any(m.type == "note_on" and m.velocity > 0 for track in midi.tracks for m in track):
        _fail(owner, "music", f"{what} decodes to a score whose MIDI holds no notes")


def check_encoder(spec: EncoderSpec, params: Mapping[str, Any] | None = None) -> list[str]:
    """Every encoder check of the module docstring; raises ConformanceError at the first that fails."""
    owner = f"encoder {spec.name!r}"
    resolved = resolve(spec.params, params or {}, owner=owner)
    encoder = spec.create(resolved)
    pieces = _pieces()
    readings = [encoder.read(piece) for piece in pieces]
    if repr([encoder.read(piece) for piece in pieces]) != repr(readings):
        _fail(owner, "read", "reading the same piece twice gave two readings; a reading may depend only on the piece")
    encoder.fit(readings)
    data = encoder.data_spec()
    if data.kind != spec.makes or encoder.kind != spec.makes:
        _fail(owner, "data", f"it makes {data.kind} (class: {encoder.kind}) but registered makes={spec.makes!r}")
    arrays = [np.asarray(encoder.encode(reading)) for reading in readings]
    for number, array in enumerate(arrays, start=1):
        _check_encoding(owner, array, data, f"tune {number}")
    restored = spec.create(resolved)
    restored.load_state(json.loads(json.dumps(encoder.state())))
    if not _same([restored.encode(r) for r in readings], arrays):
        _fail(owner, "state", "an encoder restored from state() (through JSON) encodes otherwise")
    for number, array in enumerate(arrays, start=1):
        _check_plays(owner, restored, array, f"tune {number}")
    if not isinstance(encoder.symbols_text(arrays[0]), str) or not encoder.to_abc(arrays[0]).strip():
        _fail(owner, "text", "symbols_text and to_abc must give text")
    primer = np.asarray(encoder.encode_primer(PRIMER))
    _check_primer(owner, primer, data)
    checks = ["read", "data", "state", "music", "text", "primer"]
    constraint = encoder.constraint()
    if constraint is not None:
        _check_grammar(owner, constraint, arrays, data)
        checks.append("constraint")
    return checks


def _check_encoding(owner: str, array: np.ndarray, data: DataSpec, where: str) -> None:
    if data.kind == "tokens":
        if array.ndim != 1 or array.dtype != np.int32 or array.min() < 0 or array.max() >= data.size:
            _fail(
                owner, "data", f"{where} encodes to {array.dtype} {array.shape}; expected int32 ids in [0, {data.size})"
            )
        if array[0] != data.bos or array[-1] != data.eos:
            _fail(owner, "data", f"{where} must start with bos ({data.bos}) and end with eos ({data.eos})")
    elif array.ndim != 2 or array.shape[1] != data.size or array.dtype != np.uint8 or array.max() > 1:
        _fail(
            owner,
            "data",
            f"{where} encodes to {array.dtype} {array.shape}; expected binary uint8 frames (T, {data.size})",
        )


def _check_primer(owner: str, primer: np.ndarray, data: DataSpec) -> None:
    if data.kind == "tokens":
        if primer.ndim != 1 or not len(primer) or data.bos in primer or data.eos in primer:
            _fail(
                owner, "primer", f"encode_primer gave {primer.shape} {primer.dtype}; expected ids without bos and eos"
            )
    elif primer.ndim != 2 or primer.shape[1] != data.size or not primer.any():
        _fail(owner, "primer", f"encode_primer gave {primer.shape}; expected frames (T, {data.size}) holding notes")


def _check_grammar(owner: str, constraint: Any, arrays: Sequence[np.ndarray], data: DataSpec) -> None:
    if not isinstance(constraint, TokenConstraint):
        _fail(owner, "constraint", f"constraint() gave a {type(constraint).__name__}; expected a TokenConstraint")
    bounded: Callable[[int], Any] = constraint.bounded
    if not isinstance(bounded(1000), TokenConstraint):
        _fail(owner, "constraint", "bounded(max_length) must give a TokenConstraint")
    for number, array in enumerate(arrays, start=1):
        state = constraint.start()
        for step, token in enumerate(array[1:-1].tolist()):
            if not constraint.allows(state, token) or not constraint.allowed(state)[token]:
                _fail(owner, "constraint", f"tune {number}, which it read, is refused at step {step} (id {token})")
            state = constraint.advance(state, token)
        if not constraint.allowed(state)[data.eos]:
            _fail(owner, "constraint", f"tune {number} may not end where it ends")
