"""New run: a corpus, an encoder and a model (any pair), their hyperparameters, and start."""

from __future__ import annotations

from collections.abc import Sequence

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Input, Label, Select, Static

from tui_composer.launcher import new_run_name, start_training
from tui_composer.params import Param
from tui_composer.training import DEFAULT_EPOCHS, DEFAULT_PATIENCE, TrainingRequest
from tui_composer.tui.messages import TrainingLaunched
from tui_composer.tui.screens.base import ComposerScreen
from tui_composer.tui.widgets.param_form import ParamForm
from tui_composer.workspace import WorkspaceError, check_name

# The `train` command's own options, checked like hyperparameters.
EPOCHS = Param("epochs", int, DEFAULT_EPOCHS, "passes over the training split, at most", min=1, max=100_000)
PATIENCE = Param("patience", int, DEFAULT_PATIENCE, "epochs without a better valid loss before stopping", min=1)
SEED = Param("seed", int, 0, "random seed of the run", min=0)
RUN_OPTIONS = (EPOCHS, PATIENCE, SEED)


class NewRunScreen(ComposerScreen):
    MODE = "new"
    BINDINGS = [Binding("ctrl+r", "start", "Start training", priority=True)]
    PALETTE = (("Start training", "Start a training run with the New run form", "start"),)

    def compose_body(self) -> ComposeResult:
        registry = self.studio.registry
        corpora = self.studio.catalogue.names()
        with VerticalScroll(id="new-run"):
            # Names in the lists, the chosen one's description beside it (descriptions are long).
            choices = (
                ("corpus", "choose a corpus", corpora),
                ("encoder", "choose an encoder", list(registry.encoders)),
                ("model", "choose a model", list(registry.models)),
            )
            for field, prompt, names in choices:
                with Horizontal(classes="field"):
                    yield Label(field.capitalize(), classes="field-name")
                    yield Select([(n, n) for n in names], prompt=prompt, id=field, compact=True, classes="pick")
                    yield Label("", id=f"{field}-about", classes="param-help")
            with Horizontal(classes="field"):
                yield Label("Run name", classes="field-name")
                yield Input(placeholder="generated", id="run-name", compact=True)
            yield ParamForm("run", "Training", RUN_OPTIONS, show_title=False, id="run-form")
            # Holders keep each form's place; a form is replaced whole when its plugin changes.
            with Vertical(id="encoder-form-holder", classes="form-holder"):
                yield ParamForm("encoder", "Encoder hyperparameters", (), id="encoder-form")
            with Vertical(id="model-form-holder", classes="form-holder"):
                yield ParamForm("model", "Model hyperparameters", (), id="model-form")
            yield Static("", id="new-run-problem")
            yield Button("Start training (ctrl+r)", variant="primary", id="start", compact=True)

    def on_mount(self) -> None:
        self.query_one("#corpus", Select).focus()
        registry = self.studio.registry
        if not registry.encoders or not registry.models:
            self.query_one("#new-run-problem", Static).update(
                "No encoder or no model is registered: see Plugins (F5) for load errors."
            )
        # Sensible first choices, so Start works after one look at the form.
        for select_id, names in (("#encoder", list(registry.encoders)), ("#model", list(registry.models))):
            if names:
                self.query_one(select_id, Select).value = names[0]

    def preselect_corpus(self, name: str) -> None:
        select = self.query_one("#corpus", Select)
        names = self.studio.catalogue.names()
        select.set_options([(n, n) for n in names])
        if name in names:
            select.value = name

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        # Corpora imported meanwhile appear in the list.
        select = self.query_one("#corpus", Select)
        current = select.value
        names = self.studio.catalogue.names()
        select.set_options([(n, n) for n in names])
        if current in names:
            select.value = current

    @on(Select.Changed, "#corpus")
    def _corpus_changed(self, event: Select.Changed) -> None:
        about = ""
        if event.value is not Select.NULL:
            try:
                corpus = self.studio.catalogue.get(str(event.value))
                about = f"{corpus.description} ({corpus.licence})"
            except WorkspaceError as error:
                about = str(error)
        self.query_one("#corpus-about", Label).update(about)

    @on(Select.Changed, "#encoder")
    async def _encoder_changed(self, event: Select.Changed) -> None:
        spec = self.studio.registry.encoders.get(str(event.value))
        self.query_one("#encoder-about", Label).update(f"{spec.description} (makes {spec.makes})" if spec else "")
        await self._replace_form("encoder-form", "encoder", f"Encoder {event.value}", spec.params if spec else ())

    @on(Select.Changed, "#model")
    async def _model_changed(self, event: Select.Changed) -> None:
        spec = self.studio.registry.models.get(str(event.value))
        self.query_one("#model-about", Label).update(spec.description if spec else "")
        await self._replace_form("model-form", "model", f"Model {event.value}", spec.params if spec else ())

    async def _replace_form(self, form_id: str, owner: str, title: str, params: Sequence[Param]) -> None:
        holder = self.query_one(f"#{form_id}-holder", Vertical)
        await holder.remove_children()
        await holder.mount(ParamForm(owner, title, params, id=form_id))

    def request(self) -> tuple[TrainingRequest | None, list[str]]:
        """The training the form describes, or the problems that stop it (each naming its field)."""
        problems: list[str] = []
        chosen = {}
        for field in ("corpus", "encoder", "model"):
            value = self.query_one(f"#{field}", Select).value
            if value is Select.NULL:
                problems.append(f"choose a {field}")
            chosen[field] = str(value)
        numbers, run_errors = self.query_one("#run-form", ParamForm).parsed()
        problems += run_errors
        name = self.query_one("#run-name", Input).value.strip() or new_run_name(chosen["model"])
        try:
            check_name(name, "run")
        except WorkspaceError as error:
            problems.append(str(error))
        encoder_values, encoder_errors = self.query_one("#encoder-form", ParamForm).values()
        model_values, model_errors = self.query_one("#model-form", ParamForm).values()
        problems += encoder_errors + model_errors
        if not problems:
            encoder = self.studio.registry.encoders[chosen["encoder"]]
            model = self.studio.registry.models[chosen["model"]]
            if encoder.makes not in model.takes:
                problems.append(f"model {model.name!r} does not take {encoder.makes}; choose another encoder")
        if problems:
            return None, problems
        request = TrainingRequest(
            corpus=chosen["corpus"],
            encoder=chosen["encoder"],
            model=chosen["model"],
            name=name,
            epochs=numbers["epochs"],
            patience=numbers["patience"],
            seed=numbers["seed"],
            model_params=model_values,
            encoder_params=encoder_values,
        )
        return request, []

    @on(Button.Pressed, "#start")
    def action_start(self) -> None:
        request, problems = self.request()
        problem = self.query_one("#new-run-problem", Static)
        if request is None:
            problem.update("Can't start: " + "; ".join(problems))
            problem.add_class("-error")
            return
        if any(r.name == request.name for r in self.studio.runs.list()):
            problem.update(f"Can't start: a run named {request.name!r} exists; choose another name")
            return
        problem.update(f"Starting {request.name}…")
        problem.remove_class("-error")
        self._launch(request)

    @work(thread=True, group="launch")
    def _launch(self, request: TrainingRequest) -> None:
        try:
            launched = start_training(self.studio.workspace, request)
        except OSError as error:
            self.post_message(TrainingLaunched(request.name, error=f"could not start python: {error}"))
            return
        self.composer.track(launched)
        self.post_message(TrainingLaunched(request.name, launched.pid))

    async def on_training_launched(self, message: TrainingLaunched) -> None:
        problem = self.query_one("#new-run-problem", Static)
        if message.error:
            problem.update(f"Can't start: {message.error}")
            return
        problem.update("")
        self.query_one("#run-name", Input).value = ""
        self.notify(f"Training {message.run} started (pid {message.pid}); it keeps going if you quit.")
        await self.composer.show_run(message.run)
