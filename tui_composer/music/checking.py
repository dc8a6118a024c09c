"""Checking generated tunes: do they play, do their bars agree with the meter, are they new?

`check_abc_file` (and `check_abc_text` for text in memory) gives one `TuneCheck` per tune of an ABC
file: whether music21 parses it, whether it writes MIDI, the bars whose duration disagrees with the
meter, and, given a `NoveltyIndex` of a training corpus, the longest passage it shares with a training
tune. It needs music21 but never TensorFlow, so the TUI may call it from a worker thread.

Bars are measured on music21's own reading of the ABC (its tokens, before it re-bars long measures),
so a bar is judged by what a player hears. A bar must last what the meter says; the first bar (a
pickup), the last bar and bars next to a section boundary (repeats, endings, double bars: any bar line
but `|`) may be shorter; no bar may be longer.

Novelty is transposition-invariant: a tune becomes the sequence of its notes as (interval from the
previous note, duration); the longest run of consecutive notes that also occurs in some training tune
is found with hashed n-grams, and measured in bars of the tune's meter.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tui_composer.services.corpora import read_abc_file, split_abc_tunes

if TYPE_CHECKING:
    from music21.stream import Score, Stream

    from tui_composer.plugin.contract import Piece
    from tui_composer.services.studio import Studio

COPY_BARS = 4.0  # a tune sharing this many bars with a training tune is flagged as a copy
NGRAM = 8  # notes per hashed n-gram: the shortest shared passage the index can see
INDEX_VERSION = "1"
_TUNE_START = re.compile(r"^X:", re.MULTILINE)
_KEY_LINE = re.compile(r"^K:", re.MULTILINE)


# --- bars ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BarProblem:
    """A bar whose duration disagrees with the meter; durations in quarter notes."""

    number: int  # counting bars with notes from 1
    duration: float
    expected: float

    def __str__(self) -> str:
        what = "too long" if self.duration > self.expected else "too short"
        return f"bar {self.number}: {self.duration:g} quarters, {what} for {self.expected:g}"


@dataclass
class _Bar:
    duration: Fraction
    expected: Fraction | None
    opened_at_boundary: bool
    closing: str | None  # the bar token that closed it; None for the end of the tune


def _is_boundary(bar_token: str) -> bool:
    return bar_token not in ("|", ":")


def bar_problems_from_tokens(tokens: Sequence[Any]) -> list[BarProblem]:
    """The bars of a processed music21 ABCHandler's tokens that disagree with the meter."""
    from music21 import abcFormat

    bars: list[_Bar] = []
    expected: Fraction | None = None
    current = Fraction(0)
    opened_at_boundary = False
    for token in tokens:
        if isinstance(token, abcFormat.ABCMetadata):
            if token.isMeter():
                meter = token.getTimeSignatureObject()
                expected = Fraction(meter.barDuration.quarterLength) if meter is not None else None
        elif isinstance(token, abcFormat.ABCBar):
            if current:
                bars.append(_Bar(current, expected, opened_at_boundary, token.src))
                current = Fraction(0)
                opened_at_boundary = False
            if _is_boundary(token.src):
                opened_at_boundary = True
        elif isinstance(token, abcFormat.ABCNote):
            current += _sounding_length(token)
    if current:
        bars.append(_Bar(current, expected, opened_at_boundary, None))
    problems = []
    for number, bar in enumerate(bars, start=1):
        if bar.expected is None or bar.duration == bar.expected:
            continue
        if bar.duration < bar.expected and (
            number in (1, len(bars))
            or bar.opened_at_boundary
            or (bar.closing is not None and _is_boundary(bar.closing))
        ):
            continue  # a pickup, a last bar, or a bar at a section boundary may be short
        problems.append(BarProblem(number, float(bar.duration), float(bar.expected)))
    return problems


def _sounding_length(token: Any) -> Fraction:
    """A note's, rest's or chord's duration as music21's ABC translator builds it."""
    from music21 import abcFormat

    if isinstance(token, abcFormat.ABCChord):
        if not token.subTokens:
            return Fraction(0)  # music21 skips an empty chord
    elif token.inGrace:
        return Fraction(0)
    if token.chordSymbols:
        symbol = token.chordSymbols[0].replace('"', "").strip().replace("(", "").replace(")", "")
        if symbol.startswith(">"):
            return Fraction(0)  # music21 drops a note whose chord symbol starts with '>'
    length = Fraction(token.quarterLength)
    if token.activeTuplet is not None:
        length *= Fraction(token.activeTuplet.tupletMultiplier())
    return length


