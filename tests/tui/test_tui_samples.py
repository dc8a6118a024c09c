"""The Samples screen over samples on disk: listed per run (the CLI's too), numbered as their files, checked
row by row by the sampling worker (a real `python -m tui_composer.services.worker` process), which is restarted
when it dies. Reading progress before a run's first epoch is shown on Runs."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

from conftest import assert_tui_loaded_no_tensorflow, until, write_run
from textual.widgets import DataTable, ProgressBar, Select, Static

from tui_composer.services.studio import Studio
from tui_composer.tui.app import ComposerApp
from tui_composer.tui.messages import SamplerReplied
from tui_composer.tui.screens.samples import CHECKING, SamplesScreen

SIZE = (80, 24)
KESH = "X:1\nT:Kesh Jig\nM:6/8\nL:1/8\nK:G\nD|GAG GAB|ABA ABd|edd gdd|edB dBA|GAG GAB|ABA ABd|edd gdB|AGF G2:|\n"
OCEAN = "X:1\nT:Out On The Ocean\nM:6/8\nL:1/8\nK:G\nD|GED DED|GAB d2e|dBA GBd|egf gdB|GED DED|GAB d2e|AGE E2:|\n"
UNTITLED = "X:1\nM:4/4\nL:1/8\nK:D\nA|FA A2 BAFA|dfed BddB|FA A2 BAFA|dfed BAA:|\n"


def sampled_run(studio: Studio, name: str, tunes: dict[int, str]) -> Path:
    """A finished run whose samples/ holds NNN.abc files, as `tui-composer sample` leaves them."""
    folder = write_run(studio.workspace, name, state="finished", epoch=1, epochs=1)
    (folder / "model.keras").touch()
    for number, tune in tunes.items():
        (folder / "samples" / f"{number:03d}.abc").write_text(tune, encoding="utf-8")
    return folder


def cells(table: DataTable, column: int) -> list[str]:
    return [str(table.get_row_at(i)[column]) for i in range(table.row_count)]


def checked(table: DataTable) -> bool:
    return table.row_count > 0 and not any(v.startswith((CHECKING, "waiting")) for v in cells(table, 2))


async def test_samples_on_disk_are_listed_with_their_own_numbers(tui_studio: Studio) -> None:
    sampled_run(tui_studio, "jig-lstm", {5: KESH, 6: UNTITLED})
    app = ComposerApp(tui_studio)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f4")
        screen = app.screen
        assert isinstance(screen, SamplesScreen)
        table = screen.query_one("#samples", DataTable)
        await until(pilot, lambda: table.row_count == 2, what="the samples on disk")
        assert cells(table, 0) == ["005", "006"]  # the numbers of their files, not row counts
        assert cells(table, 1) == ["Kesh Jig", "sample 006"]
        table.focus()
        table.move_cursor(row=1)
        await pilot.press("c")
        assert app.clipboard == UNTITLED
        assert "sample 006" in [n.message for n in app._notifications][-1]
        await until(pilot, lambda: checked(table), 90, "the checks of both samples")
        assert all(v.startswith("plays") for v in cells(table, 2)), cells(table, 2)
    assert_tui_loaded_no_tensorflow()


async def test_choosing_another_run_lists_that_runs_samples(tui_studio: Studio) -> None:
    sampled_run(tui_studio, "a-jigs", {1: KESH})
    sampled_run(tui_studio, "b-reels", {1: OCEAN, 2: UNTITLED})
    app = ComposerApp(tui_studio)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f4")
        screen = app.screen
        table = screen.query_one("#samples", DataTable)
        select = screen.query_one("#sample-run", Select)
        select.value = "a-jigs"
        await until(pilot, lambda: cells(table, 1) == ["Kesh Jig"], what="a-jigs's sample")
        select.value = "b-reels"
        await until(pilot, lambda: cells(table, 1) == ["Out On The Ocean", "sample 002"], what="b-reels's samples")
        # The newest sample is shown, under the cursor.
        await until(pilot, lambda: "K:D" in str(screen.query_one("#sample-abc", Static).content))
        await until(pilot, lambda: table.cursor_row == 1, what="the cursor on the newest sample")
        select.value = "a-jigs"  # and back: never the other run's samples under this name
        await until(pilot, lambda: cells(table, 1) == ["Kesh Jig"], what="a-jigs's sample again")
        await until(pilot, lambda: checked(table), 90, "the check")


async def test_checks_arrive_row_by_row(tui_studio: Studio, monkeypatch: Any) -> None:
    sampled_run(tui_studio, "jig-lstm", {n: (KESH, OCEAN, UNTITLED)[n % 3] for n in range(1, 7)})
    seen: list[list[str]] = []
    handle = SamplesScreen.on_sampler_replied

    def recording(screen: SamplesScreen, message: SamplerReplied) -> None:
        handle(screen, message)
        if message.reply.get("kind") == "check":
            seen.append(cells(screen.query_one("#samples", DataTable), 2))

    monkeypatch.setattr(SamplesScreen, "on_sampler_replied", recording)
    app = ComposerApp(tui_studio)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f4")
        table = app.screen.query_one("#samples", DataTable)
        await until(pilot, lambda: checked(table), 90, "the checks")
    assert len(seen) == 6  # one message per sample, each as it finished
    first = seen[0]
    assert sum(v.startswith("plays") for v in first) == 1 and first.count(CHECKING) == 5, first


ROWS = 400


async def test_a_worker_that_dies_is_restarted_and_no_row_waits_for_it(tui_studio: Studio, monkeypatch: Any) -> None:
    sampled_run(tui_studio, "jig-lstm", {n: (KESH, OCEAN, UNTITLED)[n % 3] for n in range(1, ROWS + 1)})
    killed: list[int] = []
    handle = SamplesScreen.on_sampler_replied

    def killing(screen: SamplesScreen, message: SamplerReplied) -> None:
        # At the first verdict, as the out-of-memory killer would: the screen may take many replies in one go,
        # so a kill after the first verdict is drawn could come after the last (a quiet machine checks 150 in 2 s).
        if message.reply.get("kind") == "check" and not killed and screen.sampler.pid is not None:
            killed.append(screen.sampler.pid)
            os.kill(screen.sampler.pid, signal.SIGKILL)
        handle(screen, message)

    monkeypatch.setattr(SamplesScreen, "on_sampler_replied", killing)
    # Notifications expire after 5 s, and a loaded machine can take longer to draw 400 verdicts: keep them.
    notified: list[str] = []
    notify = ComposerApp.notify

    def noting(app: ComposerApp, message: str, *args: Any, **kwargs: Any) -> None:
        notified.append(str(message))
        notify(app, message, *args, **kwargs)

    monkeypatch.setattr(ComposerApp, "notify", noting)
    app = ComposerApp(tui_studio)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f4")
        screen = app.screen
        assert isinstance(screen, SamplesScreen)
        table = screen.query_one("#samples", DataTable)
        await until(pilot, lambda: bool(killed), 90, "the first check")
        (pid,) = killed
        await until(pilot, lambda: checked(table), 30, "every row to say what became of its check")
        stopped = [v for v in cells(table, 2) if v.startswith("not checked")]
        assert stopped and "the sampling process stopped (exit code -9)" in stopped[0]
        assert "restarted" in " ".join(notified)
        await until(pilot, lambda: screen.sampler.pid not in (None, pid), 10, "a new worker")
        # The new worker checks the rows again when they are listed again.
        screen.query_one("#sample-run", Select).value = Select.NULL
        await pilot.pause()
        screen.query_one("#sample-run", Select).value = "jig-lstm"
        await until(pilot, lambda: table.row_count == ROWS and checked(table), 120, "the checks again")
        assert all(v.startswith("plays") for v in cells(table, 2))


async def test_runs_shows_reading_progress_before_the_first_epoch(tui_studio: Studio) -> None:
    folder = write_run(tui_studio.workspace, "ryans-big", state="starting", epoch=0, epochs=5)
    status = json.loads((folder / "status.json").read_text())
    # What the trainer writes (at most once a second) while it reads the corpus; its process is alive.
    status |= {"pid": os.getpid(), "heartbeat_unix": time.time()}
    status |= {"pieces_phase": "reading", "pieces_done": 192, "pieces_total": 2009}
    (folder / "status.json").write_text(json.dumps(status))
    app = ComposerApp(tui_studio)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f3")
        title = app.screen.query_one("#run-title", Static)
        await until(pilot, lambda: "reading 192/2009 pieces" in str(title.content), what="the reading progress")
        assert "ryans-big  starting" in str(title.content)
        bar = app.screen.query_one("#run-progress", ProgressBar)
        assert abs((bar.progress or 0) - 192 / 2009) < 1e-6


async def test_coming_back_to_samples_keeps_the_chosen_sample(tui_studio: Studio) -> None:
    sampled_run(tui_studio, "jig-lstm", {1: KESH, 2: OCEAN, 3: UNTITLED})
    app = ComposerApp(tui_studio)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f4")
        screen = app.screen
        table = screen.query_one("#samples", DataTable)
        await until(pilot, lambda: table.row_count == 3 and table.cursor_row == 2, what="the newest sample chosen")
        table.focus()
        await pilot.press("up")
        await until(pilot, lambda: "Out On The Ocean" in str(screen.query_one("#sample-abc", Static).content))
        await pilot.press("f3", "f4")  # Samples looks for new files again when it comes back
        await pilot.pause(1.0)
        assert app.screen is screen and table.cursor_row == 1 and table.row_count == 3
        assert "Out On The Ocean" in str(screen.query_one("#sample-abc", Static).content)
        await until(pilot, lambda: checked(table), 90, "the checks")
