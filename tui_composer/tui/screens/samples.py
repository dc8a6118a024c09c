"""Samples: generate tunes from a run (in a subprocess), see each as ABC and piano roll, copy, export.

Export writes each sample's .abc, .mid and .wav (rendered from the MIDI in a worker thread when
`sample --audio` did not write one and the synthesizer is installed); under `tui-composer serve` the
files are delivered to the browser instead (Textual's App.deliver_binary).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, DataTable, Input, Label, Select, Static

from tui_composer.launcher import (
    CommandFailed,
    constrained_by_default,
    constraint_flags,
    parse_json_output,
    run_command,
)
from tui_composer.params import Param, ParamError
from tui_composer.tui.messages import NotesParsed, SamplesChecked, SamplesGenerated
from tui_composer.tui.notes import NotesUnavailable, notes_of_abc, notes_of_file
from tui_composer.tui.screens.base import ComposerScreen
from tui_composer.tui.screens.dialogs import ExportDialog
from tui_composer.tui.widgets.param_form import ParamValidator
from tui_composer.tui.widgets.piano_roll import PianoRoll

# The sampling options, checked as typed like any hyperparameter.
OPTIONS = (
    Param("n", int, 4, "how many samples", min=1, max=1000),
    Param("temperature", float, 1.0, "sampling temperature", min=0.01, max=10.0),
    Param("seed", int, 0, "random seed: the same seed gives the same samples", min=0),
    Param("max_length", int, 500, "tokens or frames per sample", min=1, max=100_000),
)
SAMPLE_TIMEOUT = 600.0


@dataclass(frozen=True)
class Sample:
    """One generated sample as the `sample --json` command reports it."""

    index: int
    title: str
    abc: str
    abc_path: Path | None
    midi_path: Path | None
    error: str
    audio_path: Path | None = None

    @classmethod
    def from_json(cls, index: int, data: dict[str, Any]) -> Sample:
        def path(key: str) -> Path | None:
            return Path(data[key]) if data.get(key) else None

        abc = data.get("abc") or ""
        title = next((line[2:].strip() for line in abc.splitlines() if line.startswith("T:")), "")
        return cls(
            index=int(data.get("number", index)),
            title=title or f"sample {index}",
            abc=abc,
            # A sample that didn't convert is kept as text (text_path) with the reason.
            abc_path=path("abc_path") or path("text_path"),
            midi_path=path("midi_path"),
            error=str(data.get("error") or ""),
            audio_path=path("audio_path"),
        )


def verdict(check: dict[str, Any]) -> str:
    """One line from a `check --json` entry, e.g. `plays · 0 bars shared` or `COPY 5 bars shared`."""
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


def samples_from_output(data: Any) -> list[Sample]:
    items = data.get("samples", []) if isinstance(data, dict) else data
    return [Sample.from_json(i, item) for i, item in enumerate(items, start=1) if isinstance(item, dict)]


class SamplesScreen(ComposerScreen):
    MODE = "samples"
    BINDINGS = [
        Binding("ctrl+g", "generate", "Generate", priority=True),
        Binding("c", "copy", "Copy ABC"),
        Binding("e", "export", "Export"),
    ]
    PALETTE = (
        ("Generate samples", "Sample tunes from the chosen run", "generate"),
        ("Copy sample ABC", "Copy the selected sample's ABC text to the clipboard", "copy"),
        ("Export sample", "Write the selected sample's .abc, .mid and .wav to a folder", "export"),
        ("Export all samples", "Write every sample's .abc, .mid and .wav to a folder", "export_all"),
    )

    def __init__(self) -> None:
        super().__init__()
        self.samples: list[Sample] = []
        self._wanted_run = ""
        self._previewing = ""

    def compose_body(self) -> ComposeResult:
        with Horizontal():
            with VerticalScroll(id="sample-form"):
                yield Label("Run")
                yield Select([], prompt="choose a run", id="sample-run", compact=True)
                for option in OPTIONS:
                    with Horizontal(classes="field"):
                        yield Label(option.name.replace("_", " "), classes="option-name")
                        yield Input(
                            str(option.default),
                            id=f"sample-{option.name}",
                            validators=[ParamValidator(option)],
                            compact=True,
                            tooltip=f"{option.help} ({option.allowed()})",
                        )
                yield Label("Primer (ABC, e.g. M:6/8 K:G)")
                yield Input(placeholder="none", id="sample-primer", compact=True)
                with Horizontal(classes="field"):
                    yield Label("grammar", classes="option-name")
                    yield Select(
                        [("constrained", True), ("free", False)],
                        value=constrained_by_default(),
                        allow_blank=False,
                        id="sample-constrain",
                        compact=True,
                        tooltip="constrained: only tokens that keep the tune valid (encoders with a grammar, e.g. abc)",
                    )
                yield Button("Generate (ctrl+g)", variant="primary", id="generate", compact=True)
                yield Static("", id="sample-status", markup=False)
            with Vertical(id="sample-view"):
                yield DataTable(id="samples", cursor_type="row")
                with VerticalScroll(id="sample-abc-scroll"):
                    yield Static("Choose a run and generate.", id="sample-abc", markup=False)
                yield PianoRoll(id="sample-roll")

    def on_mount(self) -> None:
        table = self.query_one("#samples", DataTable)
        table.add_column("#", key="index")
        table.add_column("title", key="title", width=14)
        table.add_column("result", key="result")
        self._list_runs()

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        self._list_runs()

    def preselect(self, run: str) -> None:
        self._wanted_run = run
        self._list_runs()

    def _list_runs(self) -> None:
        select = self.query_one("#sample-run", Select)
        current = self._wanted_run or (select.value if select.value is not Select.NULL else "")
        # Any run with a best model so far, also one still training: it samples from that model.
        names = [r.name for r in self.studio.runs.list() if r.read_only or r.model_path.is_file()]
        if self._wanted_run and self._wanted_run not in names:
            self.notify(f"{self._wanted_run} has no trained model yet; wait for its first epoch", severity="warning")
        select.set_options([(n, n) for n in names])
        if current in names:
            select.value = current
        elif names and select.value is Select.NULL:
            select.value = names[0]
        self._wanted_run = ""

    # --- generating --------------------------------------------------------------------------------

    def arguments(self) -> tuple[list[str], list[str]]:
        """The `sample` command line for the form, or the problems with it."""
        problems = []
        run = self.query_one("#sample-run", Select).value
        if run is Select.NULL:
            problems.append("choose a run")
        args = ["sample", str(run)]
        flags = {"n": "-n", "temperature": "--temperature", "seed": "--seed", "max_length": "--max-length"}
        for option in OPTIONS:
            raw = self.query_one(f"#sample-{option.name}", Input).value.strip()
            try:
                args += [flags[option.name], str(option.parse(raw))]
            except ParamError as error:
                problems.append(str(error))
        primer = self.query_one("#sample-primer", Input).value
        if primer.strip():
            # Typed on one line; ABC header fields go on their own lines.
            args += ["--primer", primer.replace("\\n", "\n")]
        args += constraint_flags(bool(self.query_one("#sample-constrain", Select).value))
        return [*args, "--json"], problems

    @on(Button.Pressed, "#generate")
    def action_generate(self) -> None:
        args, problems = self.arguments()
        status = self.query_one("#sample-status", Static)
        if problems:
            status.update("Can't generate: " + "; ".join(problems))
            return
        status.update(f"Sampling from {args[1]}…")
        self._generate(args[1], args)

    @work(thread=True, exclusive=True, group="sample")
    def _generate(self, run: str, args: list[str]) -> None:
        # A subprocess: sampling needs TensorFlow, which never loads into the TUI's process.
        try:
            output = run_command(self.studio.workspace, args, timeout=SAMPLE_TIMEOUT)
            samples = samples_from_output(parse_json_output(output))
        except (CommandFailed, OSError) as error:
            self.post_message(SamplesGenerated(run, error=str(error)))
            return
        self.post_message(SamplesGenerated(run, samples))

    def on_samples_generated(self, message: SamplesGenerated) -> None:
        status = self.query_one("#sample-status", Static)
        if message.error:
            status.update(f"Sampling failed: {message.error}")
            return
        self.samples = list(message.samples)
        self._previewing = ""
        failed = sum(1 for s in self.samples if s.error)
        status.update(f"{len(self.samples)} samples from {message.run}" + (f", {failed} with errors" if failed else ""))
        table = self.query_one("#samples", DataTable)
        table.clear()
        for sample in self.samples:
            table.add_row(str(sample.index), sample.title, "checking…", key=str(sample.index))
        if self.samples:
            table.focus()
            table.move_cursor(row=0)
            self._show(self.samples[0])
            self._check(message.run, self.samples)

    @work(thread=True, exclusive=True, group="check")
    def _check(self, run: str, samples: list[Sample]) -> None:
        """The same verdicts as `tui-composer check --run RUN`: parses, MIDI, bars, copies of training tunes."""
        checked = [s for s in samples if s.abc.lstrip().startswith("X:")]  # one tune each, in order
        verdicts = {s.index: s.error or "no tune (no X: line)" for s in samples if s not in checked}
        if not checked:
            self.post_message(SamplesChecked(run, verdicts))
            return
        with tempfile.TemporaryDirectory(prefix="tui-composer-check-") as folder:
            path = Path(folder) / "samples.abc"
            path.write_text("\n".join(s.abc.strip() + "\n" for s in checked), encoding="utf-8")
            try:
                output = run_command(
                    self.studio.workspace, ["check", str(path), "--run", run, "--json"], SAMPLE_TIMEOUT
                )
                results = parse_json_output(output)
            except (CommandFailed, OSError) as error:
                self.post_message(SamplesChecked(run, error=str(error)))
                return
        verdicts |= {sample.index: verdict(result) for sample, result in zip(checked, results, strict=False)}
        self.post_message(SamplesChecked(run, verdicts))

    def on_samples_checked(self, message: SamplesChecked) -> None:
        table = self.query_one("#samples", DataTable)
        if message.error:
            self.query_one("#sample-status", Static).update(f"Checking failed: {message.error}")
            message.verdicts = {s.index: s.error or "not checked" for s in self.samples}
        for index, text in message.verdicts.items():
            if str(index) in table.rows:
                table.update_cell(str(index), "result", text, update_width=True)

    @on(DataTable.RowHighlighted, "#samples")
    def _sample_highlighted(self, event: DataTable.RowHighlighted) -> None:
        sample = self._sample(str(event.row_key.value))
        if sample is not None:
            self._show(sample)

    def _sample(self, index: str) -> Sample | None:
        return next((s for s in self.samples if str(s.index) == index), None)

    def _show(self, sample: Sample) -> None:
        if self._previewing == str(sample.index):
            return  # already shown (highlighting the row it is on again)
        text = sample.abc.strip() or "(no ABC text)"
        if sample.error:
            text = f"{sample.error}\n\n{text}"
        self.query_one("#sample-abc", Static).update(text)
        self.query_one("#sample-roll", PianoRoll).show_message("parsing…")
        self._previewing = str(sample.index)
        self._parse(sample)

    @work(thread=True, exclusive=True, group="preview")
    def _parse(self, sample: Sample) -> None:
        try:
            if sample.midi_path is not None and sample.midi_path.is_file():
                notes = notes_of_file(sample.midi_path)
            else:
                notes = notes_of_abc(sample.abc)
        except NotesUnavailable as error:  # a sample that won't parse shows why
            self.post_message(NotesParsed(str(sample.index), error=str(error)))
            return
        self.post_message(NotesParsed(str(sample.index), notes))

    def on_notes_parsed(self, message: NotesParsed) -> None:
        if message.target != self._previewing:
            return
        roll = self.query_one("#sample-roll", PianoRoll)
        if message.error:
            roll.show_message(message.error)
        else:
            roll.show(message.notes)

    # --- copy and export ---------------------------------------------------------------------------

    def selected_sample(self) -> Sample | None:
        table = self.query_one("#samples", DataTable)
        if not self.samples or not table.row_count:
            self.notify("Generate samples first (ctrl+g)", severity="warning")
            return None
        return self._sample(str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value))

    def action_copy(self) -> None:
        sample = self.selected_sample()
        if sample is None:
            return
        # OSC 52: the terminal (also at the far end of an SSH connection) puts it on the clipboard.
        self.app.copy_to_clipboard(sample.abc)
        self.notify(f"Copied the ABC of sample {sample.index} ({len(sample.abc)} characters)")

    def action_export(self) -> None:
        sample = self.selected_sample()
        if sample is not None:
            self._ask_export([sample], f"sample {sample.index}")

    def action_export_all(self) -> None:
        if self.selected_sample() is not None:
            self._ask_export(self.samples, f"{len(self.samples)} samples")

    def _ask_export(self, samples: list[Sample], what: str) -> None:
        if self.app.is_web:
            self._deliver(samples)  # under `serve` a folder on the server is no use: the browser downloads them
            return

        def answered(folder: Path | None) -> None:
            if folder is None:
                return
            try:
                written = export_samples(samples, folder)
            except OSError as error:
                self.notify(f"Export to {folder} failed: {error.strerror or error}", severity="error")
                return
            self.notify(f"Wrote {len(written)} files to {folder}")
            if any(s.midi_path is not None and not has_audio(s) for s in samples):
                self._export_audio(samples, folder)

        self.app.push_screen(ExportDialog(what, Path.cwd() / "samples"), answered)

    @work(thread=True, group="audio")
    def _export_audio(self, samples: list[Sample], folder: Path) -> None:
        """The WAVs that `sample --audio` did not write, rendered and copied after the other files."""
        from tui_composer.audio import rendering_problem

        problem = rendering_problem()
        if problem:
            self.app.call_from_thread(self.notify, f"No .wav exported: {problem}", severity="warning")
            return
        written, problems = export_audio(samples, folder)
        self.app.call_from_thread(
            self.notify,
            f"Wrote {len(written)} .wav files to {folder}" + (f" ({'; '.join(problems)})" if problems else ""),
            severity="warning" if problems else "information",
        )

    @work(thread=True, group="audio")
    def _deliver(self, samples: list[Sample]) -> None:
        """Each sample's .abc, .mid and .wav to the browser, the .wav rendered first if need be."""
        problems: list[str] = []
        for sample in samples:
            wav, problem = sample_audio(sample)
            problems += [problem] if problem else []
            for path in (sample.abc_path, sample.midi_path, wav):
                if path is not None and path.is_file():
                    mime = MIME_TYPES.get(path.suffix, "application/octet-stream")
                    self.app.call_from_thread(self.app.deliver_binary, path, save_filename=path.name, mime_type=mime)
        text = f"Sent {len(samples)} sample{'s' if len(samples) > 1 else ''} to the browser"
        self.app.call_from_thread(
            self.notify,
            text + (f" ({'; '.join(problems)})" if problems else ""),
            severity="warning" if problems else "information",
        )


