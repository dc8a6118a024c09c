"""The TUI for daily use (issue 15): keys typed fast, errors where they are seen, help, palette from anywhere,
filter, sort, the log viewer, a new run from an old one, and columns that fit 80 columns or grow.

Driven with Pilot at 80x24 on a tmp workspace, as tests/tui/test_tui_screens.py.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import tui_fixture_plugin
from conftest import loss_metrics, until, write_run
from textual import events
from textual.app import App, ComposeResult
from textual.command import CommandList, CommandPalette
from textual.widgets import DataTable, Input, Log, ProgressBar, Select, Static
from textual.widgets._help_panel import HelpPanel
from textual.widgets._toast import Toast

from tui_composer.plugin.host import PluginHost
from tui_composer.plugin.params import Param
from tui_composer.services.jobs import TrainingRequest
from tui_composer.services.launcher import train_arguments
from tui_composer.services.runs import RunStore
from tui_composer.services.studio import Studio
from tui_composer.services.workspace import Workspace
from tui_composer.tui.app import ComposerApp
from tui_composer.tui.screens.corpora import CorporaScreen
from tui_composer.tui.screens.help import HelpScreen
from tui_composer.tui.screens.new_run import NewRunScreen
from tui_composer.tui.screens.run_log import RunLogScreen
from tui_composer.tui.screens.runs import RunsScreen
from tui_composer.tui.widgets.loss_chart import LossChart
from tui_composer.tui.widgets.param_form import ParamForm
from tui_composer.tui.widgets.row_table import RowTable

SIZE = (80, 24)

# The palette offers every main action from every screen (issue 15, deliver 4).
MAIN_ACTIONS = {
    "Corpora screen",
    "New run screen",
    "Runs screen",
    "Samples screen",
    "Plugins screen",
    "Import a corpus",
    "Start training",
    "Stop run",
    "Resume run",
    "Delete run",
    "Generate samples",
    "Copy sample ABC",
    "Export sample",
    "Run log",
    "New run from this one",
    "Help",
}


def cells(table: DataTable, column: int = 0) -> list[str]:
    return [str(table.get_row_at(i)[column]) for i in range(table.row_count)]


def toasts(app: App) -> list[str]:
    """The notifications drawn on screen (run_test(notifications=True)), each wholly in view."""
    shown = [toast for toast in app.screen.query(Toast) if app.screen.region.contains_region(toast.region)]
    return [str(toast._notification.message) for toast in shown]


async def runs_listed(pilot: Any, count: int) -> RunsScreen:
    await pilot.press("f3")
    screen = pilot.app.screen
    assert isinstance(screen, RunsScreen)
    await until(pilot, lambda: len(screen.table.records) == count, what=f"{count} runs in the table")
    return screen


# --- problem 1: a key right after Tab ----------------------------------------------------------------


async def test_a_digit_typed_right_after_tab_goes_to_the_next_field(tui_studio: Studio) -> None:
    app = ComposerApp(tui_studio)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f2")
        screen = app.screen
        units = screen.query_one("#param-model-units", Input)
        layers = screen.query_one("#param-model-layers", Input)
        units.focus()
        await pilot.pause()
        # As a terminal delivers `Tab 9` typed quickly: both keys queued before either is handled.
        app.post_message(events.Key("tab", None))
        app.post_message(events.Key("9", "9"))
        await pilot.pause()
        await pilot.pause()
        assert units.value == "64"  # was `649`: the 9 landed in the field being left
        assert app.focused is layers
        assert layers.value == "9"  # the whole value is selected on focus, so the 9 replaces it


async def test_keys_typed_right_after_an_f_key_go_to_the_new_screen(tui_studio: Studio) -> None:
    app = ComposerApp(tui_studio)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f2")
        name = app.screen.query_one("#run-name", Input)
        name.focus()
        await pilot.pause()
        app.post_message(events.Key("f3", None))
        app.post_message(events.Key("x", "x"))
        await pilot.pause()
        await pilot.pause()
        assert isinstance(app.screen, RunsScreen)
        assert name.value == ""


# --- problem 2: the start error ----------------------------------------------------------------------


async def test_a_refused_start_is_said_in_view_and_focuses_the_field_at_fault(tui_studio: Studio) -> None:
    app = ComposerApp(tui_studio)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await pilot.press("f2")
        screen = app.screen
        assert isinstance(screen, NewRunScreen)
        screen.query_one("#run-name", Input).focus()
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert any("Can't start: choose a corpus" in text for text in toasts(app))
        corpus = screen.query_one("#corpus", Select)
        assert app.focused is corpus
        # A value refused far down the form: focused and scrolled into view.
        corpus.value = "jigs"
        dropout = screen.query_one("#param-model-dropout", Input)
        dropout.value = "2.5"
        await pilot.pause()
        await pilot.press("ctrl+r")
        await pilot.pause()
        await pilot.pause()
        assert app.focused is dropout
        form = screen.query_one("#new-run")
        assert form.region.contains_region(dropout.region), (form.region, dropout.region)
        assert any("dropout='2.5'" in text for text in toasts(app))


# --- problem 5: Corpora --------------------------------------------------------------------------------


async def test_p_shows_the_preview_full_screen_and_p_or_esc_brings_the_lists_back(tui_studio: Studio) -> None:
    app = ComposerApp(tui_studio)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, CorporaScreen)
        await until(pilot, lambda: screen.pieces.row_count == 3, what="the reels")
        screen.pieces.focus()
        await pilot.press("down")
        await pilot.press("p")
        preview = screen.query_one("#preview")
        assert screen.maximized is preview
        assert preview.region.height >= 22 and preview.region.width == 80  # all but the footer
        abc = screen.query_one("#abc-scroll")
        assert abc.region.height >= 10  # the ABC pane: not 5 lines
        await pilot.press("p")
        assert screen.maximized is None
        await pilot.press("p", "escape")
        assert screen.maximized is None


async def test_the_abc_pane_shows_more_than_a_few_lines(tui_studio: Studio) -> None:
    app = ComposerApp(tui_studio)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await until(pilot, lambda: screen.pieces.row_count == 3, what="the reels")
        assert screen.query_one("#abc-scroll").region.height >= 8  # was 5 at 80x24


MUSICXML = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE score-partwise PUBLIC "-//Recordare//DTD MusicXML 3.1 Partwise//EN"
  "http://www.musicxml.org/dtds/partwise.dtd">
<score-partwise version="3.1">
  <work><work-title>Little Scale</work-title></work>
  <part-list><score-part id="P1"><part-name>Flute</part-name></score-part></part-list>
  <part id="P1">
    <measure number="1">
      <attributes><divisions>1</divisions><key><fifths>0</fifths></key>
        <time><beats>4</beats><beat-type>4</beat-type></time><clef><sign>G</sign><line>2</line></clef></attributes>
      <note><pitch><step>C</step><octave>5</octave></pitch><duration>1</duration><type>quarter</type></note>
      <note><pitch><step>D</step><octave>5</octave></pitch><duration>1</duration><type>quarter</type></note>
      <note><pitch><step>E</step><octave>5</octave></pitch><duration>1</duration><type>quarter</type></note>
      <note><pitch><step>F</step><octave>5</octave></pitch><duration>1</duration><type>quarter</type></note>
    </measure>
  </part>
</score-partwise>
"""


