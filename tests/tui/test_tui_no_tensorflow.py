"""The TUI process never imports TensorFlow, Keras, music21, or the training and sampling code: every screen
driven in a fresh interpreter (the import-linter contract in pyproject.toml checks the direct imports)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

DRIVE_EVERY_SCREEN = """
import asyncio, sys
from tui_composer.services.studio import Studio
from tui_composer.tui.app import ComposerApp
from tui_composer.services.workspace import Workspace

async def main():
    app = ComposerApp(Studio(Workspace(sys.argv[1])))
    async with app.run_test(size=(80, 24)) as pilot:
        for key in ("f1", "down", "p", "p", "f2", "ctrl+r", "f3", "f4", "f5", "ctrl+p", "escape", "question_mark"):
            await pilot.press(key)
            await pilot.pause()
    heavy = ("tensorflow", "keras", "music21", "tui_composer.services.training", "tui_composer.services.sampling")
    print("HEAVY", sorted(m for m in heavy if m in sys.modules))

asyncio.run(main())
"""


def test_driving_every_screen_imports_no_tensorflow(tmp_path: Path) -> None:
    env = {**os.environ, "TUI_COMPOSER_HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", DRIVE_EVERY_SCREEN, str(tmp_path)], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "HEAVY []" in result.stdout
