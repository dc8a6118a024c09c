"""Reading a corpus for an encoder: in parallel on all cores, cached in the workspace.

One cache entry per corpus, encoder and parameter set: the encoder's name, its spec version, the
resolved parameters, the plugin's distribution and version, and a digest of the encoder's source (its
module and the modules beside it in its package, so an edited plugin, editable installs included, gets a
new entry) are hashed into the folder name. Inside, each piece's reading is stored under the piece's
content digest, so an edited piece is read again and the others are reused. Nothing is pickled: token
readings are JSON, frame readings one `.npy` of bit-packed frames plus offsets (loaded with
allow_pickle=False).

Only what says something about the piece is cached: its reading, or the EncodeError the encoder
refused it with. Anything else the encoder raises (a KeyError: a bug in the plugin), a timeout or a
worker that died is reported and read again next time, so a fixed bug leaves no trace in the cache.
`tui-composer cache clear [--corpus NAME]` removes entries (`clear_cache`).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import re
import shutil
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from tui_composer.plugin.contract import EncodeError, Piece
from tui_composer.plugin.specs import EncoderSpec, Factory, PluginError, load_factory
from tui_composer.services.corpora import Corpus, Skipped
from tui_composer.services.parallel import ItemTimeout, Outcome, map_bounded, reason_of
from tui_composer.services.workspace import Workspace, check_name, read_json, write_atomic, write_json

READ_TIMEOUT = 60.0
CACHE_FOLDER = "encodings"
NOVELTY_FOLDER = "novelty"  # tui_composer.music.checking's indexes of training tunes: `cache clear` removes them too
FORMAT = 2  # bump when the cache layout changes (2: only readings and EncodeError reasons are cached)


@dataclass
class EncodedCorpus:
    """A corpus read by one encoder: per split, (piece key, reading) pairs; and what was skipped, with why."""

    corpus: str
    encoder: str
    splits: dict[str, list[tuple[str, Any]]]
    skipped: list[Skipped] = field(default_factory=list)
    failures: list[PluginError] = field(default_factory=list)  # pieces the encoder raised on: also in skipped

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
    exception, a timeout) is skipped with its reason; it never stops the others. What the encoder raised
    other than EncodeError is also in `failures`, a PluginError per piece with its traceback.
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
    uncached: dict[str, str] = {}  # piece key -> why it was not read, this time only
    failures: list[PluginError] = []
    if wanted:
        spec.create(params)  # an encoder that can't be made fails here, once, naming its plugin
        read_one = partial(_read_piece, spec.factory, params)
        fresh: Entries = {}
        outcomes = map_bounded(read_one, wanted, timeout=READ_TIMEOUT)
        try:
            for piece, outcome in zip(wanted, outcomes, strict=True):
                if isinstance(outcome.value, _Raised):
                    failure = PluginError(spec, f"read of piece {piece.key}", outcome.value.error, outcome.value.trace)
                    failures.append(failure)
                    uncached[piece.key] = str(failure)
                elif isinstance(outcome.value, _Refused):
                    fresh[(piece.key, digests[piece.key])] = Outcome(error=outcome.value.reason)
                elif outcome.ok:
                    fresh[(piece.key, digests[piece.key])] = outcome
                else:  # a timeout or a worker that died: nothing certain about the piece
                    uncached[piece.key] = outcome.error or "failed"
                done += 1
                if progress is not None:
                    progress(done, total)
        finally:  # also when the caller stops the reading: the pieces still waiting are dropped
            outcomes.close()
        cached = {**cached, **fresh}
        _save(folder, spec, params, corpus.name, [(p.key, digests[p.key]) for p in pieces], cached)
    readings: dict[str, Any] = {}
    skipped: list[Skipped] = []
    for piece in pieces:
        entry = cached.get((piece.key, digests[piece.key]))
        if entry is not None and entry.ok:
            readings[piece.key] = entry.value
        else:
            reason = entry.error if entry is not None else uncached.get(piece.key)
            skipped.append(Skipped(piece.key, reason or "failed"))
    splits = {
        name: [(piece.key, readings[piece.key]) for piece in members if piece.key in readings]
        for name, members in corpus.splits().items()
    }
    return EncodedCorpus(corpus=corpus.name, encoder=spec.name, splits=splits, skipped=skipped, failures=failures)


@dataclass(frozen=True)
class _Refused:
    """The encoder refused the piece (EncodeError): a fact about the piece, cached."""

    reason: str


@dataclass(frozen=True)
class _Raised:
    """The encoder raised something else: a fault in its code, reported with its traceback and never cached."""

    error: str
    trace: str


def _read_piece(factory: Factory, params: dict[str, Any], piece: Piece) -> Any:
    """One piece's reading, or why not, in a worker process (module level, so it pickles)."""
    try:
        return _encoder(factory, params).read(piece)
    except EncodeError as error:
        return _Refused(error.reason)
    except ItemTimeout:
        raise  # call_bounded reports it
    except Exception as error:  # noqa: BLE001 - any other exception is the plugin's fault: report it
        return _Raised(reason_of(error), traceback.format_exc())


