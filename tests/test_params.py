import pytest

from tui_composer.plugin.params import Param, ParamError, parse_assignments, resolve

SCHEMA = (
    Param("units", int, 256, "LSTM units per layer", min=1, max=4096),
    Param("dropout", float, 0.2, "dropout between layers", min=0.0, max=0.9),
    Param("optimizer", str, "adam", "optimizer", choices=("adam", "rmsprop")),
    Param("persistent", bool, False, "persistent contrastive divergence"),
)


def test_defaults_overlaid_with_parsed_strings() -> None:
    values = resolve(SCHEMA, {"units": "64", "persistent": "yes"}, owner="model 'x'")
    assert values == {"units": 64, "dropout": 0.2, "optimizer": "adam", "persistent": True}


def test_unknown_key_is_refused_and_known_keys_listed() -> None:
    with pytest.raises(ParamError) as caught:
        resolve(SCHEMA, {"unit": "64"}, owner="model 'char-lstm'")
    message = str(caught.value)
    assert "model 'char-lstm' has no parameter unit" in message
    assert "dropout, optimizer, persistent, units" in message


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("units", "0", "units='0' is out of range: expected an integer in [1, 4096]"),
        ("units", "2.5", "units='2.5' is not valid: expected an integer in [1, 4096]"),
        ("dropout", "high", "dropout='high' is not valid: expected a number in [0, 0.9]"),
        ("optimizer", "sgd", "optimizer='sgd' is not valid: expected one of adam, rmsprop"),
        ("persistent", "maybe", "persistent='maybe' is not valid: expected true or false"),
    ],
)
def test_bad_values_name_the_key_and_the_allowed_values(key: str, value: str, expected: str) -> None:
    with pytest.raises(ParamError) as caught:
        resolve(SCHEMA, {key: value}, owner="model 'x'")
    assert str(caught.value) == f"model 'x': {expected}"


def test_assignments_are_split_on_the_first_equals_sign() -> None:
    assert parse_assignments(["primer=K:G=x", " units = 8"]) == {"primer": "K:G=x", "units": "8"}
    with pytest.raises(ParamError, match="not of the form key=value"):
        parse_assignments(["units"])
