"""The `tui-composer` command line. With no command it opens the TUI.

Nothing here imports TensorFlow: commands that need it import it inside their function body.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click

from tui_composer.cli.check import check
from tui_composer.cli.context import StudioContext, echo_json, fail, pass_studio
from tui_composer.cli.sample import sample
from tui_composer.cli.serve import serve
from tui_composer.cli.train import ProcessPolicy, train
from tui_composer.plugin.host import PluginHost, load_host
from tui_composer.services.runs import RunState
from tui_composer.services.workspace import WorkspaceError


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
@click.option(
    "--check",
    is_flag=True,
    help="Also import every encoder's and model's factory (loads TensorFlow); exits 1 when a plugin failed.",
)
@pass_studio
def plugins(context: StudioContext, as_json: bool, check: bool) -> None:
    """List plugins with their encoders, models, corpora, runs and commands, and any load errors."""
    studio = context.studio
    if check:
        studio.host.check_factories()
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
                "runs": {
                    n: {"description": s.description, "plugin": s.origin.plugin} for n, s in registry.runs.items()
                },
                "commands": {n: {"plugin": plugin} for n, plugin in studio.host.commands().items()},
            }
        )
    else:
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table

        table = Table(title="Plugins")
        for column in ("plugin", "distribution", "version", "status", "provides / error"):
            table.add_column(column)
        for info in infos:
            detail = ", ".join(info.provides)
            if info.status != "ok":
                dropped = [f"not registered: {', '.join(info.dropped)}"] if info.dropped else []
                detail = "; ".join(info.errors[:1] + info.provides + dropped)
            style = {"ok": "green", "partial": "yellow"}.get(info.status, "red")
            cells = (escape(info.name), escape(info.distribution), escape(info.version))
            table.add_row(*cells, f"[{style}]{info.status}[/]", escape(detail))
        Console().print(table)
    if check and any(info.status == "failed" for info in infos):
        sys.exit(1)


def _spec_json(spec: Any) -> dict[str, Any]:
    return {
        "description": spec.description,
        "plugin": spec.origin.plugin,
        "distribution": spec.origin.distribution,
        "version": spec.origin.version,
        "params": [p.to_json() for p in spec.params],
    }


# --- the cache -----------------------------------------------------------------------------------


@cli.group()
def cache() -> None:
    """Cached encodings and novelty indexes in the workspace (rebuilt whenever they are needed)."""


@cache.command("clear")
@click.option("--corpus", "corpus_name", metavar="NAME", help="Only this corpus's entries (default: all).")
@pass_studio
def cache_clear(context: StudioContext, corpus_name: str | None) -> None:
    """Remove cached encodings and novelty indexes; the next training or check reads the pieces again."""
    from tui_composer.services.encoding import clear_cache

    try:
        cleared = clear_cache(context.studio.workspace, corpus_name)
    except (WorkspaceError, OSError) as error:
        fail(error)
    which = f" of corpus {corpus_name!r}" if corpus_name else ""
    click.echo(f"removed {cleared.entries} cache entries{which} ({cleared.size_bytes / 2**20:.1f} MiB)")


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


class ParsingLines:
    """`parsing 120/2009 pieces` on stderr, at most once a second and at the end (the TUI's import dialog reads
    these lines while it waits; stdout keeps the report)."""

    SECONDS = 1.0

    def __init__(self) -> None:
        self.last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done == total or now - self.last >= self.SECONDS:
            self.last = now
            click.echo(f"parsing {done}/{total} pieces", err=True)


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
        report = context.studio.catalogue.import_path(path, name, licence=licence, progress=ParsingLines())
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
    """Training runs in the workspace, and the read-only runs that ship with tui-composer.

    A run whose config.json or status.json can't be used is listed as `damaged`, with the file and why.
    """
    try:
        rows = [run.summary() for run in context.studio.runs.list()]
    except (WorkspaceError, OSError) as error:  # the runs folder itself can't be read
        fail(error)
    if as_json:
        echo_json(rows)
        return
    from rich.console import Console
    from rich.markup import escape

    console = Console()
    console.print(runs_table(rows, console.width))
    for r in rows:
        if r["damaged"]:
            console.print(escape(r["damaged"]["message"]), style="yellow", soft_wrap=True)


def runs_table(rows: list[dict[str, Any]], width: int) -> Any:
    """`tui-composer runs` as rich renderables that read in `width` columns: whole run names, the rest wrapped.

    When every column fits, one column each. Otherwise the corpus, encoder/model and start time share
    the last column, one line each: the name, the state and the numbers are never cut. With a name too
    long even for that, each run is its name on a line and the rest on the next.
    """
    import datetime as dt
    import textwrap

    from rich import box
    from rich.markup import escape
    from rich.table import Table

    def started(value: Any) -> str:
        try:
            return dt.datetime.fromisoformat(str(value)).astimezone().strftime("%Y-%m-%d %H:%M")
        except ValueError:
            return str(value or "")

    def epochs(r: dict[str, Any]) -> str:
        done = str(r["epoch"] or 0)  # a finished run may stop before its plan: what it did is what counts
        return (
            done
            if r["state"] in (RunState.FINISHED, RunState.READY) or not r.get("epochs")
            else f"{done}/{r['epochs']}"
        )

    lines = []
    for r in rows:
        best = f"{r['best_valid_loss']:.4f}" if isinstance(r["best_valid_loss"], float) else "-"
        pair = f"{r['encoder']}/{r['model']}" if r["encoder"] or r["model"] else ""
        lines.append((r["name"], str(r["state"]), epochs(r), best, r["corpus"] or "", pair, started(r["started"])))
    read_only = [bool(r["read_only"]) for r in rows]
    headers = ("run", "state", "epoch", "best", "corpus", "encoder/model", "started")
    natural = [max([len(h), *(len(line[i]) for line in lines)]) for i, h in enumerate(headers)]
    natural[1] = max(natural[1], len("(read-only)") if any(read_only) else 0)
    table = Table(title="Runs", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("run", no_wrap=True)
    table.add_column("state", no_wrap=True)
    table.add_column("epoch", justify="right", no_wrap=True)
    table.add_column("best", justify="right", no_wrap=True)
    # Each column is padded by a space on either side, and a space between (SIMPLE_HEAD's divider).
    if sum(natural) + 2 + 3 * (len(natural) - 1) <= width:
        for header in headers[4:]:
            table.add_column(header, no_wrap=True)
        for line, shipped in zip(lines, read_only, strict=True):
            table.add_row(*(escape(cell) for cell in (line[0], line[1] + " (read-only)" * shipped, *line[2:])))
        return table
    room = width - sum(natural[:4]) - 2 - 3 * 4
    if room < len("encoder/model"):  # a very long name: each run as a name line and a wrapped line below
        from rich.console import Group, RenderableType
        from rich.padding import Padding
        from rich.text import Text

        blocks: list[RenderableType] = [Text("Runs", style="italic", justify="center")]
        for line, shipped in zip(lines, read_only, strict=True):
            details = [line[1] + " (read-only)" * shipped, f"epoch {line[2]}", f"best {line[3]}", *line[4:]]
            blocks += [Text(line[0], style="bold"), Padding(Text(" · ".join(d for d in details if d)), (0, 0, 0, 2))]
        return Group(*blocks)
    # Wrapped here, not by rich: a word longer than its column would be cut with an ellipsis.
    table.add_column("corpus\nencoder/model\nstarted", width=room, no_wrap=True)
    for line, shipped in zip(lines, read_only, strict=True):
        parts = [p for p in (line[4], line[5], line[6]) if p]
        about = "\n".join(row for part in parts for row in textwrap.wrap(part, room, break_on_hyphens=False))
        state = line[1] + "\n(read-only)" * shipped
        table.add_row(*(escape(cell) for cell in (line[0], state, line[2], line[3], about)))
    return table


# --- commands with modules of their own --------------------------------------------------------

for command in (train, sample, check, serve):
    cli.add_command(command)
BUILTIN_COMMANDS = dict(cli.commands)  # a plugin command of the same name is refused (PluginHost.add_commands)


def main(argv: list[str] | None = None) -> None:
    # The command line of a process of its own (the entry point, `python -m tui_composer`), not a caller's list.
    ProcessPolicy.own_process = argv is None
    host = load_host()
    cli.commands = dict(BUILTIN_COMMANDS)  # each main() adds its own host's plugin commands, once
    host.add_commands(cli)
    try:
        cli.main(args=argv, prog_name="tui-composer", obj=host)
    except WorkspaceError as error:
        click.echo(f"Error: {error}", err=True)
        sys.exit(1)