async def test_musicxml_pieces_show_their_abc_from_the_preview_process(tui_studio: Studio, tmp_path: Path) -> None:
    folder = tmp_path / "scores"
    folder.mkdir()
    (folder / "scale.musicxml").write_text(MUSICXML, encoding="utf-8")
    tui_studio.catalogue.import_path(folder, "scores")
    app = ComposerApp(tui_studio)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, CorporaScreen)
        await until(pilot, lambda: "scores" in screen.corpora.records, what="the corpus")
        screen.corpora.select("scores")
        await until(pilot, lambda: screen.pieces.row_count == 1, what="the score")
        abc = screen.query_one("#abc", Static)
        await until(pilot, lambda: "K:" in str(abc.content), 30, "the ABC writer's text")
        text = str(abc.content)
        assert text.startswith("X:1") and "M:4/4" in text
        assert "c2 d2 e2 f2" in text  # C5 D5 E5 F5, quarter notes at L:1/8


async def test_skip_reasons_are_shown_whole(tui_studio: Studio) -> None:
    app = ComposerApp(tui_studio)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, CorporaScreen)
        await until(pilot, lambda: "jigs" in screen.corpora.records, what="jigs")
        screen.corpora.select("jigs")
        await until(pilot, lambda: screen.skipped.row_count == 2, what="the skipped items")
        screen.query_one("#corpus-tabs").active = "tab-skipped"
        screen.skipped.focus()
        await pilot.press("down")
        reason = str(screen.skipped.records[screen.skipped.selected_key]["reason"])
        assert len(reason) > 16  # longer than the column gives it
        assert str(screen.query_one("#abc", Static).content) == reason


