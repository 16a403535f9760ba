"""ProjectWidget (nbflow/project_widget.py, ipycytoscape) in a real JupyterLab, in Chromium:
the three-notebook example (``notebooks/diabetes_pipeline``) drawn as groups with the edges
between notebooks, run from its button, its steps' colours followed in the page to done.
"""

from __future__ import annotations

import pytest

from nbflow.view import STATES

from ..conftest import PIPELINE_STEPS as STEPS
from ..conftest import code, write_notebook
from .conftest import screenshot
from .jupyterlab import FIND_CY, lab_server, run_cell, wait_until  # noqa: F401 - fixture
from .test_widget import rgb

pytestmark = [pytest.mark.browser, pytest.mark.slow]

BY_COLOUR = {rgb(s.colour): name for name, s in STATES.items()}
CY = "(" + FIND_CY + ")('.nbflow-project-widget')"


def step_states(page) -> dict[str, str] | None:
    colours = page.evaluate(
        "() => { const cy = " + CY + "; if (!cy) return null; const out = {};"
        " cy.nodes().forEach(n => { if (!n.hasClass('notebook'))"
        " out[n.id()] = n.style('background-color').replace(/ /g, ''); }); return out; }"
    )
    return None if colours is None else {k: BY_COLOUR.get(v, v) for k, v in colours.items()}


def test_project_widget_draws_notebooks_as_groups_and_follows_a_run(lab_server, page):  # noqa: F811
    write_notebook(
        lab_server.root / "project_widget.ipynb",
        [code("from nbflow.project_widget import ProjectWidget\n\nProjectWidget('diabetes_pipeline')")],
    )
    lab_server.open(page, "project_widget.ipynb")
    run_cell(page, 0)
    try:
        page.wait_for_selector(".nbflow-project-widget canvas", timeout=60_000)
        initial = wait_until(lambda: (s := step_states(page)) and len(s) == len(STEPS) and s, page=page)
    except Exception:
        screenshot(page, "project-widget-not-shown")
        raise
    assert initial == dict.fromkeys(STEPS, "stale"), initial
    parents = page.evaluate(
        "() => Object.fromEntries(" + CY + ".nodes().filter(n => n.isChild()).map(n => [n.id(), n.parent().id()]))"
    )
    assert parents == {s: "group:" + s.split(":")[0] for s in STEPS}
    assert page.evaluate("() => " + CY + ".nodes('.notebook').map(n => n.data('label'))") == [
        "ingest.ipynb",
        "features.py",
        "model.ipynb",
    ]
    assert sorted(page.evaluate("() => " + CY + ".edges('.link').map(e => e.id())")) == [
        "features.py:save->model.ipynb:split",
        "ingest.ipynb:export->features.py:build",
    ]
    assert "3 notebooks, 7 steps; 7 stale" in page.inner_text(".nbflow-project-widget")

    page.evaluate("document.querySelector('.nbflow-project-widget').scrollIntoView({block: 'start'})")
    page.locator(".nbflow-project-widget button", has_text="Run pipeline").click()
    seen: list[dict[str, str]] = []

    def finished() -> bool:
        states = step_states(page)
        if states and (not seen or seen[-1] != states):
            seen.append(states)
        return "pipeline done in" in page.inner_text(".nbflow-project-widget")

    wait_until(finished, timeout=300, every=0.05, page=page)
    screenshot(page, "project-widget-after-run")
    final = step_states(page)
    assert final == dict.fromkeys(STEPS, "done"), (final, seen)
    # the colours changed in the page while the notebooks ran, one notebook after the other
    during = {state for states in seen for state in states.values()}
    assert {"queued", "running"} & during, seen
    assert any(s["ingest.ipynb:load"] == "done" and s["model.ipynb:fit"] != "done" for s in seen), seen
    assert page.outside == []
    assert not [e for e in page.console_errors if "nbflow" in e.lower() or "cytoscape" in e.lower()], (
        page.console_errors
    )
