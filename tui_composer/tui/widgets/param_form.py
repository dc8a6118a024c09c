"""A hyperparameter form built from a plugin's Param schema, checked as you type."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.validation import ValidationResult, Validator
from textual.widget import Widget
from textual.widgets import Input, Label, Select, Static

from tui_composer.plugin.params import Param, ParamError


class ParamValidator(Validator):
    """Param.parse as a Textual validator: the same check and message as `--set` on the command line."""

    def __init__(self, param: Param) -> None:
        super().__init__()
        self.param = param

    def validate(self, value: str) -> ValidationResult:
        try:
            self.param.parse(value)
        except ParamError as error:
            return self.failure(str(error))
        return self.success()


def _field_id(owner: str, name: str) -> str:
    return f"param-{owner}-{name}".replace(".", "_")


NAME_WIDTH = 18  # the names' column, unless a name is longer: then as wide as it, plus a space


def name_width(names: Sequence[str]) -> int:
    """The width of a form's names' column: a long name (`learning_rate_decay`) never runs into its value."""
    return max([NAME_WIDTH - 1, *(len(n) for n in names)]) + 1


def value_text(value: Any) -> str:
    """A parameter value as typed on the command line (`true`, `0.003`)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


class ParamForm(Vertical):
    """One line per parameter: name, value, and its help, or the error while the value is invalid."""

    DEFAULT_CSS = """
    ParamForm {
        height: auto;
        & > .param-title { text-style: bold; color: $text-primary; }
        & > Horizontal { height: auto; }
        & Input, & Select { width: 14; }
        & .param-help { width: 1fr; height: auto; padding-left: 1; color: $text-muted; }
        & .param-help.-invalid { color: $text-error; }
    }
    """

    def __init__(
        self,
        owner: str,
        title: str,
        params: Sequence[Param],
        *,
        show_title: bool = True,
        names_width: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.owner = owner
        self.title = title
        self.params = list(params)
        self.show_title = show_title
        self.names_width = names_width or name_width([p.name for p in self.params])

    def compose(self) -> ComposeResult:
        if self.show_title:
            yield Static(self.title, classes="param-title")
        if not self.params:
            yield Static("  no hyperparameters", classes="param-help")
        for param in self.params:
            field_id = _field_id(self.owner, param.name)
            with Horizontal():
                label = Label(param.name, classes="param-name")
                label.styles.width = self.names_width
                yield label
                if param.choices is not None or param.type is bool:
                    # A list, also for true/false: a checkbox's state is only a colour, lost on 16 colours.
                    choices = param.choices if param.choices is not None else (True, False)
                    options = [(str(c).lower() if isinstance(c, bool) else str(c), c) for c in choices]
                    yield Select(options, value=param.default, allow_blank=False, compact=True, id=field_id)
                else:
                    yield Input(
                        str(param.default),
                        validators=[ParamValidator(param)],
                        validate_on=["changed", "submitted"],
                        compact=True,
                        id=field_id,
                        tooltip=param.help,
                    )
                yield Label(f"{param.help} ({param.allowed()})", classes="param-help", id=f"{field_id}-help")

    @on(Input.Changed)
    def _show_validation(self, event: Input.Changed) -> None:
        if event.validation_result is None or event.input.id is None:
            return
        param = next((p for p in self.params if _field_id(self.owner, p.name) == event.input.id), None)
        if param is None:
            return
        help_label = self.query_one(f"#{event.input.id}-help", Label)
        if event.validation_result.is_valid:
            help_label.update(f"{param.help} ({param.allowed()})")
            help_label.remove_class("-invalid")
        else:
            help_label.update(event.validation_result.failure_descriptions[0])
            help_label.add_class("-invalid")

    def parsed(self) -> tuple[dict[str, Any], list[str]]:
        """Every parameter's value in its type, and the errors of the invalid ones (naming the key)."""
        values: dict[str, Any] = {}
        errors: list[str] = []
        for param in self.params:
            widget = self.query_one(f"#{_field_id(self.owner, param.name)}")
            raw = widget.value.strip() if isinstance(widget, Input) else getattr(widget, "value", None)
            try:
                values[param.name] = param.parse(raw)
            except ParamError as error:
                errors.append(f"{self.title}: {error}")
        return values, errors

    def first_invalid(self) -> Widget | None:
        """The first field whose value is refused (to focus it), or None."""
        for param in self.params:
            widget = self.query_one(f"#{_field_id(self.owner, param.name)}")
            raw = widget.value.strip() if isinstance(widget, Input) else getattr(widget, "value", None)
            try:
                param.parse(raw)
            except ParamError:
                return widget
        return None

    def fill(self, values: Mapping[str, Any]) -> list[str]:
        """Set the fields to `values` (e.g. another run's); the names it has no field or choice for."""
        unknown = []
        for name, value in values.items():
            param = next((p for p in self.params if p.name == name), None)
            if param is None:
                unknown.append(name)
                continue
            widget = self.query_one(f"#{_field_id(self.owner, name)}")
            if isinstance(widget, Input):
                widget.value = value_text(value)
            elif isinstance(widget, Select):
                choices = param.choices if param.choices is not None else (True, False)
                if value in choices:
                    widget.value = value
                else:
                    unknown.append(name)
        return unknown

    def values(self) -> tuple[dict[str, str], list[str]]:
        """The values that differ from the defaults, as `--set` strings, and the errors of invalid ones."""
        parsed, errors = self.parsed()
        defaults = {p.name: p.default for p in self.params}
        changed = {name: value_text(value) for name, value in parsed.items() if value != defaults[name]}
        return changed, errors
