"""Corpora: bundled ones registered by plugins, and folders of music the user imports.

Reading a folder is cheap (files are listed and ABC files split into tunes, nothing is parsed);
importing also parses every piece once, so that what is kept is known to be usable. Every corpus
has a deterministic train / valid / test split by piece.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tui_composer.contract import EncodeError, Piece, PieceFormat
from tui_composer.parallel import map_bounded
from tui_composer.specs import CorpusSpec
from tui_composer.workspace import Workspace, WorkspaceError, atomic_directory, check_name, read_json, write_json

FORMATS: dict[str, PieceFormat] = {
    ".abc": "abc",
    ".mid": "midi",
    ".midi": "midi",
    ".xml": "musicxml",
    ".mxl": "musicxml",
    ".musicxml": "musicxml",
}
SPLITS = ("train", "valid", "test")
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
_TUNE_START = re.compile(r"^X:", re.MULTILINE)
_TITLE = re.compile(r"^T:\s*(.*)$", re.MULTILINE)
PARSE_TIMEOUT = 30.0


@dataclass(frozen=True)
class Skipped:
    """An item left out of a corpus, and why."""

    item: str
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"item": self.item, "reason": self.reason}


# --- reading files ----------------------------------------------------------------------------------


def split_abc_tunes(text: str) -> list[tuple[int, str, str]]:
    """(ordinal, title, text) for each tune (an `X:` block) of an ABC file; ordinals count from 1."""
    starts = [m.start() for m in _TUNE_START.finditer(text)]
    ends = [*starts[1:], len(text)] if starts else []
    tunes = []
    for ordinal, (start, end) in enumerate(zip(starts, ends, strict=True), start=1):
        tune = text[start:end].strip() + "\n"
        match = _TITLE.search(tune)
        tunes.append((ordinal, match.group(1).strip() if match else "", tune))
    return tunes


def _decode_text(raw: bytes) -> str:
    if b"\x00" in raw[:4096]:
        raise ValueError("binary data, not ABC text")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(
            f"not UTF-8 text (bad byte at offset {error.start}); convert it, e.g. `iconv -f latin1 -t utf-8`"
        ) from None


def read_file(path: Path, key_prefix: str) -> tuple[list[Piece], list[Skipped]]:
    """The pieces of one music file, without parsing; problems visible from the bytes are skipped."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        return [], [Skipped(key_prefix, f"not a music file (extension {path.suffix or 'none'})")]
    try:
        raw = path.read_bytes()
    except OSError as error:
        return [], [Skipped(key_prefix, f"unreadable: {error.strerror}")]
    if not raw.strip():
        return [], [Skipped(key_prefix, "empty file")]
    if fmt != "abc":
        return [Piece(key=key_prefix, title=path.stem, format=fmt, path=path)], []
    try:
        text = _decode_text(raw)
    except ValueError as error:
        return [], [Skipped(key_prefix, str(error))]
    tunes = split_abc_tunes(text)
    if not tunes:
        return [], [Skipped(key_prefix, "no ABC tune found (a tune starts with an X: line)")]
    pieces = [
        Piece(
            key=f"{key_prefix}#{ordinal}", title=title or f"{path.stem} {ordinal}", format="abc", path=path, text=tune
        )
        for ordinal, title, tune in tunes
    ]
    return pieces, []


def read_folder(root: Path, patterns: Sequence[str] = ("*",)) -> tuple[list[Piece], list[Skipped]]:
    """Pieces of a file or of every music file under a folder; symlinks and escaping paths are skipped."""
    root = root.resolve()
    if root.is_file():
        return read_file(root, root.name)
    pieces: list[Piece] = []
    skipped: list[Skipped] = []
    files = sorted({p for pattern in patterns for p in root.rglob(pattern)})
    for path in files:
        relative = path.relative_to(root).as_posix()
        if path.is_symlink() or any(
            parent.is_symlink() for parent in path.relative_to(root).parents if parent != Path(".")
        ):
            skipped.append(Skipped(relative, "symbolic link, not followed"))
            continue
        if not path.is_file():
            continue
        if not path.resolve().is_relative_to(root):
            skipped.append(Skipped(relative, "leads outside the imported folder, not followed"))
            continue
        if path.suffix.lower() not in FORMATS and len(patterns) == 1 and patterns[0] == "*":
            skipped.append(Skipped(relative, f"not a music file (extension {path.suffix or 'none'})"))
            continue
        found, bad = read_file(path, relative)
        pieces += found
        skipped += bad
    return pieces, skipped


