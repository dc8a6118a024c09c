"""`tui-composer train`: train any encoder-model pair on a corpus, or resume a run."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from tui_composer.cli.context import StudioContext, pass_studio
from tui_composer.plugin.params import ParamError, parse_assignments
from tui_composer.services.distribute import (
    DEFAULT_STRATEGY,
    GPU_MEMORY_ENV,
    MAX_GPU_MEMORY_MB,
    MIN_GPU_MEMORY_MB,
    STRATEGIES,
    StrategyError,
    gpu_memory_from,
)
from tui_composer.services.runlog import run_log
from tui_composer.services.runs import RunState
from tui_composer.services.training import (
    DEFAULT_EPOCHS,
    DEFAULT_PATIENCE,
    Progress,
    TrainingError,
    TrainingRequest,
    prepare_run,
    train_run,
)
from tui_composer.services.workspace import WorkspaceError

PLAIN_BATCH_SECONDS = 30.0  # without a terminal (a log file), a batch line at most this often
PLAIN_PIECES_SECONDS = 10.0  # and a `reading 192/2009 pieces` line at most this often
PIECE_PHASES = ("reading", "encoding")
EXIT_STOPPED = 130  # like a shell's Ctrl-C: the run is checkpointed but not finished


# A training is a batch job. Where `train` runs as a process of its own (`main()` from the command line, not
# a caller's `main(argv)` or a test's CliRunner), it lowers its CPU priority, once, so the TUI, the user's
# shell and other users' work on the same cores stay quick; alone on the machine it still gets every core.
NICENESS_VARIABLE = "TUI_COMPOSER_TRAIN_NICENESS"
DEFAULT_NICENESS = 10


class ProcessPolicy:
    """Whether this interpreter is a `tui-composer` process of its own (set by `main`), and whether it has
    lowered its priority already."""

    own_process = False
    lowered = False


def lower_priority(environ: Mapping[str, str] = os.environ) -> int:
    """Add TUI_COMPOSER_TRAIN_NICENESS (default 10; 0 leaves it) to this process's niceness; the value added."""
    text = environ.get(NICENESS_VARIABLE, str(DEFAULT_NICENESS))
    try:
        niceness = int(text)
    except ValueError:
        niceness = -1
    if not 0 <= niceness <= 19:
        raise click.ClickException(f"{NICENESS_VARIABLE}={text!r} is not a niceness; use 0 (unchanged) to 19")
    if niceness:
        os.nice(niceness)
        _lower_session(niceness)
    return niceness


AUTOGROUP = Path("/proc/self/autogroup")


def _lower_session(niceness: int) -> None:
    """Linux's autogroup shares the CPU between sessions first, and by niceness only within one: a training
    that leads its own session (the TUI starts it so) lowers its session's niceness too, or it would not
    yield to the TUI at all. A `train` typed in a shell leads no session and leaves the shell's alone."""
    if os.getsid(0) != os.getpid():
        return
    try:
        current = int(AUTOGROUP.read_text().rsplit("nice", 1)[1])
        AUTOGROUP.write_text(f"{min(19, current + niceness)}\n")
    except (OSError, ValueError, IndexError):
        pass  # no autogroup (another system, or a kernel without it): the process's niceness is all there is


@click.command()
@click.option("--corpus", help="Corpus to train on (see `tui-composer corpus list`).")
@click.option("--encoder", help="Encoder that turns pieces into model input (see `tui-composer plugins`).")
@click.option("--model", help="Model to train (see `tui-composer plugins`).")
@click.option("--epochs", type=int, default=DEFAULT_EPOCHS, show_default=True, help="Epochs at most.")
@click.option(
    "--set",
    "model_settings",
    multiple=True,
    metavar="KEY=VALUE",
    help="A model hyperparameter (repeatable), e.g. --set units=128.",
)
@click.option(
    "--encoder-set",
    "encoder_settings",
    multiple=True,
    metavar="KEY=VALUE",
    help="An encoder parameter (repeatable).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed (weights, order, dropout).")
