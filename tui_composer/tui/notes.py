"""Notes for the piano roll, from a corpus piece, ABC text or a sample's files, parsed in a helper process.

music21 takes a second to import and up to seconds to parse a big score, all of it pure Python: in a
thread of the TUI it would hold the GIL and slow every key press. So a small helper process
(`python -m tui_composer.tui.notes`, started at the first preview, kept for the next ones) does the
parsing and answers with plain numbers over a pipe; the TUI's worker thread only waits on the pipe.
The reading itself is the encoders' own (`tui_composer.notes`), so the picture shows what a model
would be trained on.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from tui_composer.contract import Piece
from tui_composer.notes import Note

PARSE_TIMEOUT = 30.0  # music21 can hang on malformed input; the helper is then replaced


class NotesUnavailable(Exception):
    """The notes could not be read; the message says why (shown in place of the piano roll)."""


# --- the helper process ------------------------------------------------------------------------------


def _notes(request: dict[str, Any]) -> list[Note]:
    from tui_composer.notes import midi_notes, piece_notes, score_notes

    kind = request["kind"]
    if kind == "piece":
        path = Path(request["path"])
        return piece_notes(Piece(request["key"], "", request["format"], path, request.get("text")))
    if kind == "abc":
        from tui_composer.export import parse_abc

        return score_notes(parse_abc(request["text"]))
    path = Path(request["path"])
    if path.suffix.lower() in (".mid", ".midi"):
        import mido

        return midi_notes(mido.MidiFile(path), path.name)
    from music21 import converter

    return score_notes(converter.parse(path, forceSource=True))


def serve() -> None:
    """Answer one JSON request per line with the notes as [start, end, pitch] triples, or an error."""
    for line in sys.stdin:
        try:
            notes = _notes(json.loads(line))
            answer: dict[str, Any] = {"notes": [[n.start, n.end, n.pitch] for n in notes]}
        except Exception as error:  # noqa: BLE001 - music21 raises many kinds; the reason goes back
            lines = str(error).strip().splitlines()
            reason = getattr(error, "reason", None) or (lines[0] if lines else type(error).__name__)
            answer = {"error": f"does not parse: {reason}"[:300]}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


# --- the TUI's side ------------------------------------------------------------------------------------


class NotesClient:
    """Talks to one helper process, started on first use and again if it dies or hangs."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()  # one request at a time over the pipe

    def notes(self, request: dict[str, Any], timeout: float = PARSE_TIMEOUT) -> list[Note]:
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
        answer = json.loads(line)
        if "error" in answer:
            raise NotesUnavailable(answer["error"])
        return [Note(start, end, pitch) for start, end, pitch in answer["notes"]]

    def _start(self) -> subprocess.Popen[str]:
        if self._process is None or self._process.poll() is not None:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "tui_composer.tui.notes"],
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


def notes_of_piece(piece: Piece) -> list[Note]:
    request = {"kind": "piece", "key": piece.key, "format": piece.format, "path": str(piece.path), "text": piece.text}
    return _client.notes(request)


def notes_of_abc(text: str) -> list[Note]:
    return _client.notes({"kind": "abc", "text": text})


def notes_of_file(path: Path) -> list[Note]:
    return _client.notes({"kind": "file", "path": str(path)})


if __name__ == "__main__":
    serve()
