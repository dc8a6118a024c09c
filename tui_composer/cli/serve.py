"""`tui-composer serve`: the same TUI in a web browser, through textual-serve, for its user only.

A browser session runs the whole TUI, so the server lets in only whoever holds its token (printed in
the URL, as Jupyter does), and only through its own Host and Origin (see `serve_access`).
"""

from __future__ import annotations

import errno
import ipaddress
import re
import secrets
import shlex
import socket
from typing import TYPE_CHECKING

import click

from tui_composer.services.launcher import cli_argv

if TYPE_CHECKING:
    from tui_composer.cli.context import StudioContext

TOKEN_VARIABLE = "TUI_COMPOSER_TOKEN"
MIN_TOKEN_LENGTH = 16  # 96 bits of URL-safe characters: out of reach of guessing over HTTP
URL_SAFE = re.compile(r"[A-Za-z0-9._~-]+")

NOT_LOCAL_WARNING = (
    "WARNING: serving on {host}:{port} to other machines over plain HTTP. The token travels unencrypted: "
    "anyone who can watch the network can read it, then train, delete runs and read your workspace. "
    "Prefer the default 127.0.0.1 and an SSH tunnel: ssh -L {port}:127.0.0.1:{port} THIS-HOST"
)
NO_TOKEN_WARNING = (
    "WARNING: --no-token: anyone who can reach {host}:{port} (every user of this machine, at least) "
    "can train, delete runs and read your workspace."
)
BIND_ERRORS = {
    errno.EADDRINUSE: "port {port} is in use (another serve?); pick another --port.",
    errno.EADDRNOTAVAIL: "{host} is not an address of this machine; use 127.0.0.1, or one of its own addresses.",
    errno.EACCES: "port {port} is not yours to bind (below 1024 needs root); pick --port 8000 or another above 1023.",
}


def is_local(host: str) -> bool:
    """Whether binding to `host` keeps the server reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_wildcard(host: str) -> bool:
    """Whether `host` binds every interface (`0.0.0.0`, `::`)."""
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def bindable_host(ctx: click.Context, param: click.Parameter, host: str) -> str:
    """`--host` as an address or a name this machine resolves, refused before the server starts."""
    if host.startswith("[") or host.endswith("]"):
        raise click.BadParameter(f"{host!r}: write an IPv6 address without brackets, e.g. ::1 (or :: for all).")
    try:
        socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError, ValueError) as error:
        hint = " Give the port with --port." if re.fullmatch(r"[^:]+:\d+", host) else ""
        reason = getattr(error, "strerror", None) or str(error)
        raise click.BadParameter(
            f"{host!r} is not an address or a name this machine resolves ({reason}); "
            f"use an address such as 127.0.0.1 or ::1, or a host name.{hint}"
        ) from None
    return host


def usable_token(ctx: click.Context, param: click.Parameter, token: str | None) -> str | None:
    """`--token` long enough not to be guessed, in characters a URL carries unchanged."""
    if token is None:
        return None
    if not URL_SAFE.fullmatch(token):
        raise click.BadParameter("use only letters, digits and . _ ~ - (the token goes into a URL).")
    if len(token) < MIN_TOKEN_LENGTH:
        raise click.BadParameter(
            f"{len(token)} characters is guessable; use at least {MIN_TOKEN_LENGTH}, or leave --token out "
            "for a random one."
        )
    return token


@click.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    callback=bindable_host,
    help="Address to bind (IPv6 without brackets); keep it local unless sure.",
)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="Port to listen on.")
@click.option(
    "--token",
    envvar=TOKEN_VARIABLE,
    callback=usable_token,
    help=f"The secret the URL must carry (default: a new random one each start). ${TOKEN_VARIABLE} keeps it "
    "out of `ps`.",
)
@click.option("--no-token", is_flag=True, help="Let in anyone who can reach the port (warns).")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, token: str | None, no_token: bool) -> None:
    """Serve the TUI in a web browser (textual-serve), for whoever opens the printed URL with its token."""
    from_command_line = ctx.get_parameter_source("token") is click.core.ParameterSource.COMMANDLINE
    if no_token and token is not None and from_command_line:
        raise click.UsageError("--token and --no-token contradict each other; give one.")
    if not is_local(host):
        click.secho(NOT_LOCAL_WARNING.format(host=host, port=port), fg="yellow", err=True)
    if no_token:
        click.secho(NO_TOKEN_WARNING.format(host=host, port=port), fg="yellow", err=True)
    context: StudioContext = ctx.obj
    # Each browser session runs its own TUI process on this workspace.
    command = shlex.join(cli_argv(context.studio.workspace))
    from tui_composer.cli.serve_access import AccessPolicy, GuardedServer

    policy = AccessPolicy(host, port, None if no_token else token or secrets.token_urlsafe(32))
    try:
        GuardedServer(command, policy, title="tui-composer").serve()
    except OSError as error:
        if error.errno not in BIND_ERRORS:
            raise
        advice = BIND_ERRORS[error.errno].format(host=host, port=port)
        raise click.ClickException(f"can't listen on {host}:{port}: {advice}") from None
