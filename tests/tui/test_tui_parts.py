"""The TUI's pieces on their own: drawing, reading metrics as they grow, command lines, exporting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from textual.app import App, ComposeResult

from tui_composer.music.notes import Note
from tui_composer.services.jobs import SampleOptions, TrainingRequest
from tui_composer.services.launcher import constrained_by_default, constraint_flags, train_arguments
from tui_composer.services.sample_files import Sample
from tui_composer.tui.notes import NotesUnavailable, notes_of_abc
from tui_composer.tui.runwatch import MetricsTail
from tui_composer.tui.screens.samples import export_samples, verdict
from tui_composer.tui.widgets.loss_chart import LossChart
from tui_composer.tui.widgets.piano_roll import PianoRoll, pitch_name, time_step


class Canvas(App[None]):
    def compose(self) -> ComposeResult:
        yield PianoRoll()
        yield LossChart()


async def test_piano_roll_draws_each_note_in_its_place() -> None:
    # C4 D4 E4 as quarter notes, then a C major chord held for a half note.
    notes = [Note(0, 1, 60), Note(1, 2, 62), Note(2, 3, 64), *(Note(3, 5, p) for p in (60, 64, 67))]
    async with Canvas().run_test(size=(40, 12)) as pilot:
        roll = pilot.app.query_one(PianoRoll)
        lines = roll.draw(notes, width=24, height=10).plain.splitlines()
    # 5 quarter notes fit in 20 columns at a sixteenth per column; G4 (67) down to C4 (60): 4 rows.
    assert len(lines) == 4
    grid = [line[4:] for line in lines]
    assert lines[-1].startswith("C4")
    # Rows hold two pitches each, top half the higher: G4/F#4, F4/E4, D#4/D4, C#4/C4.
    assert grid[3] == "▄▄▄▄        ▄▄▄▄▄▄▄▄"  # C4: the first quarter and the chord
    assert grid[2] == "    ▄▄▄▄            "  # D4: the second quarter
    assert grid[1] == "        ▄▄▄▄▄▄▄▄▄▄▄▄"  # E4: the third quarter, then held in the chord
    assert grid[0] == "            ▀▀▀▀▀▀▀▀"  # G4: in the chord only


def test_time_steps_and_names() -> None:
    assert time_step(8, 40) == 0.25
    assert time_step(64, 40) == 2.0
    assert pitch_name(60) == "C4" and pitch_name(69) == "A4" and pitch_name(61) == "C#4"


async def test_loss_chart_scales_to_its_data() -> None:
    async with Canvas().run_test(size=(40, 12)) as pilot:
        chart = pilot.app.query_one(LossChart)
        chart.plot([(0.5, 4.0), (1.0, 3.0), (1.5, 2.5), (2.0, 2.0)], [(1.0, 3.2), (2.0, 2.4)], 4)
        await pilot.pause()
        lines = chart.render().plain.splitlines()
    assert lines[0].strip().startswith("4 ┤")  # the highest loss at the top
    assert lines[-2].strip().startswith("2 ┤")  # the lowest at the bottom
    assert "epoch 4" in lines[-1]
    # Four planned epochs, two done: the right half of the plot is still empty.
    plot = [line[7:] for line in lines[:-1]]
    assert all(not line[len(line) // 2 + 2 :].strip() for line in plot)


@pytest.mark.parametrize("low", [0.0468, -0.0468, 0.00001234, -123456.0])
async def test_loss_chart_labels_fit_the_axis_and_keep_the_epoch_line(low: float) -> None:
    # 0.0468 (chorales-default's lowest training loss) was written in full: its row grew a character past
    # the chart and pushed the epoch axis off the bottom.
    async with Canvas().run_test(size=(40, 12)) as pilot:
        chart = pilot.app.query_one(LossChart)
        chart.plot([(0.5, 12.0), (1.0, low)], [(1.0, 3.0)], 2)
        await pilot.pause()
        lines, width = chart.render().plain.splitlines(), chart.size.width
    assert all(len(line) <= width for line in lines)
    assert lines[-2].index("┤") == lines[0].index("┤") == 6
    assert lines[-1].lstrip().startswith("└0") and "epoch 2" in lines[-1]


def test_metrics_are_read_incrementally_and_resume_replaces_the_unfinished_epoch(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    tail = MetricsTail(path)
    tail.read()  # no file yet: nothing
    records = [
        {"kind": "data", "epoch": 0},
        {"kind": "batch", "epoch": 1, "batch": 5, "batches": 10, "loss": 3.0},
        {"kind": "batch", "epoch": 1, "batch": 10, "batches": 10, "loss": 2.5},
        {"kind": "epoch", "epoch": 1, "train_loss": 2.6, "valid_loss": 2.7, "valid_bits": 3.9, "seconds": 10.0},
        {"kind": "batch", "epoch": 2, "batch": 5, "batches": 10, "loss": 2.2},
    ]
    text = "".join(json.dumps(r) + "\n" for r in records)
    path.write_text(text + '{"kind": "batch", "epo')  # a line still being written
    tail.read()
    assert tail.train == [(0.5, 3.0), (1.0, 2.5), (1.5, 2.2)]
    assert tail.valid == [(1.0, 2.7)] and tail.valid_bits == 3.9
    assert (tail.epochs_done, tail.batch, tail.batches) == (1, 5, 10)
    assert tail.eta_seconds(3) == 5.0 + 10.0  # half of epoch 2, then epoch 3
    # The half line completes; then the trainer is killed and resumed after epoch 1.
    with open(path, "a") as handle:
        handle.write('ch": 2, "batch": 8, "batches": 10, "loss": 2.1}\n')
        handle.write(json.dumps({"kind": "resumed", "epoch": 1}) + "\n")
        handle.write(json.dumps({"kind": "batch", "epoch": 2, "batch": 3, "batches": 10, "loss": 2.3}) + "\n")
    tail.read()
    assert tail.train == [(0.5, 3.0), (1.0, 2.5), (1.3, 2.3)]


def test_train_arguments_carry_the_form_as_typed() -> None:
    request = TrainingRequest(
        corpus="jigs",
        encoder="abc",
        model="char-lstm",
        name="first",
        epochs=3,
        seed=5,
        patience=2,
        model_params={"units": "8"},
        encoder_params={"tokens": "chars"},
    )
    assert train_arguments(request) == [
        "train", "--corpus", "jigs", "--encoder", "abc", "--model", "char-lstm", "--name", "first",
        "--epochs", "3", "--seed", "5", "--patience", "2", "--set", "units=8", "--encoder-set", "tokens=chars",
    ]  # fmt: skip


def test_constraint_flags_follow_the_sample_command() -> None:
    from tui_composer.cli.sample import sample

    flags = {flag for option in sample.params for flag in (*option.opts, *getattr(option, "secondary_opts", ()))}
    assert constraint_flags(True) == ["--constrain"] and constraint_flags(False) == ["--no-constrain"]
    assert {"--constrain", "--no-constrain"} <= flags
    assert constrained_by_default() is True


def test_sample_options_spell_the_sample_command_line() -> None:
    options = SampleOptions(n=3, temperature=0.9, seed=7, max_length=200, primer="M:6/8\nK:G\n", constrain=False)
    assert options.argv("jig") == [
        "sample", "jig", "-n", "3", "--temperature", "0.9", "--top-k", "0", "--seed", "7", "--max-length", "200",
        "--primer", "M:6/8\nK:G\n", "--no-constrain", "--json",
    ]  # fmt: skip


def test_verdicts_read_like_the_check_command() -> None:
    plays = {"parses": True, "ok": True, "writes_midi": True, "bad_bars": [], "novelty": {"shared_bars": 1.5}}
    assert verdict(plays) == "plays · 1.5 bars shared"
    copied = {**plays, "novelty": {"shared_bars": 6.0, "copy": True}}
    assert verdict(copied) == "plays · COPY 6 bars shared"
    off = {"parses": True, "ok": False, "writes_midi": True, "bad_bars": [{}, {}], "novelty": None}
    assert verdict(off) == "bars off meter · 2 bad bars"
    assert verdict({"parses": False, "error": "no K: field"}) == "does not parse: no K: field"


def test_export_copies_files_and_writes_text_only_samples(tmp_path: Path) -> None:
    made = tmp_path / "run"
    made.mkdir()
    (made / "001.abc").write_text("X:1\nK:C\nCDE|\n")
    (made / "001.mid").write_bytes(b"MThd")
    samples = [
        Sample(1, abc="X:1\nK:C\nCDE|\n", abc_path=made / "001.abc", midi_path=made / "001.mid"),
        Sample(2, abc="X:2\nK:C\nzz|\n", error="could not be written as MIDI"),
    ]
    written = export_samples(samples, tmp_path / "out" / "deep")
    assert sorted(p.name for p in written) == ["001.abc", "001.mid", "sample-002.abc"]
    assert (tmp_path / "out" / "deep" / "001.mid").read_bytes() == b"MThd"
    assert (tmp_path / "out" / "deep" / "sample-002.abc").read_text() == "X:2\nK:C\nzz|\n"


def test_notes_come_from_the_helper_process_with_reasons_for_bad_tunes() -> None:
    notes = notes_of_abc("X:1\nT:Scale\nM:4/4\nL:1/4\nK:C\nCDEF|G4|]\n")
    assert [(n.start, n.end, n.pitch) for n in notes] == [
        (0.0, 1.0, 60), (1.0, 2.0, 62), (2.0, 3.0, 64), (3.0, 4.0, 65), (4.0, 8.0, 67)
    ]  # fmt: skip
    with pytest.raises(NotesUnavailable, match="does not parse"):
        notes_of_abc("X:1\nK:C\nCDE|\n")  # no L: and no M:, music21 refuses the note lengths


def test_the_samples_screen_uses_the_sampling_services_record_and_defaults(tmp_path: Path) -> None:
    """One Sample type for the CLI, the worker and the TUI, and the form starts from `sample`'s defaults
    (the screen had its own Sample and other defaults: 4 samples of 500 steps against 10 of 1000)."""
    from tui_composer.services import jobs, sample_files
    from tui_composer.tui.screens import samples

    assert samples.Sample is sample_files.Sample
    defaults = {option.name: option.default for option in samples.OPTIONS}
    cli = jobs.SampleOptions()
    assert defaults == {"n": cli.n, "temperature": cli.temperature, "seed": cli.seed, "max_length": 0}
    assert cli.max_length is None and samples.RUNS_OWN_LENGTH == 0  # 0 in the form: the run's own, as in `sample`
    assert {option.name: option.max for option in samples.OPTIONS}["max_length"] == jobs.MAX_LENGTH
    written = Sample(7, length=40, abc="X:7\nT:Jig\nK:G\nGAB|\n", abc_path=tmp_path / "007.abc")
    back = Sample.from_json(written.to_json())
    assert back == written and back.title == "Jig" and back.name == "007"
    raw = Sample(8, abc="%% could not be written\n", text_path=tmp_path / "008.txt", error="could not be written")
    assert raw.title == "sample 008" and raw.text_file == tmp_path / "008.txt"