@click.option("--name", help="Name of the new run (default: MODEL-DATE-TIME-XXXX).")
@click.option(
    "--patience",
    type=int,
    default=DEFAULT_PATIENCE,
    show_default=True,
    help="Stop after this many epochs without a better validation loss.",
)
@click.option(
    "--time-limit",
    type=float,
    metavar="MINUTES",
    help="Stop training after this many minutes: the epoch running then ends at its next batch, and counts.",
)
@click.option(
    "--strategy",
    type=click.Choice(STRATEGIES),
    default=DEFAULT_STRATEGY,
    show_default=True,
    help="tf.distribute strategy: auto (all GPUs when more than one), single device, mirrored (all local "
    "devices), multi-worker (hosts listed in TF_CONFIG).",
)
@click.option(
    "--gpu-memory",
    type=click.IntRange(MIN_GPU_MEMORY_MB, MAX_GPU_MEMORY_MB),
    metavar="MB",
    help=f"Take at most this many MB on each GPU, so several runs share one (default: {GPU_MEMORY_ENV}, "
    "else memory grows as needed).",
)
@click.option("--resume", metavar="RUN", help="Continue a stopped, crashed or killed run from its last epoch.")
@pass_studio
def train(
    context: StudioContext,
    corpus: str | None,
    encoder: str | None,
    model: str | None,
    epochs: int,
    model_settings: tuple[str, ...],
    encoder_settings: tuple[str, ...],
    seed: int,
    name: str | None,
    patience: int,
    time_limit: float | None,
    strategy: str,
    gpu_memory: int | None,
    resume: str | None,
) -> None:
    """Train a model on a corpus through an encoder; prints the run's name, then its progress.

    Ctrl-C (or SIGTERM) stops at the next batch with a checkpoint; `--resume RUN` goes on from the
    last finished epoch.
    """
    studio = context.studio
    pair = {"--corpus": corpus, "--encoder": encoder, "--model": model}
    if ProcessPolicy.own_process and not ProcessPolicy.lowered:
        lower_priority()
        ProcessPolicy.lowered = True
    try:  # a bad TUI_COMPOSER_GPU_MEMORY is refused before any work, like a bad option
        gpu_memory_from(None if gpu_memory is not None else os.environ.get(GPU_MEMORY_ENV))
    except StrategyError as error:
        raise click.ClickException(str(error)) from None
    try:
        if resume is not None:
            given = [flag for flag, value in pair.items() if value]
            given += ["--set"] * bool(model_settings) + ["--encoder-set"] * bool(encoder_settings)
            given += ["--name"] * bool(name)
            if given:
                raise click.UsageError(
                    f"--resume continues run {resume!r} with its own settings; leave out {', '.join(given)}"
                )
            run = studio.runs.get(resume)
            if run.read_only:
                raise TrainingError(f"run {resume!r} ships with tui-composer and is read-only; train a new run")
        else:
            missing = [flag for flag, value in pair.items() if not value]
            if missing:
                raise click.UsageError(f"missing {', '.join(missing)} (or --resume RUN)")
            request = TrainingRequest(
                corpus=corpus or "",
                encoder=encoder or "",
                model=model or "",
                encoder_params=parse_assignments(encoder_settings),
                model_params=parse_assignments(model_settings),
                epochs=epochs,
                seed=seed,
                name=name,
                patience=patience,
                time_limit=time_limit,
                strategy=strategy,
            )
            run = prepare_run(studio, request)
    except (TrainingError, ParamError, WorkspaceError) as error:
        raise click.ClickException(str(error)) from None

    click.get_current_context().with_resource(run_log(run))  # runs/NAME/train.log, whoever started it
    config = run.config
    verb = "resuming" if resume else "training"
    click.echo(
        f"run {run.name}: {verb} {config['model']} on corpus {config['corpus']} with encoder {config['encoder']} "
        f"({run.path})"
    )
    reporter = TerminalReport() if sys.stdout.isatty() else PlainReport()
    try:
        with reporter:
            status = train_run(studio, run, resume=resume is not None, on_progress=reporter, gpu_memory=gpu_memory)
    except (TrainingError, WorkspaceError) as error:
        raise click.ClickException(f"run {run.name}: {error}") from None
    except KeyboardInterrupt:
        click.echo(f"run {run.name}: interrupted; resume with `tui-composer train --resume {run.name}`", err=True)
        sys.exit(EXIT_STOPPED)
    state = status.get("state")
    best = status.get("best_valid_loss")
    summary = f"best validation loss {best:.4f}" if isinstance(best, float) else "no validation loss"
    if state == RunState.STOPPED:
        click.echo(f"run {run.name}: stopped after epoch {status.get('epoch', 0)} ({summary}); ", nl=False)
        click.echo(f"resume with `tui-composer train --resume {run.name}`")
        sys.exit(EXIT_STOPPED)
    message = status.get("message") or "finished"
    click.echo(f"run {run.name}: {message} ({summary}); sample with `tui-composer sample {run.name}`")