# --- problem 6 and deliver 4: the palette, the keys panel, help ------------------------------------


async def test_the_palette_holds_every_main_action_from_every_screen(tui_studio: Studio) -> None:
    app = ComposerApp(tui_studio)
    async with app.run_test(size=SIZE) as pilot:
        for key in ("f1", "f2", "f3", "f4", "f5"):
            await pilot.press(key)
            titles = {command.title for command in app.get_system_commands(app.screen)}
            assert titles >= MAIN_ACTIONS, (key, MAIN_ACTIONS - titles)


async def test_start_from_the_palette_on_plugins_goes_to_new_run_and_says_why_not(tui_studio: Studio) -> None:
    app = ComposerApp(tui_studio)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await pilot.press("f5")
        await pilot.press("ctrl+p")
        assert isinstance(app.screen, CommandPalette)
        await pilot.press(*"start training")
        commands = app.screen.query_one(CommandList)
        await until(pilot, lambda: commands.option_count > 0, what="the commands found")
        assert "Start training" in str(commands.get_option_at_index(0).prompt)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, NewRunScreen), what="New run")
        await until(pilot, lambda: any("choose a corpus" in t for t in toasts(app)), what="the refusal")


async def test_esc_closes_the_keys_panel(tui_studio: Studio) -> None:
    app = ComposerApp(tui_studio)
    async with app.run_test(size=SIZE) as pilot:
        app.action_show_help_panel()
        await pilot.pause()
        assert app.screen.query(HelpPanel)
        await pilot.press("escape")
        await pilot.pause()
        assert not app.screen.query(HelpPanel)


async def test_question_mark_shows_the_keys_of_every_screen(tui_studio: Studio) -> None:
    app = ComposerApp(tui_studio)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = str(app.screen.query_one("#help-text", Static).render())
        for screen in ("F1 Corpora", "F2 New run", "F3 Runs", "F4 Samples", "F5 Plugins"):
            assert screen in text
        for key, what in (
            ("ctrl+r", "Start training"),
            ("p", "Preview"),
            ("l", "Log"),
            ("c", "Clone"),
            ("ctrl+g", "Generate"),
            ("e", "Export"),
            ("/", "filter"),
            ("o / O", "sort"),
            ("ctrl+p", "command palette"),
        ):
            assert any(line.strip().startswith(key) and what in line for line in text.splitlines()), (key, what)
        await pilot.press("escape")
        assert isinstance(app.screen, CorporaScreen)
        # `?` typed into a field is a character, not help.
        await pilot.press("f2")
        app.screen.query_one("#run-name", Input).focus()
        await pilot.press("question_mark")
        assert isinstance(app.screen, NewRunScreen)
        assert app.screen.query_one("#run-name", Input).value == "?"


# --- deliver 4: filter and sort ------------------------------------------------------------------------


