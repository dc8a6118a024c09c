"""`tui-composer serve` in a real browser: headless Chromium (Debian's `chromium` and `chromium-driver`,
driven by selenium) opens the printed URL with its token, sees the Corpora screen, switches to Samples and
exports: the .abc and .mid arrive in the browser's download folder (Textual's App.deliver_binary).

Skipped, saying what to install, where Chromium, its driver or selenium is missing.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path
from typing import Any

import mido
import pytest
from conftest import write_run
from test_tui_serve import start_serve, stop

from tui_composer.services.workspace import Workspace

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
INSTALL = "apt-get install -y chromium chromium-driver; .venv/bin/pip install selenium"

try:
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
except ImportError:  # the dev extra brings it
    webdriver = None  # type: ignore[assignment]

pytestmark = [
    pytest.mark.skipif(webdriver is None, reason=f"selenium is not installed ({INSTALL})"),
    pytest.mark.skipif(CHROMIUM is None or DRIVER is None, reason=f"no chromium and chromedriver ({INSTALL})"),
]

# Before the page's own script: keep the text of what the server sends the terminal. xterm.js draws on a
# canvas, so the screen's words are in this stream, not in the DOM.
RECORD_TERMINAL = """
window.__screen = "";
const Native = window.WebSocket;
window.WebSocket = function (...args) {
  const socket = new Native(...args);
  const decoder = new TextDecoder();
  socket.addEventListener("message", (event) => {
    if (typeof event.data !== "string") {
      window.__screen = (window.__screen + decoder.decode(new Uint8Array(event.data))).slice(-400000);
    }
  });
  return socket;
};
window.WebSocket.prototype = Native.prototype;
Object.assign(window.WebSocket, Native);
"""
TUNE = "X:1\nT:Browser Jig\nM:6/8\nL:1/8\nK:G\nGAB cBA|BGE E2D|GAB cde|dBG G3:|\n"


def write_midi(path: Path) -> None:
    track = mido.MidiTrack()
    for pitch in (67, 69, 71):
        track += [
            mido.Message("note_on", note=pitch, velocity=64, time=0),
            mido.Message("note_off", note=pitch, time=240),
        ]
    midi = mido.MidiFile()
    midi.tracks.append(track)
    midi.save(path)


def screen_text(driver: Any) -> str:
    # Escape sequences split words at colour changes; the words themselves come through whole.
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", str(driver.execute_script("return window.__screen;")))


def wait_for(condition: Any, seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out after {seconds:g} s waiting for {what}")


def test_export_in_a_browser_arrives_as_downloads(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path / "ws").ensure()
    folder = write_run(workspace, "browser-run", state="finished", epoch=1, epochs=1)
    (folder / "model.keras").touch()  # listed on Samples; its samples are already on disk
    (folder / "samples" / "001.abc").write_text(TUNE, encoding="utf-8")
    write_midi(folder / "samples" / "001.mid")
    downloads = tmp_path / "downloads"
    downloads.mkdir()

    server, port, stdout, _ = start_serve(workspace.root)
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument("--window-size=1280,800")
    options.add_experimental_option(
        "prefs",
        {
            "download.default_directory": str(downloads),
            "download.prompt_for_download": False,
            "profile.default_content_setting_values.automatic_downloads": 1,  # one per file, no question
        },
    )
    driver = None
    try:
        url = wait_for(
            lambda: re.search(rf"http://127\.0\.0\.1:{port}/\?token=\S+", stdout.read_text()), 30, "the printed URL"
        ).group(0)
        driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=DRIVER))
        driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": RECORD_TERMINAL})
        driver.get(url)
        wait_for(lambda: "Corpora" in screen_text(driver) and "licence" in screen_text(driver), 60, "Corpora")

        keyboard = driver.find_element(By.CSS_SELECTOR, ".xterm-helper-textarea")
        driver.execute_script("window.__screen = '';")
        keyboard.send_keys(Keys.F4)
        wait_for(lambda: "Browser Jig" in screen_text(driver), 60, "the Samples screen with the sample on disk")

        keyboard.send_keys(Keys.CONTROL, "p")  # the palette: its export works whatever has the focus
        wait_for(lambda: "Search for commands" in screen_text(driver), 20, "the command palette")
        keyboard.send_keys("Export all samples")
        time.sleep(0.5)
        keyboard.send_keys(Keys.ENTER)

        def arrived() -> bool:
            names = {p.name for p in downloads.iterdir()}
            return {"001.abc", "001.mid"} <= names and not any(n.endswith(".crdownload") for n in names)

        wait_for(arrived, 180, "001.abc and 001.mid in the browser's downloads")  # (a loaded machine took over 60 s)
        assert (downloads / "001.abc").read_text(encoding="utf-8") == TUNE
        assert (downloads / "001.mid").read_bytes() == (folder / "samples" / "001.mid").read_bytes()
    finally:
        if driver is not None:
            driver.quit()
        stop(server)
