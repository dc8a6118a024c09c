"""Round-trip check (issue 3's "Checked by"): for each encoder, the first 300 tunes of `oneills` are read,
encoded, decoded to a music21 Score and written to MIDI (target: at least 99.5% succeed); and the ABC
writer's text for 20 Bach chorales re-parses in music21 to the same notes.

Run from the repository root: .venv/bin/python benchmarks/roundtrip_oneills.py [--tunes 300 --chorales 20]
"""

from __future__ import annotations

import argparse
import time
from functools import partial
from typing import Any

from tui_composer.music.abc_writer import score_to_abc, sounding_notes
from tui_composer.music.export import score_to_midi
from tui_composer.plugin.contract import Piece
from tui_composer.plugin.params import resolve
from tui_composer.services.parallel import map_bounded
from tui_composer.services.studio import Studio


def round_trip(name: str, params: dict[str, Any], vocabulary: list[str] | None, piece: Piece) -> int:
    """Read, encode, decode and export one piece; the size of the MIDI file."""
    studio = _studio()
    encoder = studio.registry.encoders[name].create(params)
    reading = encoder.read(piece)
    if vocabulary is not None:
        encoder.load_state({"vocabulary": vocabulary})
    else:
        encoder.fit([reading])
    return len(score_to_midi(encoder.decode(encoder.encode(reading)), None, timeout=30))


_STUDIO: Studio | None = None


def _studio() -> Studio:
    global _STUDIO
    if _STUDIO is None:
        _STUDIO = Studio()
    return _STUDIO


def _vocabulary(name: str, params: dict[str, Any], pieces: list[Piece]) -> list[str] | None:
    """A token encoder's vocabulary fitted on all the pieces (as a run fits it on its training split)."""
    spec = _studio().registry.encoders[name]
    if spec.makes != "tokens":
        return None
    encoder = spec.create(params)
    readings = [o.value for o in map_bounded(encoder.read, pieces, timeout=60) if o.ok]
    encoder.fit(readings)
    return encoder.state()["vocabulary"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tunes", type=int, default=300)
    parser.add_argument("--chorales", type=int, default=20)
    args = parser.parse_args()
    studio = _studio()
    pieces = studio.catalogue.get("oneills").pieces[: args.tunes]
    for name in ("abc", "midi-events", "piano-roll"):
        spec = studio.registry.encoders[name]
        params = resolve(spec.params, {}, owner=f"encoder {name!r}")
        started = time.perf_counter()
        vocabulary = _vocabulary(name, params, pieces)
        outcomes = list(map_bounded(partial(round_trip, name, params, vocabulary), pieces, timeout=60))
        failures = [(p.key, o.error) for p, o in zip(pieces, outcomes, strict=True) if not o.ok]
        ok = len(pieces) - len(failures)
        rate = 100 * ok / len(pieces)
        print(
            f"{name}: read -> encode -> decode -> MIDI succeeded for {ok}/{len(pieces)} oneills tunes ({rate:.2f}%) "
            f"in {time.perf_counter() - started:.0f} s; target >= 99.5%: {'ok' if rate >= 99.5 else 'MISSED'}"
        )
        for key, reason in failures:
            print(f"  failed {key}: {reason}")

    from music21 import corpus

    from tui_composer.music.export import parse_abc

    paths = [p for p in corpus.getComposer("bach") if p.suffix in (".mxl", ".xml")][: args.chorales]
    same = 0
    for path in paths:
        chorale = corpus.parse(path)
        if sounding_notes(parse_abc(score_to_abc(chorale))) == sounding_notes(chorale):
            same += 1
        else:
            print(f"  chorale {path.name}: the re-parsed ABC differs")
    print(
        f"ABC writer: {same}/{len(paths)} Bach chorales re-parse to the same notes ({', '.join(p.stem for p in paths)})"
    )


if __name__ == "__main__":
    main()
