"""Coverage of the ABC checker over whole training corpora (issue 7, item 5).

    .venv/bin/python benchmarks/abc_checker_coverage.py [oneills ryans essen ...] [--cache DIR] [--examples 3]

Every tune of each corpus named (default: oneills ryans), normalised as the `abc` encoder reads it, gets
two verdicts:

- plays: music21 parses the tune and `tui_composer.music.checking.bar_problems` finds no bar off the meter;
  the definition `tests/test_abc_grammar.py` uses. Slow (music21), so it runs on all cores through
  `map_bounded` and is cached on disk by a digest of the text and music21's version: the workspace
  cache by default, `--cache DIR` to put it elsewhere.
- accepted: `check_text` (plugins/abc/grammar.py) reads the whole tune as a training tune;
- offered: `check_text(..., sampling=True)` takes it in the stricter language the masks offer a sampler.

The table gives per corpus the tunes (non-empty after normalising), how many play, how many of those the
checker accepts (the target is all of them) and refuses, how many the sampler's language covers (informative:
the rest hold notation music21 reads but a sampler is not offered), and the accepted tunes that do not play
(informative: the checker's reading of music21 is off for them; samples stay safe, as the sampler is offered
only the stricter language). Then the refused tunes that play, grouped by where the checker stopped (its
mode and the character) with a few examples each, and the accepted tunes that do not play with music21's
or the bar check's reason. The checker's time is for reading every tune of the corpus once.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from collections import defaultdict
from pathlib import Path

from tui_composer_plugins.abc.encoder import normalise
from tui_composer_plugins.abc.grammar import Rejection, check_text

from tui_composer.services.parallel import map_bounded
from tui_composer.services.studio import Studio

CACHE_VERSION = "1"


def plays_verdict(text: str) -> str:
    """'' when the tune plays (music21 parses it, every bar on the meter), else why not."""
    from tui_composer.music.checking import bar_problems
    from tui_composer.music.export import parse_abc

    try:
        score = parse_abc(text)
    except Exception as error:  # noqa: BLE001 - music21 raises many kinds on bad ABC
        return f"music21: {type(error).__name__}: {str(error).strip()[:120]}"
    if not score.recurse().notes:
        return "music21: no notes"
    problems = bar_problems(text)
    return f"meter: {problems[0]}" + (f" (+{len(problems) - 1} more)" if len(problems) > 1 else "") if problems else ""


def _cache_key(text: str, music21_version: str) -> str:
    return hashlib.sha1(f"{CACHE_VERSION}\0{music21_version}\0{text}".encode()).hexdigest()


def plays_verdicts(texts: list[str], cache_file: Path) -> list[str]:
    """The verdict for every text, from the cache where known, else computed in parallel and saved."""
    import music21

    cache: dict[str, str] = json.loads(cache_file.read_text()) if cache_file.exists() else {}
    keys = [_cache_key(text, music21.VERSION_STR) for text in texts]
    missing = sorted({key: text for key, text in zip(keys, texts, strict=True) if key not in cache}.items())
    if missing:
        start = time.perf_counter()
        outcomes = map_bounded(plays_verdict, [text for _, text in missing], timeout=60)
        for (key, _), outcome in zip(missing, outcomes, strict=True):
            cache[key] = outcome.value if outcome.ok else f"music21: {outcome.error}"
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        cache_file.write_text(json.dumps(cache))
        print(f"(music21 verdicts for {len(missing)} tunes in {time.perf_counter() - start:.0f} s, cached)")
    return [cache[key] for key in keys]


def rejection_kind(rejection: Rejection) -> str:
    what = "end of tune" if rejection.char == "\x00" else repr(rejection.char)
    return f"{what} {rejection.mode}"


def context(text: str, rejection: Rejection, width: int = 30) -> str:
    line = text.split("\n")[rejection.line - 1] if rejection.char != "\x00" else text.rstrip("\n")[-width:]
    if rejection.char == "\x00":
        return f"...{line}<END>"
    column = rejection.column - 1
    return f"{line[max(0, column - width) : column]}>>{line[column : column + 10]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpora", nargs="*", default=["oneills", "ryans"])
    parser.add_argument("--cache", type=Path, default=None, help="folder for the music21 verdicts")
    parser.add_argument("--examples", type=int, default=3, help="examples printed per kind of refusal")
    args = parser.parse_args()

    studio = Studio()
    cache_file = (args.cache or studio.workspace.cache_dir / "abc_checker_coverage") / "plays.json"
    refused_kinds: dict[str, list[tuple[str, str, Rejection]]] = defaultdict(list)
    accepted_broken: list[tuple[str, str]] = []
    print(
        f"{'corpus':10} {'tunes':>6} {'play':>6} {'accepted':>9} {'share':>7} {'refused':>8} {'offered':>8}"
        f" {'acc.&!play':>11}"
    )
    totals = [0, 0, 0]
    for name in args.corpora:
        pieces = studio.catalogue.get(name).pieces
        tunes = [(piece.key, normalise(piece.text or "")) for piece in pieces]
        tunes = [(key, text) for key, text in tunes if text]
        verdicts = plays_verdicts([text for _, text in tunes], cache_file)
        start = time.perf_counter()
        rejections = [check_text(text) for _, text in tunes]
        checker_seconds = time.perf_counter() - start
        playing = accepted = offered = not_playing_accepted = 0
        for (key, text), verdict, rejection in zip(tunes, verdicts, rejections, strict=True):
            if not verdict:
                playing += 1
                offered += check_text(text, sampling=True) is None
                if rejection is None:
                    accepted += 1
                else:
                    refused_kinds[rejection_kind(rejection)].append((key, text, rejection))
            elif rejection is None:
                not_playing_accepted += 1
                accepted_broken.append((key, verdict))
        share = 100 * accepted / max(playing, 1)
        print(
            f"{name:10} {len(tunes):6} {playing:6} {accepted:9} {share:6.1f}% {playing - accepted:8} {offered:8}"
            f" {not_playing_accepted:11}   (checker {checker_seconds:.1f} s)"
        )
        totals = [totals[0] + len(tunes), totals[1] + playing, totals[2] + accepted]
    if len(args.corpora) > 1:
        print(f"{'all':10} {totals[0]:6} {totals[1]:6} {totals[2]:9} {100 * totals[2] / max(totals[1], 1):6.1f}%")

    print(f"\nrefused tunes that play, by where the checker stopped ({sum(map(len, refused_kinds.values()))}):")
    for kind, cases in sorted(refused_kinds.items(), key=lambda item: -len(item[1])):
        print(f"  {len(cases):4}  {kind}")
        for key, text, rejection in cases[: args.examples]:
            print(f"          {key}  line {rejection.line}: {context(text, rejection)}")
    print(f"\naccepted tunes that do not play ({len(accepted_broken)}):")
    for key, verdict in accepted_broken:
        print(f"  {key}: {verdict}")


if __name__ == "__main__":
    main()
