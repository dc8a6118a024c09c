"""Messages that workers post back to the UI thread; results only ever arrive this way."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from textual.message import Message

from tui_composer.tui.runwatch import RunDetail, RunRow


@dataclass
class RunsPolled(Message):
    """The runs as read from their status files, and the selected run's curve and progress.

    A poll that has not been handled yet is replaced by a newer one: however slow the screen, a
    flood of polls costs one repaint.
    """

    rows: list[RunRow]
    detail: RunDetail | None

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RunsPolled)


@dataclass
class CorporaListed(Message):
    """Every corpus with its piece count (counting reads folders, so it runs in a worker)."""

    corpora: list[dict[str, Any]]


@dataclass
class PiecesListed(Message):
    corpus: str
    pieces: list[tuple[str, str, str]]  # key, title, format
    skipped: list[tuple[str, str]]  # item, reason


@dataclass
class NotesParsed(Message):
    """Notes for a piano roll, parsed in a worker (music21 is slow); `error` when it would not parse."""

    target: str  # which preview asked: a piece key or a sample index
    notes: list[Any] = field(default_factory=list)
    error: str = ""
    abc: str | None = None  # a corpus piece that isn't ABC text (MusicXML, MIDI): its ABC from the ABC writer


@dataclass
class ImportFinished(Message):
    corpus: str
    kept: int = 0
    skipped: int = 0
    error: str = ""


@dataclass
class TrainingLaunched(Message):
    run: str
    pid: int = 0
    error: str = ""


@dataclass
class SamplesGenerated(Message):
    run: str
    samples: list[Any] = field(default_factory=list)
    error: str = ""


@dataclass
class SamplesChecked(Message):
    """`tui-composer check` verdicts per sample number: plays, bars, novelty (or why it doesn't parse)."""

    run: str
    verdicts: dict[int, str] = field(default_factory=dict)
    error: str = ""
