"""New run: a corpus, an encoder and a model (any pair), their hyperparameters, and start.

`fill_from` puts another run's settings in the form (`c` on Runs: a new run from that one).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.events import ScreenResume
from textual.widget import Widget
from textual.widgets import Button, Input, Label, Select, Static

from tui_composer.plugin.params import Param
from tui_composer.services.jobs import DEFAULT_EPOCHS, DEFAULT_PATIENCE, TrainingRequest
from tui_composer.services.launcher import new_run_name, start_training
from tui_composer.services.workspace import WorkspaceError, check_name
from tui_composer.tui.messages import TrainingLaunched
from tui_composer.tui.screens.base import ComposerScreen
from tui_composer.tui.widgets.param_form import ParamForm, name_width

# The `train` command's own options, checked like hyperparameters.
EPOCHS = Param("epochs", int, DEFAULT_EPOCHS, "passes over the training split, at most", min=1, max=100_000)
PATIENCE = Param("patience", int, DEFAULT_PATIENCE, "epochs without a better valid loss before stopping", min=1)
SEED = Param("seed", int, 0, "random seed of the run", min=0)
RUN_OPTIONS = (EPOCHS, PATIENCE, SEED)


class NewRunScreen(ComposerScreen):
    MODE = "new"
    BINDINGS = [Binding("ctrl+r", "start", "Start training", priority=True)]
    PALETTE = (("Start training", "Start a training run with the New run form (ctrl+r)", "start"),)

    def __init__(self) -> None:
        super().__init__()
        self.names_width = name_width([p.name for p in RUN_OPTIONS])
        self._form_of = {"encoder": "", "model": ""}  # the plugin each form was made for
        self._corpus_names: list[str] | None = None  # the corpora the Select offers, once resumed

    def compose_body(self) -> ComposeResult:
        registry = self.studio.registry
        corpora = self.studio.catalogue.names()
        # One names' column for every form, as wide as the longest name of any installed plugin needs.
        names = [p.name for spec in registry.encoders.values() for p in spec.params]
        names += [p.name for spec in registry.models.values() for p in spec.params]
        self.names_width = name_width([*names, *(p.name for p in RUN_OPTIONS)])
        with VerticalScroll(id="new-run"):
            # Names in the lists, the chosen one's description beside it (descriptions are long).
            choices = (
                ("corpus", "choose a corpus", corpora),
                ("encoder", "choose an encoder", list(registry.encoders)),
                ("model", "choose a model", list(registry.models)),
            )
            for field, prompt, names in choices:
                with Horizontal(classes="field"):
                    yield self._name_label(field.capitalize())
                    yield Select([(n, n) for n in names], prompt=prompt, id=field, compact=True, classes="pick")
                    yield Label("", id=f"{field}-about", classes="param-help")
            with Horizontal(classes="field"):
                yield self._name_label("Run name")
                yield Input(placeholder="generated", id="run-name", compact=True)
            width = self.names_width
            yield ParamForm("run", "Training", RUN_OPTIONS, show_title=False, names_width=width, id="run-form")
            # Holders keep each form's place; a form is replaced whole when its plugin changes.
            with Vertical(id="encoder-form-holder", classes="form-holder"):
                yield ParamForm("encoder", "Encoder hyperparameters", (), names_width=width, id="encoder-form")
            with Vertical(id="model-form-holder", classes="form-holder"):
                yield ParamForm("model", "Model hyperparameters", (), names_width=width, id="model-form")
            yield Static("", id="new-run-problem")
            yield Button("Start training (ctrl+r)", variant="primary", id="start", compact=True)

    def _name_label(self, text: str) -> Label:
        label = Label(text, classes="field-name")
        label.styles.width = self.names_width
        return label

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
        self._corpus_names = names
        select.set_options([(n, n) for n in names])
        if name in names:
            select.value = name

    def on_screen_resume(self, event: ScreenResume | None = None) -> None:
        super().on_screen_resume()  # no event: the base restyles, as coming back here needs
        # Corpora imported meanwhile appear in the list.
        select = self.query_one("#corpus", Select)
        current = select.value
        names = self.studio.catalogue.names()
        if names == self._corpus_names:
            return  # rebuilding the Select restyles it: most of a screen switch, for nothing
        self._corpus_names = names
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
        await self._show_plugin("encoder", event.value)

    @on(Select.Changed, "#model")
    async def _model_changed(self, event: Select.Changed) -> None:
        await self._show_plugin("model", event.value)

    async def _show_plugin(self, owner: str, value: Any) -> None:
        """The chosen encoder's or model's description, and its form (made again only for another plugin)."""
        name = "" if value is Select.NULL else str(value)
        if name == self._form_of[owner]:
            return  # already shown (fill_from made it before the Select's Changed arrived)
        self._form_of[owner] = name
        if owner == "encoder":
            encoder = self.studio.registry.encoders.get(name)
            about = f"{encoder.description} (makes {encoder.makes})" if encoder else ""
            params: Sequence[Param] = encoder.params if encoder else ()
        else:
            model = self.studio.registry.models.get(name)
            about, params = (model.description, model.params) if model else ("", ())
        self.query_one(f"#{owner}-about", Label).update(about)
        holder = self.query_one(f"#{owner}-form-holder", Vertical)
        await holder.remove_children()
        form = ParamForm(owner, f"{owner.capitalize()} {name}", params, names_width=self.names_width)
        form.id = f"{owner}-form"
        await holder.mount(form)

    async def fill_from(self, run: str, settings: Mapping[str, Any]) -> None:
        """The form as `run` was started: corpus, encoder, model, their parameters, epochs, patience, seed.

        The name is left blank (a new one is made); what no longer fits (a plugin or a parameter gone) is
        named in a notification.
        """
        left_out = []
        for field, names in (
            ("corpus", self.studio.catalogue.names()),
            ("encoder", list(self.studio.registry.encoders)),
            ("model", list(self.studio.registry.models)),
        ):
            value = settings.get(field)
            if value in names:
                self.query_one(f"#{field}", Select).value = value
                if field != "corpus":
                    await self._show_plugin(field, value)
            else:
                left_out.append(f"{field} {value!r} (not installed)")
        options = {key: settings[key] for key in ("epochs", "patience", "seed") if key in settings}
        left_out += self.query_one("#run-form", ParamForm).fill(options)
        for owner in ("encoder", "model"):
            if settings.get(owner) == self._form_of[owner]:
                unknown = self.query_one(f"#{owner}-form", ParamForm).fill(settings.get(f"{owner}_params") or {})
                left_out += [f"{owner} parameter {name}" for name in unknown]
        self.query_one("#run-name", Input).value = ""
        problem = self.query_one("#new-run-problem", Static)
        problem.update(f"The settings of {run}: change what you like, then start (ctrl+r).")
        problem.remove_class("-error")
        message = f"New run from {run}'s settings; the name is left for you (or generated)."
        if left_out:
            message += f" Left out: {', '.join(left_out)}."
        self.notify(message, severity="warning" if left_out else "information", timeout=8)
        self.query_one("#run-name", Input).focus()

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
        if request is None:
            self._refuse("Can't start: " + "; ".join(problems), self._field_at_fault())
            return
        if any(r.name == request.name for r in self.studio.runs.list()):
            name_input = self.query_one("#run-name", Input)
            self._refuse(f"Can't start: a run named {request.name!r} exists; choose another name", name_input)
            return
        problem = self.query_one("#new-run-problem", Static)
        problem.update(f"Starting {request.name}…")
        problem.remove_class("-error")
        self._launch(request)

    def _refuse(self, text: str, field: Widget | None) -> None:
        """Say why where it is seen: a notification, and the field at fault focused and scrolled to.

        The line above the Start button says it too, but the form is taller than a terminal.
        """
        problem = self.query_one("#new-run-problem", Static)
        problem.update(text)
        problem.add_class("-error")
        self.notify(text, severity="error", timeout=10)
        if field is not None:
            field.focus()
            self.query_one("#new-run", VerticalScroll).scroll_to_widget(field, animate=False)

    def _field_at_fault(self) -> Widget | None:
        """The first field whose value stops the start: an unchosen list, a refused value, the name."""
        for field in ("corpus", "encoder", "model"):
            select = self.query_one(f"#{field}", Select)
            if select.value is Select.NULL:
                return select
        for form_id in ("run-form", "encoder-form", "model-form"):
            invalid = self.query_one(f"#{form_id}", ParamForm).first_invalid()
            if invalid is not None:
                return invalid
        name = self.query_one("#run-name", Input)
        return name if name.value.strip() else self.query_one("#encoder", Select)

    @work(thread=True, group="launch")
    def _launch(self, request: TrainingRequest) -> None:
        name = request.name or ""  # always set by request()
        try:
            launched = start_training(self.studio.workspace, request)
        except OSError as error:
            self.post_message(TrainingLaunched(name, error=f"could not start python: {error}"))
            return
        self.composer.track(launched)
        self.post_message(TrainingLaunched(name, launched.pid))

    async def on_training_launched(self, message: TrainingLaunched) -> None:
        if message.error:
            self._refuse(f"Can't start {message.run}: {message.error}", None)
            return
        problem = self.query_one("#new-run-problem", Static)
        problem.update("")
        self.query_one("#run-name", Input).value = ""
        self.notify(f"Training {message.run} started (pid {message.pid}); it keeps going if you quit.")
        await self.composer.show_run(message.run)