_ENCODERS: dict[str, Any] = {}  # one encoder per worker process and parameter set


def _encoder(factory: Factory, params: dict[str, Any]) -> Any:
    key = json.dumps([str(factory), params], sort_keys=True, default=str)
    if key not in _ENCODERS:
        _ENCODERS[key] = load_factory(factory)(**params)
    return _ENCODERS[key]


# --- the cache ------------------------------------------------------------------------------------------


def cache_key(spec: EncoderSpec, params: dict[str, Any]) -> str:
    """What a cached reading depends on: the encoder, its parameters, its plugin's release and its source."""
    identity = {
        "format": FORMAT,
        "encoder": spec.name,
        "version": spec.version,
        "params": params,
        "distribution": spec.origin.distribution,
        "distribution_version": spec.origin.version,
        "source": source_digest(spec.factory),
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode("utf-8")).hexdigest()[:16]


def source_digest(factory: Factory) -> str:
    """A digest of the encoder's source: its module, and the modules beside it when it is in a package.

    Read from the files, not imported; "" when the source can't be found (a compiled module).
    """
    module_name = factory.partition(":")[0] if isinstance(factory, str) else getattr(factory, "__module__", "")
    try:
        module_spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):  # `__main__`, or a parent package that can't be imported
        return ""
    origin = Path(module_spec.origin) if module_spec is not None and module_spec.origin else None
    if origin is None or origin.suffix != ".py" or not origin.is_file():
        return ""
    in_package = "." in module_name and (origin.parent / "__init__.py").is_file()
    digest = hashlib.sha256()
    for path in sorted(origin.parent.glob("*.py")) if in_package else [origin]:
        digest.update(path.name.encode("utf-8") + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def cache_folder(workspace: Workspace, corpus: str, spec: EncoderSpec, params: dict[str, Any]) -> Path:
    return workspace.cache_dir / CACHE_FOLDER / corpus / f"{spec.name}-{cache_key(spec, params)}"


@dataclass(frozen=True)
class Cleared:
    """What `clear_cache` removed: cache entries (encoder readings and novelty indexes) and their size."""

    entries: int
    size_bytes: int


def clear_cache(workspace: Workspace, corpus: str | None = None) -> Cleared:
    """Remove cached readings and novelty indexes, of one corpus or of all; they are rebuilt when needed."""
    if corpus is not None:
        check_name(corpus, "corpus")  # it names a folder: never a path
    encodings = workspace.cache_dir / CACHE_FOLDER
    novelty = workspace.cache_dir / NOVELTY_FOLDER
    corpora = [encodings / corpus] if corpus else sorted(p for p in encodings.glob("*") if p.is_dir())
    targets = [entry for folder in corpora if folder.is_dir() for entry in sorted(folder.iterdir())]
    index = re.compile(rf"{re.escape(corpus)}-[0-9a-f]{{16}}\.npz" if corpus else r".*\.npz")
    targets += [p for p in sorted(novelty.glob("*.npz")) if index.fullmatch(p.name)]
    size = sum(f.stat().st_size for t in targets for f in ([t] if t.is_file() else t.rglob("*")) if f.is_file())
    for target in targets:
        if target.is_dir():
            shutil.rmtree(target, ignore_errors=True)
        else:
            target.unlink(missing_ok=True)
    for folder in corpora:
        with contextlib.suppress(OSError):  # left when something else is writing into it
            folder.rmdir()
    return Cleared(entries=len(targets), size_bytes=size)


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
    """Write the entries of the pieces in `order` that have one (pieces no longer in the corpus are dropped)."""
    entries = []
    values: list[Any] = []
    for key, digest in order:
        outcome = outcomes.get((key, digest))
        if outcome is None:
            continue  # not read this time (a fault, a timeout): read it again next time
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
