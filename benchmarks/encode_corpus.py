"""Encoding benchmark: `piano-roll` over all 2,009 tunes of `oneills`, cold cache then warm cache.

Targets (issue 3): cold at most 60 s on 2 cores, warm at most 1 s. For comparison the same run measures
the naive way, parsing tunes one by one with music21's `converter.parse` on one core, on a subset.

Run from the repository root: .venv/bin/python benchmarks/encode_corpus.py [--naive 60]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from tui_composer.plugin.params import resolve
from tui_composer.services.encoding import read_corpus
from tui_composer.services.parallel import worker_count
from tui_composer.services.studio import Studio
from tui_composer.services.workspace import Workspace


def _cpu_seconds() -> float:
    """CPU seconds of this process and of its finished children (the worker processes)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default="oneills")
    parser.add_argument("--encoder", default="piano-roll")
    parser.add_argument("--naive", type=int, default=60, help="tunes parsed one by one for the comparison")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as home:
        workspace = Workspace(Path(home)).ensure()
        studio = Studio(workspace)
        spec = studio.registry.encoders[args.encoder]
        params = resolve(spec.params, {}, owner=f"encoder {args.encoder!r}")

        corpus = studio.catalogue.get(args.corpus)
        started, cpu_before = time.perf_counter(), _cpu_seconds()
        cold = read_corpus(workspace, corpus, spec, params)
        cold_s, cold_cpu = time.perf_counter() - started, _cpu_seconds() - cpu_before
        kept = sum(len(pairs) for pairs in cold.splits.values())

        corpus = studio.catalogue.get(args.corpus)  # a fresh listing, as a new session would have
        started = time.perf_counter()
        warm = read_corpus(workspace, corpus, spec, params)
        warm_s = time.perf_counter() - started
        assert sum(len(pairs) for pairs in warm.splits.values()) == kept

        pieces = corpus.pieces[: args.naive]
        from music21 import converter

        started = time.perf_counter()
        for piece in pieces:
            converter.parse(piece.text, format="abc", forceSource=True)
        naive_s = time.perf_counter() - started
        naive_rate = len(pieces) / naive_s

    total = len(corpus.pieces)
    print(f"corpus {args.corpus}: {total} pieces; encoder {args.encoder}; {worker_count()} workers")
    print(f"cold cache: {cold_s:.1f} s ({total / cold_s:.1f} pieces/s), kept {kept}, skipped {len(cold.skipped)}")
    print(
        f"  CPU time of the cold read (workers included): {cold_cpu:.1f} s, i.e. {cold_cpu / 2:.1f} s of wall time "
        f"on 2 otherwise idle cores; load average during the run: {os.getloadavg()[0]:.1f}"
    )
    for skipped in cold.skipped[:10]:
        print(f"  skipped {skipped.item}: {skipped.reason}")
    print(f"warm cache: {warm_s:.2f} s")
    print(
        f"naive music21 converter.parse, one by one on one core: {naive_rate:.1f} tunes/s over {len(pieces)} tunes "
        f"(all {total}: about {total / naive_rate:.0f} s)"
    )
    print(
        f"targets: cold <= 60 s: {'ok' if cold_s <= 60 else 'MISSED'}; warm <= 1 s: {'ok' if warm_s <= 1 else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
