"""An input for file system paths that suggests the rest of a name as you type (accept with right arrow)."""

from __future__ import annotations

import os
from pathlib import Path

from textual.suggester import Suggester
from textual.widgets import Input


class PathSuggester(Suggester):
    """Completes the last path component from the folder's entries; folders get a trailing slash."""

    def __init__(self) -> None:
        super().__init__(use_cache=False, case_sensitive=True)

    async def get_suggestion(self, value: str) -> str | None:
        if not value:
            return None
        expanded = os.path.expanduser(value)
        folder, prefix = os.path.split(expanded)
        try:
            entries = sorted(os.listdir(folder or "."))
        except OSError:
            return None
        for entry in entries:
            if entry.startswith(prefix) and entry != prefix and not entry.startswith("."):
                completed = os.path.join(folder, entry)
                if os.path.isdir(completed):
                    completed += os.sep
                # Keep the user's own spelling of the start (e.g. `~`), append only what is new.
                return value + completed[len(expanded) :]
        return None


class PathInput(Input):
    def __init__(self, value: str = "", **kwargs: object) -> None:
        super().__init__(value, suggester=PathSuggester(), **kwargs)  # type: ignore[arg-type]

    @property
    def path(self) -> Path:
        return Path(self.value.strip()).expanduser()
