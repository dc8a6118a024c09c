"""Corpora: bundled ones registered by plugins, and folders of music the user imports.

Reading a folder is cheap (files are listed and ABC files split into tunes, nothing is parsed);
importing also parses every piece once, so that what is kept is known to be usable. Every corpus
has a deterministic train / valid / test split by piece.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
import shutil
import stat
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tui_composer.music.files import (
    MIB,
    MusicFileError,
    check_music_file,
    decode_text,
    is_utf8_name,
    not_regular_reason,
    printable,
    read_capped,
    regular_file_size,
    size_text,
)
from tui_composer.plugin.contract import EncodeError, Piece, PieceFormat
from tui_composer.plugin.specs import CorpusSpec
from tui_composer.services.parallel import map_bounded
from tui_composer.services.workspace import (
    Workspace,
    WorkspaceError,
    atomic_directory,
    check_name,
    read_json,
    write_json,
)

# Which file extensions are music, and in which format; a format gets its size cap from MAX_FILE_BYTES.
FORMATS: dict[str, PieceFormat] = {
    ".abc": "abc",
    ".mid": "midi",
    ".midi": "midi",
    ".xml": "musicxml",
    ".mxl": "musicxml",
    ".musicxml": "musicxml",
    # recordings: transcribed to MIDI pieces when imported (tui_composer.music.audio, the `audio` extra)
    ".wav": "audio",
    ".flac": "audio",
    ".ogg": "audio",
    ".mp3": "audio",
}
# Size caps per format, checked with stat before a file is read (a format not listed gets the default).
MAX_FILE_BYTES: dict[str, int] = {"abc": 8 * MIB, "midi": 4 * MIB, "musicxml": 32 * MIB, "audio": 1024 * MIB}
DEFAULT_MAX_FILE_BYTES = 32 * MIB
# Bounds on one folder read (an import, or a bundled corpus): files and folders walked, pieces kept,
# and ABC text held in memory until the pieces are parsed.
MAX_FOLDER_ENTRIES = 250_000
MAX_PIECES = 200_000
MAX_TEXT_BYTES = 256 * MIB
SPLITS = ("train", "valid", "test")
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
_TUNE_START = re.compile(r"^X:", re.MULTILINE)
_TITLE = re.compile(r"^T:\s*(.*)$", re.MULTILINE)
PARSE_TIMEOUT = 30.0
TRANSCRIPTIONS = "transcriptions"  # the cache folder of transcribed recordings


def max_file_bytes(fmt: str) -> int:
    """The size cap of a file of format `fmt` (from MAX_FILE_BYTES)."""
    return MAX_FILE_BYTES.get(fmt, DEFAULT_MAX_FILE_BYTES)


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


def read_abc_file(path: Path) -> str:
    """The text of an ABC file: a regular file within the ABC cap, UTF-8 (a byte-order mark is fine).

    Raises MusicFileError with the reason (over the cap, not a regular file, UTF-16, binary, ...).
    """
    return decode_text(read_capped(path, max_file_bytes("abc"), "abc"))


def read_file(path: Path, key_prefix: str) -> tuple[list[Piece], list[Skipped]]:
    """The pieces of one music file, without parsing; problems visible from stat and bytes are skipped.

    Only regular files are opened, and only after their size passed the format's cap.
    """
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        return [], [Skipped(key_prefix, f"not a music file (extension {path.suffix or 'none'})")]
    try:
        if fmt != "abc":
            if regular_file_size(path, max_file_bytes(fmt), fmt) == 0:
                return [], [Skipped(key_prefix, "empty file")]
            return [Piece(key=key_prefix, title=path.stem, format=fmt, path=path)], []
        raw = read_capped(path, max_file_bytes(fmt), fmt)
        if not raw.strip():
            return [], [Skipped(key_prefix, "empty file")]
        text = decode_text(raw)
    except MusicFileError as error:
        return [], [Skipped(key_prefix, error.reason)]
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
    """Pieces of a file or of every music file under a folder.

    Symbolic links are not followed, nothing but regular files is opened, names that aren't UTF-8 are
    skipped (keys must print and hash), and the walk stops at MAX_FOLDER_ENTRIES, MAX_PIECES or
    MAX_TEXT_BYTES, saying so. Every skipped item is named (printably) with its reason.
    """
    root = Path(root)
    try:
        mode = os.stat(root).st_mode
    except OSError as error:
        return [], [Skipped(printable(root.name), f"unreadable: {error.strerror}")]
    if stat.S_ISREG(mode):
        return _read_one(root.resolve(), root.name)
    if not stat.S_ISDIR(mode):
        return [], [Skipped(printable(root.name), not_regular_reason(mode))]
    return _FolderReader(root.resolve(), patterns).read()


def _read_one(path: Path, key_prefix: str) -> tuple[list[Piece], list[Skipped]]:
    if not is_utf8_name(key_prefix):
        return [], [Skipped(printable(key_prefix), _NOT_UTF8_NAME.format(what="file"))]
    return read_file(path, key_prefix)


_NOT_UTF8_NAME = (
    "{what} name is not valid UTF-8; rename it to UTF-8 (e.g. `convmv -f latin1 -t utf-8 --notest NAME`) "
    "and import again"
)


class _FolderReader:
    """One walk of a folder in name order (the order of sorted paths), with its bounds."""

    def __init__(self, root: Path, patterns: Sequence[str]) -> None:
        self.root = root
        self.patterns = tuple(patterns)
        self.every_file = self.patterns == ("*",)
        self.pieces: list[Piece] = []
        self.skipped: list[Skipped] = []
        self.entries = 0
        self.text_bytes = 0

    def read(self) -> tuple[list[Piece], list[Skipped]]:
        self._walk(self.root, "")
        return self.pieces, self.skipped

    def _walk(self, folder: Path, prefix: str) -> bool:
        """Read a folder's entries, depth first; False once a bound was hit (the walk stops)."""
        try:
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda entry: entry.name)
        except OSError as error:
            self.skipped.append(Skipped(prefix.rstrip("/") or ".", f"unreadable folder: {error.strerror}"))
            return True
        for entry in entries:
            self.entries += 1
            relative = prefix + entry.name
            if self.entries > MAX_FOLDER_ENTRIES:
                return self._stop(f"stopped at the cap of {MAX_FOLDER_ENTRIES:,} files and folders in one import")
            if not self._read_entry(entry, relative):
                return False
        return True

    def _read_entry(self, entry: os.DirEntry[str], relative: str) -> bool:
        try:
            mode = entry.stat(follow_symlinks=False).st_mode
        except OSError as error:
            self.skipped.append(Skipped(printable(relative), f"unreadable: {error.strerror}"))
            return True
        if stat.S_ISDIR(mode):
            if not is_utf8_name(entry.name):
                self.skipped.append(Skipped(printable(relative), _NOT_UTF8_NAME.format(what="folder")))
                return True
            return self._walk(Path(entry.path), relative + "/")
        if not any(fnmatch.fnmatchcase(entry.name, pattern) for pattern in self.patterns):
            return True
        if stat.S_ISLNK(mode):
            self.skipped.append(Skipped(printable(relative), "symbolic link, not followed"))
            return True
        if not is_utf8_name(entry.name):
            self.skipped.append(Skipped(printable(relative), _NOT_UTF8_NAME.format(what="file")))
            return True
        if not stat.S_ISREG(mode):
            self.skipped.append(Skipped(relative, not_regular_reason(mode)))
            return True
        path = Path(entry.path)
        if not path.resolve().is_relative_to(self.root):
            self.skipped.append(Skipped(relative, "leads outside the imported folder, not followed"))
            return True
        if self.every_file and path.suffix.lower() not in FORMATS:
            self.skipped.append(Skipped(relative, f"not a music file (extension {path.suffix or 'none'})"))
            return True
        found, bad = read_file(path, relative)
        self.text_bytes += sum(len(piece.text or "") for piece in found)
        if self.text_bytes > MAX_TEXT_BYTES:
            return self._stop(f"stopped at the cap of {size_text(MAX_TEXT_BYTES)} of ABC text in one import", relative)
        if len(self.pieces) + len(found) > MAX_PIECES:
            return self._stop(f"stopped at the cap of {MAX_PIECES:,} pieces in one import", relative)
        self.pieces += found
        self.skipped += bad
        return True

    def _stop(self, why: str, item: str = "") -> bool:
        where = f"; {item} and what follows it were not read" if item else "; the rest was not read"
        self.skipped.append(Skipped(item or ".", f"{why}{where}: import the rest as another corpus"))
        return False


