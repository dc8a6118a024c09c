"""Reading a corpus for an encoder: in parallel on all cores, cached in the workspace.

One cache entry per corpus, encoder and parameter set (the encoder's name, its spec version and the
resolved parameters are hashed into the folder name). Inside, each piece's reading is stored under the
piece's content digest, so an edited piece is read again and the others are reused; a changed
parameter or a new encoder version is a different entry. Nothing is pickled: token readings are JSON,
frame readings one `.npy` of bit-packed frames plus offsets (loaded with allow_pickle=False).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from tui_composer.contract import Piece
from tui_composer.corpora import Corpus, Skipped
from tui_composer.parallel import Outcome, map_bounded
from tui_composer.specs import EncoderSpec, Factory, load_factory
from tui_composer.workspace import Workspace, read_json, write_atomic, write_json

READ_TIMEOUT = 60.0
CACHE_FOLDER = "encodings"
FORMAT = 1  # bump when the cache layout changes
_UNCACHED = ("worker failed",)  # reasons that say nothing about the piece itself


@dataclass
class EncodedCorpus:
    """A corpus read by one encoder: per split, (piece key, reading) pairs; and what was skipped, with why."""

    corpus: str
    encoder: str
    splits: dict[str, list[tuple[str, Any]]]
    skipped: list[Skipped] = field(default_factory=list)

    def readings(self, split: str) -> list[Any]:
        return [reading for _, reading in self.splits.get(split, [])]


def read_corpus(
    workspace: Workspace,
    corpus: Corpus,
    spec: EncoderSpec,
    params: dict[str, Any],
    *,
    progress: Callable[[int, int], None] | None = None,
) -> EncodedCorpus:
    """Every piece of the corpus read by the encoder, from the cache where it is still valid.

    `params` are already resolved against `spec.params`. A piece that fails (EncodeError, any other
    exception, a timeout) is skipped with its reason; it never stops the others.
    """
    pieces = corpus.pieces
    digests = {piece.key: piece.digest() for piece in pieces}
    folder = cache_folder(workspace, corpus.name, spec, params)
    cached = _load(folder, spec.makes)
    wanted = [piece for piece in pieces if (piece.key, digests[piece.key]) not in cached]
    total = len(pieces)
    done = total - len(wanted)
    if progress is not None:
        progress(done, total)
    fresh: dict[tuple[str, str], Outcome[Any]] = {}
    if wanted:
        read_one = partial(_read_piece, spec.factory, params)
        for piece, outcome in zip(wanted, map_bounded(read_one, wanted, timeout=READ_TIMEOUT), strict=True):
            fresh[(piece.key, digests[piece.key])] = outcome
            done += 1
            if progress is not None:
                progress(done, total)
        merged = {**cached, **fresh}
        _save(folder, spec, params, corpus.name, [(p.key, digests[p.key]) for p in pieces], merged)
        cached = merged
    readings: dict[str, Any] = {}
    skipped: list[Skipped] = []
    for piece in pieces:
        outcome = cached[(piece.key, digests[piece.key])]
        if outcome.ok:
            readings[piece.key] = outcome.value
        else:
            skipped.append(Skipped(piece.key, outcome.error or "failed"))
    splits = {
        name: [(piece.key, readings[piece.key]) for piece in members if piece.key in readings]
        for name, members in corpus.splits().items()
    }
    return EncodedCorpus(corpus=corpus.name, encoder=spec.name, splits=splits, skipped=skipped)


def _read_piece(factory: Factory, params: dict[str, Any], piece: Piece) -> Any:
    """One piece's reading, in a worker process (module level, so it pickles)."""
    return _encoder(factory, params).read(piece)


_ENCODERS: dict[str, Any] = {}  # one encoder per worker process and parameter set


def _encoder(factory: Factory, params: dict[str, Any]) -> Any:
    key = json.dumps([str(factory), params], sort_keys=True, default=str)
    if key not in _ENCODERS:
        _ENCODERS[key] = load_factory(factory)(**params)
    return _ENCODERS[key]