def bar_problems(text: str) -> list[BarProblem]:
    """The bars of one ABC tune that disagree with its meter (music21 tokenizes it)."""
    from music21 import abcFormat

    handler = abcFormat.ABCHandler()
    handler.process(text)
    return bar_problems_from_tokens(handler.tokens)


# --- novelty -------------------------------------------------------------------------------------------

# A note event: interval from the previous note (semitones) and duration (1/48 quarter notes), packed
# into one int64 so an n-gram hashes with numpy.
DURATION_STEPS = 48


def note_events(score: Score) -> tuple[np.ndarray, np.ndarray, float | None]:
    """The melody of a score's first part as packed (interval, duration) events, the durations in
    quarter notes, and the bar length in quarter notes (None when the score has no meter)."""
    from music21 import harmony, meter

    parts: list[Stream] = list(score.parts) or [score]
    pitches: list[int] = []
    durations: list[float] = []
    for element in parts[0].recurse().notes:
        if isinstance(element, harmony.Harmony) or element.duration.isGrace:
            continue
        pitch = max(element.pitches).midi if element.isChord else element.pitch.midi
        pitches.append(pitch)
        durations.append(float(element.duration.quarterLength))
    signature = next(iter(score.recurse().getElementsByClass(meter.TimeSignature)), None)
    bar = float(signature.barDuration.quarterLength) if signature is not None else None
    if not pitches:
        return np.zeros(0, np.int64), np.zeros(0), bar
    intervals = np.diff(np.asarray(pitches, np.int64), prepend=pitches[0])
    steps = np.rint(np.asarray(durations) * DURATION_STEPS).astype(np.int64)
    events = (intervals + 128) * 65536 + np.minimum(steps, 65535)
    return events, np.asarray(durations), bar


def ngram_hashes(events: np.ndarray, n: int = NGRAM) -> np.ndarray:
    """A uint64 hash of every run of `n` consecutive events (a polynomial hash, deterministic)."""
    if len(events) < n:
        return np.zeros(0, np.uint64)
    values = events.astype(np.uint64)
    hashes = np.zeros(len(events) - n + 1, np.uint64)
    base = np.uint64(1_000_003)
    with np.errstate(over="ignore"):
        for offset in range(n):
            hashes = hashes * base + values[offset : offset + len(hashes)]
    return hashes


@dataclass(frozen=True)
class Novelty:
    """The longest passage a tune shares with one training tune (transposed or not)."""

    shared_notes: int
    shared_bars: float
    piece: str | None  # the training piece it shares it with
    copy: bool  # shared_bars >= COPY_BARS


class NoveltyIndex:
    """Every NGRAM-note passage of a corpus's training split, hashed, with where it occurs."""

    def __init__(self, hashes: np.ndarray, tunes: np.ndarray, positions: np.ndarray, keys: Sequence[str]) -> None:
        order = np.argsort(hashes, kind="stable")
        self.hashes = hashes[order]
        self.tunes = tunes[order]
        self.positions = positions[order]
        self.keys = list(keys)

    @classmethod
    def build(cls, scores: Iterable[tuple[str, Score]]) -> NoveltyIndex:
        return cls.from_events((key, note_events(score)[0]) for key, score in scores)

    @classmethod
    def from_events(cls, tunes: Iterable[tuple[str, np.ndarray]]) -> NoveltyIndex:
        keys: list[str] = []
        hashes, ids, positions = [], [], []
        for key, events in tunes:
            found = ngram_hashes(events)
            hashes.append(found)
            ids.append(np.full(len(found), len(keys), np.int32))
            positions.append(np.arange(len(found), dtype=np.int32))
            keys.append(key)
        if not keys:
            return cls(np.zeros(0, np.uint64), np.zeros(0, np.int32), np.zeros(0, np.int32), [])
        return cls(np.concatenate(hashes), np.concatenate(ids), np.concatenate(positions), keys)

    def save(self, path: Path) -> None:
        from tui_composer.services.workspace import write_atomic

        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, hashes=self.hashes, tunes=self.tunes, positions=self.positions)
        write_atomic(path.with_suffix(".keys.json"), json.dumps(self.keys))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> NoveltyIndex:
        with np.load(path) as data:
            index = cls.__new__(cls)
            index.hashes, index.tunes, index.positions = data["hashes"], data["tunes"], data["positions"]
        index.keys = json.loads(path.with_suffix(".keys.json").read_text(encoding="utf-8"))
        return index

    def novelty(self, events: np.ndarray, durations: np.ndarray, bar: float | None) -> Novelty:
        """The longest run of the tune's notes found, in the same order, in one training tune."""
        found = ngram_hashes(events)
        best_notes, best_start, best_piece = 0, 0, None
        previous: dict[tuple[int, int], int] = {}  # (tune, position) of a match at i - 1 -> run length
        for i, value in enumerate(found):
            lo, hi = np.searchsorted(self.hashes, value, "left"), np.searchsorted(self.hashes, value, "right")
            current: dict[tuple[int, int], int] = {}
            for tune, position in zip(self.tunes[lo:hi].tolist(), self.positions[lo:hi].tolist(), strict=True):
                run = previous.get((tune, position - 1), 0) + 1
                current[(tune, position)] = run
                if run + NGRAM - 1 > best_notes:
                    best_notes, best_start, best_piece = run + NGRAM - 1, i - run + 1, tune
            previous = current
        if not best_notes or best_piece is None:
            return Novelty(0, 0.0, None, False)
        quarters = float(durations[best_start : best_start + best_notes].sum())
        bars = quarters / bar if bar else 0.0
        return Novelty(best_notes, round(bars, 2), self.keys[best_piece], bars >= COPY_BARS)


