"""nbflow/jsonout.py: only standard JSON leaves nbflow (#15 item 15), and the CLI's --json uses it."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from nbflow.jsonout import NON_FINITE, dumps, standard

from .conftest import code, step, write_notebook


def strict(text: str):
    """Parse standard JSON only: NaN, Infinity and -Infinity are refused."""

    def refuse(name):
        raise AssertionError(f"not JSON: {name} in {text[:200]!r}")

    return json.loads(text, parse_constant=refuse)


def test_non_finite_floats_are_named_wherever_they_are():
    value = {"lr": math.nan, "bounds": [-math.inf, 1.5, (math.inf,)], math.nan: "key", "ok": {"x": 0.25}}
    text = dumps(value)
    assert strict(text) == {
        "lr": "NaN",
        "bounds": ["-Infinity", 1.5, ["Infinity"]],
        "NaN": "key",
        "ok": {"x": 0.25},
    }
    assert json.dumps(value).count("NaN") == 2  # what Python's json would have written
    assert set(NON_FINITE.values()) == {"NaN", "Infinity", "-Infinity"}


def test_finite_values_are_written_as_json_would():
    value = {"a": [1, 2.5, "x", None, True], "b": {"c": 1e300}}
    assert dumps(value, indent=2) == json.dumps(value, indent=2)
    assert standard(value) == value


def test_default_converts_what_json_cannot_hold_and_its_result_is_checked_too():
    class Odd:
        def __repr__(self) -> str:
            return "Odd()"

    assert strict(dumps({"o": Odd()}, default=repr)) == {"o": "Odd()"}
    assert strict(dumps({"o": Odd()}, default=lambda o: [math.nan])) == {"o": ["NaN"]}
    with pytest.raises(TypeError, match="Odd is not JSON serializable"):
        dumps({"o": Odd()}, default=None)


def test_the_cli_plan_json_of_a_nan_parameter_is_standard_json(tmp_path):
    """``nbflow plan --json -p lr nan`` printed ``"lr": NaN``."""
    nb = write_notebook(tmp_path / "lr.ipynb", [code("lr = 0.1", "parameters"), step("fit", "loss = lr * 2")])
    for value, name in (("nan", "NaN"), ("inf", "Infinity")):
        proc = subprocess.run(
            [sys.executable, "-m", "nbflow", "plan", str(nb), "--json", "-p", "lr", value],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )
        assert proc.returncode == 0, proc.stderr
        assert strict(proc.stdout)["params"] == {"lr": name}
