"""A map over the pool that its caller stops early (a training stopped while it reads its corpus) drops
the pieces still waiting instead of reading them all first."""

from __future__ import annotations

import time
from pathlib import Path

from tui_composer.services.parallel import map_bounded


def _read_slowly(item: tuple[Path, int]) -> int:
    folder, number = item
    time.sleep(0.2)
    (folder / f"{number}.done").touch()
    return number


def test_closing_the_map_drops_the_chunks_not_started(tmp_path: Path) -> None:
    items = [(tmp_path, n) for n in range(40)]
    outcomes = map_bounded(_read_slowly, items, workers=2, chunk_size=1)
    assert next(outcomes).value == 0
    outcomes.close()  # what read_corpus does when its progress callback raises
    read = len(list(tmp_path.glob("*.done")))
    assert read < 40, "every piece was read although the caller had stopped"
    time.sleep(0.5)  # nothing goes on reading behind its back either
    assert len(list(tmp_path.glob("*.done"))) == read
