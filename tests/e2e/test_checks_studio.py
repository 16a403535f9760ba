"""The studio's canvas (the one canvas the JupyterLab side panel draws with too) shows a
step's data-check mark and what it produced, against a real ``nbflow studio`` server
driven by headless Chromium, after a real run with a failing check."""

from __future__ import annotations

import nbformat
import pytest

import nbflow

from ..conftest import step, write_notebook
from .conftest import screenshot, studio_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_the_canvas_marks_checks_and_shows_summaries(page, tmp_path):
    passing = nbformat.v4.new_code_cell("assert len(data) == 3")
    passing.metadata["tags"] = ["check:load"]
    failing = nbformat.v4.new_code_cell("assert total > 100, f'total is {total}'")
    failing.metadata["tags"] = ["check:sums"]
    path = write_notebook(
        tmp_path / "checked.ipynb",
        [
            step("load", "data = list(range(3))"),
            passing,
            step("sums", "total = sum(data)"),
            failing,
            step("report", "text = str(total)"),
        ],
    )
    run = nbflow.load_pipeline(path).run()
    assert run.status == "failed"
    with studio_server(tmp_path) as server:
        page.goto(f"{server.url}?notebook=checked.ipynb")
        page.wait_for_function("window.nbflowCanvas && window.nbflowCanvas.cy.nodes().length === 3", timeout=60_000)
        # the marks come with the plan, after the graph is drawn
        page.wait_for_function(
            "window.nbflowCanvas.cy.getElementById('load').data('display').includes('✓')", timeout=60_000
        )
        display = page.evaluate(
            "Object.fromEntries(window.nbflowCanvas.cy.nodes().map(n => [n.id(), n.data('display')]))"
        )
        screenshot(page, "studio-checks")
    assert sorted(display) == ["load", "report", "sums"]  # checks are marks, not nodes
    assert display["load"].startswith("load ✓\ndata: 3 items · ")
    assert display["sums"].startswith("sums\ntotal: 3 · ")  # its check has not passed: no mark until it does
    assert page.outside == []
