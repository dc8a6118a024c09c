"""Validity and novelty of sampled tunes, with and without the ABC grammar constraint (issue 7).

    .venv/bin/python benchmarks/abc_validity.py [--run oneills-default] [-n 200] [--temperature 1.0]

Samples n tunes from the run with the `abc` checker masking every step, then n without it, and checks
each like `tui-composer check --run RUN`: parses in music21, writes MIDI, every bar agrees with the meter,
copies 4 bars or more of a training tune. The run's training tunes (n of them, as the encoder reads them)
give the reference rates. Sampling speed is characters per second over the whole batch, constrained and
not, measured in the same process. Targets: constrained 100% parse and MIDI, at least 99% on the meter,
and at least half the unconstrained speed.

Form and other readers (issue 14): bar lines per tune (the share under 8 and the median), which the
masks must leave as unconstrained sampling has them (within 2 points), and the share that `abc2midi`
(Debian package `abcmidi`) reads with no error or warning line ("-" when it is not installed).
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tui_composer.music.checking import TuneCheck, check_tune, corpus_novelty_index
from tui_composer.plugin.contract import EncodeError, SampleRequest
from tui_composer.services.sampling import SampleOptions, load_model, sampling_constraint
from tui_composer.services.studio import Studio

ABC2MIDI_TIMEOUT = 30  # seconds for one tune
# A bar line, as the issue counts them: `|`, `||`, `|]`, `[|`, `|:`, `:|`, `::`, `|1`...
_BAR_LINE = re.compile(r"::|\[?[|:]*\|[|:\]]*")
_FIELD_LINE = re.compile(r"[A-Za-z]:")


@dataclass
class Row:
    name: str
    checks: list[TuneCheck]
    chars_per_second: float | None = None
    seconds: float | None = None
    bars: list[int] = field(default_factory=list)
    abc2midi: list[bool | None] = field(default_factory=list)

    def share(self, predicate: str) -> str:
        count = sum(bool(getattr(check, predicate)) for check in self.checks)
        return f"{100 * count / max(len(self.checks), 1):5.1f}%"

    def under_8(self) -> str:
        return f"{100 * sum(b < 8 for b in self.bars) / max(len(self.bars), 1):5.1f}%"

    def median_bars(self) -> str:
        return f"{statistics.median(self.bars):5.1f}" if self.bars else "    -"

    def abc2midi_clean(self) -> str:
        if not self.abc2midi or any(clean is None for clean in self.abc2midi):
            return "    -  "
        return f"{100 * sum(bool(c) for c in self.abc2midi) / len(self.abc2midi):5.1f}%"


def bar_lines(text: str) -> int:
    """Bar lines in the tune's body (chord symbols, decorations and field lines left out)."""
    body = "\n".join(line for line in text.split("\n") if not _FIELD_LINE.match(line))
    return len(_BAR_LINE.findall(re.sub(r'"[^"\n]*"|![^!\n]*!', "", body)))


def abc2midi_clean(text: str, timeout: float = ABC2MIDI_TIMEOUT) -> bool | None:
    """Whether abc2midi reads the tune with no error or warning line; None when it is not installed.
    (benchmarks/pair_quality.py uses it too.)"""
    program = shutil.which("abc2midi")
    if program is None:
        return None
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "tune.abc"
        source.write_text(text, encoding="utf-8")
        try:
            done = subprocess.run(
                [program, str(source), "-o", str(Path(folder) / "tune.mid")],
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            return False
    said = (done.stdout + done.stderr).lower()
    return done.returncode == 0 and "error" not in said and "warning" not in said


def with_form(row: Row, texts: list[str]) -> Row:
    """The row with each tune's bar lines and abc2midi's verdict (four abc2midi processes at a time)."""
    row.bars = [bar_lines(text) for text in texts]
    with ThreadPoolExecutor(4) as pool:
        row.abc2midi = list(pool.map(abc2midi_clean, texts))
    return row


def sample_and_check(model, encoder, index, options: SampleOptions, name: str) -> Row:
    request = SampleRequest(
        n=options.n,
        max_length=options.length,
        temperature=options.temperature,
        seed=options.seed,
        constraint=sampling_constraint(encoder, options),
    )
    start = time.perf_counter()
    arrays = model.sample(request)
    seconds = time.perf_counter() - start
    characters = sum(len(a) for a in arrays)
    checks, texts = [], []
    for number, array in enumerate(arrays, start=1):
        try:
            text = encoder.to_abc(array)
        except EncodeError as error:
            checks.append(TuneCheck(number=number, title="", error=error.reason))
            texts.append("".join(encoder.vocabulary.symbols[i] for i in array))
            continue
        checks.append(check_tune(text, number, index))
        texts.append(text)
    return with_form(Row(name, checks, characters / seconds, seconds), texts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", default="oneills-default")
    parser.add_argument("-n", type=int, default=200)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--max-length", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    studio = Studio()
    run = studio.runs.get(args.run)
    corpus = run.config["corpus"]
    print(f"run {args.run}: {run.config['model']} on {corpus} with {run.config['encoder']}; {args.n} samples")
    encoder, _, model = load_model(studio, run)
    index = corpus_novelty_index(studio, corpus)

    common = {"n": args.n, "temperature": args.temperature, "max_length": args.max_length, "seed": args.seed}
    model.sample(SampleRequest(n=2, max_length=20))  # trace the compiled loop before timing anything
    rows = [
        sample_and_check(model, encoder, index, SampleOptions(**common, constrain=True), "constrained"),
        sample_and_check(model, encoder, index, SampleOptions(**common, constrain=False), "unconstrained"),
    ]

    train = studio.catalogue.get(corpus).splits()["train"]
    reference, reference_texts = [], []
    for number, piece in enumerate(random.Random(args.seed).sample(train, min(args.n, len(train))), start=1):
        try:
            text = "".join(encoder.read(piece))
        except EncodeError as error:
            reference.append(TuneCheck(number=number, title=piece.title, error=error.reason))
            continue
        reference.append(check_tune(text, number, None))
        reference_texts.append(text)
    rows.append(with_form(Row(f"training tunes ({corpus})", reference), reference_texts))

    print(
        f"{'':26} {'parse':>7} {'MIDI':>7} {'meter':>7} {'all ok':>7} {'copies':>7} {'<8 bars':>7}"
        f" {'bars':>5} {'abc2midi':>8} {'chars/s':>9} {'s':>7}"
    )
    for row in rows:
        copies = row.share("copy") if row.chars_per_second is not None else "    -  "
        speed = f"{row.chars_per_second:9.0f}" if row.chars_per_second else f"{'-':>9}"
        seconds = f"{row.seconds:7.1f}" if row.seconds else f"{'-':>7}"
        print(
            f"{row.name:26} {row.share('parses'):>7} {row.share('writes_midi'):>7} {row.share('bars_ok'):>7}"
            f" {row.share('ok'):>7} {copies:>7} {row.under_8():>7} {row.median_bars():>5} {row.abc2midi_clean():>8}"
            f" {speed} {seconds}"
        )
    constrained, free = rows[0], rows[1]
    assert constrained.chars_per_second and free.chars_per_second
    print(f"constrained sampling speed: {constrained.chars_per_second / free.chars_per_second:.2f} of unconstrained")
    if shutil.which("abc2midi") is None:
        print("abc2midi is not installed (Debian package abcmidi): its column shows -")
    for row in rows[:2]:
        for check in row.checks:
            if not check.ok:
                print(f"{row.name} sample {check.number}: {check.summary()}")


if __name__ == "__main__":
    main()
