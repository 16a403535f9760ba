"""The JupyterLab side panel (extension/, drawing with the shared canvas) marks a step's
data checks and shows what each step produced, in a real JupyterLab 4 in headless Chromium,
after a real run: a check is a mark on its step, never a node of its own."""

from __future__ import annotations

import nbformat
import pytest

import nbflow

from ..conftest import step, write_notebook
from .conftest import screenshot
from .jupyterlab import FIND_CY, lab_server, wait_until  # noqa: F401 - fixture


def graph_labels(page) -> dict[str, str]:
    return page.evaluate(
        "() => { const cy = (" + FIND_CY + ")('#nbflow-graph-panel'); if (!cy) return {};"
        " return Object.fromEntries(cy.nodes().map(n => [n.id(), n.data('display')])); }"
    )


@pytest.mark.browser
@pytest.mark.slow
def test_the_side_panel_marks_checks_and_shows_summaries(lab_server, page):  # noqa: F811
    check = nbformat.v4.new_code_cell("assert len(x) == 3")
    check.metadata["tags"] = ["check:a"]
    path = write_notebook(
        lab_server.root / "checked.ipynb",
        [step("a", "x = list(range(3))"), check, step("b", "y = [v * 2 for v in x]")],
    )
    run = nbflow.load_pipeline(path).run()
    assert run.status == "done", run.error
    lab_server.open(page, "checked.ipynb")
    page.locator(".jp-SideBar [data-id='nbflow-graph-panel']").click()
    page.wait_for_selector("#nbflow-graph-panel canvas", timeout=20_000)
    wait_until(lambda: sorted(graph_labels(page)) == ["a", "b"], 30, page=page)
    labels = graph_labels(page)
    assert labels["a"].startswith("a ✓\nx: 3 items · "), labels
    assert labels["b"].startswith("b\ny: 3 items · "), labels
    screenshot(page, "extension-checks")
