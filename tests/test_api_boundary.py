"""Built-in plugins use only `tui_composer.api`, and the API offers what they need (issue #13 item 8).

`make lint` checks the same boundary with import-linter ("Built-in plugins import only the API"); this
test keeps it in the default suite, on the source, in well under a second.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import tui_composer.api as api

ROOT = Path(__file__).resolve().parent.parent
BUILT_IN_PLUGINS = [
    ROOT / "plugins",
    ROOT / "corpora",
    ROOT / "examples" / "tui-composer-intervals" / "tui_composer_intervals",
]


def core_imports(path: Path) -> list[str]:
    """Every `tui_composer...` module the file imports, at the top or inside a function."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
    return [name for name in found if name == "tui_composer" or name.startswith("tui_composer.")]


def test_built_in_plugins_import_nothing_from_core_but_the_api() -> None:
    files = [path for folder in BUILT_IN_PLUGINS for path in sorted(folder.rglob("*.py"))]
    assert len(files) > 15
    outside = {f"{path.relative_to(ROOT)}: {name}" for path in files for name in core_imports(path)}
    assert {line for line in outside if not line.endswith(": tui_composer.api")} == set()


def test_rnn_rbm_uses_no_internals_of_the_rbm_plugin() -> None:
    for path in sorted((ROOT / "plugins" / "rnn_rbm").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        modules = [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
        assert not [m for m in modules if m.startswith("tui_composer_plugins.rbm")], path.name


def test_the_api_offers_what_plugins_need() -> None:
    needed = {
        "parse_piece", "parse_abc", "piece_abc", "score_to_midi", "score_to_abc",  # export helpers
        "pieces_from", "split_abc_tunes",  # ABC into tunes and pieces
        "piece_notes", "score_notes", "quantise", "notes_to_score", "midi_to_score", "check_lengths",  # notes
        "scope_of", "splits_batches", "check_divisible", "per_replica", "per_replica_from", "replica_count",
        "StrategyError",  # distribution strategies
        "StudioContext", "Studio", "Registry", "Catalogue",  # what a plugin command gets
        "RunSpec", "PluginError",
    }  # fmt: skip
    assert needed <= set(api.__all__)
    assert all(hasattr(api, name) for name in api.__all__)


def test_importing_the_api_imports_neither_tensorflow_nor_music21() -> None:
    code = (
        "import sys, tui_composer.api; print(sorted(m for m in ('tensorflow', 'keras', 'music21') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
