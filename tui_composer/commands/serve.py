"""`tui-composer serve`: the same TUI in a web browser, through textual-serve."""

from __future__ import annotations

import ipaddress
import shlex
from typing import TYPE_CHECKING

import click

from tui_composer.launcher import cli_argv

if TYPE_CHECKING:
    from tui_composer.commands.context import StudioContext

NO_AUTH_WARNING = (
    "WARNING: serving on {host}:{port} to other machines. There is no authentication: anyone who can "
    "reach this port can train, delete runs and read your workspace. Prefer the default 127.0.0.1 and "
    "an SSH tunnel: ssh -L {port}:127.0.0.1:{port} THIS-HOST"
)


def is_local(host: str) -> bool:
    """Whether binding to `host` keeps the server reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind; keep it local unless sure.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="Port to listen on.")
@click.pass_obj
def serve(context: StudioContext, host: str, port: int) -> None:
    """Serve the TUI in a web browser (textual-serve). Bound to localhost: there is no authentication."""
    if not is_local(host):
        click.secho(NO_AUTH_WARNING.format(host=host, port=port), fg="yellow", err=True)
    # Each browser session runs its own TUI process on this workspace.
    command = shlex.join(cli_argv(context.studio.workspace))
    from textual_serve.server import Server

    Server(command, host=host, port=port, title="tui-composer").serve()
