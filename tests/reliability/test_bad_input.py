"""Bad input: nothing runs, nothing is written, and one line says what and where."""

from __future__ import annotations

import json
import os
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


# ---------------------------------------------------------------- second round (issue 15)


@pytest.mark.parametrize("target", ["../outside.txt", "/tmp/nbflow-outside-{}.txt", "sub/../../outside.txt"])
def test_out_path_outside_the_folder_is_refused(folder, target):
    target = target.format(folder.name)
    path = write_notebook(folder / "pipeline.ipynb", [step("a", "x = 1", f"out:{target}")])
    proc = nbflow_cli("run", str(path))
    assert_refused(folder, proc, 'cell 1 (step "a")', f"out:{target}", "outside the notebook's folder")
    assert not (folder.parent / "outside.txt").exists() and not Path(target).exists()
    assert nbflow_cli("graph", str(path)).returncode == 2  # both executors read the same refusal


def test_output_naming_the_source_notebook_is_refused(folder):
    path = good_notebook(folder)
    before = path.read_bytes()
    (folder / "link.ipynb").symlink_to(path)
    for output in (str(path), "pipeline.ipynb", str(folder / "link.ipynb"), f"{folder}/./pipeline.ipynb"):
        proc = nbflow_cli("run", str(path), "--output", output, cwd=folder)
        assert_refused(folder, proc, "pipeline.ipynb", "is the notebook being run")
    assert path.read_bytes() == before


@pytest.mark.parametrize("kind", ["fifo", "device", "link-to-device"])
def test_in_naming_a_fifo_or_device_is_refused_without_hanging(folder, kind):
    if kind == "fifo":
        os.mkfifo(folder / "pipe")
        name, what = "pipe", "named pipe"
    elif kind == "device":
        name, what = "/dev/zero", "character device"
    else:
        (folder / "zeros").symlink_to("/dev/zero")
        name, what = "zeros", "character device"
    path = write_notebook(
        folder / "pipeline.ipynb", [step("load", "x = 1"), step("read", "y = x", f"in:{name}", "after:load")]
    )
    for command in ("plan", "run"):
        proc = nbflow_cli(command, str(path), timeout=60)  # a hang fails the test by its timeout
        assert_refused(folder, proc, 'cell 2 (step "read")', f"in:{name}", what)


def test_fifo_inside_an_input_folder_is_never_opened(folder):
    (folder / "data").mkdir()
    (folder / "data" / "a.txt").write_text("a")
    os.mkfifo(folder / "data" / "pipe")
    path = write_notebook(folder / "pipeline.ipynb", [step("read", "x = 1", "in:data")])
    proc = nbflow_cli("plan", str(path), timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "1 of 1 steps would run" in proc.stdout


def test_deep_but_valid_code_is_analysed_and_too_deep_code_named(folder):
    # A sum of 800 terms inside a function: IPython runs it; ast.dump and the analysis
    # recursed past Python's limit and ended graph/plan/run with RecursionError.
    deep = "def f():\n    return " + " + ".join(["1"] * 800) + "\ntotal = f()"
    path = write_notebook(folder / "pipeline.ipynb", [step("deep", deep), step("use", "y = total * 2")])
    shown = nbflow_cli("graph", str(path))
    assert shown.returncode == 0, shown.stderr
    assert "use   cell 2    <- deep [total]" in shown.stdout
    assert nbflow_cli("plan", str(path)).returncode == 0
    ran = nbflow_cli("run", str(path))
    assert ran.returncode == 0, ran.stderr
    from nbflow import result

    assert result(path, "use", "y") == 1600
    check_invariants(folder)
    # Deeper than the parser accepts at Python's default limit: the kernel could not compile it either.
    too_deep = write_notebook(folder / "deep.ipynb", [step("a", "x = " + " + ".join(["1"] * 5000))])
    proc = nbflow_cli("graph", str(too_deep))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert 'deep.ipynb, cell 1 (step "a")' in line and "nested too deeply" in line, line


def test_step_name_longer_than_a_file_name_is_refused(folder):
    long = "s" * 300
    path = write_notebook(folder / "pipeline.ipynb", [step(long, "x = 1")])
    proc = nbflow_cli("run", str(path))
    assert_refused(folder, proc, "cell 1", "300 characters long", "at most 100")
    path = write_notebook(folder / "pipeline.ipynb", [step("a", "x = 1"), step("b", "y = x", f"after:{'a' * 101}")])
    assert_refused(folder, nbflow_cli("run", str(path)), "cell 2", "101 characters long")


def test_step_name_at_the_limit_runs_and_plans_again(folder):
    name = "s" * 100
    path = write_notebook(folder / "pipeline.ipynb", [step(name, "x = 1")])
    assert nbflow_cli("run", str(path)).returncode == 0
    again = nbflow_cli("plan", str(path))
    assert again.returncode == 0 and "0 of 1 steps would run" in again.stdout, again.stderr


def test_big_parameters_default_is_abbreviated_in_graph(folder):
    values = ", ".join(map(str, range(20_000)))
    path = write_notebook(folder / "pipeline.ipynb", [code(f"xs = [{values}]\nlr = 0.1", "parameters"), GOOD[1]])
    shown = nbflow_cli("graph", str(path))
    assert shown.returncode == 0, shown.stderr
    first = shown.stdout.splitlines()[0]
    assert "xs=[0, 1, 2, 3" in first and "... (20000 items)" in first and "lr=0.1" in first
    assert len(first) < 200


@pytest.mark.parametrize("where", ["code", "title", "tag"])
def test_lone_surrogate_is_refused_naming_the_cell(folder, where):
    from ..conftest import md

    cells = [md("# Title"), step("load", "x = 1"), step("use", "y = x")]
    if where == "code":
        cells[2] = step("use", "y = x  # broken \ud800 emoji")
    elif where == "title":
        cells[0] = md("# Title \ud83d")
    else:
        cells[2] = step("use", "y = x", "keep:\udc00")
    path = folder / "pipeline.ipynb"
    path.write_text(json.dumps(__import__("nbformat").v4.new_notebook(cells=cells)))  # JSON escapes, as JupyterLab
    number = 1 if where == "title" else 3
    for command in ("graph", "plan", "run"):
        proc = nbflow_cli(command, str(path))
        assert "Traceback" not in proc.stderr, proc.stderr
        assert_refused(folder, proc, f"cell {number}", "lone surrogate")


def test_latin1_byte_names_the_byte_and_where(folder):
    path = good_notebook(folder)
    text = path.read_text().replace("data = [1, 2]", "data = [1, 2]  # caf\u00e9")
    path.write_bytes(text.encode("latin-1"))
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "caf" in t)
    column = text.splitlines()[line - 1].index("\u00e9") + 1
    proc = nbflow_cli("run", str(path))
    assert_refused(folder, proc, "pipeline.ipynb", f"not UTF-8: byte 0xe9 at line {line}, column {column}")


@pytest.mark.parametrize("kind", ["markdown", "raw"])
def test_step_tag_on_a_markdown_or_raw_cell_warns(folder, kind):
    import nbformat

    cell = nbformat.v4.new_markdown_cell("notes") if kind == "markdown" else nbformat.v4.new_raw_cell("x = 2")
    cell.metadata["tags"] = ["step:notes"]
    path = write_notebook(folder / "pipeline.ipynb", [*GOOD, cell])
    proc = nbflow_cli("graph", str(path))
    assert proc.returncode == 0
    assert f"warning: pipeline.ipynb, cell 4: tag 'step:notes' is on a {kind} cell and is ignored" in proc.stderr