# --- checking pieces (import) ------------------------------------------------------------------------


def check_piece(piece: Piece) -> int:
    """Parse a piece the way encoders will; returns its note count, raises EncodeError with the reason."""
    if piece.format == "midi":
        import mido

        try:
            midi = mido.MidiFile(piece.path)
        except (OSError, EOFError, ValueError, KeyError, IndexError) as error:
            detail = f" ({error})" if str(error) else ""
            raise EncodeError(piece.key, f"truncated or invalid MIDI file{detail}") from None
        notes = sum(1 for track in midi.tracks for m in track if m.type == "note_on" and m.velocity > 0)
    else:
        from music21 import converter

        if piece.format == "abc":
            score = converter.parse(piece.text, format="abc", forceSource=True)
        else:
            score = converter.parse(piece.path, forceSource=True)
        notes = len(score.recurse().notes)
    if notes == 0:
        raise EncodeError(piece.key, "no notes")
    return notes


# --- splitting -----------------------------------------------------------------------------------------


def split_position(key: str) -> float:
    """A stable position in [0, 1) for a piece key: the same key always lands in the same split."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_splits(pieces: Sequence[Piece]) -> dict[str, list[Piece]]:
    """Deterministic train / valid / test split by piece; a corpus of 3 or more has all three."""
    ordered = sorted(pieces, key=lambda p: split_position(p.key))
    n = len(ordered)
    if n < 3:
        return {"train": list(ordered), "valid": list(ordered[-1:]), "test": []}
    n_valid = max(1, round(n * SPLIT_FRACTIONS[1]))
    n_test = max(1, round(n * SPLIT_FRACTIONS[2]))
    n_train = n - n_valid - n_test
    return {
        "train": ordered[:n_train],
        "valid": ordered[n_train : n_train + n_valid],
        "test": ordered[n_train + n_valid :],
    }


# --- the catalogue -------------------------------------------------------------------------------------


@dataclass
class Corpus:
    name: str
    description: str
    licence: str
    source: str
    kind: str  # "bundled" (registered by a plugin) or "imported"
    plugin: str = ""
    _pieces: list[Piece] | None = field(default=None, repr=False)
    _loader: Any = field(default=None, repr=False)
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def pieces(self) -> list[Piece]:
        if self._pieces is None:
            self._pieces = list(self._loader())
        return self._pieces

    def splits(self) -> dict[str, list[Piece]]:
        return assign_splits(self.pieces)

    def piece(self, key: str) -> Piece:
        for piece in self.pieces:
            if piece.key == key:
                return piece
        raise WorkspaceError(f"corpus {self.name!r} has no piece {key!r}")

    def summary(self) -> dict[str, Any]:
        splits = self.splits()
        return {
            "name": self.name,
            "kind": self.kind,
            "description": self.description,
            "licence": self.licence,
            "source": self.source,
            "plugin": self.plugin,
            "pieces": len(self.pieces),
            "splits": {name: len(items) for name, items in splits.items()},
            "skipped": len(self.skipped),
        }


@dataclass
class ImportReport:
    corpus: str
    kept: int
    skipped: list[Skipped]
    path: Path


class Catalogue:
    """Every corpus the user can train on: registered by plugins, or imported into the workspace."""

    MANIFEST = "manifest.json"

    def __init__(self, workspace: Workspace, specs: dict[str, CorpusSpec]) -> None:
        self.workspace = workspace
        self.specs = specs

    def names(self) -> list[str]:
        return list(self.specs) + [n for n in self._imported_names() if n not in self.specs]

    def _imported_names(self) -> list[str]:
        folder = self.workspace.corpora_dir
        if not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir() if (p / self.MANIFEST).is_file())

    def list(self) -> list[Corpus]:
        return [self.get(name) for name in self.names()]

    def get(self, name: str) -> Corpus:
        if name in self.specs:
            spec = self.specs[name]
            return Corpus(
                name=spec.name,
                description=spec.description,
                licence=spec.licence,
                source=spec.source,
                kind="bundled",
                plugin=spec.origin.plugin,
                _loader=spec.pieces,
            )
        folder = self.workspace.corpora_dir / name
        manifest = read_json(folder / self.MANIFEST)
        if manifest is None:
            raise WorkspaceError(
                f"no corpus named {name!r}; known corpora: {', '.join(self.names()) or 'none'}. "
                "Import one with `tui-composer corpus import PATH --name NAME`"
            )
        keep = set(manifest["pieces"])
        skipped = [Skipped(**item) for item in manifest.get("skipped", [])]

        def load() -> list[Piece]:
            pieces, _ = read_folder(folder / "files")
            return [p for p in pieces if p.key in keep]

        return Corpus(
            name=name,
            description=manifest.get("description", ""),
            licence=manifest.get("licence", "as the imported files"),
            source=manifest.get("source", ""),
            kind="imported",
            _loader=load,
            skipped=skipped,
        )

    def import_path(self, source: Path, name: str, *, description: str = "", licence: str = "") -> ImportReport:
        """Copy a file or folder of music into the workspace, keeping what parses and reporting the rest.

        The corpus appears only when complete (built under a temporary name and renamed), so an
        interrupted import leaves nothing half-made and never touches corpora imported before.
        """
        check_name(name, "corpus")
        if name in self.specs or name in self._imported_names():
            raise WorkspaceError(f"a corpus named {name!r} already exists; choose another --name")
        source = Path(source).expanduser()
        if not source.exists():
            raise WorkspaceError(f"{source} does not exist; give a music file or a folder of them")
        pieces, skipped = read_folder(source)
        outcomes = map_bounded(check_piece, pieces, timeout=PARSE_TIMEOUT)
        good: list[Piece] = []
        for piece, outcome in zip(pieces, outcomes, strict=True):
            if outcome.ok:
                good.append(piece)
            else:
                skipped.append(Skipped(piece.key, f"does not parse: {outcome.error}"))
        target = self.workspace.corpora_dir / name
        root = source.resolve()
        with atomic_directory(target) as staging:
            files = staging / "files"
            for relative in sorted({_file_of(p.key) for p in good}):
                destination = files / relative
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(root / relative if root.is_dir() else root, destination)
            write_json(
                staging / self.MANIFEST,
                {
                    "name": name,
                    "description": description or f"imported from {source}",
                    "licence": licence or "as the imported files",
                    "source": str(root),
                    "pieces": [p.key for p in good],
                    "skipped": [s.to_json() for s in skipped],
                },
            )
        return ImportReport(corpus=name, kept=len(good), skipped=skipped, path=target)

    def remove(self, name: str) -> None:
        if name in self.specs:
            raise WorkspaceError(f"corpus {name!r} is bundled by plugin {self.specs[name].origin.plugin!r}")
        folder = self.workspace.corpora_dir / name
        if not (folder / self.MANIFEST).is_file():
            raise WorkspaceError(f"no imported corpus named {name!r}")
        shutil.rmtree(folder)


def _file_of(key: str) -> str:
    return key.split("#", 1)[0]


def pieces_from(root: Path, patterns: Iterable[str]) -> list[Piece]:
    """Pieces of a bundled folder (e.g. inside music21's corpus); for CorpusSpec.pieces."""
    pieces, _ = read_folder(root, tuple(patterns))
    return pieces
