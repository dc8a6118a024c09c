"""The import dialog's progress: `corpus import` says `parsing N/M pieces` on stderr as it parses, and the
TUI shows it in a dialog that closes when the corpus is in (esc hides it earlier; the import goes on)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from conftest import env_for, until, write_music_folder
from textual.widgets import DataTable, Input

from tui_composer.services.studio import Studio
from tui_composer.tui.app import ComposerApp
from tui_composer.tui.screens.import_progress import ImportProgressDialog

SIZE = (80, 24)


def test_corpus_import_says_how_far_it_has_parsed(tui_studio: Studio, tmp_path: Path) -> None:
    folder = write_music_folder(tmp_path / "tunes")
    result = subprocess.run(
        [sys.executable, "-m", "tui_composer", "corpus", "import", str(folder), "--name", "mine"],
        capture_output=True,
        text=True,
        env=env_for(tui_studio.workspace),
        check=True,
    )
    lines = result.stderr.splitlines()
    # Three music files, one tune each (the fourth file isn't music): the first and last line always come.
    assert lines[0] == "parsing 0/3 pieces" and lines[-1] == "parsing 3/3 pieces", lines
    assert "imported 2 pieces" in result.stdout  # the report itself stays on stdout


async def test_the_import_dialog_shows_progress_and_closes_when_done(
    tui_studio: Studio, tmp_path: Path, monkeypatch: Any
) -> None:
    shown: list[tuple[int, int]] = []
    show = ImportProgressDialog.show

    def recording(dialog: ImportProgressDialog, done: int, total: int) -> None:
        shown.append((done, total))
        show(dialog, done, total)

    monkeypatch.setattr(ImportProgressDialog, "show", recording)
    folder = write_music_folder(tmp_path / "my tunes")
    app = ComposerApp(tui_studio)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("i")
        app.screen.query_one("#import-path", Input).value = str(folder)
        app.screen.query_one("#import-name", Input).value = "mine"
        await pilot.press("enter")
        # The dialog, or (a quick import on a loaded run: it may come and go between two looks) what it showed.
        dialog_or_shown = lambda: isinstance(app.screen, ImportProgressDialog) or bool(shown)  # noqa: E731
        await until(pilot, dialog_or_shown, 30, "the progress dialog")
        await until(pilot, lambda: not isinstance(app.screen, ImportProgressDialog), 60, "the import to finish")
        corpora = app.screen.query_one("#corpora", DataTable)
        await until(
            pilot, lambda: any(str(corpora.get_row_at(i)[0]).startswith("mine") for i in range(corpora.row_count))
        )
    assert shown and shown[-1] == (3, 3), shown