async def test_slash_filters_the_pieces_and_esc_brings_them_all_back(tui_studio: Studio) -> None:
    app = ComposerApp(tui_studio)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, CorporaScreen)
        await until(pilot, lambda: "jigs" in screen.corpora.records, what="jigs")
        screen.corpora.select("jigs")
        await until(pilot, lambda: screen.pieces.row_count == 2, what="the jigs")
        await pilot.press("slash", *"ocean")
        await until(pilot, lambda: screen.pieces.row_count == 1, what="the filter")
        assert cells(screen.pieces, 1) == ["Out On The Ocean"]
        tab = screen.query_one("#corpus-tabs").get_tab("tab-pieces")
        # (the tab counts on the table's Redrawn message, which may come a frame after the rows)
        await until(pilot, lambda: str(tab.label) == "Pieces 1 of 2", what="the tab's count")
        await pilot.press("enter")  # keeps the filter, back to the list
        assert app.focused is screen.pieces and screen.pieces.row_count == 1
        await pilot.press("slash", "escape")
        assert screen.pieces.row_count == 2 and app.focused is screen.pieces


async def test_slash_filters_runs_and_o_sorts_them(tui_studio: Studio) -> None:
    ws = tui_studio.workspace
    write_run(ws, "reel-a", state="finished", epoch=3, epochs=3, metrics=loss_metrics(3, 2), best=2.5)
    write_run(ws, "jig-b", state="finished", epoch=2, epochs=2, metrics=loss_metrics(2, 2), best=1.5)
    write_run(ws, "reel-c", state="failed", epoch=0, epochs=3, error="out of memory")
    app = ComposerApp(tui_studio)
    async with app.run_test(size=SIZE) as pilot:
        screen = await runs_listed(pilot, 3)
        table = screen.table
        assert cells(table) == ["jig-b", "reel-a", "reel-c"]
        table.focus()
        await pilot.press("o")  # by run name
        assert cells(table) == ["jig-b", "reel-a", "reel-c"]
        await pilot.press("O")  # the other way round
        assert cells(table) == ["reel-c", "reel-a", "jig-b"]
        columns = table.ordered_columns
        best = [str(c.key.value) for c in columns].index("best")
        x = sum(c.get_render_width(table) for c in columns[:best]) + 2
        await pilot.click(table, offset=(x, 0))  # the header of `best`
        assert table.sort_column == "best"
        assert cells(table) == ["jig-b", "reel-a", "reel-c"]  # 1.5, 2.5, no loss last
        assert str(table.columns["best"].label) == "best ▲"
        await pilot.press("slash", *"reel")
        await until(pilot, lambda: table.row_count == 2, what="the filter")
        assert sorted(cells(table)) == ["reel-a", "reel-c"]
        # The polls go on under the filter without bringing the other rows back.
        await pilot.pause(1.2)
        assert table.row_count == 2


# --- deliver 4: the log viewer, a new run from an old one ------------------------------------------


async def test_l_shows_the_run_log_and_follows_it(tui_studio: Studio) -> None:
    folder = write_run(tui_studio.workspace, "jig", state="failed", epoch=1, epochs=3, error="corpus gone")
    log = folder / "train.log"
    log.write_text("run jig: training tiny-rnn on corpus jigs\nepoch 1/3: train loss 2.1000\n", encoding="utf-8")
    app = ComposerApp(tui_studio)
    async with app.run_test(size=SIZE) as pilot:
        await runs_listed(pilot, 1)
        await pilot.press("l")
        assert isinstance(app.screen, RunLogScreen)
        viewer = app.screen.query_one(Log)
        assert list(viewer.lines) == ["run jig: training tiny-rnn on corpus jigs", "epoch 1/3: train loss 2.1000"]
        assert str(log) in str(app.screen.query_one("#log-title", Static).content)
        with open(log, "a", encoding="utf-8") as handle:
            handle.write("Error: run jig: corpus 'jigs' is gone\n")
        await until(pilot, lambda: len(viewer.lines) == 3, 5, "the new line")
        assert viewer.lines[-1] == "Error: run jig: corpus 'jigs' is gone"
        await pilot.press("escape")
        assert isinstance(app.screen, RunsScreen)


