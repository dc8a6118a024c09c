"""The sampling service: new pieces from a trained run, written as ABC and MIDI.

`sample_run` loads the run's encoder state and best model, asks the model for `n` sequences in one
request, and turns each into ABC text (`encoder.to_abc`) and MIDI (`export.score_to_midi`), writing
`NNN.abc` and `NNN.mid` into the output folder (numbers continue after the files already there). A
sample that can't be converted is kept as text with the reason (`NNN.abc` without MIDI, or `NNN.txt`)
and never stops the others.

The primer is ABC text, whatever the encoder; the encoder turns it into model input
(`Encoder.encode_primer`):

- by default it reads the primer as a tune (it must hold notes: for example `M:6/8\\nK:G\\nGAB cBA|`)
  and the model continues its encoding (ids without the end-of-tune token, or frames);
- the `abc` encoder, whose tokens are characters, continues the text itself, character by character,
  as the model saw tunes in training (an `X:1` line is put first when the primer has none).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tui_composer.plugin.contract import DataSpec, EncodeError, Encoder, SampleRequest, TokenConstraint
from tui_composer.plugin.specs import PluginError

# re-exported: requests and their caps live in jobs, which the TUI may import
from tui_composer.services.jobs import (
    CAP_VARIABLES,
    DEFAULT_LENGTH,
    MAX_LENGTH,
    MAX_SAMPLES,
    MAX_STEPS,
    SampleOptions,
)
from tui_composer.services.parallel import call_bounded
from tui_composer.services.runs import Run
from tui_composer.services.sample_files import Sample  # re-exported: the TUI reads it without this module
from tui_composer.services.training import (
    check_seed,
    encoder_spec,
    load_encoder,
    model_spec,
    quiet_tensorflow,
    record_plugin_error,
)
from tui_composer.services.workspace import WorkspaceError, read_json

if TYPE_CHECKING:
    from tui_composer.services.studio import Studio

CONVERT_TIMEOUT = 30.0
SAMPLES_FOLDER = "samples"


class SamplingError(Exception):
    """A sampling that can't run; the message names the run or the option and what to do."""


def output_folder(studio: Studio, run: Run, out: Path | None) -> Path:
    """--out, else the run's samples folder, else (read-only runs) the workspace's samples/RUN."""
    if out is not None:
        return Path(out).expanduser()
    if run.read_only:
        return studio.workspace.root / SAMPLES_FOLDER / run.name
    return run.samples_dir


def next_number(folder: Path) -> int:
    """The first sample number after those already in the folder, so earlier samples are kept."""
    numbers = [int(p.stem) for p in folder.glob("*.*") if p.stem.isdigit()]
    return max(numbers, default=0) + 1


# --- primers -----------------------------------------------------------------------------------------------


def encode_primer(encoder: Encoder, data: DataSpec, text: str) -> np.ndarray:
    """The primer as model input (`Encoder.encode_primer`); SamplingError says what is wrong with it."""
    try:
        primer = np.asarray(encoder.encode_primer(text))
    except EncodeError as error:
        raise SamplingError(f"--primer: {error.reason}") from None
    fits = primer.ndim == 1 if data.kind == "tokens" else primer.ndim == 2 and primer.shape[1] == data.size
    if not fits:
        raise SamplingError(
            f"--primer: encoder {type(encoder).__name__} made an array of shape {primer.shape}, which does not "
            f"fit the run's {data.kind} of size {data.size}; its encode_primer must return what encode does"
        )
    return primer


# --- sampling --------------------------------------------------------------------------------------------------


def load_model(studio: Studio, run: Run) -> tuple[Encoder, DataSpec, Any]:
    """The run's fitted encoder, its DataSpec and its best model."""
    config = run.config
    try:
        plugins = config.get("plugins") or {}
        enc_spec = encoder_spec(studio, config["encoder"], plugins.get("encoder"))
        mod_spec = model_spec(studio, config["model"], plugins.get("model"))
    except Exception as error:  # noqa: BLE001 - TrainingError: a plugin that is not installed or failed to load
        raise SamplingError(f"run {run.name!r} can't be sampled: {error}") from None
    if not run.model_path.is_file():
        raise SamplingError(
            f"run {run.name!r} has no model yet: it writes model.keras after its first epoch "
            f"(state: {run.status().get('state', 'created')})"
        )
    encoder = load_encoder(run, enc_spec, config["encoder_params"])
    saved = read_json(run.encoder_path) or {}
    data = DataSpec.from_json(saved["data"]) if "data" in saved else encoder.data_spec()
    quiet_tensorflow()
    model = mod_spec.load(run.model_path, config["model_params"], data)  # names the file if it can't be read
    return encoder, data, model


