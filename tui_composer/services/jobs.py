"""What a training or a sampling asks for, as typed requests that also spell their own command line.

The CLI builds these from its options and hands them to the services (`tui_composer.services.training`,
`tui_composer.services.sampling`, which re-export them); the TUI builds them from its forms and runs
`tui-composer` with `argv()` in a child process. This module imports nothing heavy, so the TUI can
use it without loading the training or sampling code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tui_composer.services.distribute import DEFAULT_STRATEGY

DEFAULT_EPOCHS = 20
DEFAULT_PATIENCE = 3


@dataclass(frozen=True)
class TrainingRequest:
    """What `tui-composer train` asks for; parameters are strings as typed (resolved by `prepare_run`)."""

    corpus: str
    encoder: str
    model: str
    encoder_params: Mapping[str, str] = field(default_factory=dict)
    model_params: Mapping[str, str] = field(default_factory=dict)
    epochs: int = DEFAULT_EPOCHS
    seed: int = 0
    name: str | None = None
    patience: int = DEFAULT_PATIENCE  # epochs without a better validation loss before stopping
    time_limit: float | None = None  # minutes: the epoch running then ends at its next batch
    strategy: str = DEFAULT_STRATEGY  # auto, single, mirrored or multi-worker (tf.distribute)

    def argv(self) -> list[str]:
        """The `train` arguments (after `tui-composer --workspace WS`); parameters as typed."""
        args = ["train", "--corpus", self.corpus, "--encoder", self.encoder, "--model", self.model]
        if self.name:
            args += ["--name", self.name]
        args += ["--epochs", str(self.epochs), "--seed", str(self.seed), "--patience", str(self.patience)]
        if self.time_limit is not None:
            args += ["--time-limit", f"{self.time_limit:g}"]
        if self.strategy != DEFAULT_STRATEGY:
            args += ["--strategy", self.strategy]
        for key, value in self.model_params.items():
            args += ["--set", f"{key}={value}"]
        for key, value in self.encoder_params.items():
            args += ["--encoder-set", f"{key}={value}"]
        return args


# Caps on one sampling command. A model holds every sample of its batch at once, so memory grows with
# n x max_length; past these a machine runs out of memory (std::bad_alloc) instead of refusing. Each can
# be raised with its environment variable (read by the sampling service).
MAX_SAMPLES = 1000
MAX_LENGTH = 20_000
# --max-length when none is given, for a run that ends its pieces itself (tokens, with an end-of-tune): a bound
DEFAULT_LENGTH = 1000
MAX_STEPS = 2_000_000  # n x max_length: 1,000 samples of 2,000 steps, or 100 of 20,000
CAP_VARIABLES = {
    "samples": "TUI_COMPOSER_MAX_SAMPLES",
    "length": "TUI_COMPOSER_MAX_LENGTH",
    "steps": "TUI_COMPOSER_MAX_SAMPLE_STEPS",
}


@dataclass(frozen=True)
class SampleOptions:
    """What `tui-composer sample` asks for."""

    n: int = 10
    temperature: float = 1.0
    top_k: int = 0
    seed: int = 0
    max_length: int | None = None  # None: the run's own (`sampling.usual_length`)
    primer: str | None = None  # ABC text
    out: Path | None = None
    constrain: bool = True  # mask each step with the encoder's TokenConstraint, if it offers one
    audio: bool = False  # also write each sample's MIDI played as a .wav (the audio extra)

    @property
    def length(self) -> int:
        """Steps per sample: --max-length, or DEFAULT_LENGTH until the run's own is filled in."""
        return self.max_length if self.max_length is not None else DEFAULT_LENGTH

    def argv(self, run: str) -> list[str]:
        """The `sample RUN` arguments, with `--json` so the caller can read what was written."""
        args = ["sample", run, "-n", str(self.n), "--temperature", repr(self.temperature)]
        args += ["--top-k", str(self.top_k), "--seed", str(self.seed)]
        if self.max_length is not None:
            args += ["--max-length", str(self.max_length)]
        if self.primer:
            args += ["--primer", self.primer]
        if self.out is not None:
            args += ["--out", str(self.out)]
        args.append("--constrain" if self.constrain else "--no-constrain")
        if self.audio:
            args.append("--audio")
        return [*args, "--json"]
