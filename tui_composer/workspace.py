"""The workspace: a directory holding imported corpora, the encoding cache and runs.

Default: the platformdirs user data dir; `--workspace` or TUI_COMPOSER_HOME override it.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HOME_VARIABLE = "TUI_COMPOSER_HOME"
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class WorkspaceError(Exception):
    """A user-facing problem with the workspace, a run or a corpus; the message says what to do."""


def default_home() -> Path:
    if os.environ.get(HOME_VARIABLE):
        return Path(os.environ[HOME_VARIABLE]).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("tui-composer", appauthor=False))


def check_name(name: str, what: str) -> str:
    """Names of runs and corpora become folder names: keep them plain."""
    # fullmatch: with match and `$`, "nl\n" passed (`$` also matches before a final newline).
    if not _SAFE_NAME.fullmatch(name):
        raise WorkspaceError(
            f"{what} name {name!r} is not allowed: use letters, digits, '.', '_' and '-' "
            "(at most 64, starting with a letter or digit)"
        )
    return name


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write via a temporary file in the same folder and rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(raw)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any) -> None:
    """Write strict JSON atomically; NaN and infinity are refused (strict parsers reject them)."""
    try:
        text = json.dumps(data, indent=2, sort_keys=True, default=str, allow_nan=False)
    except ValueError as error:
        # "Out of range float values are not JSON compliant": a NaN or infinity that should be null.
        raise ValueError(f"{path} was not written: {error}") from None
    write_atomic(path, text + "\n")


def read_json(path: Path, default: Any = None) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return default
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise WorkspaceError(f"{path} is damaged ({error}); remove it or restore it from a backup") from None


@contextmanager
def atomic_directory(target: Path) -> Iterator[Path]:
    """Build a folder under a temporary name and rename it into place only when complete."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield staging
        os.rename(staging, target)  # fails if target exists: nothing already there is touched
    except BaseException:
        import shutil

        shutil.rmtree(staging, ignore_errors=True)
        raise


class Workspace:
    """Paths inside the workspace; the services for corpora, runs and caches build on it."""

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_home()

    @property
    def corpora_dir(self) -> Path:
        return self.root / "corpora"

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def cache_dir(self) -> Path:
        return self.root / "cache"

    def ensure(self) -> Workspace:
        for folder in (self.corpora_dir, self.runs_dir, self.cache_dir):
            folder.mkdir(parents=True, exist_ok=True)
        return self

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"
