"""A run's log: `runs/NAME/train.log`, the one place for a training's output, whoever started it.

- Started from the TUI (`tui_composer.services.launcher`), the trainer's output goes to a file from the start:
  `logs/NAME.log`, opened before the run folder exists, so that a training that fails before making it
  (a bad hyperparameter) still leaves its message. Once the run folder is there, that file is moved
  into it as `train.log`: the same open file, so the output goes on into it.
- Started from a shell, what `tui-composer train` prints is also written to `train.log` as it reads on
  the screen: the progress bar's redraws and the colours are left out, the epoch lines and errors kept.

A resumed run appends to the same `train.log`.
"""

from __future__ import annotations

import os
import re
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from tui_composer.services.runs import Run

# Set by the launcher for a training it starts: the file its output goes to.
LAUNCH_LOG_VARIABLE = "TUI_COMPOSER_LAUNCH_LOG"

# Escape sequences a terminal acts on (colours, cursor moves, clearing): not text.
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
_CURSOR_UP = re.compile(r"\x1b\[(\d*)A")
_PARTS = re.compile(r"(\x1b\[\d*A|\r\n|\r|\n)")
MAX_LINES_UP = 8  # a cursor moved up further than this leaves the lines it passes in the file


class Transcript:
    """Writes text as a terminal leaves it on screen: escapes dropped, a line rewritten after `\r` kept once.

    A progress bar that ends its drawing with a new line and then moves the cursor back up over it
    (rich does, when it clears a transient bar) is taken out of the file again.
    """

    def __init__(self, file: IO[str]) -> None:
        self.file = file
        self.line = ""
        self.starts: list[int] = []  # where the last few lines begin in the file, for a cursor moved up

    def write(self, text: str) -> None:
        for part in _PARTS.split(text):
            if part in ("\n", "\r\n"):
                self.file.flush()
                self.starts = [*self.starts[-(MAX_LINES_UP - 1) :], self.file.tell()]
                self.file.write(self.line + "\n")
                self.line = ""
            elif part == "\r":  # a progress bar redrawing its line: only the last drawing counts
                self.line = ""
            elif up := _CURSOR_UP.fullmatch(part):
                lines = min(int(up.group(1) or 1), len(self.starts))
                if lines:
                    self.file.flush()
                    self.file.truncate(self.starts[-lines])
                    self.starts = self.starts[:-lines]
                self.line = ""
            else:
                self.line += _ESCAPES.sub("", part)
        self.file.flush()

    def close(self) -> None:
        if self.line.strip():
            self.file.write(self.line + "\n")
        self.line = ""
        self.file.flush()


class Tee:
    """A text stream that writes to the terminal (or pipe) it wraps and to a transcript."""

    def __init__(self, stream: Any, transcript: Transcript) -> None:
        self.stream = stream
        self.transcript = transcript

    def write(self, text: str) -> int:
        written = self.stream.write(text)  # first: it refuses bytes, as the wrapped stream would
        self.transcript.write(text)
        return written

    def flush(self) -> None:
        self.stream.flush()

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding...: the terminal's own
        return getattr(self.stream, name)


def _same_file(path: Path, fd: int) -> bool:
    try:
        ours, theirs = os.fstat(fd), path.stat()
    except (OSError, ValueError):
        return False
    return (ours.st_dev, ours.st_ino) == (theirs.st_dev, theirs.st_ino)


def _take_over_launch_log(launch_log: Path, log_path: Path) -> None:
    """Make the launch log the run's train.log, keeping stdout and stderr writing into it."""
    if log_path.exists():  # only if someone made one meanwhile: append ours to it and write there
        with open(log_path, "ab") as log:
            log.write(launch_log.read_bytes())
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
        launch_log.unlink(missing_ok=True)
        return
    os.replace(launch_log, log_path)  # the same file, renamed: what is written to it goes on there


@contextmanager
def run_log(run: Run) -> Iterator[None]:
    """Keep the output of the training of `run` in its train.log, for the length of the block."""
    launch_log = os.environ.pop(LAUNCH_LOG_VARIABLE, "")
    if launch_log and _same_file(Path(launch_log), 1):
        if Path(launch_log) != run.log_path:
            _take_over_launch_log(Path(launch_log), run.log_path)
        yield
        return
    with open(run.log_path, "a", encoding="utf-8") as log:
        transcript = Transcript(log)
        stdout, stderr = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = Tee(stdout, transcript), Tee(stderr, transcript)
        try:
            yield
        except (SystemExit, KeyboardInterrupt):
            raise  # the command has said why already
        except Exception as error:
            message = getattr(error, "message", None)  # a click.ClickException: one line, as click prints it
            transcript.write(f"Error: {message}\n" if message else traceback.format_exc())
            raise
        finally:
            sys.stdout, sys.stderr = stdout, stderr
            transcript.close()
