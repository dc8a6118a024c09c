"""`tui-composer serve`: the TUI in a browser through textual-serve, on localhost, behind a token.

The attacks on it (foreign pages, no token, DNS rebinding) are in tests/hostile/test_serve_auth.py.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tui_composer.cli.serve import is_local


@pytest.mark.parametrize(
    ("host", "local"),
    [("127.0.0.1", True), ("localhost", True), ("::1", True), ("0.0.0.0", False), ("192.168.1.5", False)],
)
def test_only_loopback_counts_as_local(host: str, local: bool) -> None:
    assert is_local(host) is local


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_serve(workspace: Path, *args: str) -> tuple[subprocess.Popen[bytes], int, Path, Path]:
    """`tui-composer serve` in a subprocess, output to files (a full pipe would block the server)."""
    port = free_port()
    stdout, stderr = workspace / "stdout.txt", workspace / "stderr.txt"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        server = subprocess.Popen(
            [sys.executable, "-m", "tui_composer", "--workspace", str(workspace), "serve", "--port", str(port), *args],
            stdout=out,
            stderr=err,
            env={k: v for k, v in os.environ.items() if k != "TUI_COMPOSER_TOKEN"},
        )
    return server, port, stdout, stderr


def fetch_when_up(url: str, seconds: float = 20) -> tuple[int, str]:
    """The status and body of `url` once the server answers (a refusal is an answer too)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status, response.read().decode("utf-8")
        except urllib.error.HTTPError as refusal:
            return refusal.code, refusal.read().decode("utf-8")
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"no answer from {url} within {seconds}s")


def stop(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    server.wait(timeout=10)


def test_serve_prints_a_url_with_a_random_token_and_the_page_answers_to_it(tmp_path: Path) -> None:
    server, port, stdout, stderr = start_serve(tmp_path)
    try:
        assert fetch_when_up(f"http://127.0.0.1:{port}/")[0] == 403  # up, and closed without the token
        printed = re.search(rf"http://127\.0\.0\.1:{port}/\?token=([A-Za-z0-9_-]+)", stdout.read_text())
        assert printed is not None, stdout.read_text()
        token = printed.group(1)
        assert len(token) >= 40  # secrets.token_urlsafe(32)
        status, page = fetch_when_up(printed.group(0))
        assert status == 200
        assert "tui-composer" in page  # the page's title
        # The websocket the browser's terminal connects to carries the token on.
        assert f"ws://127.0.0.1:{port}/ws/{token}" in page
    finally:
        stop(server)
    assert "WARNING" not in stderr.read_text()  # bound to localhost, with a token: no warning
    # The token is printed once, in the URL; the access log shows <token> instead.
    assert stdout.read_text().count(token) == 1
    assert "/?token=<token>" in stdout.read_text()


def test_no_token_opens_the_page_to_anyone_and_says_so(tmp_path: Path) -> None:
    server, port, stdout, stderr = start_serve(tmp_path, "--no-token")
    try:
        status, page = fetch_when_up(f"http://127.0.0.1:{port}/")
        assert status == 200
        assert f'ws://127.0.0.1:{port}/ws"' in page
    finally:
        stop(server)
    assert "WARNING: --no-token" in stderr.read_text()
    assert "token=" not in stdout.read_text()


def test_a_busy_port_is_named_with_what_to_do(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "tui_composer", "--workspace", str(tmp_path), "serve", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert f"can't listen on 127.0.0.1:{port}: port {port} is in use" in result.stderr
    assert "Traceback" not in result.stderr