def _piece_events(piece: Piece) -> tuple[np.ndarray, np.ndarray, float | None]:
    from tui_composer.music.export import parse_piece

    return note_events(parse_piece(piece))


def novelty_index_path(studio: Studio, corpus_name: str, train: Sequence[Piece] | None = None) -> Path:
    """Where the index of a corpus's training split is cached: named by the split's keys and contents."""
    if train is None:
        train = studio.catalogue.get(corpus_name).splits()["train"]
    digest = hashlib.sha256()
    digest.update(f"{INDEX_VERSION}/{NGRAM}/{DURATION_STEPS}".encode())
    for piece in train:
        digest.update(piece.key.encode("utf-8"))
        digest.update(piece.digest().encode())
    return studio.workspace.cache_dir / "novelty" / f"{corpus_name}-{digest.hexdigest()[:16]}.npz"


def corpus_novelty_index(
    studio: Studio, corpus_name: str, progress: Callable[[int, int], None] | None = None
) -> NoveltyIndex:
    """The index of a corpus's training split, built once (in parallel) and cached in the workspace."""
    from tui_composer.services.parallel import map_bounded

    corpus = studio.catalogue.get(corpus_name)
    train = corpus.splits()["train"]
    path = novelty_index_path(studio, corpus_name, train)
    if path.is_file():
        try:
            return NoveltyIndex.load(path)
        except (OSError, ValueError, KeyError, json.JSONDecodeError):
            pass  # a damaged cache is rebuilt
    tunes: list[tuple[str, np.ndarray]] = []
    for done, (piece, outcome) in enumerate(zip(train, map_bounded(_piece_events, train), strict=True), start=1):
        if outcome.ok and outcome.value is not None:
            tunes.append((piece.key, outcome.value[0]))
        if progress is not None:
            progress(done, len(train))
    index = NoveltyIndex.from_events(tunes)
    index.save(path)
    return index


def run_novelty_index(studio: Studio, run_name: str) -> NoveltyIndex:
    """The novelty index of the corpus a run was trained on (its config.json names it)."""
    from tui_composer.services.workspace import WorkspaceError

    run = studio.runs.get(run_name)
    corpus = run.settings().get("corpus")  # only the corpus matters here, not every training setting
    if not corpus:
        raise WorkspaceError(f"run {run_name!r} names no corpus in its config.json; check it without --run")
    return corpus_novelty_index(studio, corpus)


# --- checking tunes --------------------------------------------------------------------------------------

PARSE_TIMEOUT = 30.0


