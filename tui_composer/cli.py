"""The `tui-composer` command line. With no command it opens the TUI.

Nothing here imports TensorFlow: commands that need it import it inside their function body.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from tui_composer.commands.check import check
from tui_composer.commands.context import StudioContext, echo_json, fail, pass_studio
from tui_composer.commands.sample import sample
from tui_composer.commands.serve import serve
from tui_composer.commands.train import train
from tui_composer.plugin_host import PluginHost, load_host
from tui_composer.workspace import WorkspaceError


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--workspace",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="TUI_COMPOSER_HOME",
    help="Workspace folder for corpora and runs (default: your user data folder; env TUI_COMPOSER_HOME).",
)
@click.version_option(package_name="tui-composer")
@click.pass_context
def cli(ctx: click.Context, workspace: Path | None) -> None:
    """Train and sample music-generating models from the terminal.

    With no command, opens the terminal UI.
    """
    # main() passes the host it loaded (with plugin commands added); tests pass their own.
    host = ctx.obj if isinstance(ctx.obj, PluginHost) else load_host()
    ctx.obj = StudioContext(host, workspace)
    if ctx.invoked_subcommand is None:
        from tui_composer.tui.app import ComposerApp

        ComposerApp(ctx.obj.studio).run()


# --- plugins -------------------------------------------------------------------------------------


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_studio
def plugins(context: StudioContext, as_json: bool) -> None:
    """List plugins with their encoders, models and corpora, and any load errors."""
    studio = context.studio
    registry = studio.registry
    infos = list(studio.host.plugins.values())
    if as_json:
        echo_json(
            {
                "plugins": [info.to_json() for info in infos],
                "encoders": {n: _spec_json(s) | {"makes": s.makes} for n, s in registry.encoders.items()},
                "models": {n: _spec_json(s) | {"takes": list(s.takes)} for n, s in registry.models.items()},
                "corpora": {
                    n: {"description": s.description, "plugin": s.origin.plugin} for n, s in registry.corpora.items()
                },
            }
        )
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Plugins")
    for column in ("plugin", "distribution", "version", "status", "provides / error"):
        table.add_column(column)
    for info in infos:
        detail = ", ".join(info.provides) if info.status == "ok" else "; ".join(info.errors[:1] + info.provides)
        style = {"ok": "green", "partial": "yellow"}.get(info.status, "red")
        table.add_row(info.name, info.distribution, info.version, f"[{style}]{info.status}[/]", detail)
    Console().print(table)


def _spec_json(spec: Any) -> dict[str, Any]:
    return {
        "description": spec.description,
        "plugin": spec.origin.plugin,
        "distribution": spec.origin.distribution,
        "version": spec.origin.version,
        "params": [p.to_json() for p in spec.params],
    }


# --- corpora ------------------------------------------------------------------------------------


@cli.group()
def corpus() -> None:
    """List, inspect and import corpora."""


@corpus.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_studio
def corpus_list(context: StudioContext, as_json: bool) -> None:
    """Bundled and imported corpora with their piece counts and licences.

    A corpus that can't be read is listed with its error; it never hides the others.
    """
    try:
        summaries = context.studio.catalogue.summaries()
    except WorkspaceError as error:
        fail(error)
    if as_json:
        echo_json(summaries)
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="Corpora")
    for column in ("name", "kind", "pieces", "train/valid/test", "skipped", "licence"):
        table.add_column(column)
    for s in summaries:
        splits = "/".join(str(s["splits"][k]) for k in ("train", "valid", "test"))
        cells = (s["name"], s["kind"], str(s["pieces"]), splits, str(s["skipped"]), s["licence"])
        table.add_row(*(escape(cell) for cell in cells))  # a licence like "[CC BY]" is text, not markup
    console = Console()
    console.print(table)
    for s in summaries:
        if s.get("error"):
            console.print(f"{s['name']}: {s['error']}", markup=False)


@corpus.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--limit", default=20, show_default=True, help="How many pieces to list.")
@pass_studio
def corpus_show(context: StudioContext, name: str, as_json: bool, limit: int) -> None:
    """One corpus: its pieces, its split and every skipped item with the reason."""
    try:
        corpus_ = context.studio.catalogue.get(name)
        summary = corpus_.summary()
    except WorkspaceError as error:
        fail(error)
    summary["first_pieces"] = [{"key": p.key, "title": p.title, "format": p.format} for p in corpus_.pieces[:limit]]
    summary["skipped_items"] = [s.to_json() for s in corpus_.skipped]
    if as_json:
        echo_json(summary)
        return
    click.echo(f"{summary['name']} ({summary['kind']}): {summary['description']}")
    click.echo(f"licence: {summary['licence']}")
    click.echo(f"source: {summary['source']}")
    splits = summary["splits"]
    click.echo(f"pieces: {summary['pieces']} (train {splits['train']}, valid {splits['valid']}, test {splits['test']})")
    for piece in summary["first_pieces"]:
        click.echo(f"  {piece['key']}  {piece['title']}")
    if summary["pieces"] > limit:
        click.echo(f"  ... and {summary['pieces'] - limit} more")
    click.echo(f"skipped: {len(corpus_.skipped)}")
    for item in corpus_.skipped:
        click.echo(f"  {item.item}: {item.reason}")


@corpus.command("import")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--name", required=True, help="Name of the new corpus.")
@click.option("--licence", default="", help="Licence of the music, shown wherever the corpus is listed.")
@pass_studio
def corpus_import(context: StudioContext, path: Path, name: str, licence: str) -> None:
    """Import a file or folder of .abc, .mid, .midi, .xml, .mxl or .musicxml files.

    Every piece is parsed once; what can't be used is skipped with its reason and the rest is kept.
    """
    try:
        report = context.studio.catalogue.import_path(path, name, licence=licence)
    except WorkspaceError as error:
        fail(error)
    click.echo(f"imported {report.kept} pieces into corpus {report.corpus!r} ({report.path})")
    if report.skipped:
        click.echo(f"skipped {len(report.skipped)}:")
        for item in report.skipped:
            click.echo(f"  {item.item}: {item.reason}")


# --- runs ---------------------------------------------------------------------------------------


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_studio
def runs(context: StudioContext, as_json: bool) -> None:
    """Training runs in the workspace, and the read-only runs that ship with tui-composer."""
    try:
        rows = [run.summary() for run in context.studio.runs.list()]
    except WorkspaceError as error:
        fail(error)
    if as_json:
        echo_json(rows)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Runs")
    for column in ("name", "corpus", "encoder", "model", "state", "epoch", "best valid loss", "started"):
        table.add_column(column)
    for r in rows:
        best = f"{r['best_valid_loss']:.4f}" if isinstance(r["best_valid_loss"], float) else "-"
        name = r["name"] + (" (read-only)" if r["read_only"] else "")
        table.add_row(
            name, r["corpus"], r["encoder"], r["model"], r["state"], str(r["epoch"]), best, r["started"] or ""
        )
    Console().print(table)


# --- commands with modules of their own --------------------------------------------------------

for command in (train, sample, check, serve):
    cli.add_command(command)
BUILTIN_COMMANDS = dict(cli.commands)  # a plugin command of the same name is refused (PluginHost.add_commands)


def main(argv: list[str] | None = None) -> None:
    host = load_host()
    cli.commands = dict(BUILTIN_COMMANDS)  # each main() adds its own host's plugin commands, once
    host.add_commands(cli)
    try:
        cli.main(args=argv, prog_name="tui-composer", obj=host)
    except WorkspaceError as error:
        click.echo(f"Error: {error}", err=True)
        sys.exit(1)