# --- checking pieces (import) ------------------------------------------------------------------------


def check_piece(piece: Piece) -> int:
    """Parse a piece the way encoders will; returns its note count, raises EncodeError with the reason.

    Binary files are checked again before a parser sees them (caps, regular file, a .mxl's zip
    directory and XML entities), so a file changed since it was listed is still read safely.
    """
    try:
        if piece.format == "midi":
            notes = _midi_notes(piece)
        else:
            from music21 import converter

            if piece.format == "abc":
                from tui_composer.music.export import parse_abc  # bounds lengths before music21 re-bars them

                score: Any = parse_abc(piece.text or "", name=piece.key)
            else:
                check_music_file(piece.path, piece.format, max_file_bytes(piece.format))
                score = converter.parse(piece.path, forceSource=True)
            notes = len(score.recurse().notes)
    except MusicFileError as error:
        raise EncodeError(piece.key, error.reason) from None
    if notes == 0:
        raise EncodeError(piece.key, "no notes")
    return notes


def _midi_notes(piece: Piece) -> int:
    import io

    import mido

    raw = read_capped(piece.path, max_file_bytes("midi"), "midi")
    try:
        midi = mido.MidiFile(file=io.BytesIO(raw))
    except (OSError, EOFError, ValueError, KeyError, IndexError) as error:
        detail = f" ({error})" if str(error) else ""
        raise EncodeError(piece.key, f"truncated or invalid MIDI file{detail}") from None
    return sum(1 for track in midi.tracks for m in track if m.type == "note_on" and m.velocity > 0)


