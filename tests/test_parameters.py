"""The parameters cell and the checking of run parameters."""

from __future__ import annotations

import pytest

from nbflow.errors import ParameterError, PipelineError
from nbflow.parameters import Parameter, canonical, parse_cli_value, parse_parameters_cell, resolve_parameters


def test_parse_plain_literals():
    params = parse_parameters_cell(
        "# comment\nlr = 0.1\nname: str = 'x'\nlayers = [64, 32]\nopts = {'a': 1}\nseed = None\nneg = -3\nshape = (2, 3)"
    )
    assert {n: p.default for n, p in params.items()} == {
        "lr": 0.1,
        "name": "x",
        "layers": [64, 32],
        "opts": {"a": 1},
        "seed": None,
        "neg": -3,
        "shape": (2, 3),
    }
    assert params["name"].annotation == "str"


@pytest.mark.parametrize(
    "source, message",
    [
        ("lr = compute()", "must have a literal default"),
        ("import os", "must hold only plain assignments"),
        ("a = b = 1", "must hold only plain assignments"),
        ("a, b = 1, 2", "must hold only plain assignments"),
        ("print('hi')", "must hold only plain assignments"),
        ("lr = ", "not valid Python"),
    ],
)
def test_parameters_cell_must_be_literal_assignments(source, message):
    with pytest.raises(PipelineError, match=message) as info:
        parse_parameters_cell(source, notebook="nb.ipynb", cell=2)
    assert str(info.value).startswith("nb.ipynb, cell 2: ")


@pytest.mark.parametrize(
    "text, value",
    [
        ("True", True),
        ("False", False),
        ("None", None),
        ("3", 3),
        ("-2", -2),
        ("0.5", 0.5),
        ("1e3", 1000.0),
        ("hello", "hello"),
        ("[1,2]", "[1,2]"),
    ],
)
def test_cli_values_parse_like_papermill(text, value):
    assert parse_cli_value(text) == value
    assert type(parse_cli_value(text)) is type(value)


DECLARED = {
    "lr": Parameter("lr", 0.1),
    "epochs": Parameter("epochs", 10),
    "name": Parameter("name", "run"),
    "debug": Parameter("debug", False),
    "layers": Parameter("layers", [64]),
    "seed": Parameter("seed", None),
}


def test_defaults_and_overrides():
    values = resolve_parameters(DECLARED, {"lr": 1, "epochs": 3})
    assert values["lr"] == 1.0 and isinstance(values["lr"], float)
    assert values["epochs"] == 3 and values["name"] == "run"


def test_unknown_parameter_suggests_close_match():
    with pytest.raises(ParameterError, match=r"unknown parameter 'lrr'; did you mean \"lr\"\?"):
        resolve_parameters(DECLARED, {"lrr": 0.2}, notebook="nb.ipynb")


@pytest.mark.parametrize("name", ["x\nimport os", "1abc", "class", "a-b", ""])
def test_names_that_are_not_identifiers_are_refused(name):
    with pytest.raises(ParameterError, match="is not a valid Python name"):
        resolve_parameters({name: Parameter(name, 1)}, {name: 2})


@pytest.mark.parametrize(
    "name, value",
    [("epochs", 2.5), ("epochs", True), ("epochs", "3"), ("lr", "fast"), ("debug", 1), ("name", 5), ("layers", "x")],
)
def test_wrong_type_is_refused_not_stringified(name, value):
    with pytest.raises(ParameterError, match=f"parameter '{name}' expects"):
        resolve_parameters(DECLARED, {name: value})


def test_unsupported_value_types_are_refused():
    import datetime

    with pytest.raises(ParameterError, match="a date cannot be passed"):
        resolve_parameters(DECLARED, {"seed": datetime.date(2024, 1, 2)})


def test_cli_text_for_string_and_list_defaults():
    values = resolve_parameters(DECLARED, {"name": 123, "layers": "[8, 8]"}, raw={"name": "123", "layers": "[8, 8]"})
    assert values["name"] == "123" and values["layers"] == [8, 8]


def test_canonical_keeps_types_apart():
    forms = [canonical(v) for v in (1, 1.0, True, "1", [1], (1,), {1}, {"a": 1}, None)]
    assert len({repr(f) for f in forms}) == len(forms)
    assert canonical({"b": 1, "a": 2}) == canonical({"a": 2, "b": 1})
