"""papermill with ``--engine nbflow`` on its own: the CLI and the API run the notebook
through nbflow (cache, run record in the notebook's ``.nbflow``) and write OUT as papermill
writes it, compared against a plain papermill run of the same notebook."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import papermill
import pytest
from papermill.exceptions import PapermillExecutionError

import nbflow
from nbflow.config import Config
from nbflow.store import RunStore

from ..conftest import code, md, step, write_notebook

pytestmark = pytest.mark.slow

PAPERMILL = str(Path(sys.executable).parent / "papermill")


def pipeline_notebook(folder: Path) -> Path:
    return write_notebook(
        folder / "pipeline.ipynb",
        [
            md("# Squares"),
            code("import math"),
            code("n = 4\nlabel = 'squares'", "parameters"),
            step("make", "values = [i * i for i in range(n)]\nprint(len(values))"),
            step("total", "total = sum(values)\nroot = math.sqrt(total)\nprint(label, total)"),
        ],
    )


def statuses(path: Path, run_id: int) -> dict[str, str]:
    store = RunStore(Config.for_notebook(path).store_path)
    try:
        return {s["step"]: s["status"] for s in store.steps(run_id)}
    finally:
        store.close()


def test_papermill_cli_runs_through_nbflow_and_caches(tmp_path):
    path = pipeline_notebook(tmp_path)
    out = tmp_path / "out.ipynb"
    first = subprocess.run(
        [PAPERMILL, str(path), str(out), "--engine", "nbflow", "-p", "n", "3"], capture_output=True, text=True
    )
    assert first.returncode == 0, first.stderr
    nb = nbformat.read(out, 4)
    nbformat.validate(nb)
    run_id = nb.metadata.nbflow.run
    assert statuses(path, run_id) == {"make": "done", "total": "done"}
    assert nbflow.result(path, "total", "total", run=run_id) == 0 + 1 + 4
    assert nb.metadata.papermill.parameters == {"n": 3}

    again = tmp_path / "again.ipynb"
    second = subprocess.run(
        [PAPERMILL, str(path), str(again), "--engine", "nbflow", "-p", "n", "3"], capture_output=True, text=True
    )
    assert second.returncode == 0, second.stderr
    nb2 = nbformat.read(again, 4)
    assert statuses(path, nb2.metadata.nbflow.run) == {"make": "cached", "total": "cached"}
    # a cached step still shows its outputs in OUT
    total_cell = next(c for c in nb2.cells if "step:total" in c.metadata.get("tags", []))
    assert "squares 5" in "".join(o.get("text", "") for o in total_cell.outputs)

    # OUT is shaped like a plain papermill run's: same cells, tags, injected parameters, metadata
    plain = tmp_path / "plain.ipynb"
    papermill.execute_notebook(str(path), str(plain), parameters={"n": 3}, progress_bar=False)
    reference = nbformat.read(plain, 4)
    assert [(c.cell_type, c.metadata.get("tags", [])) for c in nb2.cells] == [
        (c.cell_type, c.metadata.get("tags", [])) for c in reference.cells
    ]
    assert [c.source for c in nb2.cells] == [c.source for c in reference.cells]
    assert set(reference.metadata.papermill) <= set(nb2.metadata.papermill)
    for mine, theirs in zip(nb2.cells, reference.cells, strict=True):
        if mine.cell_type == "code":
            assert [o.get("text") for o in mine.outputs] == [o.get("text") for o in theirs.outputs]
            assert set(theirs.metadata.papermill) <= set(mine.metadata.papermill)


def test_papermill_api_with_engine_name(tmp_path):
    path = pipeline_notebook(tmp_path)
    nb = papermill.execute_notebook(
        str(path), str(tmp_path / "out.ipynb"), parameters={"n": 5}, engine_name="nbflow", progress_bar=False
    )
    assert statuses(path, nb.metadata.nbflow.run) == {"make": "done", "total": "done"}
    assert nbflow.result(path, "make", "values") == [0, 1, 4, 9, 16]
    # nbflow's own run of the same parameters is fully cached: one cache, one run store
    run = nbflow.load_pipeline(path).run({"n": 5})
    assert {s["status"] for s in run.steps.values()} == {"cached"}
    changed = papermill.execute_notebook(
        str(path),
        str(tmp_path / "out2.ipynb"),
        parameters={"n": 5, "label": "x"},
        engine_name="nbflow",
        progress_bar=False,
    )
    assert statuses(path, changed.metadata.nbflow.run) == {"make": "cached", "total": "done"}


def test_failing_step_is_marked_like_papermill(tmp_path):
    path = write_notebook(
        tmp_path / "broken.ipynb",
        [
            code("n = 1", "parameters"),
            step("ok", "x = n + 1"),
            step("boom", "y = x / 0"),
        ],
    )
    out = tmp_path / "out.ipynb"
    with pytest.raises(PapermillExecutionError, match="ZeroDivisionError"):
        papermill.execute_notebook(str(path), str(out), engine_name="nbflow", progress_bar=False)
    nb = nbformat.read(out, 4)
    assert "papermill-error-cell-tag" in nb.cells[0].metadata.tags  # papermill's own marker
    boom = next(c for c in nb.cells if "step:boom" in c.metadata.get("tags", []))
    assert boom.outputs[-1].output_type == "error"
    assert statuses(path, nb.metadata.nbflow.run) == {"ok": "done", "boom": "failed"}


def test_bad_parameter_is_one_line(tmp_path):
    path = pipeline_notebook(tmp_path)
    result = subprocess.run(
        [PAPERMILL, str(path), str(tmp_path / "o.ipynb"), "--engine", "nbflow", "-p", "n", "many"],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert (
        last
        == "papermill.exceptions.PapermillException: pipeline.ipynb: parameter 'n' expects int (default 4), got 'many' (str)"
    )
    assert not (tmp_path / ".nbflow" / "cache").exists() or not any((tmp_path / ".nbflow" / "cache").iterdir())
