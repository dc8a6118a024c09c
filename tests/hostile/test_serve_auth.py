"""`tui-composer serve` lets in only its user: the token, this server's Host, this server's Origin.

One real server (a subprocess on 127.0.0.1) serves the module; the attacks come through aiohttp's own
client: a foreign page's websocket, a client without the token, a DNS-rebinding Host.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from click.testing import CliRunner

from tui_composer.cli.app import cli
from tui_composer.cli.serve_access import AccessPolicy
from tui_composer.plugin.host import PluginHost

TOKEN = "hostile-test-token-0123456789"
FOREIGN_ORIGIN = "http://evil.example"
START_SECONDS = 30
CORPORA_SECONDS = 45  # the websocket starts a whole TUI process: plugins, workspace, first paint
ANSI_ESCAPE = re.compile(rb"\x1b(\[[0-9;?<>=]*[ -/]*[@-~]|[@-Z\\-_])")


@dataclass(frozen=True)
class Served:
    base: str  # http://127.0.0.1:PORT
    port: int
    process: subprocess.Popen[bytes]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_listening(base: str, process: subprocess.Popen[bytes], stderr: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"serve exited with {process.returncode}: {stderr.read_text()}")
        try:
            urllib.request.urlopen(f"{base}/", timeout=2).close()
            return
        except urllib.error.HTTPError:
            return  # an answer, even a refusal, means it is up
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"serve did not answer on {base} within {START_SECONDS}s")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("serve")
    port = free_port()
    stdout, stderr = folder / "stdout.txt", folder / "stderr.txt"
    # The token through the environment, the way that keeps it out of `ps`.
    env = {**os.environ, "TUI_COMPOSER_TOKEN": TOKEN, "TUI_COMPOSER_HOME": str(folder / "home")}
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "tui_composer", "--workspace", str(folder / "ws"), "serve", "--port", str(port)],
            stdout=out,
            stderr=err,
            env=env,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_listening(base, process, stderr)
        yield Served(base, port, process)
    finally:
        process.terminate()
        process.wait(timeout=10)


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode("utf-8")
    except urllib.error.HTTPError as refusal:
        return refusal.code, refusal.read().decode("utf-8")


async def handshake_status(url: str, origin: str | None, host: str | None = None) -> int:
    """The HTTP status a websocket handshake gets (101 when it is let in)."""
    headers = {"Host": host} if host else {}
    async with aiohttp.ClientSession() as session:
        try:
            async with session.ws_connect(url, origin=origin, headers=headers, timeout=aiohttp.ClientWSTimeout(10)):
                return 101
        except aiohttp.WSServerHandshakeError as refusal:
            return refusal.status


# --- the page --------------------------------------------------------------------------------------


def test_the_page_without_the_token_is_refused(served: Served) -> None:
    status, reason = get(f"{served.base}/")
    assert status == 403
    assert "token" in reason and f"{served.base}/?token=" in reason  # says where the right URL is


def test_the_page_with_a_wrong_token_is_refused(served: Served) -> None:
    status, _ = get(f"{served.base}/?token={TOKEN[:-1]}x")
    assert status == 403


def test_the_page_with_the_token_hands_it_to_the_websocket(served: Served) -> None:
    status, page = get(f"{served.base}/?token={TOKEN}")
    assert status == 200
    assert f'data-session-websocket-url="ws://127.0.0.1:{served.port}/ws/{TOKEN}"' in page


def test_the_pages_scripts_load_without_the_token(served: Served) -> None:
    _, page = get(f"{served.base}/?token={TOKEN}")
    script = re.search(r'<script src="([^"]+)"', page)
    assert script is not None
    status, javascript = get(script.group(1))
    assert status == 200
    assert "WebSocket" in javascript  # the terminal's client, not an error page


def test_a_dns_rebinding_host_is_refused_even_with_the_token(served: Served) -> None:
    # evil.example resolving to 127.0.0.1: the browser sends the attacker's name as Host.
    status, reason = get(f"{served.base}/?token={TOKEN}", headers={"Host": f"evil.example:{served.port}"})
    assert status == 403
    assert "evil.example" in reason and "Host" in reason


def test_localhost_is_this_server_too(served: Served) -> None:
    status, page = get(f"http://localhost:{served.port}/?token={TOKEN}")
    assert status == 200
    # The websocket goes back to the name the page was opened with.
    assert f"ws://localhost:{served.port}/ws/{TOKEN}" in page


# --- the websocket ---------------------------------------------------------------------------------


def test_a_foreign_pages_websocket_is_refused(served: Served) -> None:
    url = f"ws://127.0.0.1:{served.port}/ws/{TOKEN}"
    assert asyncio.run(handshake_status(url, FOREIGN_ORIGIN)) == 403
    status, reason = get(f"{served.base}/ws/{TOKEN}", headers={"Origin": FOREIGN_ORIGIN})
    assert status == 403
    assert FOREIGN_ORIGIN in reason


def test_a_websocket_without_an_origin_is_refused(served: Served) -> None:
    assert asyncio.run(handshake_status(f"ws://127.0.0.1:{served.port}/ws/{TOKEN}", None)) == 403


@pytest.mark.parametrize("path", ["/ws", "/ws?token=wrong-token-wrong-token", "/ws/wrong-token-wrong-token"])
def test_a_websocket_without_the_token_is_refused(served: Served, path: str) -> None:
    assert asyncio.run(handshake_status(f"ws://127.0.0.1:{served.port}{path}", served.base)) == 403


def test_a_rebinding_websocket_is_refused(served: Served) -> None:
    # Host and Origin agree with each other, but name the attacker's domain.
    evil = f"evil.example:{served.port}"
    url = f"ws://127.0.0.1:{served.port}/ws/{TOKEN}"
    assert asyncio.run(handshake_status(url, f"http://{evil}", host=evil)) == 403


async def screen_text_until(url: str, origin: str, wanted: bytes, seconds: float) -> bytes:
    """The terminal output the server streams, escape codes removed, until `wanted` appears."""
    screen = b""
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(url, origin=origin, timeout=aiohttp.ClientWSTimeout(10)) as websocket,
    ):
        async with asyncio.timeout(seconds):
            async for message in websocket:
                if message.type == aiohttp.WSMsgType.BINARY:
                    screen += message.data
                    if wanted in ANSI_ESCAPE.sub(b"", screen):
                        break
    return ANSI_ESCAPE.sub(b"", screen)


def test_the_token_and_the_right_origin_reach_the_corpora_screen(served: Served) -> None:
    url = f"ws://127.0.0.1:{served.port}/ws/{TOKEN}?width=100&height=30"
    screen = asyncio.run(screen_text_until(url, served.base, b"Corpora", CORPORA_SECONDS))
    assert b"Corpora" in screen


# --- the rules, without a server -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bound", "location", "allowed"),
    [
        ("127.0.0.1", "127.0.0.1:8000", True),
        ("127.0.0.1", "localhost:8000", True),
        ("127.0.0.1", "LOCALHOST:8000", True),
        ("127.0.0.1", "[::1]:8000", True),
        ("::1", "[::1]:8000", True),
        ("127.0.0.1", "127.0.0.1:8001", False),  # another port is another server
        ("127.0.0.1", "127.0.0.1", False),  # no port means 80
        ("127.0.0.1", "evil.example:8000", False),
        ("127.0.0.1", "127.0.0.1:8000@evil.example", False),
        ("127.0.0.1", "127.0.0.1:8000/", False),
        ("127.0.0.1", "[::1:8000", False),
        ("127.0.0.1", "", False),
        ("192.168.1.5", "192.168.1.5:8000", True),
        ("192.168.1.5", "localhost:8000", False),  # not bound there
        ("0.0.0.0", "10.1.2.3:8000", True),  # an address typed as digits can't be rebound
        ("0.0.0.0", "localhost:8000", True),
        ("0.0.0.0", "evil.example:8000", False),
    ],
)
def test_the_host_must_name_this_server(bound: str, location: str, allowed: bool) -> None:
    assert AccessPolicy(bound, 8000, TOKEN).allows_netloc(location) is allowed


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("http://127.0.0.1:8000", True),
        ("http://localhost:8000", True),
        ("https://127.0.0.1:8000", False),  # not what this server serves
        ("http://127.0.0.1:8000/page", False),
        ("null", False),  # a sandboxed frame or a file:// page
        ("http://evil.example", False),
        (None, False),
    ],
)
def test_the_origin_must_be_this_servers_page(origin: str | None, allowed: bool) -> None:
    assert AccessPolicy("127.0.0.1", 8000, TOKEN).allows_origin(origin) is allowed


def test_on_port_80_the_host_may_leave_the_port_out() -> None:
    assert AccessPolicy("127.0.0.1", 80, TOKEN).allows_netloc("localhost")


def test_tokens_match_exactly_and_no_token_lets_everyone_in() -> None:
    policy = AccessPolicy("127.0.0.1", 8000, TOKEN)
    assert policy.token_matches(TOKEN)
    assert not policy.token_matches(TOKEN + "x")
    assert not policy.token_matches("")
    assert not policy.token_matches(None)
    assert not policy.token_matches("é" * 20)  # not ASCII: compared as bytes, refused, no TypeError
    assert AccessPolicy("127.0.0.1", 8000, None).token_matches(None)


def test_static_assets_need_no_token_but_the_right_host() -> None:
    policy = AccessPolicy("127.0.0.1", 8000, TOKEN)
    assert policy.refusal("127.0.0.1:8000", "static", None, None) is None
    assert policy.refusal("evil.example:8000", "static", None, None) is not None


# --- options refused before anything starts --------------------------------------------------------


def test_a_bracketed_host_exits_2_with_a_clear_message(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tui_composer", "--workspace", str(tmp_path), "serve", "--host", "[::]"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "'--host'" in result.stderr and "without brackets" in result.stderr
    assert "Traceback" not in result.stderr and "gaierror" not in result.stderr


@pytest.mark.parametrize(
    ("host", "says"),
    [
        ("nosuch.invalid", "not an address or a name this machine resolves"),
        ("127.0.0.1:8000", "Give the port with --port"),
        ("", "not an address or a name"),
    ],
)
def test_a_host_that_cannot_be_bound_is_refused(installed_host: PluginHost, host: str, says: str) -> None:
    result = CliRunner().invoke(cli, ["serve", "--host", host], obj=installed_host)
    assert result.exit_code == 2
    assert says in result.output


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--token", "short"], "at least 16"),
        (["--token", "has spaces in it, far too many"], "only letters, digits"),
        (["--token", TOKEN, "--no-token"], "contradict"),
    ],
)
def test_unusable_token_options_are_refused(installed_host: PluginHost, args: list[str], says: str) -> None:
    result = CliRunner().invoke(cli, ["serve", *args], obj=installed_host)
    assert result.exit_code == 2
    assert says in result.output
