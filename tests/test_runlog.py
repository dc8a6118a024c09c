"""A run's log is its folder's train.log, whoever started the training (issue 15, deliver 4)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

from tui_composer.services.runlog import LAUNCH_LOG_VARIABLE, Tee, Transcript

# What rich writes to a terminal around a transient progress bar, and around a line printed above it.
TERMINAL_OUTPUT = (
    "run jig: training char-lstm on corpus jigs with encoder abc (/ws/runs/jig)\n"
    "\x1b[?25l\r\x1b[2Kreading \x1b[38;5;197m━━━━━━\x1b[0m 3/10"
    "\r\x1b[2Kepoch 1/2 \x1b[38;5;197m━━━━━━━━━━\x1b[0m 10/10 loss 2.1000"
    "\r\x1b[2Kepoch 1/2: train loss 2.1000, valid loss 2.2000, valid bits 3.1000 (best), 4 s\n"
    "epoch 2/2 \x1b[38;5;197m━━━━\x1b[0m 4/10 loss 1.9000\r\x1b[2K\x1b[?25h"
    "run jig: trained 2 epochs (best validation loss 2.2000); sample with `tui-composer sample jig`\n"
)


def test_the_transcript_keeps_the_lines_and_drops_the_bar_and_colours() -> None:
    log = io.StringIO()
    transcript = Transcript(log)
    for piece in TERMINAL_OUTPUT.split("\r"):  # written in pieces, as a terminal receives it
        transcript.write(piece)
        transcript.write("\r")
    transcript.close()
    assert log.getvalue().splitlines() == [
        "run jig: training char-lstm on corpus jigs with encoder abc (/ws/runs/jig)",
        "epoch 1/2: train loss 2.1000, valid loss 2.2000, valid bits 3.1000 (best), 4 s",
        "run jig: trained 2 epochs (best validation loss 2.2000); sample with `tui-composer sample jig`",
    ]


def test_a_bar_cleared_by_moving_the_cursor_up_is_taken_out_again(tmp_path: Path) -> None:
    with open(tmp_path / "train.log", "a", encoding="utf-8") as log:
        transcript = Transcript(log)
        transcript.write("epoch 3/3: train loss 3.3504\n")
        transcript.write("epoch 3/3 \x1b[38;5;197m━━━━\x1b[0m 10/10\n")  # the bar's last drawing, then:
        transcript.write("\x1b[1A\x1b[2K")  # up over it and clear it (a transient bar)
        transcript.write("run jig: trained 3 epochs\n")
        transcript.close()
    assert (tmp_path / "train.log").read_text().splitlines() == [
        "epoch 3/3: train loss 3.3504",
        "run jig: trained 3 epochs",
    ]


def test_tee_writes_through_and_keeps_the_terminals_own_answers() -> None:
    screen, log = io.StringIO(), io.StringIO()
    tee = Tee(screen, Transcript(log))
    tee.write("\x1b[1mepoch 1\x1b[0m\n")
    assert screen.getvalue() == "\x1b[1mepoch 1\x1b[0m\n" and log.getvalue() == "epoch 1\n"
    assert tee.isatty() is False and tee.getvalue() == screen.getvalue()  # delegated


# A child as the launcher starts it: stdout and stderr into the launch log, which it then moves.
CHILD = """
import sys
from pathlib import Path
from tui_composer.services.runlog import run_log
from tui_composer.services.runs import Run

folder = Path(sys.argv[1])
print("before the run folder", flush=True)
folder.mkdir()
with run_log(Run(folder)):
    print("in the run folder", flush=True)
print("after", flush=True)
print("an error line", file=sys.stderr, flush=True)
"""


def test_a_launched_trainings_log_moves_into_its_run_folder(tmp_path: Path) -> None:
    launch_log = tmp_path / "logs" / "jig.log"
    launch_log.parent.mkdir()
    run_folder = tmp_path / "runs" / "jig"
    run_folder.parent.mkdir()
    with open(launch_log, "ab") as output:
        output.write(b"$ tui-composer train --name jig\n")
        output.flush()
        env = {**os.environ, LAUNCH_LOG_VARIABLE: str(launch_log)}
        subprocess.run(
            [sys.executable, "-c", CHILD, str(run_folder)], stdout=output, stderr=subprocess.STDOUT, env=env, check=True
        )
    assert not launch_log.exists()
    assert (run_folder / "train.log").read_text().splitlines() == [
        "$ tui-composer train --name jig",
        "before the run folder",
        "in the run folder",
        "after",
        "an error line",
    ]


# A training from a shell whose run fails: click prints the error after the command has returned.
SHELL_CHILD = """
import sys
from pathlib import Path
import click
from tui_composer.services.runlog import run_log
from tui_composer.services.runs import Run

folder = Path(sys.argv[1])
folder.mkdir()
with run_log(Run(folder)):
    print("\\x1b[1min the run folder\\x1b[0m", flush=True)
    raise click.ClickException("run jig: disk full writing model.keras")
"""


def test_a_training_from_a_shell_writes_its_output_and_its_error_to_train_log(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-c", SHELL_CHILD, str(tmp_path / "jig")], capture_output=True, text=True)
    assert result.returncode == 1
    assert "in the run folder" in result.stdout  # still on the terminal, as before
    assert (tmp_path / "jig" / "train.log").read_text().splitlines() == [
        "in the run folder",
        "Error: run jig: disk full writing model.keras",
    ]