@dataclass
class TuneCheck:
    """The verdicts on one tune of a file; `number` counts tunes from 1."""

    number: int
    title: str
    parses: bool = False
    writes_midi: bool = False
    bad_bars: list[BarProblem] = field(default_factory=list)
    notes: int = 0
    novelty: Novelty | None = None
    error: str | None = None  # why it doesn't parse or doesn't write MIDI

    @property
    def bars_ok(self) -> bool:
        return self.parses and not self.bad_bars

    @property
    def ok(self) -> bool:
        """Plays: parses, writes MIDI, every bar agrees with the meter."""
        return self.parses and self.writes_midi and not self.bad_bars

    @property
    def copy(self) -> bool:
        return self.novelty is not None and self.novelty.copy

    def summary(self) -> str:
        """One line for a list of samples, e.g. `plays · 0.5 bars shared` or `no MIDI: ...`."""
        if not self.parses:
            return f"does not parse: {self.error}"
        parts = ["plays" if self.ok else ("no MIDI" if not self.writes_midi else "bars off meter")]
        if self.bad_bars:
            parts.append(f"{len(self.bad_bars)} bad bar{'s' if len(self.bad_bars) > 1 else ''}")
        if self.novelty is not None:
            parts.append(f"{'COPY ' if self.copy else ''}{self.novelty.shared_bars:g} bars shared")
        return " · ".join(parts)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["bad_bars"] = [asdict(b) | {"text": str(b)} for b in self.bad_bars]
        data["ok"] = self.ok
        data["copy"] = self.copy
        return data


def check_tune(
    text: str,
    number: int = 1,
    novelty: NoveltyIndex | None = None,
    *,
    wrote_midi: bool = False,
    score: Score | None = None,
) -> TuneCheck:
    """Parse one ABC tune, write its MIDI (in memory), measure its bars and, given an index, its novelty.

    `wrote_midi`: the sampler already wrote this tune's MIDI file, so the check doesn't write it again (the
    slowest part of a check). `score`: the Score `parse_abc` made of this very text (the sampler's), used
    instead of parsing it again; one parsed from other text is ignored.
    """
    from tui_composer.music.export import ExportError, abc_tokens, parse_abc, score_to_midi
    from tui_composer.services.parallel import call_bounded

    title = next((line[2:].strip() for line in text.splitlines() if line.startswith("T:")), "")
    check = TuneCheck(number=number, title=title)
    if score is None or abc_tokens(score, text) is None:
        outcome = call_bounded(parse_abc, text, PARSE_TIMEOUT)
        if not outcome.ok or outcome.value is None:
            check.error = outcome.error or "no score"
            return check
        score = outcome.value
    tokens = abc_tokens(score, text)
    check.notes = len(score.recurse().notes)
    if not check.notes:
        check.error = "no notes"
        return check
    check.parses = True
    try:
        check.bad_bars = bar_problems_from_tokens(tokens) if tokens is not None else bar_problems(text)
    except Exception as error:  # noqa: BLE001 - parsed once already, but never let one tune stop the rest
        check.error = f"bars could not be measured: {error}"
    if wrote_midi:
        check.writes_midi = True
    else:
        try:
            score_to_midi(score)
            check.writes_midi = True
        except ExportError as error:
            check.error = error.reason
    if novelty is not None:
        events, durations, bar = note_events(score)
        check.novelty = novelty.novelty(events, durations, bar)
    return check


def check_abc_text(text: str, novelty: NoveltyIndex | None = None) -> list[TuneCheck]:
    """Every tune (`X:` block) of an ABC text; text without an `X:` line is checked as one tune."""
    tunes = split_abc_tunes(text) if _TUNE_START.search(text) else [(1, "", text)]
    return [check_tune(tune, number, novelty) for number, _, tune in tunes]


def no_tune_reason(text: str, results: Sequence[TuneCheck] | None = None) -> str | None:
    """Why a text holds no ABC tune at all, or None when it holds one (give `results` once checked).

    A tune starts with an `X:` line; a sample may lack it, but then it has a `K:` line and notes.
    """
    if _TUNE_START.search(text):
        return None
    if not _KEY_LINE.search(text):
        return "holds no ABC tune: no X: line (a tune starts with one) and no K: line"
    if results is not None and len(results) == 1 and results[0].notes == 0:
        return f"holds no ABC tune: no X: line, and read as one tune it has no notes ({results[0].error})"
    return None


def check_abc_file(path: Path | str, studio: Studio | None = None, run: str | None = None) -> list[TuneCheck]:
    """`tui-composer check`: the verdicts for every tune of an ABC file; novelty when a run is given.

    Raises MusicFileError when the file can't be read as ABC text (only a regular file is opened, so a
    FIFO never blocks). Needs music21, never TensorFlow: safe to call from a worker thread (the TUI's
    Samples screen).
    """
    text = read_abc_file(Path(path))
    index = None
    if run is not None:
        if studio is None:
            from tui_composer.services.studio import Studio

            studio = Studio()
        index = run_novelty_index(studio, run)
    return check_abc_text(text, index)
