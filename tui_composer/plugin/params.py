"""Hyperparameter schemas: plugins declare them, the CLI and the TUI build flags and forms from them."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

_TYPE_NAMES = {int: "int", float: "float", str: "str", bool: "bool"}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class ParamError(ValueError):
    """A hyperparameter that is unknown or out of its allowed values; the message names the key."""


@dataclass(frozen=True)
class Param:
    """One hyperparameter: its name, type, default and the values it allows."""

    name: str
    type: type
    default: Any
    help: str
    min: float | None = None
    max: float | None = None
    choices: tuple[Any, ...] | None = None

    def __post_init__(self) -> None:
        if self.type not in _TYPE_NAMES:
            raise TypeError(f"parameter {self.name!r}: type must be one of int, float, str, bool")

    @property
    def type_name(self) -> str:
        return _TYPE_NAMES[self.type]

    def allowed(self) -> str:
        """The allowed values in words, for error messages and help text."""
        if self.choices is not None:
            return "one of " + ", ".join(str(c) for c in self.choices)
        if self.type is bool:
            return "true or false"
        low = "-inf" if self.min is None else f"{self.min:g}"
        high = "inf" if self.max is None else f"{self.max:g}"
        if self.min is None and self.max is None:
            return f"any {self.type_name}"
        return f"{'an integer' if self.type is int else 'a number'} in [{low}, {high}]"

    def parse(self, value: Any) -> Any:
        """Convert a string (from a flag or a form) or a value into this parameter's type and check it."""
        try:
            if self.type is bool:
                parsed: Any = _parse_bool(value)
            elif self.type is int and isinstance(value, float) and not value.is_integer():
                raise ValueError
            else:
                parsed = self.type(value)
        except (TypeError, ValueError):
            raise ParamError(f"{self.name}={value!r} is not valid: expected {self.allowed()}") from None
        if isinstance(parsed, float) and not math.isfinite(parsed):
            # float() reads "nan", "inf" and "1e999"; NaN passes every range check and JSON can't hold it.
            raise ParamError(f"{self.name}={value!r} is not valid: expected {self.allowed()}, not NaN or infinity")
        if self.choices is not None and parsed not in self.choices:
            raise ParamError(f"{self.name}={value!r} is not valid: expected {self.allowed()}")
        if (self.min is not None and parsed < self.min) or (self.max is not None and parsed > self.max):
            raise ParamError(f"{self.name}={value!r} is out of range: expected {self.allowed()}")
        return parsed

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type_name,
            "default": self.default,
            "help": self.help,
            "min": self.min,
            "max": self.max,
            "choices": list(self.choices) if self.choices is not None else None,
        }


def _parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(value)


def resolve(schema: Sequence[Param], given: Mapping[str, Any], *, owner: str) -> dict[str, Any]:
    """Defaults overlaid with the given values, every one checked; unknown keys are refused by name.

    `owner` names the plugin in messages (for example "model 'char-lstm'").
    """
    by_name = {p.name: p for p in schema}
    unknown = sorted(set(given) - set(by_name))
    if unknown:
        known = ", ".join(sorted(by_name)) or "none"
        raise ParamError(f"{owner} has no parameter {', '.join(unknown)}; its parameters are: {known}")
    values = {p.name: p.default for p in schema}
    for key, value in given.items():
        try:
            values[key] = by_name[key].parse(value)
        except ParamError as error:
            raise ParamError(f"{owner}: {error}") from None
    return values


def parse_assignments(assignments: Sequence[str]) -> dict[str, str]:
    """Split `key=value` strings from `--set` flags."""
    result: dict[str, str] = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ParamError(f"--set {item!r} is not of the form key=value")
        result[key.strip()] = value.strip()
    return result
