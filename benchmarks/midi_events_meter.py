"""Does a midi-events decode get the written meter back? (issue 14: the MIDI-events decode's time signatures)

The held-out `oneills` tunes are read by the midi-events encoder (fitted on them) and decoded again, once
as read, with the `bar` tokens, and once with the bar tokens left out, as a run saved before them would
decode (the meter inferred from the notes alone). For each, the decoded score's meter is compared with the
tune's written `M:` by kind: duple (2/4, 4/4, C, C|, 2/2), triple (3/4, 3/2), 6/8 (with 12/8), 9/8. The
figure is the share that match.

Run from the repository root: .venv/bin/python benchmarks/midi_events_meter.py [--tunes 150]
"""

from __future__ import annotations

import argparse
import re
import time

from tui_composer.api import EncodeError, Piece, score_to_abc
from tui_composer.music.export import piece_abc
from tui_composer.services.studio import Studio

KINDS = {"2/4": "4/4", "C": "4/4", "C|": "4/4", "2/2": "4/4", "3/2": "3/4", "12/8": "6/8"}
METER = re.compile(r"^M:\s*(\S+)", re.MULTILINE)


def kind(meter: str | None) -> str:
    return KINDS.get(meter or "4/4", meter or "4/4")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tunes", type=int, default=150, help="held-out tunes measured")
    args = parser.parse_args()
    started = time.monotonic()
    studio = Studio()
    encoder = studio.registry.encoders["midi-events"].create({})
    pieces: list[Piece] = studio.catalogue.get("oneills").splits()["test"][: args.tunes]
    readings = []
    for piece in pieces:
        try:
            readings.append((piece_abc(piece), encoder.read(piece)))
        except EncodeError as error:
            print(f"skipped {error}")
    encoder.fit([reading for _, reading in readings])
    matched = {"with bar lines": 0, "without (meter inferred from the notes)": 0}
    for text, reading in readings:
        written = match.group(1) if (match := METER.search(text)) else None
        for label, tokens in zip(matched, (reading, [t for t in reading if t != "bar"]), strict=True):
            decoded = METER.search(score_to_abc(encoder.decode(encoder.encode(tokens))))
            matched[label] += kind(decoded.group(1) if decoded else None) == kind(written)
    for label, count in matched.items():
        print(f"written meter's kind recovered, {label}: {count} / {len(readings)}")
    print(f"({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
