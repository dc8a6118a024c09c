"""Who may use `tui-composer serve`: the holder of its token, through this server's own Host and Origin.

A textual-serve session runs the whole TUI: it can train, delete runs and read the workspace. So a
middleware stands in front of textual-serve's aiohttp routes:

- every request's Host header must name this server, so a DNS-rebinding page (a domain of the
  attacker's that resolves to 127.0.0.1) is refused;
- the page and the websocket want the token from the URL the server prints (compared in constant
  time); the static JS/CSS stay public because the browser fetches them without it, and downloads are
  addressed by one-shot random keys that only a session can create;
- the websocket's Origin must be this server, so no other page open in the browser can connect.

The page carries the token on to the websocket in the websocket's path (`/ws/TOKEN`): textual-serve's
script appends `?width=...` to the URL it is given, so a query token would be mangled, and a cookie
would be sent to every port of the host, another user's server included.

Imported only by `serve` itself: aiohttp and textual-serve stay out of `--help` and the TUI.
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
import logging
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp_jinja2
import click
from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware
from textual_serve.server import Server

from tui_composer.cli.serve import is_local, is_wildcard

TOKEN_WEBSOCKET_ROUTE = "websocket-token"
WEBSOCKET_ROUTES = frozenset({"websocket", TOKEN_WEBSOCKET_ROUTE})
# What a session can be started from; everything else (static assets, downloads) is public.
PROTECTED_ROUTES = frozenset({"index", *WEBSOCKET_ROUTES})
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
HTTP_DEFAULT_PORT = 80


def _canonical(name: str) -> str:
    """One spelling per address (`0:0::1` is `::1`), names case-folded."""
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        return name.lower()


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


@functools.cache
def _own_names() -> frozenset[str]:
    """This machine's names, looked up once (getfqdn may ask DNS)."""
    return frozenset({"localhost", _canonical(socket.gethostname()), _canonical(socket.getfqdn())})


def netloc(host: str, port: int) -> str:
    """`host:port` as a URL writes it (an IPv6 address in brackets)."""
    shown = f"[{host}]" if ":" in host else host
    return shown if port == HTTP_DEFAULT_PORT else f"{shown}:{port}"


@dataclass(frozen=True)
class AccessPolicy:
    """The server's bound address and token, and the one decision: let a request in, or why not."""

    host: str  # as bound; an IPv6 address without brackets
    port: int
    token: str | None  # None: `--no-token`

    def allows_name(self, name: str) -> bool:
        """Whether a Host or Origin name (without port) is this server."""
        name = _canonical(name)
        if name == _canonical(self.host):
            return True
        if is_local(self.host) and name in LOOPBACK_NAMES:
            return True
        if is_wildcard(self.host):
            # DNS rebinding needs a domain name: an address typed as digits reached this machine itself.
            return _is_ip(name) or name in _own_names()
        return False

    def allows_netloc(self, location: str) -> bool:
        """Whether `name[:port]` (a Host header, an Origin's authority) is this server's name and port."""
        if not location or "@" in location:
            return False
        try:
            parts = urlsplit(f"//{location}")
            port = parts.port or HTTP_DEFAULT_PORT
        except ValueError:  # a port that is not a number, an unclosed bracket
            return False
        if parts.netloc != location or not parts.hostname:
            return False
        return port == self.port and self.allows_name(parts.hostname)

    def allows_origin(self, origin: str | None) -> bool:
        """Whether a websocket's Origin is a page this server served (browsers always send one)."""
        if not origin:
            return False
        parts = urlsplit(origin)
        return parts.scheme == "http" and not parts.path.strip("/") and self.allows_netloc(parts.netloc)

    def token_matches(self, presented: str | None) -> bool:
        if self.token is None:
            return True
        if presented is None:
            return False
        return hmac.compare_digest(presented.encode("utf-8"), self.token.encode("utf-8"))

    def refusal(self, host_header: str, route: str | None, origin: str | None, presented: str | None) -> str | None:
        """Why a request is refused (403), or None to let it in."""
        if not self.allows_netloc(host_header):
            return (
                f"Host {host_header!r} is not this server ({self.base_url()}); "
                "open the URL that `tui-composer serve` printed."
            )
        if route not in PROTECTED_ROUTES:
            return None
        if route in WEBSOCKET_ROUTES and not self.allows_origin(origin):
            sender = f"Origin {origin!r} is not this server's page" if origin else "No Origin header"
            return f"{sender}; only the page at {self.base_url()}/ may connect."
        if not self.token_matches(presented):
            return (
                "Missing or wrong token: open the URL that `tui-composer serve` printed "
                f"({self.base_url()}/?token=...)."
            )
        return None

    def base_url(self) -> str:
        return f"http://{netloc(self.host, self.port)}"

    def browser_url(self) -> str:
        """The URL to open: this machine's name for a wildcard bind, with the token when there is one."""
        host = socket.gethostname() if is_wildcard(self.host) else self.host
        query = f"?token={self.token}" if self.token else ""
        return f"http://{netloc(host, self.port)}/{query}"


def guard(policy: AccessPolicy) -> Middleware:
    """The aiohttp middleware that applies `policy` before any of textual-serve's handlers runs."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        resource = request.match_info.route.resource
        reason = policy.refusal(
            request.headers.get(hdrs.HOST, ""),
            resource.name if resource is not None else None,
            request.headers.get(hdrs.ORIGIN),
            request.match_info.get("token") or request.query.get("token"),
        )
        if reason is not None:
            raise web.HTTPForbidden(text=reason)
        return await handler(request)

    return middleware


class _RedactToken(logging.Filter):
    """Keep the token out of the access log, which may end up in a shared log file."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = str(record.msg).replace(self.token, "<token>")
        return True


class GuardedServer(Server):
    """textual-serve's Server behind an `AccessPolicy`; the page hands the token to its websocket."""

    def __init__(self, command: str, policy: AccessPolicy, title: str) -> None:
        super().__init__(command, host=policy.host, port=policy.port, title=title, public_url=policy.base_url())
        self.policy = policy

    def initialize_logging(self) -> None:
        super().initialize_logging()
        if self.policy.token:
            logging.getLogger("aiohttp.access").addFilter(_RedactToken(self.policy.token))

    async def _make_app(self) -> web.Application:
        app = await super()._make_app()
        app.router.add_get("/ws/{token}", self.handle_websocket, name=TOKEN_WEBSOCKET_ROUTE)
        app.middlewares.append(guard(self.policy))
        return app

    @aiohttp_jinja2.template("app_index.html")
    async def handle_index(self, request: web.Request) -> dict[str, Any]:
        context: dict[str, Any] = await Server.handle_index.__wrapped__(self, request)  # type: ignore[attr-defined]
        router = request.app.router
        if self.policy.token:
            websocket_path = router[TOKEN_WEBSOCKET_ROUTE].url_for(token=self.policy.token)
        else:
            websocket_path = router["websocket"].url_for()
        # Back to the Host the page came from (checked by the guard), not the bound address: a page
        # opened as localhost, or through a 0.0.0.0 bind from another machine, then reaches its server.
        context["app_websocket_url"] = f"ws://{request.host}{websocket_path}"
        context["config"]["static"]["url"] = f"http://{request.host}/static/"
        return context

    async def on_startup(self, app: web.Application) -> None:
        click.echo(f"Serving tui-composer on {self.policy.browser_url()}")
        click.echo("Open that URL in a browser; press Ctrl+C to quit.")
