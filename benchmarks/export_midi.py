"""MIDI export benchmark: every tune of `oneills` and `ryans` through tui_composer.music.export.score_to_midi.

Target (issue 3): at least 99.5% of each corpus exports, every failure listed with its reason. For
comparison, music21's plain `score.write('midi')` on the first 300 tunes of `oneills` (about 9% fail).
Tunes are parsed and exported in parallel, each bounded by a timeout.

Run from the repository root: .venv/bin/python benchmarks/export_midi.py
"""

from __future__ import annotations

import argparse
import io
import time
from collections import Counter

from tui_composer.music.export import parse_piece, score_to_midi
from tui_composer.plugin.contract import Piece
from tui_composer.services.parallel import map_bounded
from tui_composer.services.studio import Studio

TIMEOUT = 60.0


def export_piece(piece: Piece) -> int:
    """Notes struck in the exported MIDI (checked by reading it back with mido)."""
    import mido

    data = score_to_midi(parse_piece(piece), None, timeout=30)
    midi = mido.MidiFile(file=io.BytesIO(data))
    struck = sum(1 for track in midi.tracks for m in track if m.type == "note_on" and m.velocity > 0)
    if struck == 0:
        raise ValueError("the MIDI file has no notes")
    return struck


def plain_write(piece: Piece) -> int:
    from music21 import converter

    score = converter.parse(piece.text, format="abc", forceSource=True)
    return len(score.write("midi").read_bytes())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpora", nargs="+", default=["oneills", "ryans"])
    parser.add_argument("--plain", type=int, default=300, help="oneills tunes for the plain write comparison")
    args = parser.parse_args()
    studio = Studio()
    for name in args.corpora:
        pieces = studio.catalogue.get(name).pieces
        started = time.perf_counter()
        outcomes = list(map_bounded(export_piece, pieces, timeout=TIMEOUT))
        seconds = time.perf_counter() - started
        failures = [(p.key, o.error) for p, o in zip(pieces, outcomes, strict=True) if not o.ok]
        ok = len(pieces) - len(failures)
        rate = 100 * ok / len(pieces)
        print(
            f"{name}: {ok}/{len(pieces)} exported ({rate:.2f}%) in {seconds:.0f} s; target >= 99.5%: "
            f"{'ok' if rate >= 99.5 else 'MISSED'}"
        )
        for key, reason in failures:
            print(f"  failed {key}: {reason}")
    if args.plain <= 0:
        return
    pieces = studio.catalogue.get("oneills").pieces[: args.plain]
    outcomes = list(map_bounded(plain_write, pieces, timeout=TIMEOUT))
    failures = Counter((o.error or "").split(" (<")[0][:70] for o in outcomes if not o.ok)
    ok = sum(o.ok for o in outcomes)
    print(
        f"plain music21 score.write('midi'), first {len(pieces)} oneills tunes: {ok}/{len(pieces)} "
        f"({100 * ok / len(pieces):.1f}%)"
    )
    for reason, count in failures.most_common():
        print(f"  {count} x {reason}")


if __name__ == "__main__":
    main()