# --- splitting -----------------------------------------------------------------------------------------


def split_position(key: str) -> float:
    """A stable position in [0, 1) for a piece key: the same key always lands in the same split."""
    # surrogateescape: a key from an older import may hold a file name's undecodable bytes
    digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()
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
        return sorted(p.name for p in folder.iterdir() if _is_corpus_name(p.name) and (p / self.MANIFEST).is_file())

    def summaries(self) -> list[dict[str, Any]]:
        """A summary per corpus for listings; one that can't be read is listed with its error, never fatal."""
        rows = []
        for name in self.names():
            try:
                rows.append(self.get(name).summary())
            except Exception as error:  # noqa: BLE001 - a damaged corpus or a failing plugin must not hide the rest
                rows.append(_unreadable_summary(name, error))
        return rows

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
        if not isinstance(manifest, dict) or not isinstance(manifest.get("pieces"), list):
            raise WorkspaceError(
                f"{folder / self.MANIFEST} is damaged (no list of pieces); remove the folder {folder} "
                "and import the corpus again"
            )
        keep = set(manifest["pieces"])
        skipped = [_skipped_from_json(item) for item in manifest.get("skipped", [])]

        def load() -> list[Piece]:
            pieces, _ = read_folder(folder / "files")
            return [p for p in pieces if p.key in keep]

        return Corpus(
            name=name,
            description=printable(str(manifest.get("description", ""))),
            licence=printable(str(manifest.get("licence", "as the imported files"))),
            source=printable(str(manifest.get("source", ""))),
            kind="imported",
            _loader=load,
            skipped=skipped,
        )

    def import_path(
        self,
        source: Path,
        name: str,
        *,
        description: str = "",
        licence: str = "",
        progress: Callable[[int, int], None] | None = None,
    ) -> ImportReport:
        """Copy a file or folder of music into the workspace, keeping what parses and reporting the rest.

        The corpus appears only when complete (built under a temporary name and renamed), so an
        interrupted import leaves nothing half-made and never touches corpora imported before.
        `progress(done, total)` after each piece is parsed.
        """
        check_name(name, "corpus")
        if name in self.specs or name in self._imported_names():
            raise WorkspaceError(f"a corpus named {name!r} already exists; choose another --name")
        source = Path(source).expanduser()
        if not source.exists():
            raise WorkspaceError(f"{printable(str(source))} does not exist; give a music file or a folder of them")
        pieces, skipped = read_folder(source)
        pieces = _safe_to_parse(pieces, skipped)
        pieces, recordings = _transcribe(pieces, skipped, self.workspace.cache_dir / TRANSCRIPTIONS)
        outcomes = map_bounded(check_piece, pieces, timeout=PARSE_TIMEOUT)
        good: list[Piece] = []
        if progress is not None:
            progress(0, len(pieces))
        for done, (piece, outcome) in enumerate(zip(pieces, outcomes, strict=True), start=1):
            if progress is not None:
                progress(done, len(pieces))
            if outcome.ok:
                good.append(piece)
            else:
                skipped.append(Skipped(piece.key, f"does not parse: {outcome.error}"))
        target = self.workspace.corpora_dir / name
        root = source.resolve()
        with atomic_directory(target) as staging:
            # a file's place is its path under the folder, never parsed from a key: a name may hold '#'
            place = (lambda path: path.relative_to(root)) if root.is_dir() else (lambda path: Path(source.name))
            transcribed = [p for p in good if p.key in recordings]
            good = _copy_files([p for p in good if p.key not in recordings], place, staging / "files", skipped)
            good += _store_transcriptions(transcribed, recordings, place, staging / "files")
            write_json(
                staging / self.MANIFEST,
                {
                    "name": name,
                    "description": description or f"imported from {printable(str(source))}",
                    "licence": licence or "as the imported files",
                    "source": printable(str(root)),
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


def _safe_to_parse(pieces: list[Piece], skipped: list[Skipped]) -> list[Piece]:
    """The pieces whose files pass the checks made before a parser opens them (a .mxl's zip directory,
    XML entities); the others are skipped with the reason. Cheap: nothing is unpacked or parsed."""
    safe = []
    for piece in pieces:
        if piece.text is None:
            try:
                check_music_file(piece.path, piece.format, max_file_bytes(piece.format))
            except MusicFileError as error:
                skipped.append(Skipped(piece.key, error.reason))
                continue
        safe.append(piece)
    return safe


def _copy_files(pieces: list[Piece], place: Callable[[Path], Path], files: Path, skipped: list[Skipped]) -> list[Piece]:
    """Copy each piece's file to `files / place(path)`; pieces whose file can't be copied are skipped, with why.

    The file is read again through the same checks (regular, within its cap): it may have changed since.
    """
    by_file: dict[Path, list[Piece]] = {}
    for piece in pieces:
        by_file.setdefault(piece.path, []).append(piece)
    failed: set[Path] = set()
    for path, its_pieces in sorted(by_file.items()):
        try:
            data = read_capped(path, max_file_bytes(its_pieces[0].format), its_pieces[0].format)
        except MusicFileError as error:
            skipped += [Skipped(p.key, f"changed while importing: {error.reason}") for p in its_pieces]
            failed.add(path)
            continue
        destination = files / place(path)
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_bytes(data)
    return [piece for piece in pieces if piece.path not in failed]


def _transcribe(pieces: list[Piece], skipped: list[Skipped], cache: Path) -> tuple[list[Piece], dict[str, Path]]:
    """Recordings replaced by their transcriptions (MIDI pieces, cached under `cache`), in order; and the
    recording each transcription came from. A recording that can't be transcribed is skipped, with why."""
    recordings = [p for p in pieces if p.format == "audio"]
    if not recordings:
        return pieces, {}
    from tui_composer.music.audio import transcribe_recordings

    results = transcribe_recordings(recordings, cache)
    outcomes = {recording.key: result for recording, result in zip(recordings, results, strict=True)}
    taken = {p.key for p in pieces if p.format != "audio"}
    kept: list[Piece] = []
    sources: dict[str, Path] = {}
    for piece in pieces:
        outcome = outcomes.get(piece.key) if piece.format == "audio" else None
        if outcome is None:
            kept.append(piece)
        elif not outcome.ok or outcome.value is None:
            skipped.append(Skipped(piece.key, f"not transcribed: {outcome.error}"))
        elif outcome.value.key in taken:
            skipped.append(Skipped(piece.key, f"its transcription would replace {outcome.value.key}; rename one"))
        else:
            kept.append(outcome.value)
            sources[outcome.value.key] = piece.path
    return kept, sources


def _store_transcriptions(
    pieces: list[Piece], recordings: dict[str, Path], place: Callable[[Path], Path], files: Path
) -> list[Piece]:
    """Each transcription as `files / place(recording).mid`, its sidecar JSON (source, settings) beside it."""
    from tui_composer.music.audio import store_transcription

    for piece in pieces:
        recording = recordings[piece.key]
        placed = place(recording)
        store_transcription(piece.path, files / placed.with_name(placed.name + ".mid"), recording)
    return pieces


def _is_corpus_name(name: str) -> bool:
    try:
        check_name(name, "corpus")
    except WorkspaceError:
        return False
    return True


def _skipped_from_json(item: Any) -> Skipped:
    """A skipped item from a manifest, printable whatever an older version wrote."""
    if not isinstance(item, dict):
        return Skipped(printable(str(item)), "(no reason recorded)")
    return Skipped(printable(str(item.get("item", "?"))), printable(str(item.get("reason", "(no reason recorded)"))))


def _unreadable_summary(name: str, error: Exception) -> dict[str, Any]:
    from tui_composer.services.parallel import reason_of

    return {
        "name": name,
        "kind": "unreadable",
        "description": "",
        "licence": "",
        "source": "",
        "plugin": "",
        "pieces": 0,
        "splits": dict.fromkeys(SPLITS, 0),
        "skipped": 0,
        "error": printable(str(error) if isinstance(error, WorkspaceError) else reason_of(error)),
    }


def pieces_from(root: Path, patterns: Iterable[str]) -> list[Piece]:
    """Pieces of a bundled folder (e.g. inside music21's corpus); for CorpusSpec.pieces."""
    pieces, _ = read_folder(root, tuple(patterns))
    return pieces
