"""A finished run's cell outputs, matched to the notebook as it is being edited.

"Write this run's outputs into the notebook" (the JupyterLab command, ``POST
runs/{id}/outputs``) needs, for each code cell of the open notebook, the outputs the run
left in that cell, and which cells cannot take them because their code changed since.

Where the outputs come from, best first:

1. the run's executed notebook (``runs/<id>/output.ipynb``, the ``output_notebook``
   artifact): every code cell the run executed, setup cells included, cached steps'
   cells holding their cached outputs. Cells are matched by cell id; a cell whose source
   differs from the run's is skipped; papermill's injected-parameters and error cells
   are not the author's and are left out; a cell the run did not execute is left alone.
2. otherwise (a run in which no step had to run writes no executed notebook; so may a
   run in the user's own kernel): the cache entries of the run's steps (``step_runs.key``),
   one list of outputs per cell of the step. A step is matched by name; its cells are
   skipped when its code (``Step.code``, normalised as in its key) is not the code the
   entry was made from.

Worked example: run 4 executed ``load`` and ``train``; since, ``train``'s cell was
edited. ``cell_outputs`` gives ``load``'s cell its outputs and names ``train``'s cell in
``skipped`` ("code changed since run 4").

This module reads (the run store, the executed notebook, cache manifests and outputs);
it must not write anything, nor touch the notebook file: the caller puts the outputs in
the editor's model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .config import Config
from .errors import CacheCorrupt
from .notebook import NotebookSource, notebook_from_data

#: Cells papermill adds to an executed notebook: not the author's, never copied.
FOREIGN_TAGS = ("injected-parameters", "papermill-error-cell-tag")


def cell_outputs(config: Config, notebook: Path, run_id: int, data: dict[str, Any]) -> dict[str, Any]:
    """The outputs of run ``run_id`` for the cells of ``data`` (the notebook as edited).

    Returns ``{"run_id", "from": "output notebook"|"cache", "cells": [{"id", "index",
    "outputs", "execution_count"}], "skipped": [{"id", "index", "cell", "step", "why"}]}``;
    ``index`` is the cell's 0-based position in ``data``, ``cell`` the 1-based number.
    """
    current = notebook_from_data(data, notebook)
    store = config.open_store()
    try:
        artifacts = store.artifacts(run_id)
        steps = store.steps(run_id)
    finally:
        store.close()
    executed = Path(artifacts.get("output_notebook") or config.runs_dir / str(run_id) / "output.ipynb")
    if executed.is_file():
        try:
            ran = json.loads(executed.read_bytes())
        except (OSError, ValueError):
            ran = None
        if isinstance(ran, dict) and isinstance(ran.get("cells"), list):
            return {"run_id": run_id, "from": "output notebook", **_from_executed(current, ran, run_id)}
    return {"run_id": run_id, "from": "cache", **_from_cache(config, current, steps, run_id)}


def _step_of(current: NotebookSource) -> dict[int, str]:
    return {cell.index: step.name for step in current.steps for cell in step.cells}


def _text(source: Any) -> str:
    return "".join(source) if isinstance(source, list) else str(source or "")


def _from_executed(current: NotebookSource, ran: dict[str, Any], run_id: int) -> dict[str, Any]:
    by_id = {cell.id: cell for cell in current.cells if cell.id}
    steps = _step_of(current)
    cells: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    for cell in ran["cells"]:
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        tags = (cell.get("metadata") or {}).get("tags") or []
        if any(t in tags for t in FOREIGN_TAGS):
            continue
        outputs = cell.get("outputs") or []
        count = cell.get("execution_count")
        if not outputs and count is None:
            continue  # not executed by the run: nothing to copy
        mine = by_id.get(cell.get("id"))
        if mine is None or mine.cell_type != "code":
            continue  # deleted since the run: nowhere to put its outputs
        if mine.source != _text(cell.get("source")):
            skipped.append(_skip(mine, steps.get(mine.index), f"code changed since run {run_id}"))
            continue
        outputs = [_joined(o) for o in outputs]
        cells.append({"id": mine.id, "index": mine.index, "outputs": outputs, "execution_count": count})
    return {"cells": cells, "skipped": skipped}


def _from_cache(config: Config, current: NotebookSource, steps: list[dict[str, Any]], run_id: int) -> dict[str, Any]:
    from .graph import load_pipeline
    from .plan import sha256_text

    pipeline = load_pipeline(current.path, config, source=current)
    cache = config.cache()
    cells: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    for row in steps:
        step = pipeline.steps.get(row["step"])
        if step is None or not row.get("key") or row.get("status") not in ("done", "cached"):
            continue
        try:
            entry = cache.lookup(step.name, row["key"])
            outputs = cache.load_outputs(entry) if entry is not None else None
        except CacheCorrupt:
            outputs = None
        if outputs is None:
            for cell in step.cells:
                skipped.append(_skip(cell, step.name, f"run {run_id}'s cache entry is gone (nbflow clean?)"))
            continue
        if entry.parts.get("code") != sha256_text(step.code):
            for cell in step.cells:
                skipped.append(_skip(cell, step.name, f"code changed since run {run_id}"))
            continue
        for i, cell in enumerate(step.cells):
            if i < len(outputs):
                joined = [_joined(o) for o in outputs[i]]
                cells.append({"id": cell.id, "index": cell.index, "outputs": joined, "execution_count": None})
    return {"cells": cells, "skipped": skipped}


def _joined(output: Any) -> Any:
    """An nbformat output with multi-line strings (lists of lines on disk) joined, as
    JupyterLab's model and JSON mime data expect them."""
    if not isinstance(output, dict):
        return output
    out = dict(output)
    if isinstance(out.get("text"), list):
        out["text"] = "".join(out["text"])
    if isinstance(out.get("data"), dict):
        out["data"] = {
            mime: "".join(v) if isinstance(v, list) and not mime.endswith("json") else v
            for mime, v in out["data"].items()
        }
    return out


def _skip(cell: Any, step: str | None, why: str) -> dict[str, Any]:
    return {"id": cell.id, "index": cell.index, "cell": cell.number, "step": step, "why": why}


__all__ = ["FOREIGN_TAGS", "cell_outputs"]
