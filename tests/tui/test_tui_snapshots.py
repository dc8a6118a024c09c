"""Every screen at 80x24 with fixed content (update with `pytest tests/tui --snapshot-update`)."""

from __future__ import annotations

import contextlib
from pathlib import Path

from conftest import loss_metrics, write_run
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Select, Static
from textual.worker import WorkerCancelled

from tui_composer.tui.app import ComposerApp
from tui_composer.tui.widgets.piano_roll import PianoRoll

SIZE = (80, 24)


async def settle(pilot: Pilot, until=lambda: True, tries: int = 100) -> None:
    """Wait for workers and polls, then stop every cursor blinking so the picture is stable."""
    for _ in range(tries):
        with contextlib.suppress(WorkerCancelled):  # a newer preview replaced an older one
            await pilot.app.workers.wait_for_complete()
        await pilot.pause(0.05)
        if until():
            break
    for widget in pilot.app.screen.query(Input):
        widget.cursor_blink = False
    await pilot.pause()


def test_corpora_screen(snap_compare, tui_studio) -> None:
    async def run_before(pilot: Pilot) -> None:
        await settle(pilot)
        await pilot.press("down")
        await settle(pilot)
        pieces = pilot.app.screen.query_one("#pieces", DataTable)
        await settle(pilot, lambda: pieces.row_count == 2)  # the pieces are listed by a worker
        pieces.focus()
        await pilot.press("down")
        title = pilot.app.screen.query_one("#preview-title", Static)
        roll = pilot.app.screen.query_one("#roll", PianoRoll)
        await settle(pilot, lambda: "Out On The Ocean" in str(title.render()) and bool(roll.notes))

    assert snap_compare(ComposerApp(tui_studio), terminal_size=SIZE, run_before=run_before)


def test_import_dialog(snap_compare, tui_studio) -> None:
    async def run_before(pilot: Pilot) -> None:
        await settle(pilot)
        await pilot.press("i")
        pilot.app.screen.query_one("#import-path", Input).value = "/music/folk"
        await settle(pilot)

    assert snap_compare(ComposerApp(tui_studio), terminal_size=SIZE, run_before=run_before)


def test_new_run_screen(snap_compare, tui_studio) -> None:
    async def run_before(pilot: Pilot) -> None:
        await pilot.press("f2")
        await settle(pilot)
        pilot.app.screen.query_one("#corpus", Select).value = "jigs"
        pilot.app.screen.query_one("#run-name", Input).value = "first"
        units = pilot.app.screen.query_one("#param-model-units", Input)
        units.value = "0"  # invalid: the error replaces the help text
        await settle(pilot)

    assert snap_compare(ComposerApp(tui_studio), terminal_size=SIZE, run_before=run_before)


def test_runs_screen(snap_compare, tui_studio) -> None:
    ws = tui_studio.workspace
    write_run(ws, "jig-lstm", state="finished", epoch=4, epochs=4, metrics=loss_metrics(4, 12), best=1.6181)
    write_run(ws, "reel-gru", state="training", epoch=2, epochs=5, metrics=loss_metrics(2, 12)[:20])
    write_run(ws, "broken", state="failed", epoch=0, epochs=3, error="corpus 'gone' does not exist")

    async def run_before(pilot: Pilot) -> None:
        await pilot.press("f3")
        await settle(pilot, lambda: len(pilot.app.screen.rows) == 3)
        await pilot.press("down")
        await settle(pilot, lambda: "jig-lstm  finished" in str(pilot.app.screen.query_one("#run-title").content))

    assert snap_compare(ComposerApp(tui_studio), terminal_size=SIZE, run_before=run_before)


SAMPLE_TUNES = {
    "001": "X:1\nT:Sample 1\nM:6/8\nL:1/8\nK:G\nGAB cBA|BGE E2D|GAB cde|dBG G3:|\n",
    "002": "X:2\nT:Sample 2\nM:6/8\nL:1/8\nK:G\nDGG BGG|ABA AGE|DGG BGB|dBA G3:|\n",
}


def test_samples_screen(snap_compare, tui_studio) -> None:
    folder = write_run(
        tui_studio.workspace, "jig-lstm", state="finished", epoch=4, epochs=4, metrics=loss_metrics(4, 3)
    )
    (folder / "model.keras").touch()  # listed as sampleable; the sampling itself is in test_tui_training
    for name, tune in SAMPLE_TUNES.items():  # as `tui-composer sample` leaves them (without the MIDI)
        (folder / "samples" / f"{name}.abc").write_text(tune)

    async def run_before(pilot: Pilot) -> None:
        await pilot.press("f4")
        table = pilot.app.screen.query_one("#samples", DataTable)
        # The samples on disk are listed, then checked by the sampling worker (a real subprocess).
        await settle(
            pilot,
            lambda: (
                table.row_count == 2
                and bool(pilot.app.screen.query_one("#sample-roll", PianoRoll).notes)
                and not any(str(table.get_row_at(i)[2]).startswith("checking") for i in range(table.row_count))
            ),
            tries=600,
        )

    assert snap_compare(ComposerApp(tui_studio), terminal_size=SIZE, run_before=run_before)


def test_plugins_screen(snap_compare, tui_studio, tmp_path: Path) -> None:
    async def run_before(pilot: Pilot) -> None:
        await pilot.press("f5")
        await settle(pilot)

    assert snap_compare(ComposerApp(tui_studio), terminal_size=SIZE, run_before=run_before)
