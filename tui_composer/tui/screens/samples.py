"""Samples: a run's samples on disk and new ones from the sampling worker, each as ABC text and piano roll,
with its check (plays, bars off meter, copy of a training tune); copy, export.

Sampling and checking run in one worker process kept warm (`tui_composer.tui.sampler`): TensorFlow loads
there once, never here. The table lists the run's samples folder (the CLI's samples too), numbered as
their files are (006 is 006.abc); new samples join it as each one is written and checked, and a
generation can be cancelled (ctrl+x). A row never stays at `checking…`: every job ends in a reply, and a
row whose job ended without its check says why.

Export writes each sample's .abc, .mid and .wav (rendered from the MIDI in a worker thread when
`sample --audio` did not write one and the synthesizer is installed); under `tui-composer serve` the
files are delivered to the browser instead (Textual's App.deliver_binary).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.events import ScreenResume
from textual.widgets import Button, DataTable, Input, Label, Select, Static

from tui_composer.plugin.params import Param, ParamError
from tui_composer.services.jobs import MAX_LENGTH, MAX_SAMPLES, SampleOptions
from tui_composer.services.launcher import constrained_by_default
from tui_composer.services.sample_files import Sample, list_sample_files, samples_folder, verdict_line
from tui_composer.services.workspace import WorkspaceError
from tui_composer.tui.messages import NotesParsed, SamplerReplied, SamplesListed
from tui_composer.tui.notes import NotesUnavailable, notes_of_abc, notes_of_file
from tui_composer.tui.sampler import SamplerClient, sampler_for
from tui_composer.tui.screens.base import ComposerScreen
from tui_composer.tui.screens.dialogs import ExportDialog
from tui_composer.tui.widgets.param_form import ParamValidator
from tui_composer.tui.widgets.piano_roll import PianoRoll

# The sampling options, checked as typed like any hyperparameter, with `tui-composer sample`'s defaults.
DEFAULTS = SampleOptions()
RUNS_OWN_LENGTH = 0  # max_length typed as 0: --max-length left out, so the run's own is used
OPTIONS = (
    Param("n", int, DEFAULTS.n, "how many samples", min=1, max=MAX_SAMPLES),
    Param("temperature", float, DEFAULTS.temperature, "sampling temperature", min=0.01, max=10.0),
    Param("seed", int, DEFAULTS.seed, "random seed: the same seed gives the same samples", min=0),
    Param(
        "max_length",
        int,
        RUNS_OWN_LENGTH,
        "tokens or frames per sample; 0: the run's own (1000 tokens, a frames run its median piece)",
        min=RUNS_OWN_LENGTH,
        max=MAX_LENGTH,
    ),
)
CHECKING = "checking…"
PREPARE_AFTER_SECONDS = 1.0  # on the screen this long with a run chosen: its model loads in the worker


def verdict(check: dict[str, Any]) -> str:
    """One line from a check, e.g. `plays · 0 bars shared` or `COPY 5 bars shared`."""
    return verdict_line(check)


class SamplesScreen(ComposerScreen):
    MODE = "samples"
    BINDINGS = [
        Binding("ctrl+g", "generate", "Generate", priority=True),
        # Only while a job runs (check_action); otherwise ctrl+x is the inputs' cut.
        Binding("ctrl+x", "cancel", "Cancel", priority=True),
        Binding("c", "copy", "Copy ABC"),
        Binding("e", "export", "Export"),
    ]
    PALETTE = (
        ("Generate samples", "Sample tunes from the chosen run (ctrl+g)", "generate"),
        ("Cancel generation", "Stop the generation or checks that are running (ctrl+x)", "cancel"),
        ("Copy sample ABC", "Copy the selected sample's ABC text to the clipboard", "copy"),
        ("Export sample", "Write the selected sample's .abc, .mid and .wav to a folder", "export"),
        ("Export all samples", "Write every sample's .abc, .mid and .wav to a folder", "export_all"),
    )

    def __init__(self) -> None:
        super().__init__()
        self.samples: list[Sample] = []  # the shown run's, in number order
        self.run_shown = ""
        self.verdicts: dict[int, str] = {}
        self._wanted_run = ""
        self._previewing = ""
        self._pending: dict[int, int] = {}  # sample number -> the job that will check it
        self._generation: tuple[int, str] | None = None  # (job, run) of the generation running
        self._checks: tuple[int, str] | None = None  # (job, run) of the checks of listed samples
        self._prepared: set[str] = set()
        self._preparing: tuple[int, str] | None = None  # (job, run) loading a model ahead of time
        self._run_names: list[str] | None = None  # the runs the Select offers
        self._written = 0  # samples of the running generation written so far
        self._first_new = True

    @property
    def sampler(self) -> SamplerClient:
        return sampler_for(self.studio.workspace)

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

    def on_screen_resume(self, event: ScreenResume | None = None) -> None:
        super().on_screen_resume()  # no event: the base restyles, as coming back here needs
        self._list_runs()

    def preselect(self, run: str) -> None:
        self._wanted_run = run
        self._list_runs()

    def _list_runs(self) -> None:
        select = self.query_one("#sample-run", Select)
        current = self._wanted_run or (select.value if select.value is not Select.NULL else "")
        try:
            runs = self.studio.runs.list()
        except (WorkspaceError, OSError) as error:
            self._status(f"Can't list the runs: {error}")
            return
        # Any run with a best model so far, also one still training: it samples from that model.
        names = [r.name for r in runs if r.read_only or r.model_path.is_file()]
        if self._wanted_run and self._wanted_run not in names:
            self.notify(f"{self._wanted_run} has no trained model yet; wait for its first epoch", severity="warning")
        if names != self._run_names:  # rebuilding a Select restyles it: a third of a screen switch
            self._run_names = names
            select.set_options([(n, n) for n in names])
        if current in names and select.value != current:
            select.value = current
        elif names and select.value is Select.NULL:
            select.value = names[0]
        self._wanted_run = ""
        self._show_run(self._chosen_run(), refresh=True)

    def _chosen_run(self) -> str:
        value = self.query_one("#sample-run", Select).value
        return "" if value is Select.NULL else str(value)

    @on(Select.Changed, "#sample-run")
    def _run_changed(self, event: Select.Changed) -> None:
        self._show_run(self._chosen_run())

    def _status(self, text: str) -> None:
        self.query_one("#sample-status", Static).update(text)

    # --- the shown run's samples -------------------------------------------------------------------

    def _show_run(self, run: str, refresh: bool = False) -> None:
        """List `run`'s samples (never another run's under its name) and check them; `refresh` looks for
        new files of the run already shown (the CLI may have written some)."""
        if run == self.run_shown:
            if refresh and run and self._generation is None:
                self._read_samples(run)
            return
        if self._checks is not None:
            self.sampler.cancel(self._checks[0])  # the other run's rows are gone; they are checked when shown again
        self._cancel_preparing(unless=run)
        self.run_shown = run
        if self._generation is None:
            self._status("")  # what was said was about the run shown before
        self.samples, self.verdicts, self._pending = [], {}, {}
        self._previewing = ""
        self.query_one("#samples", DataTable).clear()
        self.query_one("#sample-abc", Static).update("Generate samples (ctrl+g)." if run else "Choose a run.")
        self.query_one("#sample-roll", PianoRoll).show_message("")
        if not run:
            return
        self._read_samples(run)
        self.set_timer(PREPARE_AFTER_SECONDS, lambda: self._prepare(run))

    @work(thread=True, exclusive=True, group="list-samples")
    def _read_samples(self, run: str) -> None:
        try:
            folder = samples_folder(self.studio.workspace, self.studio.runs.get(run))
            files, total = list_sample_files(folder)
        except (WorkspaceError, OSError) as error:
            self.app.call_from_thread(self._status, f"Can't read the samples of {run}: {error}")
            return
        self.post_message(SamplesListed(run, [Sample.from_files(f) for f in files], total, str(folder)))

    def on_samples_listed(self, message: SamplesListed) -> None:
        if message.run != self.run_shown:
            return  # listed for a run no longer shown
        known = {s.number for s in self.samples}  # new ones a generation added meanwhile stay
        listed = [s for s in message.samples if s.number not in known]
        self.samples = sorted([*self.samples, *listed], key=lambda s: s.number)
        for sample in listed:
            self.verdicts[sample.number] = sample.error or CHECKING
        if listed:
            self._rebuild_table()
        if len(message.samples) < message.total:
            self._status(f"Showing the newest {len(message.samples)} of {message.total} samples in {message.folder}")
        if self.samples and self._previewing == "":
            # The newest sample, once the table has settled (its own highlight of the first row comes first).
            self.call_after_refresh(lambda: self._point_at(self.samples[-1]))
        self._check_listed([s for s in listed if not s.error])

    def _point_at(self, sample: Sample) -> None:
        """The cursor on a sample, and the sample shown."""
        table = self.query_one("#samples", DataTable)
        if str(sample.number) in table.rows:
            table.move_cursor(row=table.get_row_index(str(sample.number)))
            self._show(sample)

    def _rebuild_table(self) -> None:
        """Every row again, in number order; the cursor stays on the sample it was on."""
        table = self.query_one("#samples", DataTable)
        on = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value if table.row_count else None
        table.clear()
        for sample in self.samples:
            table.add_row(sample.name, sample.title, self.verdicts.get(sample.number, ""), key=str(sample.number))
        if on is not None and on in table.rows:
            table.move_cursor(row=table.get_row_index(on))

    def _check_listed(self, samples: list[Sample]) -> None:
        """Check the listed samples (the worker remembers the files it checked: a second look is instant)."""
        wanted = [(s.number, s.text_file) for s in samples if s.text_file is not None]
        if not wanted:
            return
        if self._generation is not None:
            for number, _ in wanted:
                self._set_verdict(number, "waiting: checked after the generation")
            return
        run = self.run_shown
        job = self.sampler.check(run, [(n, p) for n, p in wanted if p is not None], self._listener(run))
        self._checks = (job, run)
        self.refresh_bindings()
        for number, _ in wanted:
            self._pending[number] = job
            self._set_verdict(number, CHECKING)

    def _set_verdict(self, number: int, text: str) -> None:
        self.verdicts[number] = text
        table = self.query_one("#samples", DataTable)
        if str(number) in table.rows:
            table.update_cell(str(number), "result", text, update_width=True)

    def _prepare(self, run: str) -> None:
        """Load the model ahead of the first generation, while the user fills in the form."""
        if run != self.run_shown or run in self._prepared or not self.is_current or self.sampler.busy():
            return
        self._prepared.add(run)
        self._preparing = (self.sampler.prepare(run, self._listener(run)), run)

    def _cancel_preparing(self, unless: str) -> None:
        """A model (or the first novelty index of a corpus: minutes) loading for a run no longer wanted."""
        if self._preparing is not None and self._preparing[1] != unless:
            self.sampler.cancel(self._preparing[0])
            self._prepared.discard(self._preparing[1])
            self._preparing = None

    def _listener(self, run: str) -> Any:
        def listen(reply: dict[str, Any]) -> None:
            self.post_message(SamplerReplied(int(reply.get("id", 0)), run, reply))

        return listen

    # --- generating --------------------------------------------------------------------------------

    def options(self) -> tuple[str, dict[str, Any], list[str]]:
        """The run, the sampling options of the form, and the problems with them."""
        problems = []
        run = self._chosen_run()
        if not run:
            problems.append("choose a run")
        options: dict[str, Any] = {}
        for option in OPTIONS:
            raw = self.query_one(f"#sample-{option.name}", Input).value.strip()
            try:
                options[option.name] = option.parse(raw)
            except ParamError as error:
                problems.append(str(error))
        if options.get("max_length") == RUNS_OWN_LENGTH:
            options["max_length"] = None
        primer = self.query_one("#sample-primer", Input).value
        # Typed on one line; ABC header fields go on their own lines.
        options["primer"] = primer.replace("\\n", "\n") if primer.strip() else None
        options["constrain"] = bool(self.query_one("#sample-constrain", Select).value)
        return run, options, problems

    @on(Button.Pressed, "#generate")
    def action_generate(self) -> None:
        run, options, problems = self.options()
        if problems:
            self._status("Can't generate: " + "; ".join(problems))
            return
        if self._generation is not None:
            running = self._generation[1]
            self.notify(f"Still generating from {running}: wait, or cancel it (ctrl+x)", severity="warning")
            return
        if self._checks is not None:  # the generation goes first; those rows are checked after it
            self.sampler.cancel(self._checks[0])
        self._cancel_preparing(unless=run)
        self._show_run(run)
        self._written = 0
        self._first_new = True
        job = self.sampler.generate(run, options, self._listener(run))
        self._generation = (job, run)
        self.refresh_bindings()  # ctrl+x cancels now
        self._status(f"Sampling {options['n']} from {run}…")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "cancel":
            return self._generation is not None or self._checks is not None
        return True

    def action_cancel(self) -> None:
        job = self._generation or self._checks
        if job is None:
            self.notify("Nothing to cancel: no generation is running", severity="warning")
            return
        self.sampler.cancel(job[0], stop_worker=job is self._generation)
        self._status("Cancelling…")

    def on_sampler_replied(self, message: SamplerReplied) -> None:
        reply, kind = message.reply, message.reply.get("kind")
        generation = self._generation is not None and message.job == self._generation[0]
        shown = message.run == self.run_shown
        preparing = self._preparing is not None and message.job == self._preparing[0]
        if kind == "progress":
            checks = self._checks is not None and message.job == self._checks[0]
            if generation or checks or (preparing and shown and self._generation is None):
                self._status(progress_line(reply))
        elif kind == "sample" and shown:
            self._add_sample(Sample.from_json(reply.get("sample") or {}), checking=generation)
        elif kind == "check" and shown:
            number = int(reply.get("number", 0))
            self._pending.pop(number, None)
            self._set_verdict(number, str(reply.get("verdict") or "not checked"))
        elif kind in ("done", "error"):
            self._job_ended(message, generation)

    def _add_sample(self, sample: Sample, checking: bool) -> None:
        if any(s.number == sample.number for s in self.samples):
            return
        self._written += 1
        self.samples.append(sample)
        self.samples.sort(key=lambda s: s.number)
        table = self.query_one("#samples", DataTable)
        self.verdicts[sample.number] = CHECKING if checking else (sample.error or "not checked")
        if checking and self._generation is not None:
            self._pending[sample.number] = self._generation[0]
        if self.samples[-1] is sample:
            table.add_row(sample.name, sample.title, self.verdicts[sample.number], key=str(sample.number))
        else:
            self._rebuild_table()
        if self._first_new:  # the generation's first sample is shown as it arrives
            self._first_new = False
            table.focus()
            table.move_cursor(row=table.get_row_index(str(sample.number)))
            self._show(sample)

    def _job_ended(self, message: SamplerReplied, generation: bool) -> None:
        reply = message.reply
        error = str(reply.get("message") or "") if reply.get("kind") == "error" else ""
        cancelled = bool(reply.get("cancelled"))
        for number, job in list(self._pending.items()):
            if job != message.job:
                continue
            del self._pending[number]
            if error:
                self._set_verdict(number, f"not checked: {error}")
            elif cancelled and not generation and self._generation is not None:
                self._set_verdict(number, "waiting: checked after the generation")
            elif cancelled:
                self._set_verdict(number, "not checked (cancelled)")
            else:
                self._set_verdict(number, "not checked")  # the worker ended without its verdict
        if reply.get("restarted"):
            self.notify("The sampler process was restarted (its model loads again next time)", severity="warning")
        if generation:
            self._generation = None
            self.refresh_bindings()
            self._status(generation_summary(message.run, self._written, reply, error, message.run == self.run_shown))
            waiting = [s for s in self.samples if self.verdicts.get(s.number, "").startswith("waiting")]
            self._check_listed(waiting)
        elif self._checks is not None and message.job == self._checks[0]:
            self._checks = None
            self.refresh_bindings()
            if error:
                self._status(f"Checking failed: {error}")
            elif not cancelled and self._generation is None:
                self._status(f"{len(self.samples)} samples of {message.run}")
        elif self._preparing is not None and message.job == self._preparing[0]:
            self._preparing = None
            if message.run == self.run_shown and self._generation is None:
                if error:
                    self._status(f"Loading {message.run} failed: {error}")
                elif str(self.query_one("#sample-status", Static).content).startswith(("Loading", "Indexing")):
                    self._status(f"{message.run} is ready: ctrl+g generates")

    @on(DataTable.RowHighlighted, "#samples")
    def _sample_highlighted(self, event: DataTable.RowHighlighted) -> None:
        sample = self._sample(str(event.row_key.value))
        if sample is not None:
            self._show(sample)

    def _sample(self, index: str) -> Sample | None:
        return next((s for s in self.samples if str(s.number) == index), None)

    def _show(self, sample: Sample) -> None:
        if self._previewing == str(sample.number):
            return  # already shown (highlighting the row it is on again)
        text = (sample.abc or "").strip() or "(no ABC text)"
        if sample.error:
            text = f"{sample.error}\n\n{text}"
        self.query_one("#sample-abc", Static).update(text)
        self.query_one("#sample-roll", PianoRoll).show_message("parsing…")
        self._previewing = str(sample.number)
        self._parse(sample)

    @work(thread=True, exclusive=True, group="preview")
    def _parse(self, sample: Sample) -> None:
        try:
            if sample.midi_path is not None and sample.midi_path.is_file():
                notes = notes_of_file(sample.midi_path)
            else:
                notes = notes_of_abc(sample.abc or "")
        except NotesUnavailable as error:  # a sample that won't parse shows why
            self.post_message(NotesParsed(str(sample.number), error=str(error)))
            return
        self.post_message(NotesParsed(str(sample.number), notes))

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
        self.app.copy_to_clipboard(sample.abc or "")
        self.notify(f"Copied the ABC of sample {sample.name} ({len(sample.abc or '')} characters)")

    def action_export(self) -> None:
        sample = self.selected_sample()
        if sample is not None:
            self._ask_export([sample], f"sample {sample.name}")

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
        from tui_composer.music.audio import rendering_problem

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
            for path in (sample.text_file, sample.midi_path, wav):
                if path is not None and path.is_file():
                    mime = MIME_TYPES.get(path.suffix, "application/octet-stream")
                    self.app.call_from_thread(self.app.deliver_binary, path, save_filename=path.name, mime_type=mime)
        text = f"Sent {len(samples)} sample{'s' if len(samples) > 1 else ''} to the browser"
        self.app.call_from_thread(
            self.notify,
            text + (f" ({'; '.join(problems)})" if problems else ""),
            severity="warning" if problems else "information",
        )


def progress_line(reply: dict[str, Any]) -> str:
    """A worker's progress reply as the status line: `indexing the training tunes of oneills 200/1607…`."""
    text = str(reply.get("message") or reply.get("phase") or "working")
    if reply.get("phase") == "indexing" and reply.get("total"):
        text += f" {reply.get('done', 0)}/{reply['total']}"
    return text[:1].upper() + text[1:] + "…"