# --- the cache ------------------------------------------------------------------------------------------


def cache_key(spec: EncoderSpec, params: dict[str, Any]) -> str:
    identity = {"format": FORMAT, "encoder": spec.name, "version": spec.version, "params": params}
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode("utf-8")).hexdigest()[:16]


def cache_folder(workspace: Workspace, corpus: str, spec: EncoderSpec, params: dict[str, Any]) -> Path:
    return workspace.cache_dir / CACHE_FOLDER / corpus / f"{spec.name}-{cache_key(spec, params)}"


def clear_cache(workspace: Workspace, corpus: str | None = None) -> None:
    """Remove cached readings (of one corpus, or all)."""
    root = workspace.cache_dir / CACHE_FOLDER
    shutil.rmtree(root / corpus if corpus else root, ignore_errors=True)


Entries = dict[tuple[str, str], Outcome[Any]]  # (piece key, digest) -> reading or reason


def _load(folder: Path, kind: str) -> Entries:
    """Cached outcomes by (piece key, digest); an unreadable or damaged cache is treated as empty."""
    try:
        manifest = read_json(folder / "manifest.json")
        if manifest is None or manifest.get("format") != FORMAT:
            return {}
        entries = manifest["entries"]
        if kind == "frames":
            values = _load_frames(folder, manifest["features"])
        else:
            values = json.loads((folder / "readings.json").read_text(encoding="utf-8"))
    except Exception:  # noqa: BLE001 - a missing or damaged cache is simply rebuilt
        return {}
    if len(values) != manifest.get("readings") or sum(reason is None for _, _, reason in entries) != len(values):
        return {}  # the files don't belong together (an interrupted write): rebuild
    result: Entries = {}
    position = 0
    for key, digest, reason in entries:
        if reason is None:
            result[(key, digest)] = Outcome(value=values[position])
            position += 1
        else:
            result[(key, digest)] = Outcome(error=reason)
    return result


def _load_frames(folder: Path, features: int) -> list[np.ndarray]:
    packed = np.load(folder / "frames.npy", allow_pickle=False)
    offsets = np.load(folder / "offsets.npy", allow_pickle=False)
    frames = np.unpackbits(packed, axis=1, count=features) if len(packed) else np.zeros((0, features), np.uint8)
    return [frames[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]


def _save(
    folder: Path,
    spec: EncoderSpec,
    params: dict[str, Any],
    corpus: str,
    order: Sequence[tuple[str, str]],
    outcomes: Entries,
) -> None:
    """Write the entries of the pieces in `order` (pieces no longer in the corpus are dropped)."""
    entries = []
    values = []
    for key, digest in order:
        outcome = outcomes[(key, digest)]
        if not outcome.ok and (outcome.error or "").startswith(_UNCACHED):
            continue  # read it again next time
        entries.append([key, digest, None if outcome.ok else outcome.error])
        if outcome.ok:
            values.append(outcome.value)
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "corpus": corpus,
        "encoder": spec.name,
        "version": spec.version,
        "params": params,
        "entries": entries,
        "readings": len(values),
    }
    if spec.makes == "frames":
        features = values[0].shape[1] if values else 0
        manifest["features"] = features
        lengths = [len(v) for v in values]
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        stacked = np.concatenate(values).astype(np.uint8) if values else np.zeros((0, features), np.uint8)
        _save_npy(folder / "frames.npy", np.packbits(stacked, axis=1))
        _save_npy(folder / "offsets.npy", offsets)
    else:
        write_atomic(folder / "readings.json", json.dumps(values, separators=(",", ":")))
    write_json(folder / "manifest.json", manifest)  # last: the arrays it describes are in place


def _save_npy(path: Path, array: np.ndarray) -> None:
    import io

    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    write_atomic(path, buffer.getvalue())
