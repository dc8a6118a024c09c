"""Bundled corpora, read from music21's own corpus (nothing is downloaded).

Each `*.toml` file beside this module defines one corpus: the music21 corpus folder, the file patterns,
its licence and a description. This package is itself a plugin, registered through the same
`tui_composer` entry-point group as a third party's corpus plugin.
"""

from __future__ import annotations

import importlib.util
import tomllib
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from tui_composer.api import CorpusSpec, Piece, hookimpl, pieces_from

DEFINITIONS = Path(__file__).parent


def music21_corpus_dir() -> Path:
    """music21's corpus folder, found without importing music21 (that takes a third of a second)."""
    spec = importlib.util.find_spec("music21")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("music21 is not installed; reinstall tui-composer")
    return Path(next(iter(spec.submodule_search_locations))) / "corpus"


def _pieces(folder: str, patterns: list[str]) -> list[Piece]:
    return pieces_from(music21_corpus_dir() / folder, patterns)


def definitions() -> list[dict[str, Any]]:
    return [tomllib.loads(path.read_text(encoding="utf-8")) for path in sorted(DEFINITIONS.glob("*.toml"))]


@hookimpl
def register_corpora(register: Callable[[CorpusSpec], None]) -> None:
    for definition in definitions():
        register(
            CorpusSpec(
                name=definition["name"],
                description=definition["description"],
                licence=definition["licence"],
                source=f"music21 corpus: {definition['music21_folder']}",
                pieces=partial(_pieces, definition["music21_folder"], definition["patterns"]),
            )
        )
