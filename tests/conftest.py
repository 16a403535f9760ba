"""Shared fixtures: notebooks are built with nbformat inside each test, so a case reads
in one place; every test gets its own folder and nbflow home."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
#: The steps of the three-notebook example (``notebooks/diabetes_pipeline``), in order.
PIPELINE_STEPS = [
    "ingest.ipynb:load",
    "ingest.ipynb:export",
    "features.py:build",
    "features.py:save",
    "model.ipynb:split",
    "model.ipynb:fit",
    "model.ipynb:evaluate",
]


def code(source: str, *tags: str) -> Any:
    """A code cell with ``tags``."""
    cell = new_code_cell(source)
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


def md(text: str) -> Any:
    return new_markdown_cell(text)


def step(name: str, source: str, *tags: str) -> Any:
    """A code cell tagged ``step:<name>`` (plus ``tags``)."""
    return code(source, f"step:{name}", *tags)


def write_notebook(path: Path, cells: list[Any], **metadata: Any) -> Path:
    nb = new_notebook(cells=cells)
    nb.metadata.update(
        {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}, **metadata}
    )
    nbformat.write(nb, path)
    return path


def producer_and_consumer(folder: Path, export: str = "open('rows.txt', 'w').write(','.join(map(str, rows)))") -> Path:
    """Two notebooks of a pipeline of notebooks in ``folder``: ``ingest.ipynb``'s ``export``
    writes ``out:rows.txt`` (with ``export``), which the text notebook ``model.py``'s ``read``
    reads (``in:rows.txt``); its ``fit`` sums the rows (6 with the default ``n = 4``)."""
    folder.mkdir(parents=True, exist_ok=True)
    write_notebook(
        folder / "ingest.ipynb",
        [code("n = 4", "parameters"), step("load", "rows = list(range(n))"), step("export", export, "out:rows.txt")],
    )
    (folder / "model.py").write_text(
        '# %% tags=["step:read", "in:rows.txt"]\nvalues = [int(v) for v in open("rows.txt").read().split(",")]\n\n'
        '# %% tags=["step:fit"]\ntotal = sum(values)\n'
    )
    return folder


@pytest.fixture
def make_notebook(tmp_path: Path) -> Callable[..., Path]:
    """``make_notebook(cells, name="pipeline.ipynb")`` writes a notebook into tmp_path."""

    def make(cells: list[Any], name: str = "pipeline.ipynb", **metadata: Any) -> Path:
        return write_notebook(tmp_path / name, cells, **metadata)

    return make


@pytest.fixture(autouse=True)
def _isolated_home(monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests configure nbflow through files next to their notebooks, never the caller's env.
    for var in ("NBFLOW_HOME", "NBFLOW_CACHE", "NBFLOW_TIMEOUT", "NBFLOW_EXECUTOR", "NBFLOW_OUTPUT_LIMIT"):
        monkeypatch.delenv(var, raising=False)