def epoch_line(progress: Progress) -> str:
    record = progress.record or {}

    def number(key: str) -> str:
        value = record.get(key)
        return f"{value:.4f}" if isinstance(value, float) else "-"

    best = " (best)" if record.get("best") else ""
    return (
        f"epoch {progress.epoch}/{progress.epochs}: train loss {number('train_loss')}, "
        f"valid loss {number('valid_loss')}, valid bits {number('valid_bits')}{best}, "
        f"{record.get('seconds', 0):.0f} s"
    )


class PlainReport:
    """Progress as plain lines, for logs and pipes: messages, epochs, and a batch line now and then."""

    def __init__(self) -> None:
        self.last_batch_line = time.monotonic()
        self.last_pieces_line = 0.0

    def __enter__(self) -> PlainReport:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def __call__(self, progress: Progress) -> None:
        if progress.message:
            click.echo(progress.message)
        elif progress.phase == "epoch":
            click.echo(epoch_line(progress))
        elif progress.phase in PIECE_PHASES and progress.batches:
            ended = progress.batch == progress.batches
            if ended or time.monotonic() - self.last_pieces_line >= PLAIN_PIECES_SECONDS:
                self.last_pieces_line = time.monotonic()
                click.echo(f"{progress.phase} {progress.batch}/{progress.batches} pieces")
        elif progress.phase == "training" and time.monotonic() - self.last_batch_line >= PLAIN_BATCH_SECONDS:
            self.last_batch_line = time.monotonic()
            eta = f", eta {format_seconds(progress.eta_seconds)}" if progress.eta_seconds is not None else ""
            click.echo(
                f"epoch {progress.epoch + 1}/{progress.epochs}: batch {progress.batch}/{progress.batches}, "
                f"loss {progress.loss:.4f}{eta}"
            )


class TerminalReport:
    """A rich progress bar for the epoch that is running, with the epochs' results printed above it."""

    def __enter__(self) -> TerminalReport:
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
        from rich.progress import Progress as Bar

        self.bar = Bar(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeRemainingColumn(),
            transient=True,
        )
        self.bar.__enter__()
        self.task = self.bar.add_task("reading", total=None, detail="")
        return self

    def __exit__(self, *exc: Any) -> None:
        self.bar.__exit__(*exc)

    def __call__(self, progress: Progress) -> None:
        if progress.message:
            self.bar.console.print(progress.message)
        if progress.phase in PIECE_PHASES and progress.batches:
            self.bar.update(
                self.task, description=progress.phase, completed=progress.batch, total=progress.batches, detail="pieces"
            )
        elif progress.phase == "training":
            self.bar.update(
                self.task,
                description=f"epoch {progress.epoch + 1}/{progress.epochs}",
                completed=progress.batch,
                total=progress.batches,
                detail=f"loss {progress.loss:.4f}" if progress.loss is not None else "",
            )
        elif progress.phase == "epoch":
            self.bar.console.print(epoch_line(progress))


def format_seconds(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"
