"""Samples on disk: where a run's samples go, and which files make each one, in number order.

`tui-composer sample` (and the TUI's sampling worker) writes sample N as `NNN.abc` and `NNN.mid`, with
`NNN.wav` when asked for audio and `NNN.txt` for one that could not be written as ABC. This module only
reads names and small text files (no music21, no TensorFlow), so the TUI lists samples with it directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tui_composer.services.runs import Run
from tui_composer.services.workspace import Workspace

SAMPLES_FOLDER = "samples"
MAX_LISTED = 500  # samples listed per run: the newest ones (a folder of CLI samples can hold thousands)
MAX_TEXT_BYTES = 256 * 1024  # a sample's ABC shown at most this long (a model writes a few kB per tune)
SUFFIXES = (".abc", ".mid", ".wav", ".txt")


def samples_folder(workspace: Workspace, run: Run) -> Path:
    """The run's own samples/ folder; for a read-only (shipped) run, the workspace's samples/RUN."""
    if run.read_only:
        return workspace.root / SAMPLES_FOLDER / run.name
    return run.samples_dir


@dataclass(frozen=True)
class SampleFiles:
    """The files of one sample, found by its number."""

    number: int
    abc_path: Path | None = None
    midi_path: Path | None = None
    audio_path: Path | None = None
    text_path: Path | None = None  # a sample kept as raw text: it could not be written as ABC

    @property
    def name(self) -> str:
        return f"{self.number:03d}"

    def read_text(self) -> str:
        """The sample's ABC (or its raw text), cut at MAX_TEXT_BYTES; '' when it can't be read."""
        path = self.abc_path or self.text_path
        if path is None:
            return ""
        try:
            with open(path, "rb") as handle:
                data = handle.read(MAX_TEXT_BYTES + 1)
        except OSError:
            return ""
        text = data[:MAX_TEXT_BYTES].decode("utf-8", errors="replace")
        if len(data) > MAX_TEXT_BYTES:
            text += f"\n% (shown: the first {MAX_TEXT_BYTES // 1024} KiB of {path.name})"
        return text


@dataclass
class Sample:
    """One generated piece and where it was written; `error` says why a conversion failed.

    The sampling service fills it in as it writes the files; `sample --json` and the TUI's sampling
    worker send it as `to_json()`, and the TUI reads it back with `from_json` or from the files on disk
    with `from_files`.
    """

    number: int  # its files are NNN.abc, NNN.mid...
    length: int = 0  # tokens or frames (0 when read back from files)
    abc: str | None = None
    abc_path: Path | None = None
    midi_path: Path | None = None
    text_path: Path | None = None  # the raw text, kept when it could not be written as ABC
    error: str | None = None
    audio_path: Path | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def name(self) -> str:
        return f"{self.number:03d}"

    @property
    def title(self) -> str:
        """The tune's `T:` line, else `sample NNN`."""
        raw = self.abc_path is None and self.text_path is not None  # the model's raw text: no header to trust
        lines = [] if raw else (self.abc or "").splitlines()
        title = next((line[2:].strip() for line in lines if line.startswith("T:")), "")
        return title or f"sample {self.name}"

    @property
    def text_file(self) -> Path | None:
        """The file that holds its text: the .abc, or the .txt of one that could not be written as ABC."""
        return self.abc_path or self.text_path

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "length": self.length,
            "ok": self.ok,
            "abc": self.abc,
            "abc_path": str(self.abc_path) if self.abc_path else None,
            "midi_path": str(self.midi_path) if self.midi_path else None,
            "text_path": str(self.text_path) if self.text_path else None,
            "audio_path": str(self.audio_path) if self.audio_path else None,
            "error": self.error,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Sample:
        """A sample as `to_json` wrote it (the worker's reply, `sample --json`)."""

        def path(key: str) -> Path | None:
            return Path(data[key]) if data.get(key) else None

        return cls(
            number=int(data.get("number") or 0),
            length=int(data.get("length") or 0),
            abc=data.get("abc"),
            abc_path=path("abc_path"),
            midi_path=path("midi_path"),
            text_path=path("text_path"),
            error=str(data["error"]) if data.get("error") else None,
            audio_path=path("audio_path"),
        )

    @classmethod
    def from_files(cls, files: SampleFiles) -> Sample:
        """A sample found on disk (written by the CLI or an earlier session)."""
        text = files.read_text()
        error = None
        if files.abc_path is None:  # NNN.txt: its first line says why it isn't ABC
            error = text.splitlines()[0].lstrip("% ") if text else "could not be written as ABC"
        return cls(
            number=files.number,
            abc=text,
            abc_path=files.abc_path,
            midi_path=files.midi_path,
            text_path=files.text_path,
            error=error,
            audio_path=files.audio_path,
        )


def list_sample_files(folder: Path, limit: int = MAX_LISTED) -> tuple[list[SampleFiles], int]:
    """The newest `limit` samples of a folder in number order, and how many it holds in all."""
    found: dict[int, dict[str, Path]] = {}
    try:
        entries = list(folder.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return [], 0
    for path in entries:
        if path.suffix in SUFFIXES and path.stem.isdigit() and path.is_file():
            found.setdefault(int(path.stem), {})[path.suffix] = path
    numbers = sorted(found)
    samples = [
        SampleFiles(
            number=number,
            abc_path=found[number].get(".abc"),
            midi_path=found[number].get(".mid"),
            audio_path=found[number].get(".wav"),
            text_path=found[number].get(".txt"),
        )
        for number in numbers[-limit:]
        if ".abc" in found[number] or ".txt" in found[number]  # a lone .mid or .wav is not a sample we wrote
    ]
    return samples, len(numbers)


def verdict_line(check: dict[str, Any] | None, error: str = "") -> str:
    """One line for the Samples table, e.g. `plays · 0 bars shared` or `COPY 5 bars shared`."""
    if check is None:
        return error or "not checked"
    if not check.get("parses"):
        return f"does not parse: {check.get('error') or ''}".strip()
    parts = ["plays" if check.get("ok") else ("no MIDI" if not check.get("writes_midi") else "bars off meter")]
    bad = len(check.get("bad_bars") or [])
    if bad:
        parts.append(f"{bad} bad bar{'s' if bad > 1 else ''}")
    novelty = check.get("novelty")
    if isinstance(novelty, dict):
        parts.append(f"{'COPY ' if novelty.get('copy') else ''}{novelty.get('shared_bars', 0):g} bars shared")
    return " · ".join(parts)
