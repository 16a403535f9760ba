"""Bad input: nothing runs, nothing is written, and one line says what and where."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ..conftest import code, step, write_notebook
from .conftest import check_invariants, nbflow_cli

GOOD = [
    code("lr = 0.1\nepochs = 3\nname = 'x'", "parameters"),
    step("load", "data = [1, 2]"),
    step("train", "w = sum(data) * lr * epochs"),
]


def assert_refused(folder: Path, proc, *message: str) -> None:
    assert proc.returncode == 2, proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("nbflow: error: "), line
    for part in message:
        assert part in line, line
    db = folder / ".nbflow" / "runs.db"
    if db.exists():
        from nbflow.store import RunStore

        assert RunStore(db).runs() == [], "a run was recorded"
    assert not (folder / ".nbflow" / "cache").exists(), "something was cached"
    assert not (folder / "PWNED").exists()
    check_invariants(folder, proc)


def good_notebook(folder: Path) -> Path:
    return write_notebook(folder / "pipeline.ipynb", GOOD)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "the file is empty"),
        (b"\x89PNG\r\n\x1a\n" + bytes(range(256)), "not a text file"),
        (b'{"data": [1, 2, 3]}', "not a Jupyter notebook"),
    ],
    ids=["empty-file", "binary-file", "json-not-notebook"],
)
def test_unreadable_files(folder, content, message):
    path = folder / "bad.ipynb"
    path.write_bytes(content)
    assert_refused(folder, nbflow_cli("run", str(path)), "bad.ipynb", message)


def test_truncated_notebook(folder):
    path = good_notebook(folder)
    path.write_bytes(path.read_bytes()[:-100])
    assert_refused(folder, nbflow_cli("run", str(path)), "pipeline.ipynb", "malformed notebook JSON", "truncated")


def test_schema_invalid_notebook(folder):
    path = good_notebook(folder)
    data = json.loads(path.read_text())
    data["cells"][1]["execution_count"] = "seven"
    path.write_text(json.dumps(data))
    assert_refused(folder, nbflow_cli("run", str(path)), "pipeline.ipynb, cell 2", "not a valid notebook")


def test_nbformat_v3(folder):
    path = folder / "old.ipynb"
    path.write_text(json.dumps({"nbformat": 3, "nbformat_minor": 0, "metadata": {}, "worksheets": [{"cells": []}]}))
    assert_refused(folder, nbflow_cli("run", str(path)), "old.ipynb", "nbformat 3", "nbconvert")


def test_duplicate_step_names_name_both_cells(folder):
    path = write_notebook(folder / "pipeline.ipynb", [step("load", "a = 1"), step("load", "b = 2")])
    assert_refused(folder, nbflow_cli("run", str(path)), 'cell 2 (step "load")', "cells 1 and 2")


def test_duplicate_cell_ids_are_refused_and_never_renamed(folder):
    path = good_notebook(folder)
    data = json.loads(path.read_text())
    data["cells"][2]["id"] = data["cells"][1]["id"]
    path.write_text(json.dumps(data))
    before = path.read_bytes()
    assert_refused(folder, nbflow_cli("run", str(path)), "cells 2 and 3 have the same id")
    assert path.read_bytes() == before  # the notebook was not "repaired" behind the user's back


def test_cycle_is_spelled_out(folder):
    path = write_notebook(
        folder / "pipeline.ipynb", [step("a", "x = 1", "after:c"), step("b", "y = x"), step("c", "z = y")]
    )
    assert_refused(folder, nbflow_cli("run", str(path)), "a -> b -> c -> a")


def test_unknown_after_target_suggests(folder):
    path = write_notebook(folder / "pipeline.ipynb", [step("load", "x = 1"), step("train", "y = x", "after:lod")])
    assert_refused(folder, nbflow_cli("run", str(path)), 'cell 2 (step "train")', 'did you mean "load"?')


def test_invalid_step_name(folder):
    path = write_notebook(folder / "pipeline.ipynb", [code("x = 1", "step:2fast")])
    assert_refused(folder, nbflow_cli("run", str(path)), "cell 1", "invalid step name '2fast'")


def test_unknown_parameter_suggests(folder):
    assert_refused(
        folder,
        nbflow_cli("run", str(good_notebook(folder)), "-p", "epoch", "5"),
        "unknown parameter 'epoch'",
        'did you mean "epochs"?',
    )


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("epochs", "2.5", "expects int"),
        ("epochs", "True", "expects int"),
        ("lr", "fast", "expects float"),
        ("epochs", "2024-01-02", "expects int"),
    ],
)
def test_wrong_type_is_refused_not_stringified(folder, name, value, message):
    assert_refused(
        folder, nbflow_cli("run", str(good_notebook(folder)), "-p", name, value), f"parameter '{name}' {message}"
    )


@pytest.mark.parametrize("name", ["x\nimport os; os.system('touch PWNED')", "class", "a b", "1x"])
def test_parameter_names_that_would_inject_code(folder, name):
    proc = nbflow_cli("run", str(good_notebook(folder)), "-p", name, "1")
    assert_refused(folder, proc, "is not a valid Python name")
    for path in folder.rglob("*.ipynb"):
        assert "PWNED" not in path.read_text()


def test_empty_notebook_and_notebook_without_steps(folder):
    empty = write_notebook(folder / "empty.ipynb", [])
    assert_refused(folder, nbflow_cli("run", str(empty)), "empty.ipynb", "has no steps to run")
    plain = write_notebook(folder / "plain.ipynb", [code("x = 1")])
    assert_refused(folder, nbflow_cli("run", str(plain)), "plain.ipynb", "has no steps to run")
    shown = nbflow_cli("graph", str(plain))  # documented: graph and plan still answer
    assert shown.returncode == 0 and "0 steps" in shown.stdout
