"""`tui-composer check`: does each tune of an ABC file play, keep the meter, and is it new?"""

from __future__ import annotations

from pathlib import Path

import click

from tui_composer.cli.context import StudioContext, echo_json, pass_studio
from tui_composer.services.workspace import WorkspaceError


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--run", "run_name", help="Also measure novelty against the training split of this run's corpus.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list, one object per tune.")
@pass_studio
def check(context: StudioContext, file: Path, run_name: str | None, as_json: bool) -> None:
    """Check every tune of FILE: parses in music21, writes MIDI, bars agree with the meter, novelty.

    With --run, the longest passage of notes (intervals and durations, so transposed copies count too)
    shared with any training tune is measured in bars, and tunes sharing 4 bars or more are flagged.
    The first check of a corpus indexes its training tunes (cached in the workspace).
    """
    from tui_composer.music.checking import check_abc_text, no_tune_reason, run_novelty_index
    from tui_composer.music.files import MusicFileError, printable
    from tui_composer.services.corpora import read_abc_file

    shown = printable(str(file))
    try:
        try:
            text = read_abc_file(file)  # a regular file within the ABC cap: a FIFO or a huge file never blocks
        except MusicFileError as error:
            raise click.ClickException(f"{shown}: {error.reason}") from None
        if not text.strip():
            raise click.ClickException(f"{shown} is empty: nothing to check")
        if reason := no_tune_reason(text):
            raise click.ClickException(f"{shown} {reason}; give an ABC file of tunes")
        index = None
        if run_name is not None:
            if not as_json:
                click.echo(
                    f"indexing the training tunes of run {run_name!r} (cached after the first time)...", err=True
                )
            index = run_novelty_index(context.studio, run_name)
        results = check_abc_text(text, index)
        if reason := no_tune_reason(text, results):
            raise click.ClickException(f"{shown} {reason}; give an ABC file of tunes")
    except WorkspaceError as error:
        raise click.ClickException(str(error)) from None
    if as_json:
        echo_json([result.to_json() for result in results])
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{shown}: {len(results)} tune{'s' if len(results) != 1 else ''}")
    for column in ("#", "title", "parses", "MIDI", "bars off meter", *(("shared bars", "copy") if index else ())):
        table.add_column(column)
    for r in results:
        bars = ", ".join(str(b.number) for b in r.bad_bars) or ("-" if r.parses else "?")
        row = [str(r.number), r.title[:40], _yes(r.parses), _yes(r.writes_midi), bars]
        if index is not None:
            shared = f"{r.novelty.shared_bars:g}" if r.novelty else "-"
            row += [shared, "[red]COPY[/]" if r.copy else "no"]
        table.add_row(*row)
    console = Console()
    console.print(table)
    for r in results:
        if r.error:
            console.print(f"tune {r.number}: {r.error}", markup=False)
        for bar in r.bad_bars:
            console.print(f"tune {r.number}: {bar}", markup=False)
        if r.copy and r.novelty is not None:
            console.print(
                f"tune {r.number}: shares {r.novelty.shared_bars:g} bars ({r.novelty.shared_notes} notes) "
                f"with training tune {r.novelty.piece}",
                markup=False,
            )
    playing = sum(r.ok for r in results)
    click.echo(f"{playing} of {len(results)} tunes parse, write MIDI and keep the meter")


def _yes(value: bool) -> str:
    return "[green]yes[/]" if value else "[red]no[/]"
