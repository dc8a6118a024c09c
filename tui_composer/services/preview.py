"""The TUI's preview helper: a small process that reads music with music21 and answers in plain numbers.

music21 takes a second to import and up to seconds to parse a big score, all of it pure Python: in a
thread of the TUI it would hold the GIL and slow every key press. So the TUI (`tui_composer.tui.notes`)
starts `python -m tui_composer.services.preview` at its first preview and keeps it for the next ones. Each
request is one JSON line; each answer one JSON line with the notes as [start, end, pitch] triples and,
for a corpus piece that is not ABC text (MusicXML, MIDI), its ABC as the ABC writer gives it
(`tui_composer.music.export.piece_abc`), or an error. The reading itself is the encoders' own
(`tui_composer.music.notes`), so the picture shows what a model would be trained on.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from tui_composer.music.notes import Note
from tui_composer.plugin.contract import Piece

MAX_ABC_CHARS = 20_000  # a long score's ABC is cut here in the preview (the pane shows a screenful anyway)


def _reason(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return getattr(error, "reason", None) or (lines[0] if lines else type(error).__name__)


def _piece(request: dict[str, Any]) -> dict[str, Any]:
    from tui_composer.music.abc_writer import score_to_abc
    from tui_composer.music.export import parse_piece, piece_abc
    from tui_composer.music.notes import check_lengths, piece_notes, score_notes
    from tui_composer.plugin.contract import EncodeError

    piece = Piece(request["key"], "", request["format"], Path(request["path"]), request.get("text"))
    if piece.format == "midi" or piece.text is not None:
        notes = piece_notes(piece)
        abc = None if piece.text is not None else _abc_or_reason(lambda: piece_abc(piece))
    else:  # MusicXML: parsed once for both the notes and the ABC
        score = parse_piece(piece)
        notes = score_notes(score)
        if not notes:
            raise EncodeError(piece.key, "no pitched notes")
        check_lengths(notes, piece.key)
        abc = _abc_or_reason(lambda: score_to_abc(score))
    answer: dict[str, Any] = {"notes": _triples(notes)}
    if abc is not None:
        answer["abc"] = abc
    return answer


def _abc_or_reason(make: Any) -> str:
    try:
        abc = str(make())
    except Exception as error:  # noqa: BLE001 - the notes still show; the ABC pane says why it has none
        return f"(no ABC: the ABC writer failed: {_reason(error)})"
    if len(abc) > MAX_ABC_CHARS:
        abc = abc[:MAX_ABC_CHARS] + f"\n… (the preview shows the first {MAX_ABC_CHARS:,} characters)"
    return abc


def _notes(request: dict[str, Any]) -> list[Note]:
    from tui_composer.music.notes import midi_notes, score_notes

    if request["kind"] == "abc":
        from tui_composer.music.export import parse_abc

        return score_notes(parse_abc(request["text"]))
    path = Path(request["path"])
    if path.suffix.lower() in (".mid", ".midi"):
        import mido

        return midi_notes(mido.MidiFile(path), path.name)
    from music21 import converter

    return score_notes(converter.parse(path, forceSource=True))


def _triples(notes: list[Note]) -> list[list[float]]:
    return [[n.start, n.end, n.pitch] for n in notes]


def answer(request: dict[str, Any]) -> dict[str, Any]:
    """The answer to one request: `{"notes": [...], "abc": ...}`, or `{"error": "does not parse: why"}`."""
    try:
        if request.get("kind") == "piece":
            return _piece(request)
        return {"notes": _triples(_notes(request))}
    except Exception as error:  # noqa: BLE001 - music21 raises many kinds; the reason goes back
        return {"error": f"does not parse: {_reason(error)}"[:300]}


def serve() -> None:
    """Answer one JSON request per line of stdin, one JSON line each on stdout."""
    for line in sys.stdin:
        sys.stdout.write(json.dumps(answer(json.loads(line))) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    serve()
