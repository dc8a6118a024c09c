"""`tui-composer sample`: new pieces from a trained run, as ABC and MIDI files."""

from __future__ import annotations

from pathlib import Path

import click

from tui_composer.cli.context import StudioContext, echo_json, pass_studio
from tui_composer.services.sampling import SampleOptions, SamplingError, sample_run
from tui_composer.services.workspace import WorkspaceError


def unescape(text: str) -> str:
    r"""`\n` and `\t` typed in a shell argument stand for a new line and a tab."""
    return text.replace("\\n", "\n").replace("\\t", "\t")


@click.command()
@click.argument("run")
@click.option("-n", "count", type=int, default=10, show_default=True, help="How many samples.")
@click.option("--temperature", type=float, default=1.0, show_default=True, help="Below 1: safer; above: wilder.")
@click.option("--top-k", type=int, default=0, show_default=True, help="Draw from the k likeliest only (0: off).")
@click.option("--seed", type=int, default=0, show_default=True, help="The same seed gives the same samples.")
@click.option(
    "--max-length",
    type=int,
    help="Tokens or frames per sample, primer included. Default: 1000 for tokens (a piece ends itself); "
    "a frames run (piano-roll) the median length of its training pieces.",
)
@click.option(
    "--primer",
    help=r"ABC text to continue, e.g. 'M:6/8\nK:G\n' (\n is a new line). See the sampling docs for non-abc encoders.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the files (default: the run's samples folder).",
)
@click.option("--print", "show", is_flag=True, help="Print each sample's ABC text.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of the samples (paths, ABC, errors).")
@click.option(
    "--constrain/--no-constrain",
    default=True,
    show_default=True,
    help="Mask every step with the encoder's grammar (abc: only tunes that parse and keep the meter).",
)
@click.option("--audio", is_flag=True, help="Also write NNN.wav, each MIDI played on a piano (the audio extra).")
@pass_studio
def sample(
    context: StudioContext,
    run: str,
    count: int,
    temperature: float,
    top_k: int,
    seed: int,
    max_length: int | None,
    primer: str | None,
    out: Path | None,
    show: bool,
    as_json: bool,
    constrain: bool,
    audio: bool,
) -> None:
    """Generate samples from RUN: one .abc and one .mid per sample, listed as they are written."""
    options = SampleOptions(
        n=count,
        temperature=temperature,
        top_k=top_k,
        seed=seed,
        max_length=max_length,
        primer=unescape(primer) if primer else None,
        out=out,
        constrain=constrain,
        audio=audio,
    )
    try:
        samples = sample_run(context.studio, run, options)
    except (SamplingError, WorkspaceError) as error:
        raise click.ClickException(str(error)) from None
    except OSError as error:  # the output folder went away, filled up or turned read-only while writing
        where = f"--out {out}" if out is not None else f"the samples folder of run {run!r}"
        raise click.ClickException(f"could not write to {where}: {error}; choose another --out folder") from None
    if as_json:
        echo_json([s.to_json() for s in samples])
        return
    for s in samples:
        files = ", ".join(str(p) for p in (s.abc_path, s.midi_path, s.audio_path, s.text_path) if p is not None)
        line = f"sample {s.number:03d}: {files}"
        click.echo(line if s.ok else f"{line}  ({s.error})")
        if show and s.abc:
            click.echo(s.abc)
    good = sum(s.midi_path is not None for s in samples)
    click.echo(f"{good} of {len(samples)} samples written as ABC and MIDI")
    if audio:
        click.echo(f"{sum(s.audio_path is not None for s in samples)} of {len(samples)} samples written as WAV")
