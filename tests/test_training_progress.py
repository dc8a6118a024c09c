"""Reading and encoding progress before the first epoch: in status.json (for the TUI's Runs screen, at most
once a second) and in `tui-composer train`'s plain output (for logs)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from training_support import tiny_corpus, tiny_request

from tui_composer.cli.train import PlainReport
from tui_composer.services.studio import Studio
from tui_composer.services.training import Progress, StatusWriter, _PieceTracker, prepare_run, train_run


@pytest.mark.slow  # a real training in this process (the tracker's own test below is quick)
def test_status_holds_the_reading_progress_until_training_starts(studio: Studio, tmp_path: Path) -> None:
    run = prepare_run(studio, tiny_request(tiny_corpus(studio, tmp_path), epochs=1, name="progress"))
    seen: list[dict[str, Any]] = []

    def report(progress: Progress) -> None:
        if progress.phase == "encoding" and progress.batch == 1:  # reading is over: what did status say?
            seen.append(json.loads(run.status_path.read_text()))

    train_run(studio, run, on_progress=report)
    assert seen, "no encoding progress was reported"
    pieces = len(studio.catalogue.get("tiny").pieces)
    assert (seen[0]["pieces_phase"], seen[0]["pieces_done"], seen[0]["pieces_total"]) == ("reading", pieces, pieces)
    final = json.loads(run.status_path.read_text())
    assert final["state"] == "finished" and final["pieces_phase"] is None and final["pieces_total"] is None


def test_piece_progress_reaches_status_at_most_once_a_second(studio: Studio, tmp_path: Path) -> None:
    run = prepare_run(studio, tiny_request(tiny_corpus(studio, tmp_path), epochs=1, name="throttled"))
    reports: list[Progress] = []
    tracker = _PieceTracker(StatusWriter(run), reports.append)
    for done in range(1, 200):  # far under a second: only the first reaches the file
        tracker.update("reading", done, 2009)
    assert json.loads(run.status_path.read_text())["pieces_done"] == 1
    tracker.update("reading", 2009, 2009)  # the last always does
    assert json.loads(run.status_path.read_text())["pieces_done"] == 2009
    tracker.update("encoding", 1, 1600)  # and so does a new phase
    assert json.loads(run.status_path.read_text())["pieces_phase"] == "encoding"
    assert len(reports) == 201  # the caller (the CLI's bar) gets every one


def test_plain_output_says_reading_n_of_m_pieces(capsys: pytest.CaptureFixture[str]) -> None:
    with PlainReport() as report:
        report(Progress(phase="reading", batch=0, batches=2009))
        report(Progress(phase="reading", batch=192, batches=2009))  # within 10 s of the last line: not printed
        report(Progress(phase="reading", batch=2009, batches=2009))
        report(Progress(phase="encoding", batch=1607, batches=1607))
    assert capsys.readouterr().out.splitlines() == [
        "reading 0/2009 pieces",
        "reading 2009/2009 pieces",
        "encoding 1607/1607 pieces",
    ]


def test_a_stop_while_the_corpus_is_read_ends_the_reading(studio: Studio, tmp_path: Path) -> None:
    """Ctrl-C (or the TUI's stop) during the minutes of a first reading used to wait for the reading to end."""
    run = prepare_run(studio, tiny_request(tiny_corpus(studio, tmp_path), epochs=1, name="stopped"))
    stop = threading.Event()
    tracker = _PieceTracker(StatusWriter(run), lambda progress: None, stop)
    tracker.update("reading", 1, 2009)
    stop.set()
    with pytest.raises(KeyboardInterrupt):  # train_run marks the run stopped, and the CLI says how to resume
        tracker.update("reading", 2, 2009)
