"""Notes for the piano roll (and ABC for pieces that aren't ABC text), from the preview helper process.

music21 never loads into the TUI: a small helper process (`python -m tui_composer.services.preview`, started at
the first preview, kept for the next ones) does the reading and answers with plain numbers over a pipe;
the TUI's worker thread only waits on the pipe.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tui_composer.music.notes import Note
from tui_composer.plugin.contract import Piece

PARSE_TIMEOUT = 30.0  # music21 can hang on malformed input; the helper is then replaced


class NotesUnavailable(Exception):
    """The notes could not be read; the message says why (shown in place of the piano roll)."""


@dataclass(frozen=True)
class PiecePreview:
    """A corpus piece as the preview shows it: its notes, and its ABC when the piece isn't ABC text."""

    notes: list[Note]
    abc: str | None = None


# --- the client ---------------------------------------------------------------------------------------


class NotesClient:
    """Talks to one helper process, started on first use and again if it dies or hangs."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()  # one request at a time over the pipe

    def ask(self, request: dict[str, Any], timeout: float = PARSE_TIMEOUT) -> dict[str, Any]:
        with self._lock:
            process = self._start()
            assert process.stdin is not None and process.stdout is not None
            try:
                process.stdin.write(json.dumps(request) + "\n")
                process.stdin.flush()
            except (BrokenPipeError, OSError):
                self.close()
                raise NotesUnavailable("the notes helper stopped; try again") from None
            ready, _, _ = select.select([process.stdout], [], [], timeout)
            line = process.stdout.readline() if ready else ""
            if not line:
                self.close()  # hung or died: the next request starts a fresh one
                raise NotesUnavailable(f"reading the notes took over {timeout:g} s" if not ready else "helper died")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise NotesUnavailable(answer["error"])
        return answer

    def notes(self, request: dict[str, Any], timeout: float = PARSE_TIMEOUT) -> list[Note]:
        return _notes(self.ask(request, timeout))

    def _start(self) -> subprocess.Popen[str]:
        if self._process is None or self._process.poll() is not None:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "tui_composer.services.preview"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                start_new_session=True,  # never on the TUI's terminal
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        return self._process

    def close(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._process = None


_client = NotesClient()
atexit.register(_client.close)


def _notes(answer: dict[str, Any]) -> list[Note]:
    return [Note(start, end, pitch) for start, end, pitch in answer["notes"]]


def preview_of_piece(piece: Piece) -> PiecePreview:
    request = {"kind": "piece", "key": piece.key, "format": piece.format, "path": str(piece.path), "text": piece.text}
    answer = _client.ask(request)
    return PiecePreview(_notes(answer), answer.get("abc"))


def notes_of_piece(piece: Piece) -> list[Note]:
    return preview_of_piece(piece).notes


def notes_of_abc(text: str) -> list[Note]:
    return _client.notes({"kind": "abc", "text": text})


def notes_of_file(path: Path) -> list[Note]:
    return _client.notes({"kind": "file", "path": str(path)})
