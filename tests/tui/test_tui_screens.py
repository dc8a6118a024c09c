"""Each screen's main path, driven with Pilot at 80x24 on a tmp workspace."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import assert_tui_loaded_no_tensorflow, loss_metrics, until, write_music_folder, write_run
from textual.widgets import DataTable, Input, Select, Static

from tui_composer.services.launcher import train_arguments
from tui_composer.tui.app import ComposerApp
from tui_composer.tui.screens.corpora import CorporaScreen
from tui_composer.tui.screens.new_run import NewRunScreen
from tui_composer.tui.screens.runs import RunsScreen
from tui_composer.tui.widgets.loss_chart import LossChart
from tui_composer.tui.widgets.piano_roll import PianoRoll

SIZE = (80, 24)


def cells(table: DataTable, column: int = 0) -> list[str]:
    return [str(table.get_row_at(i)[column]) for i in range(table.row_count)]


async def test_corpora_lists_counts_skipped_and_previews_a_piece(tui_studio) -> None:
    app = ComposerApp(tui_studio)
    async with app.run_test(size=SIZE) as pilot:
        assert isinstance(app.screen, CorporaScreen)
        await app.workers.wait_for_complete()
        await pilot.pause()
        corpora = app.screen.query_one("#corpora", DataTable)
        assert cells(corpora) == ["reels", "jigs"]
        assert cells(corpora, 2) == ["3", "2"]  # piece counts, counted in a worker
        assert cells(corpora, 3) == ["0", "2"]  # jigs: the tune without notes and the text file
        await pilot.press("down")  # to jigs
        skipped = app.screen.query_one("#skipped", DataTable)
        await until(pilot, lambda: skipped.row_count == 2, what="the skipped items")
        reasons = dict(zip(cells(skipped, 0), cells(skipped, 1), strict=True))
        assert "no notes" in reasons["empty-tune.abc#1"]
        assert "not a music file" in reasons["notes.txt"]
        pieces = app.screen.query_one("#pieces", DataTable)
        assert cells(pieces, 1) == ["Kesh Jig", "Out On The Ocean"]
        pieces.focus()
        await pilot.press("down")  # Out On The Ocean: ABC at once, piano roll after parsing
        abc = str(app.screen.query_one("#abc", Static).content)
        assert abc.startswith("X:2\nT:Out On The Ocean")
        roll = app.screen.query_one("#roll", PianoRoll)
        # music21 parses in the notes helper process (its first start imports music21).
        await until(pilot, lambda: bool(roll.notes), 30, "the piano roll")
        # The tune's notes: lowest D4 (62), highest g5 (79); every note starts within 8 bars of 6/8.
        assert min(n.pitch for n in roll.notes) == 62
        assert max(n.pitch for n in roll.notes) == 79
        assert max(n.end for n in roll.notes) <= 8 * 3 + 0.5 + 1e-9
        drawn = roll.render()
        assert "█" in drawn.plain or "▀" in drawn.plain or "▄" in drawn.plain
        assert "C5" in drawn.plain  # octave label
    assert_tui_loaded_no_tensorflow()


async def test_import_a_folder_from_the_dialog(tui_studio, tmp_path: Path) -> None:
    folder = write_music_folder(tmp_path / "my tunes")
    app = ComposerApp(tui_studio)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("i")
        path_input = app.screen.query_one("#import-path", Input)
        path_input.value = str(folder)
        app.screen.query_one("#import-name", Input).value = "mine"
        await pilot.press("enter")
        await pilot.pause()
        # The import runs `tui-composer corpus import` in a subprocess; wait for its message.
        await app.workers.wait_for_complete()
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        corpora = app.screen.query_one("#corpora", DataTable)
        assert "mine" in cells(corpora)
        row = cells(corpora).index("mine")
        assert cells(corpora, 2)[row] == "2" and cells(corpora, 3)[row] == "2"
    assert tui_studio.catalogue.get("mine").licence == "as the imported files"


async def test_import_dialog_refuses_a_missing_path(tui_studio) -> None:
    app = ComposerApp(tui_studio)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("i")
        app.screen.query_one("#import-path", Input).value = "/no/such/folder"
        await pilot.press("enter")
        error = str(app.screen.query_one("#import-error", Static).content)
        assert "/no/such/folder does not exist" in error
        await pilot.press("escape")
        assert isinstance(app.screen, CorporaScreen)


async def test_new_run_form_validates_as_you_type(tui_studio) -> None:
    app = ComposerApp(tui_studio)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f2")
        screen = app.screen
        assert isinstance(screen, NewRunScreen)
        await pilot.pause()
        assert screen.query_one("#encoder", Select).value == "letters"
        assert screen.query_one("#model", Select).value == "tiny-rnn"
        units = screen.query_one("#param-model-units", Input)
        units.focus()
        units.value = ""
        await pilot.press("9", "9", "9", "9", "9")
        await pilot.pause()
        help_label = screen.query_one("#param-model-units-help", Static)
        assert "units='99999' is out of range: expected an integer in [1, 4096]" in str(help_label.content)
        assert help_label.has_class("-invalid")
        await pilot.press("ctrl+r")  # refused: no corpus chosen, units out of range
        problem = str(screen.query_one("#new-run-problem", Static).content)
        assert "choose a corpus" in problem and "units='99999'" in problem
        assert not tui_studio.workspace.runs_dir.exists() or not any(tui_studio.workspace.runs_dir.iterdir())
        assert app.focused is screen.query_one("#corpus", Select)  # the first field at fault
        units.focus()
        await pilot.press("end", "backspace", "backspace", "backspace", "backspace")
        await pilot.pause()
        assert not help_label.has_class("-invalid")
        screen.query_one("#corpus", Select).value = "jigs"
        screen.query_one("#param-model-cell", Select).value = "gru"
        request, problems = screen.request()
        assert problems == []
        assert request is not None
        assert train_arguments(request)[:7] == [
            "train",
            "--corpus",
            "jigs",
            "--encoder",
            "letters",
            "--model",
            "tiny-rnn",
        ]
        # Only what differs from the defaults goes on the command line.
        assert dict(request.model_params) == {"units": "9", "cell": "gru"}


async def test_runs_shows_states_chart_and_progress(tui_studio) -> None:
    ws = tui_studio.workspace
    write_run(ws, "done", state="finished", epoch=3, epochs=3, metrics=loss_metrics(3, 10), best=1.2)
    write_run(ws, "cut", state="training", epoch=1, epochs=4, metrics=loss_metrics(1, 10)[:5])
    app = ComposerApp(tui_studio)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f3")
        screen = app.screen
        assert isinstance(screen, RunsScreen)
        for _ in range(40):
            await pilot.pause(0.05)
            if screen.rows:
                break
        table = screen.query_one("#runs", DataTable)
        states = dict(zip(cells(table, 0), cells(table, 1), strict=True))
        # A run whose process is gone is shown as interrupted, not training.
        assert states == {"cut": "interrupted", "done": "finished"}
        await pilot.press("down")  # select "done"
        for _ in range(40):
            await pilot.pause(0.05)
            if len(screen.query_one(LossChart).valid) == 3:
                break
        chart = screen.query_one(LossChart)
        assert len(chart.train) == 30 and chart.epochs == 3
        assert [x for x, _ in chart.valid] == [1.0, 2.0, 3.0]
        assert chart.train[0][1] > chart.train[-1][1]
        drawn = chart.render().plain
        assert "━ train" in drawn and "epoch 3" in drawn
        assert any(0x2800 < ord(c) <= 0x28FF for c in drawn)  # braille dots
        title = str(screen.query_one("#run-title", Static).content)
        assert title.startswith("done  finished  3 epochs")
        assert "best val" in title
        await pilot.press("up")  # "cut": interrupted, with resume offered
        for _ in range(40):
            await pilot.pause(0.05)
            if "resume" in str(screen.query_one("#run-log", Static).content):
                break
        assert "press r to resume" in str(screen.query_one("#run-log", Static).content)


async def test_delete_asks_for_confirmation(tui_studio) -> None:
    write_run(tui_studio.workspace, "old", state="finished", epoch=1, epochs=1, metrics=loss_metrics(1, 2))
    app = ComposerApp(tui_studio)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f3")
        for _ in range(40):
            await pilot.pause(0.05)
            if app.screen.rows:
                break
        await pilot.press("d")
        await pilot.press("n")  # cancelled: still there
        assert (tui_studio.workspace.runs_dir / "old").is_dir()
        await pilot.press("d")
        await pilot.press("y")
        await pilot.pause()
        assert not (tui_studio.workspace.runs_dir / "old").exists()


async def test_plugins_lists_every_spec_and_failed_plugins(tui_studio) -> None:
    tui_studio.host.plugins  # noqa: B018
    app = ComposerApp(tui_studio)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f5")
        table = app.screen.query_one("#plugins", DataTable)
        rows = {(r[0], r[1]): r for r in ([str(c) for c in table.get_row_at(i)] for i in range(table.row_count))}
        assert rows[("encoder", "letters")][2:5] == ["tui-fixture", "tui-fixture", ""]
        assert rows[("model", "tiny-rnn")][5] == "ok"
        await pilot.press("down")
        detail = str(app.screen.query_one("#plugin-detail", Static).content)
        assert detail.startswith("model tiny-rnn — a recurrent network for layout tests")
        assert "units = 64: cells per layer (an integer in [1, 4096])" in detail


async def test_command_palette_offers_the_main_actions(tui_studio) -> None:
    app = ComposerApp(tui_studio)
    async with app.run_test(size=SIZE) as pilot:
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for title in ("Corpora screen", "New run screen", "Runs screen", "Samples screen", "Plugins screen"):
            assert title in titles
        assert "Import a corpus" in titles
        await pilot.press("f3")
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert {"Stop run", "Resume run", "Delete run"} <= set(titles)
        await pilot.press("f4")
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert {"Generate samples", "Copy sample ABC", "Export sample"} <= set(titles)


@pytest.mark.parametrize("key", ["f1", "f2", "f3", "f4", "f5"])
async def test_every_screen_fits_80x24_without_tensorflow(tui_studio, key: str) -> None:
    app = ComposerApp(tui_studio)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press(key)
        await pilot.pause()
        assert app.screen.size == (80, 24)
    assert_tui_loaded_no_tensorflow()


async def test_built_screens_are_kept_out_of_the_collectors_full_passes(tui_studio) -> None:
    # A full collection scanned every widget of every screen: 0.57 s under load, a frozen screen switch.
    import gc
    import itertools

    gc.unfreeze()
    app = ComposerApp(tui_studio)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        frozen = [gc.get_freeze_count()]
        for key in ["f2", "f3", "f4", "f5"]:
            await pilot.press(key)
            await pilot.pause()
            frozen.append(gc.get_freeze_count())
        assert frozen[0] > 0  # Corpora, built at start
        assert all(after > before for before, after in itertools.pairwise(frozen))  # each new screen
    assert gc.get_freeze_count() == 0  # the app gone, what it froze is collectable again
