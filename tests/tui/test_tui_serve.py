"""`tui-composer serve`: the TUI in a browser through textual-serve, on localhost unless told otherwise."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tui_composer.commands.serve import is_local


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


def test_serve_answers_on_localhost_with_the_app_page(tmp_path: Path) -> None:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "tui_composer", "--workspace", str(tmp_path), "serve", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ},
    )
    try:
        page = ""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                    page = response.read().decode("utf-8")
                break
            except OSError:
                time.sleep(0.2)
        assert "tui-composer" in page  # the page's title
        assert f"ws://127.0.0.1:{port}/ws" in page  # the websocket the browser's terminal connects to
    finally:
        server.terminate()
        _, stderr = server.communicate(timeout=10)
    assert b"WARNING" not in stderr  # bound to localhost: no warning