MIME_TYPES = {".abc": "text/vnd.abc", ".mid": "audio/midi", ".wav": "audio/wav", ".txt": "text/plain"}


def has_audio(sample: Sample) -> bool:
    return sample.audio_path is not None and sample.audio_path.is_file()


def sample_audio(sample: Sample) -> tuple[Path | None, str | None]:
    """The sample's .wav: the one `sample --audio` wrote, else rendered now beside its .mid (kept for
    next time); or None and why not."""
    if has_audio(sample):
        return sample.audio_path, None
    if sample.midi_path is None or not sample.midi_path.is_file():
        return None, f"sample {sample.index} has no MIDI to play"
    from tui_composer.audio import AudioError, render_wav

    try:
        return render_wav(sample.midi_path, sample.midi_path.with_suffix(".wav")), None
    except (AudioError, OSError) as error:
        return None, f"sample {sample.index}: {error}"


def export_audio(samples: list[Sample], folder: Path) -> tuple[list[Path], list[str]]:
    """Each sample's .wav copied into `folder`, rendered first where missing: the files, and the problems."""
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    problems: list[str] = []
    for sample in samples:
        wav, problem = sample_audio(sample)
        if wav is None:
            problems.append(problem or f"sample {sample.index} has no audio")
            continue
        target = folder / wav.name
        if target.resolve() != wav.resolve():
            shutil.copyfile(wav, target)
        written.append(target)
    return written, problems


def export_samples(samples: list[Sample], folder: Path) -> list[Path]:
    """Copy each sample's .abc, .mid and .wav into `folder`; a sample without files gets its ABC text written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for sample in samples:
        sources = [p for p in (sample.abc_path, sample.midi_path, sample.audio_path) if p is not None and p.is_file()]
        for source in sources:
            target = folder / source.name
            shutil.copyfile(source, target)
            written.append(target)
        if sample.abc_path is None or not sample.abc_path.is_file():
            target = folder / f"sample-{sample.index:03d}.abc"
            target.write_text(sample.abc, encoding="utf-8")
            written.append(target)
    return written