def generation_summary(run: str, written: int, reply: dict[str, Any], error: str, shown: bool) -> str:
    if error:
        return f"Sampling from {run} failed: {error}"
    if reply.get("cancelled"):
        return f"Cancelled: {written} sample{'s' if written != 1 else ''} of {run} written before it stopped"
    where = "" if shown else f" (choose {run} to see them)"
    seconds = float(reply.get("seconds") or 0)
    return f"{written} sample{'s' if written != 1 else ''} from {run} in {seconds:.1f} s{where}"


MIME_TYPES = {".abc": "text/vnd.abc", ".mid": "audio/midi", ".wav": "audio/wav", ".txt": "text/plain"}


def has_audio(sample: Sample) -> bool:
    return sample.audio_path is not None and sample.audio_path.is_file()


def sample_audio(sample: Sample) -> tuple[Path | None, str | None]:
    """The sample's .wav: the one `sample --audio` wrote, else rendered now beside its .mid (kept for
    next time); or None and why not."""
    if has_audio(sample):
        return sample.audio_path, None
    if sample.midi_path is None or not sample.midi_path.is_file():
        return None, f"sample {sample.number} has no MIDI to play"
    from tui_composer.music.audio import AudioError, render_wav

    try:
        return render_wav(sample.midi_path, sample.midi_path.with_suffix(".wav")), None
    except (AudioError, OSError) as error:
        return None, f"sample {sample.number}: {error}"


def export_audio(samples: list[Sample], folder: Path) -> tuple[list[Path], list[str]]:
    """Each sample's .wav copied into `folder`, rendered first where missing: the files, and the problems."""
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    problems: list[str] = []
    for sample in samples:
        wav, problem = sample_audio(sample)
        if wav is None:
            problems.append(problem or f"sample {sample.number} has no audio")
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
        sources = [p for p in (sample.text_file, sample.midi_path, sample.audio_path) if p is not None and p.is_file()]
        for source in sources:
            target = folder / source.name
            shutil.copyfile(source, target)
            written.append(target)
        if sample.text_file is None or not sample.text_file.is_file():
            target = folder / f"sample-{sample.number:03d}.abc"
            target.write_text(sample.abc or "", encoding="utf-8")
            written.append(target)
    return written
