"""The plugin conformance kit (tui_composer.testing) run over every built-in model and encoder.

These are the same checks a third-party plugin's author runs from their own tests; the per-model tests
keep only what is particular to each model (what it learns, its maths, its compiled parts).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tui_composer.plugin.contract import DataSpec, Evaluation, Model, SampleRequest
from tui_composer.plugin.host import PluginHost
from tui_composer.plugin.specs import ModelSpec
from tui_composer.testing import ConformanceError, check_encoder, check_model

pytest.importorskip("keras")

# Small settings: each model trains its tiny epochs in a second or so.
SMALL: dict[str, dict[str, Any]] = {
    "char-lstm": {"embedding": 8, "layers": 2, "units": 16, "streams": 3, "steps": 8, "dropout": 0.0},
    "rbm": {"window": 4, "hidden": 16, "batch_size": 16, "learning_rate": 0.01, "gibbs_steps": 5},
    "rnn-rbm": {"hidden": 16, "recurrent": 16, "cd_steps": 3, "batch_size": 8, "bptt_steps": 16, "gibbs_steps": 5},
}
for _energy in ("rbm", "rnn-rbm"):  # a cheap likelihood estimate: the kit compares, it does not benchmark
    SMALL[_energy] |= {"ais_temperatures": 100, "eval_frames": 100}


@pytest.mark.parametrize("name", ["char-lstm", "rbm", "rnn-rbm"])
def test_every_built_in_model_keeps_the_contract(installed_host: PluginHost, name: str, tmp_path: Path) -> None:
    registry = installed_host.registry
    done = check_model(registry.models[name], SMALL[name], encoders=list(registry.encoders.values()), workdir=tmp_path)
    expected = {f"{kind}: {check}" for kind in ("tokens", "frames") for check in ("units", "epoch", "samples", "seed")}
    assert expected | {
        "tokens: constraint",
        "abc: decodes and writes MIDI",
        "piano-roll: decodes and writes MIDI",
    } <= set(done)
    assert {"midi-events: decodes and writes MIDI", "tokens: files", "frames: files"} <= set(done)


def test_the_rnn_rbm_keeps_it_with_exact_token_sampling_too(installed_host: PluginHost, tmp_path: Path) -> None:
    spec = installed_host.registry.models["rnn-rbm"]
    narrowed = ModelSpec(spec.name, spec.description, spec.factory, spec.params, takes=("tokens",))
    assert "tokens: constraint" in check_model(
        narrowed, SMALL["rnn-rbm"] | {"token_sampling": "exact"}, encoders=[], workdir=tmp_path
    )


@pytest.mark.parametrize("name", ["abc", "midi-events", "piano-roll"])
def test_every_built_in_encoder_keeps_the_contract(installed_host: PluginHost, name: str) -> None:
    done = check_encoder(installed_host.registry.encoders[name])
    assert done[:6] == ["read", "data", "state", "music", "text", "primer"]
    assert ("constraint" in done) == (name in ("abc", "midi-events"))  # the grammar; a note before the end


class TopKBeforeMask(Model):
    """A model that filters top-k before the constraint's mask (a bug a plugin once had): with --top-k its
    constrained samples write forbidden ids. The kit must catch it."""

    def train_epoch(self, sequences: Any, epoch: int, progress: Any) -> float:
        return 0.0

    def evaluate(self, sequences: Any) -> Evaluation:
        return Evaluation(1.0, 1.0)

    def save(self, path: Path) -> None:
        path.write_bytes(b"")

    @classmethod
    def load(cls, path: Path, params: Any, data: DataSpec, strategy: Any = None) -> Model:
        return cls(params, data)

    def sample(self, request: SampleRequest) -> list[np.ndarray]:
        constraint = request.constraint
        assert constraint is not None
        logits = np.array([0, 0, 0, 5, 0, 9, 0], np.float32)  # 3 and 5 likeliest: both forbidden
        keep = np.zeros(self.data.size, bool)
        keep[np.argsort(logits)[-request.top_k :] if request.top_k else slice(None)] = True
        tunes = []
        for _ in range(request.n):
            state, tune = constraint.start(), []
            for _ in range(request.max_length):
                allowed = constraint.allowed(state) & keep  # top-k first: nothing allowed may be left
                token = int(np.argmax(np.where(allowed, logits, -np.inf))) if allowed.any() else int(np.argmax(logits))
                tune.append(token)
                state = constraint.advance(state, token)
            tunes.append(np.asarray(tune, np.int32))
        return tunes


def test_the_kit_names_a_model_that_masks_after_top_k() -> None:
    from tui_composer.testing import TOKENS, KitConstraint, check_constraint

    model = TopKBeforeMask({}, TOKENS)
    check_constraint("model 'toy'", model, SampleRequest(n=1, max_length=5, constraint=KitConstraint()))  # fine
    with pytest.raises(ConformanceError, match="model 'toy': constraint: with top-k 2, sample 1 wrote id 5"):
        check_constraint("model 'toy'", model, SampleRequest(n=1, max_length=5, top_k=2, constraint=KitConstraint()))