def sampling_constraint(encoder: Encoder, options: SampleOptions) -> TokenConstraint | None:
    """The encoder's TokenConstraint when constraining is on and the encoder offers one, else None.

    It is bounded to `--max-length` (`TokenConstraint.bounded`: the `abc` grammar then steers every
    sequence to a complete piece within the length budget, so the length limit never cuts a tune).
    """
    if not options.constrain:
        return None
    constraint = encoder.constraint()
    if constraint is None:
        return None
    if not isinstance(constraint, TokenConstraint):
        raise SamplingError(
            f"encoder {type(encoder).__name__}: constraint() returned a {type(constraint).__name__}, not a "
            "TokenConstraint; subclass tui_composer.api.TokenConstraint (or sample with --no-constrain)"
        )
    return constraint.bounded(options.length)


def sampling_cap(which: str, default: int) -> int:
    """A cap, or the whole number its environment variable sets instead."""
    variable = CAP_VARIABLES[which]
    text = os.environ.get(variable, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise SamplingError(f"{variable}={text!r} is not valid: expected a whole number of at least 1, or unset it")
    return value


def check_options(options: SampleOptions) -> None:
    """Refuse what can't be sampled before any model is loaded; each message names the option and its bound."""
    if options.n < 1:
        raise SamplingError(f"-n {options.n} is not valid: ask for at least 1 sample")
    if not 0 < options.temperature < math.inf:  # NaN fails both comparisons
        raise SamplingError(f"--temperature {options.temperature:g} is not valid: expected a finite number above 0")
    if options.max_length is not None and options.max_length < 1:
        raise SamplingError(f"--max-length {options.max_length} is not valid: expected at least 1")
    if options.top_k < 0:
        raise SamplingError(f"--top-k {options.top_k} is not valid: expected 0 (off) or more")
    seed_problem = check_seed(options.seed)
    if seed_problem:
        raise SamplingError(seed_problem)
    samples = sampling_cap("samples", MAX_SAMPLES)
    if options.n > samples:
        raise SamplingError(
            f"-n {options.n} is above the cap of {samples:,} samples per command; ask for fewer, or raise the cap "
            f"with {CAP_VARIABLES['samples']}={options.n}"
        )
    if options.max_length is not None:
        check_length(options, options.max_length)
    else:  # checked once the run's own length is known (with_length); a bad cap variable is refused now
        for which, default in (("length", MAX_LENGTH), ("steps", MAX_STEPS)):
            sampling_cap(which, default)
    if options.out is not None:
        check_output_folder(Path(options.out).expanduser())


def check_length(options: SampleOptions, length: int) -> None:
    """The length of each sample, and n of them, within their caps."""
    cap, steps = sampling_cap("length", MAX_LENGTH), sampling_cap("steps", MAX_STEPS)
    if length > cap:
        raise SamplingError(
            f"--max-length {length} is above the cap of {cap:,} tokens or frames per sample; ask "
            f"for less, or raise the cap with {CAP_VARIABLES['length']}={length}"
        )
    if options.n * length > steps:
        raise SamplingError(
            f"-n {options.n} x --max-length {length} = {options.n * length:,} steps is "
            f"above the cap of {steps:,} per command (all samples are held in memory at once); ask for fewer or "
            f"shorter samples, or raise the cap with {CAP_VARIABLES['steps']}={options.n * length}"
        )


def usual_length(run: Run) -> int:
    """The run's --max-length when none is given. Frames have no end-of-tune, so a frames run samples
    pieces as long as the median of its training pieces (kept in its `data` metric); a tokens run ends
    its pieces itself, within DEFAULT_LENGTH, as does a run trained before the median was kept."""
    saved = read_json(run.encoder_path) or {}
    if (saved.get("data") or {}).get("kind") != "frames":
        return DEFAULT_LENGTH
    medians = [r["median_length"] for r in run.metrics() if r.get("kind") == "data" and "median_length" in r]
    return int(medians[-1]) if medians and int(medians[-1]) > 0 else DEFAULT_LENGTH


def with_length(options: SampleOptions, run: Run) -> SampleOptions:
    """The options with --max-length filled in from the run when none was given, within the caps."""
    if options.max_length is not None:
        return options
    length = usual_length(run)
    check_length(options, length)
    return dataclasses.replace(options, max_length=length)


def check_output_folder(folder: Path) -> None:
    """--out must be a folder this process can create or write to (checked before the model is loaded)."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise SamplingError(f"--out {folder} can't be a folder: {existing} is a file; choose another folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "is" if existing == folder else f"can't be created: {existing} is"
        raise SamplingError(f"--out {folder} {what} not writable; choose a folder you can write to")


def sample_request(
    encoder: Encoder,
    data: DataSpec,
    options: SampleOptions,
    on_finished: Callable[[int, np.ndarray], None] | None = None,
) -> SampleRequest:
    """What a model is asked for: the options, the primer as the encoder reads it, the grammar if on."""
    return SampleRequest(
        n=options.n,
        max_length=options.length,
        temperature=options.temperature,
        top_k=options.top_k,
        seed=options.seed,
        primer=encode_primer(encoder, data, options.primer) if options.primer else None,
        constraint=sampling_constraint(encoder, options),
        on_finished=on_finished,
    )


def sample_run(studio: Studio, run_name: str, options: SampleOptions) -> list[Sample]:
    """Generate, convert and write `options.n` samples of a run; one failed conversion never stops the rest."""
    check_options(options)
    check_audio(options)
    try:
        run = studio.runs.get(run_name)
    except WorkspaceError as error:
        raise SamplingError(str(error)) from None
    options = with_length(options, run)
    encoder, data, model = load_model(studio, run)
    request = sample_request(encoder, data, options)
    try:
        arrays = model.sample(request)
    except PluginError as error:  # the model's own fault: its traceback goes in the run's log
        record_plugin_error(run, error)
        raise
    folder = output_folder(studio, run, options.out)
    folder.mkdir(parents=True, exist_ok=True)
    first = next_number(folder)
    samples = [write_sample(encoder, array, folder, first + i) for i, array in enumerate(arrays)]
    if options.audio:
        for sample in samples:
            write_sample_audio(sample)
    return samples


def check_audio(options: SampleOptions) -> None:
    """--audio needs the synthesizer: refused before any model is loaded when it is missing."""
    if options.audio:
        from tui_composer.music.audio import rendering_problem

        problem = rendering_problem()
        if problem:
            raise SamplingError(f"--audio: {problem}")


def write_sample_audio(sample: Sample) -> None:
    """NNN.wav beside the sample's NNN.mid, as long as the MIDI; a sample without MIDI gets none."""
    if sample.midi_path is None:
        return
    from tui_composer.music.audio import AudioError, render_wav

    try:
        sample.audio_path = render_wav(sample.midi_path, sample.midi_path.with_suffix(".wav"))
    except AudioError as error:
        sample.error = sample.error or f"could not be written as audio: {error}"


def write_sample(encoder: Encoder, array: np.ndarray, folder: Path, number: int) -> Sample:
    """ABC and MIDI for one sample; whatever fails is recorded, and the raw sample kept as text.

    Every file is written atomically: a full disk raises DiskFullError naming the file and leaves no
    empty or partial file (nor this sample's MIDI without its ABC).
    """
    return write_sample_and_score(encoder, array, folder, number)[0]


def write_sample_and_score(encoder: Encoder, array: np.ndarray, folder: Path, number: int) -> tuple[Sample, Any]:
    """`write_sample`, and the Score the sample was decoded to (None if none), so a check can reuse it
    instead of parsing the ABC again."""
    from tui_composer.music.export import score_to_midi
    from tui_composer.services.workspace import DiskFullError, write_atomic

    name = f"{number:03d}"
    sample = Sample(number=number, length=len(array))
    advice = "free space and sample again (the samples already written are kept)"
    outcome = call_bounded(_abc_and_score, (encoder, array), CONVERT_TIMEOUT)
    try:
        if not outcome.ok or outcome.value is None:
            sample.error = f"could not be written as ABC: {outcome.error}"
            sample.text_path = folder / f"{name}.txt"
            write_atomic(sample.text_path, f"% {sample.error}\n{raw_text(encoder, array)}\n")
            return sample, None
        abc, score, reason = outcome.value
        sample.abc = abc
        sample.abc_path = folder / f"{name}.abc"
        try:
            if score is None:
                raise EncodeError("sample", reason)
            score_to_midi(score, folder / f"{name}.mid")
            sample.midi_path = folder / f"{name}.mid"
        except DiskFullError:
            raise
        except Exception as error:  # noqa: BLE001 - ExportError, EncodeError, music21's own: kept with the reason
            sample.error = f"could not be written as MIDI: {getattr(error, 'reason', None) or error}"
            abc = abc.rstrip("\n") + f"\n% tui-composer: {sample.error}\n"
        try:
            write_atomic(sample.abc_path, abc)
        except DiskFullError:
            if sample.midi_path is not None:
                sample.midi_path.unlink(missing_ok=True)  # a sample is its ABC and its MIDI, or nothing
            raise
    except DiskFullError as error:
        error.advice = advice
        raise
    return sample, score


def _abc_and_score(item: tuple[Encoder, np.ndarray]) -> tuple[str, Any, str]:
    """The sample's ABC text, its Score (None if it has none) and why not.

    Decodes once when the encoder's `to_abc` is the default (which writes the decoded Score)."""
    encoder, array = item
    if type(encoder).to_abc is Encoder.to_abc:
        from tui_composer.music.abc_writer import score_to_abc

        score = encoder.decode(array)
        return score_to_abc(score), score, ""
    abc = encoder.to_abc(array)
    try:
        return abc, encoder.decode(array), ""
    except Exception as error:  # noqa: BLE001 - the ABC is still worth keeping; the reason goes with it
        return abc, None, str(getattr(error, "reason", None) or error)


def raw_text(encoder: Encoder, array: np.ndarray) -> str:
    """A sample that is not ABC, as text: its symbols (`Encoder.symbols_text`), or frames as rows of 0 and 1."""
    return encoder.symbols_text(np.asarray(array))