async def test_the_log_viewer_reads_only_the_end_of_a_long_log(tui_studio: Studio) -> None:
    folder = write_run(tui_studio.workspace, "long", state="finished", epoch=1, epochs=1)
    lines = [f"batch {i}: loss {i / 1000:.4f}" for i in range(40_000)]
    (folder / "train.log").write_text("\n".join(lines) + "\n", encoding="utf-8")
    app = ComposerApp(tui_studio)
    async with app.run_test(size=SIZE) as pilot:
        await runs_listed(pilot, 1)
        await pilot.press("l")
        viewer = app.screen.query_one(Log)
        title = str(app.screen.query_one("#log-title", Static).content)
        assert "the last 256 KB of 995 KB" in title  # the bound, named
        assert viewer.lines[-1] == lines[-1]
        assert viewer.lines[0] in lines and len(viewer.lines) < len(lines)  # whole lines, from the end


def write_config(folder: Path, **settings: Any) -> None:
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **settings}))


async def test_c_starts_a_new_run_from_a_runs_settings(tui_studio: Studio) -> None:
    folder = write_run(tui_studio.workspace, "jig-gru", state="finished", epoch=7, epochs=7)
    write_config(
        folder,
        epochs=7,
        patience=2,
        seed=11,
        encoder_params={"lowercase": True},
        model_params={"units": 9, "layers": 2, "dropout": 0.2, "cell": "gru", "retired": 3},
    )
    app = ComposerApp(tui_studio)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await runs_listed(pilot, 1)
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, NewRunScreen), what="New run")
        screen = app.screen
        assert isinstance(screen, NewRunScreen)
        await pilot.pause()
        assert screen.query_one("#corpus", Select).value == "jigs"
        assert screen.query_one("#param-model-units", Input).value == "9"
        assert screen.query_one("#param-model-cell", Select).value == "gru"
        request, problems = screen.request()
        assert problems == [] and request is not None
        assert (request.epochs, request.patience, request.seed) == (7, 2, 11)
        assert dict(request.model_params) == {"units": "9", "cell": "gru"}  # what differs from the defaults
        assert dict(request.encoder_params) == {"lowercase": "true"}
        assert request.name != "jig-gru"  # a new run
        # A parameter the model no longer has is named, not silently dropped.
        assert any("model parameter retired" in text for text in toasts(app))


# --- problem 7 and deliver 4: 80 columns, and wider -----------------------------------------------------


async def test_run_names_and_pairs_are_whole_at_80_columns_and_more_columns_show_when_wider(
    tui_studio: Studio,
) -> None:
    ws = tui_studio.workspace
    folder = write_run(ws, "char-lstm-1121-093012", state="finished", epoch=2, epochs=2, best=1.2)
    write_config(folder, encoder="piano-roll", model="rnn-rbm", corpus="bach-chorales")
    for size, shown in (((80, 24), ["name", "state", "epoch", "best", "pair", "started"]), ((160, 40), None)):
        app = ComposerApp(tui_studio)
        async with app.run_test(size=size) as pilot:
            screen = await runs_listed(pilot, 1)
            table = screen.table
            row = dict(zip([str(key.value) for key in table.columns], map(str, table.get_row_at(0)), strict=True))
            for key in ("name", "pair"):
                assert table.columns[key].width >= len(str(row[key]))
            assert row["name"] == "char-lstm-1121-093012" and row["pair"] == "piano-roll/rnn-rbm"
            columns = [str(key.value) for key in table.columns]
            if shown is not None:  # what is left out at 80 columns is on the line under the title
                assert columns == shown
                about = screen.query_one("#run-about", Static)
                await until(pilot, lambda about=about: "corpus bach-chorales" in str(about.content), what="its line")
            else:
                assert "corpus" in columns and "started" in columns
                assert table.columns["corpus"].width >= len("bach-chorales")


async def test_a_third_party_distribution_is_never_cut(tui_studio: Studio) -> None:
    host = PluginHost()
    host.register_module(tui_fixture_plugin, "qa-tools", distribution="tui-composer-qa-tools")
    studio = Studio(tui_studio.workspace, host)
    app = ComposerApp(studio)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f5")
        table = app.screen.query_one("#plugins", RowTable)
        assert "tui-composer-qa-tools" in cells(table, [str(k.value) for k in table.columns].index("distribution"))
        assert table.columns["distribution"].width >= len("tui-composer-qa-tools")


