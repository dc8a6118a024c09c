"""The quality matrix: does each encoder x model pair make music? (issue 14)

    .venv/bin/python benchmarks/pair_quality.py --pair rnn-rbm:piano-roll [--corpus oneills] [--minutes 10]
    .venv/bin/python benchmarks/pair_quality.py --all --minutes 10        # every pair, one after another (hours)
    .venv/bin/python benchmarks/pair_quality.py --table                   # the table from the rows kept so far

For a pair (MODEL:ENCODER) it trains a run with the pair's preset (no --set) on the corpus's training split
for at most --minutes, samples -n pieces at the default settings, and measures them against the held-out
(test) split of the same corpus:

- validity: music21 parses the ABC and writes MIDI; abc2midi (Debian package `abcmidi`) reads the ABC with no
  error or warning (the column says "n/a" when abc2midi is missing);
- form: bars per piece (median, share under 8), share with repeat signs;
- texture: share of onsets that are chords, the largest chord, share of time in rests, mean notes sounding;
- pitch and rhythm: overlap area of kernel-density estimates (Yang and Lerch 2020) against the test split,
  for pitch-class entropy, pitch range, mean absolute interval, in-scale share and note durations;
- novelty: share of samples copying 4 bars or more of a training piece (`check --run`).

A baseline row measures the corpus's validation split against its test split the same way. Each row is kept
in a results file (default benchmarks/results/pair_quality.json) so that the matrix can be built one pair at
a time; `--table` prints it as markdown, with each threshold of issue 14 checked.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import abc_validity  # the benchmark beside this one (a script's folder is on sys.path)
import numpy as np

from tui_composer.music.checking import corpus_novelty_index
from tui_composer.music.notes import Note, score_notes
from tui_composer.plugin.contract import Piece
from tui_composer.services.parallel import call_bounded
from tui_composer.services.studio import Studio
from tui_composer.services.workspace import WorkspaceError

ENCODERS = ("abc", "midi-events", "piano-roll")
MODELS = ("char-lstm", "rbm", "rnn-rbm")
RESULTS = Path(__file__).parent / "results" / "pair_quality.json"
# Why a pair misses a target, with what was tried: written by whoever measured it, keyed like the rows
# ("oneills/char-lstm:abc"), and printed in the table's last column.
WHY = Path(__file__).parent / "results" / "pair_quality_why.json"
PARSE_TIMEOUT = 30.0
ABC2MIDI_TIMEOUT = 20.0
KDE_POINTS = 512
DURATION_SAMPLE = 20_000  # note durations pooled over a split are subsampled to this many for the KDE
MAJOR = (0, 2, 4, 5, 7, 9, 11)
# The thresholds of issue 14 (on oneills): share under 8 bars, chord onsets over the corpus's, largest chord,
# rest time as a multiple of the corpus's, the least overlap area, the share of copies.
MAX_UNDER_8 = 0.02
MAX_EXTRA_CHORDS = 0.05
MAX_CHORD = 6
MAX_REST_RATIO = 2.0
MIN_OVERLAP = 0.6
MAX_COPIES = 0.01
OVERLAP_MEASURES = ("pc_entropy", "pitch_range", "mean_interval", "in_scale", "duration")


# --- measuring one piece ------------------------------------------------------------------------------------


@dataclass
class PieceStats:
    """What the matrix measures on one piece (a sample, or a held-out piece)."""

    bars: int
    repeats: bool
    onsets: int
    chord_onsets: int
    largest_chord: int
    rest_share: float
    sounding: float  # mean notes sounding while any sounds
    pc_entropy: float
    pitch_range: int
    mean_interval: float
    in_scale: float
    durations: list[float] = field(default_factory=list)  # log2 quarter lengths


def piece_stats(abc: str, notes: Sequence[Note], bars: int) -> PieceStats | None:
    """The measures of one piece from its notes as written; None when it has no notes."""
    if not notes:
        return None
    by_onset: dict[float, set[int]] = {}
    for note in notes:
        by_onset.setdefault(round(note.start, 6), set()).add(note.pitch)
    chord_sizes = [len(pitches) for pitches in by_onset.values()]
    span = max(note.end for note in notes) - min(0.0, min(note.start for note in notes))
    covered = _covered_time(notes)
    sounding_time = sum(note.end - note.start for note in notes)
    pitches = np.asarray([note.pitch for note in notes])
    classes = np.bincount(pitches % 12, minlength=12) / len(pitches)
    nonzero = classes[classes > 0]
    melody = top_line(notes)
    intervals = np.abs(np.diff(melody)) if len(melody) > 1 else np.zeros(1)
    in_scale = max(sum(classes[(root + step) % 12] for step in MAJOR) for root in range(12))
    lengths = [note.end - note.start for note in notes if note.end > note.start]
    return PieceStats(
        bars=bars,
        repeats=":|" in abc or "|:" in abc or "::" in abc,
        onsets=len(chord_sizes),
        chord_onsets=sum(size > 1 for size in chord_sizes),
        largest_chord=max(chord_sizes),
        rest_share=max(0.0, 1 - covered / span) if span > 0 else 0.0,
        sounding=sounding_time / covered if covered > 0 else 0.0,
        pc_entropy=float(-(nonzero * np.log2(nonzero)).sum()),
        pitch_range=int(pitches.max() - pitches.min()),
        mean_interval=float(intervals.mean()),
        in_scale=float(in_scale),
        durations=[math.log2(length) for length in lengths],
    )


def top_line(notes: Sequence[Note]) -> list[int]:
    """The pitches of the highest note sounding, each time it changes: a tune's melody, a chorale's soprano.
    (The highest note *starting* at each onset jumped to an inner voice wherever the soprano held: 5-11
    semitones on average in the chorales' test split, against 1.5-2 for samples written as chords.)"""
    ordered = sorted(notes, key=lambda note: note.start)
    line: list[int] = []
    active: list[Note] = []
    top: Note | None = None
    index = 0
    for onset in sorted({note.start for note in notes}):
        while index < len(ordered) and ordered[index].start <= onset:
            active.append(ordered[index])
            index += 1
        active = [note for note in active if note.end > onset or note.start == onset]
        highest = max(active, key=lambda note: (note.pitch, note.start))
        if highest is not top:
            line.append(highest.pitch)
            top = highest
    return line


def _covered_time(notes: Sequence[Note]) -> float:
    """Time during which at least one note sounds (the union of the notes' spans)."""
    covered, end = 0.0, -math.inf
    for start, stop in sorted((note.start, note.end) for note in notes):
        if start > end:
            covered += stop - start
            end = stop
        elif stop > end:
            covered += stop - end
            end = stop
    return covered


def _parse(abc: str) -> tuple[list[Note], int]:
    from tui_composer.music.export import parse_abc

    score = parse_abc(abc)
    parts = list(score.parts) or [score]
    bars = max(len(part.getElementsByClass("Measure")) for part in parts)
    return score_notes(score), bars


def abc_stats(abc: str) -> PieceStats | None:
    outcome = call_bounded(_parse, abc, PARSE_TIMEOUT)
    if not outcome.ok or outcome.value is None:
        return None
    notes, bars = outcome.value
    return piece_stats(abc, notes, bars)


def abc2midi_clean(abc: str) -> bool | None:
    """Whether abc2midi reads the tune with no error or warning; None when abc2midi is not installed."""
    return abc_validity.abc2midi_clean(abc, timeout=ABC2MIDI_TIMEOUT)


# --- a set of pieces --------------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the matrix: a pair on a corpus (or the baseline), measured against the test split."""

    pair: str
    corpus: str
    pieces: int
    train_minutes: float | None
    valid: float  # music21 parses and writes MIDI
    abc2midi: float | None
    bars_median: float
    under_8: float
    repeats: float
    chord_onsets: float
    largest_chord: int
    rest_share: float
    sounding: float
    overlap: dict[str, float]
    copies: float | None
    note: str = ""

    def verdict(self, reference: Row | None) -> str:
        """The issue's thresholds that this row misses, or "pass"."""
        misses = []
        if self.valid < 1 or (self.abc2midi is not None and self.abc2midi < 1):
            misses.append("validity")
        if self.under_8 > MAX_UNDER_8:
            misses.append("<8 bars")
        if reference is not None and self.chord_onsets > reference.chord_onsets + MAX_EXTRA_CHORDS:
            misses.append("chords")
        if self.largest_chord > MAX_CHORD:
            misses.append("chord size")
        if reference is not None and self.rest_share > MAX_REST_RATIO * max(reference.rest_share, 0.005):
            misses.append("rests")
        low = [name for name in OVERLAP_MEASURES if self.overlap.get(name, 0.0) < MIN_OVERLAP]
        if low:
            misses.append("overlap " + "/".join(low))
        if self.copies is not None and self.copies >= MAX_COPIES:
            misses.append("copies")
        return "pass" if not misses else "misses: " + ", ".join(misses)


def measure(
    pair: str,
    corpus: str,
    abcs: Sequence[str],
    music21_ok: Sequence[bool],
    reference: Sequence[PieceStats],
    copies: float | None,
    train_minutes: float | None,
) -> Row:
    """The row for a set of ABC pieces against the reference (test split) measures."""
    stats = [abc_stats(abc) for abc in abcs]
    found = [s for s in stats if s is not None]
    clean = [abc2midi_clean(abc) for abc in abcs]
    abc2midi = None if any(c is None for c in clean) else sum(bool(c) for c in clean) / max(len(clean), 1)
    onsets = sum(s.onsets for s in found)
    return Row(
        pair=pair,
        corpus=corpus,
        pieces=len(abcs),
        train_minutes=train_minutes,
        valid=sum(ok and s is not None for ok, s in zip(music21_ok, stats, strict=True)) / max(len(abcs), 1),
        abc2midi=abc2midi,
        bars_median=statistics.median([s.bars for s in found]) if found else 0.0,
        under_8=sum(s.bars < 8 for s in found) / max(len(found), 1),
        repeats=sum(s.repeats for s in found) / max(len(found), 1),
        chord_onsets=sum(s.chord_onsets for s in found) / max(onsets, 1),
        largest_chord=max((s.largest_chord for s in found), default=0),
        rest_share=statistics.fmean([s.rest_share for s in found]) if found else 1.0,
        sounding=statistics.fmean([s.sounding for s in found]) if found else 0.0,
        overlap=overlaps(found, reference),
        copies=copies,
    )


def overlaps(pieces: Sequence[PieceStats], reference: Sequence[PieceStats]) -> dict[str, float]:
    """Overlap area of each measure's kernel-density estimate against the reference's."""
    result = {}
    for name in OVERLAP_MEASURES:
        if name == "duration":
            ours, theirs = _pooled_durations(pieces), _pooled_durations(reference)
        else:
            ours = np.asarray([getattr(p, name) for p in pieces], float)
            theirs = np.asarray([getattr(p, name) for p in reference], float)
        result[name] = round(overlap_area(ours, theirs), 3)
    return result


def _pooled_durations(pieces: Sequence[PieceStats]) -> np.ndarray:
    values = np.asarray([d for p in pieces for d in p.durations], float)
    if len(values) > DURATION_SAMPLE:
        values = np.random.default_rng(0).choice(values, DURATION_SAMPLE, replace=False)
    return values


def overlap_area(a: np.ndarray, b: np.ndarray) -> float:
    """The area under both Gaussian KDEs (Scott's bandwidth): 1 for the same distribution, 0 for disjoint."""
    if len(a) < 2 or len(b) < 2:
        return 0.0
    spread = max(np.std(a), np.std(b), 1e-3)
    low, high = min(a.min(), b.min()) - 3 * spread, max(a.max(), b.max()) + 3 * spread
    grid = np.linspace(low, high, KDE_POINTS)
    return float(np.trapezoid(np.minimum(_kde(a, grid), _kde(b, grid)), grid))


def _kde(values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    # Scott's rule, with a floor so a constant measure (every piece 7 notes of one scale) is a narrow bump.
    bandwidth = max(np.std(values) * len(values) ** (-1 / 5), 0.05 * max(abs(values.mean()), 1.0) + 1e-3)
    z = (grid[:, None] - values[None, :]) / bandwidth
    return np.exp(-0.5 * z * z).sum(axis=1) / (len(values) * bandwidth * math.sqrt(2 * math.pi))


# --- the corpus side --------------------------------------------------------------------------------------


def split_abc(studio: Studio, corpus: str, split: str, limit: int) -> list[str]:
    """ABC text of up to `limit` pieces of a split, in the corpus's order."""
    from tui_composer.music.export import piece_abc

    pieces: list[Piece] = studio.catalogue.get(corpus).splits()[split][:limit]
    texts = []
    for piece in pieces:
        outcome = call_bounded(piece_abc, piece, PARSE_TIMEOUT)
        if outcome.ok and outcome.value:
            texts.append(outcome.value)
    return texts


def reference_stats(studio: Studio, corpus: str, limit: int) -> list[PieceStats]:
    return [s for s in (abc_stats(abc) for abc in split_abc(studio, corpus, "test", limit)) if s is not None]


def baseline_row(studio: Studio, corpus: str, reference: list[PieceStats], limit: int) -> Row:
    abcs = split_abc(studio, corpus, "valid", limit)
    row = measure("baseline: valid vs test", corpus, abcs, [True] * len(abcs), reference, None, None)
    row.note = "the corpus itself: what a pair should come close to"
    return row


# --- a pair -----------------------------------------------------------------------------------------------


def train_pair(
    studio: Studio, model: str, encoder: str, corpus: str, minutes: float, retrain: bool
) -> tuple[str, float]:
    """The pair's run (trained now, or kept from before) and its training minutes."""
    from tui_composer.services.training import TrainingRequest, prepare_run, train_run

    name = f"pq-{model}-{encoder}-{corpus}"
    try:
        run = studio.runs.get(name)
        if retrain:
            studio.runs.delete(name)
            raise WorkspaceError("retrain")
        status = run.status()
        if status.get("state") == "finished":
            return name, _training_minutes(run.metrics())
    except WorkspaceError:
        pass
    request = TrainingRequest(
        corpus=corpus, encoder=encoder, model=model, epochs=1000, seed=1, name=name, time_limit=minutes
    )
    run = prepare_run(studio, request)
    started = time.monotonic()
    train_run(studio, run, on_progress=_print_progress)
    print(f"trained {name} in {(time.monotonic() - started) / 60:.1f} min", flush=True)
    return name, _training_minutes(run.metrics())


def _training_minutes(metrics: list[dict]) -> float:
    return round(sum(r.get("seconds", 0.0) for r in metrics if r.get("kind") == "epoch") / 60, 1)


def _print_progress(progress: object) -> None:
    phase = getattr(progress, "phase", "")
    if phase in ("epoch", "finished", "stopped") or getattr(progress, "message", ""):
        record = getattr(progress, "record", None) or {}
        print(f"  {phase} {getattr(progress, 'epoch', '')} {getattr(progress, 'message', '')} {record}", flush=True)


def pair_row(
    studio: Studio, pair: str, corpus: str, minutes: float, n: int, reference: list[PieceStats], retrain: bool
) -> Row:
    from tui_composer.music.checking import check_tune
    from tui_composer.services.sampling import SampleOptions, sample_run

    model, encoder = pair.split(":")
    name, trained = train_pair(studio, model, encoder, corpus, minutes, retrain)
    with tempfile.TemporaryDirectory() as folder:
        samples = sample_run(studio, name, SampleOptions(n=n, seed=0, out=Path(folder)))
    abcs = [s.abc or "" for s in samples]
    index = corpus_novelty_index(studio, corpus)
    copies = sum(check_tune(abc, i, index).copy for i, abc in enumerate(abcs, 1) if abc) / max(len(abcs), 1)
    return measure(pair, corpus, abcs, [s.ok and s.midi_path is not None for s in samples], reference, copies, trained)


# --- results ----------------------------------------------------------------------------------------------


def load_rows(path: Path) -> dict[str, Row]:
    if not path.is_file():
        return {}
    return {key: Row(**value) for key, value in json.loads(path.read_text()).items()}


def save_row(path: Path, row: Row) -> None:
    rows = load_rows(path)
    rows[f"{row.corpus}/{row.pair}"] = row
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({k: asdict(v) for k, v in sorted(rows.items())}, indent=1) + "\n")


def load_why(path: Path) -> dict[str, str]:
    return json.loads(path.read_text()) if path.is_file() else {}


def table(rows: dict[str, Row], why: dict[str, str] | None = None) -> str:
    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{100 * value:.0f}%"

    header = (
        "| corpus | pair | train min | valid | abc2midi | bars | <8 bars | repeats | chord onsets | max chord "
        "| rests | sounding | OA pc-entropy / range / interval / in-scale / durations | copies | verdict | why |"
    )
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for key in sorted(rows, key=lambda k: (rows[k].corpus, not rows[k].pair.startswith("baseline"), rows[k].pair)):
        row = rows[key]
        reference = rows.get(f"{row.corpus}/baseline: valid vs test")
        verdict = "-" if row.pair.startswith("baseline") else row.verdict(reference)
        if row.note and not row.pair.startswith("baseline"):
            verdict += f" ({row.note})"
        oa = " / ".join(f"{row.overlap.get(name, 0.0):.2f}" for name in OVERLAP_MEASURES)
        lines.append(
            f"| {row.corpus} | {row.pair} | {row.train_minutes if row.train_minutes is not None else '-'} "
            f"| {pct(row.valid)} | {pct(row.abc2midi)} | {row.bars_median:g} | {pct(row.under_8)} | {pct(row.repeats)} "
            f"| {pct(row.chord_onsets)} | {row.largest_chord} | {pct(row.rest_share)} | {row.sounding:.2f} | {oa} "
            f"| {pct(row.copies)} | {verdict} | {(why or {}).get(key, '') if verdict.startswith('misses') else ''} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pair", action="append", default=[], help="MODEL:ENCODER, e.g. rnn-rbm:piano-roll")
    parser.add_argument("--all", action="store_true", help="every pair, one after another")
    parser.add_argument("--corpus", default="oneills")
    parser.add_argument("--minutes", type=float, default=10.0, help="training time limit per pair")
    parser.add_argument("-n", type=int, default=100, help="samples per pair")
    parser.add_argument("--reference", type=int, default=200, help="held-out pieces measured")
    parser.add_argument("--retrain", action="store_true", help="train again even if the pair's run finished")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--table", action="store_true", help="only print the table of the rows kept")
    parser.add_argument("--why", type=Path, default=WHY, help="why each pair misses (JSON, keyed like the rows)")
    args = parser.parse_args(argv)

    if shutil.which("abc2midi") is None:
        print("abc2midi is not installed (Debian: apt-get install abcmidi): its column says n/a", file=sys.stderr)
    pairs = [f"{m}:{e}" for m in MODELS for e in ENCODERS] if args.all else args.pair
    if not args.table:
        studio = Studio()
        reference = reference_stats(studio, args.corpus, args.reference)
        save_row(args.results, baseline_row(studio, args.corpus, reference, args.reference))
        for pair in pairs:
            if pair.count(":") != 1 or pair.split(":")[0] not in MODELS or pair.split(":")[1] not in ENCODERS:
                parser.error(f"--pair {pair!r}: expected MODEL:ENCODER with MODEL in {MODELS}, ENCODER in {ENCODERS}")
            started = time.monotonic()
            row = pair_row(studio, pair, args.corpus, args.minutes, args.n, reference, args.retrain)
            save_row(args.results, row)
            print(f"{pair} on {args.corpus}: measured in {(time.monotonic() - started) / 60:.1f} min", flush=True)
    print(table(load_rows(args.results), load_why(args.why)))


if __name__ == "__main__":
    main()
