"""The schema check of a notebook without importing nbformat (``nbflow/nbschema.py``)."""

from __future__ import annotations

import json
import subprocess
import sys

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from nbflow.errors import PipelineError
from nbflow.nbschema import quick_accept
from nbflow.notebook import read_notebook


def notebook_json(**cell_changes) -> dict:
    cell = new_code_cell("x = 1")
    cell.metadata["tags"] = ["step:a"]
    data = json.loads(nbformat.writes(new_notebook(cells=[cell])))
    data["cells"][0].update(cell_changes)
    return data


def test_a_valid_notebook_is_accepted_and_nbformat_agrees():
    data = notebook_json()
    nbformat.validate(data)
    assert quick_accept(data) is True


@pytest.mark.parametrize(
    "change",
    [{"outputs": "not a list"}, {"cell_type": "sql"}, {"metadata": {"tags": ["a,b"]}}, {"execution_count": "one"}],
)
def test_an_invalid_notebook_is_not_accepted_and_nbformat_refuses_it_too(change):
    data = notebook_json(**change)
    with pytest.raises(nbformat.ValidationError):
        nbformat.validate(data)
    assert quick_accept(data) is False


@pytest.mark.parametrize(
    "data",
    [{"nbformat": 3, "nbformat_minor": 0, "worksheets": []}, {"nbformat": 4, "nbformat_minor": 99, "cells": []}],
)
def test_versions_it_does_not_know_go_to_nbformat(data):
    assert quick_accept(data) is False


def test_reading_a_valid_notebook_does_not_import_jsonschema(tmp_path):
    path = tmp_path / "pipeline.ipynb"
    path.write_text(json.dumps(notebook_json()))
    script = (
        "import sys\nfrom nbflow.notebook import read_notebook\n"
        f"read_notebook({str(path)!r})\nprint(sorted(m for m in ('jsonschema', 'nbformat') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_an_invalid_notebook_still_gets_nbformats_message(tmp_path):
    path = tmp_path / "pipeline.ipynb"
    path.write_text(json.dumps(notebook_json(outputs="not a list")))
    with pytest.raises(
        PipelineError, match=r"pipeline\.ipynb, cell 1: not a valid notebook: 'not a list' is not of type"
    ):
        read_notebook(path)