class LongNames(App[None]):
    def compose(self) -> ComposeResult:
        yield ParamForm("model", "Model", (Param("learning_rate_decay", float, 1.0, "per epoch"),), id="form")


async def test_a_long_parameter_name_never_runs_into_its_value() -> None:
    async with LongNames().run_test(size=SIZE) as pilot:
        label = pilot.app.query_one(".param-name")
        value = pilot.app.query_one("#param-model-learning_rate_decay", Input)
        # A space between name and value (was `learning_rate_deca1.0`).
        assert label.region.right <= value.region.x and label.region.width > len("learning_rate_decay")
        assert str(label.render()) == "learning_rate_decay"


# --- problems 8 and 9: a run done before its planned epochs, another run's ETA -----------------------


async def test_a_run_that_stopped_at_its_time_limit_reads_as_done(tui_studio: Studio, tmp_path: Path) -> None:
    shipped = tmp_path / "shipped"
    folder = write_run(Workspace(tmp_path / "elsewhere").ensure(), "oneills-like", state="finished", epoch=14,
                       epochs=40, metrics=loss_metrics(14, 2), best=1.03)  # fmt: skip
    shutil.copytree(folder, shipped / "oneills-like")
    status = json.loads((folder / "status.json").read_text())
    status["message"] = "stopped at the time limit (15 min) after epoch 14"
    (shipped / "oneills-like" / "status.json").write_text(json.dumps(status))
    tui_studio.runs = RunStore(tui_studio.workspace, bundled=shipped)  # type: ignore[misc]
    app = ComposerApp(tui_studio)
    async with app.run_test(size=SIZE) as pilot:
        screen = await runs_listed(pilot, 1)
        title = screen.query_one("#run-title", Static)
        await until(pilot, lambda: "epochs" in str(title.content), what="the run's detail")
        assert "14 of 40 epochs" in str(title.content)  # was `epoch 14/40` and a 35% bar
        assert screen.query_one("#run-progress", ProgressBar).percentage == 1.0
        assert cells(screen.table, 2) == ["14"]
        assert "stopped at the time limit" in str(screen.query_one("#run-log", Static).content)
        assert screen.query_one(LossChart).epochs == 14  # the chart spans what it trained, not 40 (squeezed left)


async def test_choosing_another_run_drops_the_eta_of_the_run_shown_before(tui_studio: Studio) -> None:
    ws = tui_studio.workspace
    write_run(ws, "a-done", state="finished", epoch=2, epochs=2, metrics=loss_metrics(2, 4), best=1.0)
    live = write_run(ws, "b-live", state="training", epoch=1, epochs=4)
    metrics = loss_metrics(1, 4)
    metrics[-1]["seconds"] = 60.0
    (live / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
    status = json.loads((live / "status.json").read_text())
    status.update(pid=os.getpid(), heartbeat_unix=time.time() + 3600)  # alive: this very process
    (live / "status.json").write_text(json.dumps(status))
    app = ComposerApp(tui_studio)
    async with app.run_test(size=SIZE) as pilot:
        screen = await runs_listed(pilot, 2)
        screen.table.focus()
        await pilot.press("down")  # b-live
        eta = screen.query_one("#run-eta", Static)
        await until(pilot, lambda: "ETA" in str(eta.content), what="the live run's ETA")
        screen._polling = True  # hold the polls: only what the switch itself shows
        await pilot.press("up")  # a-done
        assert str(eta.content) == ""
        assert screen.query_one("#run-progress", ProgressBar).percentage == 0
        screen._polling = False
        await until(pilot, lambda: screen.query_one("#run-progress", ProgressBar).percentage == 1.0)
        assert str(eta.content) == ""


def test_a_training_request_spells_its_own_command_line() -> None:
    request = TrainingRequest(corpus="jigs", encoder="abc", model="char-lstm", name="x", time_limit=15.0)
    assert train_arguments(request)[-2:] == ["--time-limit", "15"]
