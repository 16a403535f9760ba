"""Reading notebooks: tags, setup, continuation cells, docs, and every malformed input."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from nbflow.errors import PipelineError
from nbflow.notebook import read_notebook

from .conftest import code, md, step


def test_steps_setup_parameters_docs_and_continuation(make_notebook):
    path = make_notebook(
        [
            md("# My pipeline\nWhat it does."),
            code("import math"),
            code("n = 3", "parameters"),
            md("## Load\nReads the data."),
            md("More about loading."),
            step("load", "data = list(range(n))"),
            code("data.append(99)"),
            md("## Square"),
            step("square", "sq = [x * x for x in data]"),
            code("scratch = 1", "skip"),
            code("total = sum(sq)"),
        ]
    )
    nb = read_notebook(path)
    assert nb.title == "My pipeline"
    assert nb.description.startswith("# My pipeline")
    assert [c.number for c in nb.setup] == [2]
    assert nb.parameters is not None and nb.parameters.number == 3
    load, square = nb.steps
    assert load.name == "load" and [c.number for c in load.cells] == [6, 7]
    assert load.docs == "## Load\nReads the data.\n\nMore about loading."
    assert square.docs == "## Square"
    # the skipped cell is not part of the step; the cell after it continues the step
    assert [c.number for c in square.cells] == [9, 11]
    assert "scratch" not in square.source


def test_step_options_from_tags(make_notebook):
    path = make_notebook(
        [
            step("a", "x = 1"),
            step(
                "b",
                "y = x",
                "after:a",
                "timeout:30",
                "in:data.csv",
                "out:result.txt",
                "keep:y",
                "resources:gpu=1",
                "resources:memory=4GB",
            ),
        ]
    )
    b = read_notebook(path).steps[1]
    assert b.after == ("a",)
    assert b.timeout == 30.0
    assert b.in_files == ("data.csv",) and b.out_files == ("result.txt",)
    assert b.keep == ("y",)
    assert dict(b.resources) == {"gpu": "1", "memory": "4GB"}


def test_cell_ids_and_positions_kept(make_notebook):
    path = make_notebook([md("# t"), step("a", "x = 1")])
    cell = read_notebook(path).steps[0].cell
    assert cell.number == 2 and cell.index == 1 and cell.id


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "the file is empty"),
        (b'{"cells": [', "malformed notebook JSON"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "not a text file"),
        (b'{"hello": "world"}', "not a Jupyter notebook"),
        (b"[1, 2, 3]", "not a Jupyter notebook"),
        (
            json.dumps({"nbformat": 3, "nbformat_minor": 0, "worksheets": [], "metadata": {}}).encode(),
            "nbformat 3 notebook",
        ),
    ],
)
def test_not_a_readable_notebook(tmp_path: Path, content: bytes, message: str):
    path = tmp_path / "bad.ipynb"
    path.write_bytes(content)
    with pytest.raises(PipelineError, match=message) as info:
        read_notebook(path)
    assert str(info.value).startswith("bad.ipynb: ")


def test_truncated_notebook_names_the_file(make_notebook):
    path = make_notebook([step("a", "x = 1")])
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(PipelineError, match=r"pipeline\.ipynb: malformed notebook JSON .* truncated"):
        read_notebook(path)


def test_schema_invalid_notebook_is_refused(make_notebook):
    path = make_notebook([step("a", "x = 1")])
    data = json.loads(path.read_text())
    data["cells"][0]["outputs"] = "not a list"
    path.write_text(json.dumps(data))
    with pytest.raises(PipelineError, match=r"cell 1: not a valid notebook"):
        read_notebook(path)


def test_validation_is_remembered_per_content(make_notebook, tmp_path, monkeypatch):
    path = make_notebook([step("a", "x = 1")])
    memo = tmp_path / "memo"
    read_notebook(path, memo=memo)
    calls = []
    monkeypatch.setattr("nbflow.notebook._validate", lambda data, p: calls.append(p))
    read_notebook(path, memo=memo)
    assert calls == []  # same content: not validated again
    nb = nbformat.read(path, 4)
    nb.cells[0].source = "x = 2"
    nbformat.write(nb, path)
    read_notebook(path, memo=memo)
    assert calls == [path]


def test_duplicate_step_names_both_cells_named(make_notebook):
    path = make_notebook([step("load", "a = 1"), code("b = 2"), step("load", "c = 3")])
    with pytest.raises(PipelineError) as info:
        read_notebook(path)
    assert str(info.value) == (
        'pipeline.ipynb, cell 3 (step "load"): duplicate step name "load": cells 1 and 3 both start it; '
        "step names must be unique"
    )


def test_duplicate_cell_ids_refused_not_renamed(make_notebook):
    path = make_notebook([step("a", "x = 1"), step("b", "y = x")])
    data = json.loads(path.read_text())
    data["cells"][1]["id"] = data["cells"][0]["id"]
    path.write_text(json.dumps(data))
    with pytest.raises(PipelineError, match=r"cells 1 and 2 have the same id"):
        read_notebook(path)


@pytest.mark.parametrize("name", ["1st", "has space", "dot.ted", "semi;colon", "x\nimport os"])
def test_invalid_step_name(make_notebook, name):
    path = make_notebook([code("x = 1", f"step:{name}")])
    with pytest.raises(PipelineError, match=r"cell 1: invalid step name"):
        read_notebook(path)


def test_step_tags_on_setup_cell_are_an_error(make_notebook):
    path = make_notebook([code("x = 1", "after:b"), step("b", "y = 2")])
    with pytest.raises(PipelineError, match=r"cell 1: tag 'after:b' is on a setup cell"):
        read_notebook(path)


def test_two_parameters_cells(make_notebook):
    path = make_notebook([code("a = 1", "parameters"), code("b = 2", "parameters")])
    with pytest.raises(PipelineError, match=r"cell 2: cells 1 and 2 are both tagged 'parameters'"):
        read_notebook(path)


def test_bad_resources_tag(make_notebook):
    path = make_notebook([step("a", "x = 1", "resources:gpu")])
    with pytest.raises(PipelineError, match=r"must look like resources:gpu=1 \(one resource per tag\)"):
        read_notebook(path)


def test_bad_timeout_tag(make_notebook):
    path = make_notebook([step("a", "x = 1", "timeout:soon")])
    with pytest.raises(PipelineError, match=r'cell 1 \(step "a"\): tag \'timeout:soon\' needs a positive'):
        read_notebook(path)


def test_empty_notebook_and_no_steps(make_notebook):
    nb = read_notebook(make_notebook([]))
    assert nb.steps == () and nb.setup == ()
    nb = read_notebook(make_notebook([code("x = 1")], name="plain.ipynb"))
    assert nb.steps == () and len(nb.setup) == 1


def test_papermill_injected_cell_is_ignored(make_notebook):
    path = make_notebook([code("n = 1", "parameters"), code("n = 5", "injected-parameters"), step("a", "y = n")])
    nb = read_notebook(path)
    assert nb.setup == () and [s.name for s in nb.steps] == ["a"]
