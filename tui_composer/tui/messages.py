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
class ImportProgressed(Message):
    """`corpus import` has parsed `done` of `total` pieces; an unhandled one is replaced by the next."""

    done: int
    total: int

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ImportProgressed)


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
class SamplesListed(Message):
    """The samples on disk of one run (read in a worker thread): the newest ones, of `total` in its folder."""

    run: str
    samples: list[Any] = field(default_factory=list)  # samples.Sample, in number order
    total: int = 0
    folder: str = ""


@dataclass
class SamplerReplied(Message):
    """One reply of the sampling worker (`tui_composer.services.worker`) to a job of the Samples screen.

    A progress reply not handled yet is replaced by the next one of the same job: a flood of progress costs
    one repaint.
    """

    job: int
    run: str
    reply: dict[str, Any]

    def can_replace(self, message: Message) -> bool:
        return (
            isinstance(message, SamplerReplied)
            and message.job == self.job
            and message.reply.get("kind") == "progress"
            and self.reply.get("kind") == "progress"
        )
