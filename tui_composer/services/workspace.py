"""The workspace: a directory holding imported corpora, the encoding cache and runs.

Default: the platformdirs user data dir; `--workspace` or TUI_COMPOSER_HOME override it.
"""

from __future__ import annotations

import errno
import json
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

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


# No space left, or the user's quota used up: both mean "free space, then try again".
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


class DiskFullError(WorkspaceError, OSError):
    """A write that found the disk full; names the file. Still an OSError, for code that catches those."""

    def __init__(self, path: Path, advice: str = "free space and try again", code: int = errno.ENOSPC) -> None:
        OSError.__init__(self, code, os.strerror(code), str(path))
        self.path = path
        self.advice = advice

    def __str__(self) -> str:
        return f"disk full writing {self.path}: {self.advice}"


def is_disk_full(error: BaseException) -> bool:
    return isinstance(error, OSError) and error.errno in DISK_FULL_ERRNOS


def write_bytes(handle: BinaryIO, data: bytes) -> None:
    """Every file tui-composer writes itself goes through here (tests make it raise ENOSPC: a full disk)."""
    handle.write(data)


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write via a temporary file in the same folder and rename: readers never see half a file.

    A full disk raises DiskFullError naming `path`, and leaves neither a partial nor a temporary file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as handle:
            write_bytes(handle, raw)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if is_disk_full(error) and not isinstance(error, DiskFullError):
            raise DiskFullError(path, code=getattr(error, "errno", None) or errno.ENOSPC) from error
        raise


def write_json(path: Path, data: Any) -> None:
    """Write strict JSON atomically; NaN and infinity are refused (strict parsers reject them)."""
    try:
        text = json.dumps(data, indent=2, sort_keys=True, default=str, allow_nan=False)
    except ValueError as error:
        # "Out of range float values are not JSON compliant": a NaN or infinity that should be null.
        raise ValueError(f"{path} was not written: {error}") from None
    write_atomic(path, text + "\n")


class DamagedFile(WorkspaceError):
    """A file that can't be read back; `reason` completes "the file ..." (is empty, holds binary bytes...)."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path} is damaged: it {reason}; remove it or restore it from a backup")


def read_json(path: Path, default: Any = None) -> Any:
    """The parsed JSON, `default` when the file is missing; DamagedFile says what is wrong with it."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return default
    except OSError as error:  # a folder in its place, no permission
        raise DamagedFile(path, f"can't be read ({error.strerror or error})") from None
    if not raw.strip():
        raise DamagedFile(path, "is empty")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise DamagedFile(path, "holds binary bytes, not UTF-8 text") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise DamagedFile(path, f"is not valid JSON, perhaps cut short ({error})") from None


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
