"""PipelineWidget (ipycytoscape 1.3.3 on ipywidgets 8) in a real JupyterLab 4, in Chromium.

Opens ``notebooks/widget/live_widget.ipynb``, shows the widget, runs the wine pipeline from its
button and reads the node colours from the page's cytoscape instance while the run goes
on: they must pass through queued/running and end ``done``. Then clicks a node and reads
its details. Screenshots go to test-artifacts/ (the README's to docs/ too, only with NBFLOW_UPDATE_DOCS=1).
"""

from __future__ import annotations

import pytest

from nbflow.view import STATES

from .conftest import screenshot
from .jupyterlab import FIND_CY, lab_server, run_cell, wait_until  # noqa: F401 - fixture

pytestmark = [pytest.mark.browser, pytest.mark.slow]

STEPS = ["load", "clean", "features", "train", "evaluate"]


def rgb(colour: str) -> str:
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgb({r},{g},{b})"


BY_COLOUR = {rgb(s.colour): name for name, s in STATES.items()}

STATES_JS = (
    "() => { const cy = (" + FIND_CY + ")('.nbflow-widget'); if (!cy) return null;"
    " const out = {}; cy.nodes().forEach(n => { if (!n.hasClass('parameter'))"
    " out[n.id()] = n.style('background-color').replace(/ /g, ''); }); return out; }"
)


def node_states(page) -> dict[str, str] | None:
    colours = page.evaluate(STATES_JS)
    return None if colours is None else {k: BY_COLOUR.get(v, v) for k, v in colours.items()}


def click_node(page, name: str) -> None:
    box = page.evaluate(
        "(name) => { const cy = (" + FIND_CY + ")('.nbflow-widget'); const p = cy.$id(name).renderedPosition();"
        " const r = cy.container().getBoundingClientRect(); return {x: r.left + p.x, y: r.top + p.y}; }",
        name,
    )
    page.mouse.click(box["x"], box["y"])


def test_widget_follows_a_run_live_and_shows_details(lab_server, page):  # noqa: F811
    lab_server.open(page, "widget/live_widget.ipynb")
    run_cell(page, 1)
    try:
        page.wait_for_selector(".nbflow-widget canvas", timeout=60_000)
    except Exception:
        screenshot(page, "widget-not-shown")
        raise
    initial = wait_until(lambda: (s := node_states(page)) and len(s) == len(STEPS) and s, page=page)
    assert initial == dict.fromkeys(STEPS, "stale"), initial
    assert "5 stale" in page.inner_text(".nbflow-widget .nbflow-status")
    assert page.locator(".nbflow-widget .nbflow-legend").inner_text().count(":") >= 2
    assert page.locator(".nbflow-widget canvas").count() >= 1
    # Parameters are small nodes; the form has typed inputs built from the parameters cell.
    params = page.evaluate("() => (" + FIND_CY + ")('.nbflow-widget').nodes('.parameter').map(n => n.id())")
    assert sorted(params) == [
        "param:max_depth",
        "param:n_estimators",
        "param:n_features",
        "param:seed",
        "param:test_size",
    ]
    assert page.locator(".nbflow-param-max_depth input").input_value() == "4"

    page.evaluate("document.querySelector('.nbflow-widget').scrollIntoView({block: 'start'})")
    page.locator(".nbflow-widget button", has_text="Run pipeline").click()
    seen: list[dict[str, str]] = []
    shot_taken = False

    def finished() -> bool:
        nonlocal shot_taken
        states = node_states(page)
        if states and (not seen or seen[-1] != states):
            seen.append(states)
        if states and not shot_taken and "running" in states.values():
            screenshot(page, "widget-mid-run", docs="widget-mid-run.png")
            shot_taken = True
        return "done in" in page.inner_text(".nbflow-widget .nbflow-status")

    wait_until(finished, timeout=180, every=0.05, page=page)
    screenshot(page, "widget-after-run")
    final = node_states(page)
    assert final == dict.fromkeys(STEPS, "done"), (final, seen)
    during = {state for states in seen for state in states.values()}
    assert {"queued", "running"} & during, seen
    assert len(seen) >= 3, seen  # stale -> in progress -> ... -> done, observed in the page
    assert shot_taken, seen

    # Click a node: its docs, highlighted code, status and cached outputs appear beside the graph.
    click_node(page, "evaluate")
    page.wait_for_function(
        "() => (document.querySelector('.nbflow-details .nbflow-step-name') || {}).textContent?.includes('evaluate')",
        timeout=20_000,
    )
    details = page.locator(".nbflow-details")
    assert "accuracy_score" in details.locator(".nbflow-code").inner_text()
    wait_until(lambda: "last status: done" in details.inner_text(), timeout=20, page=page)
    wait_until(lambda: "accuracy:" in details.locator(".jp-OutputArea").inner_text(), timeout=20, page=page)
    click_node(page, "train")
    page.wait_for_function(
        "() => document.querySelector('.nbflow-details .nbflow-step-name').textContent.includes('train')"
    )
    assert "A random forest" in details.inner_text()
    screenshot(page, "widget-details")

    # A refresh after a run shows the steps fresh (read from the cache, not this run's events).
    page.locator(".nbflow-widget button", has_text="Refresh").click()
    wait_until(lambda: node_states(page) == dict.fromkeys(STEPS, "fresh"), timeout=30, page=page)
    assert page.outside == []
    assert not [e for e in page.console_errors if "nbflow" in e.lower() or "cytoscape" in e.lower()], (
        page.console_errors
    )


def test_widget_renders_and_answers_clicks_in_notebook_7(lab_server, page):  # noqa: F811
    lab_server.open_in_notebook7(page, "widget/live_widget.ipynb")
    run_cell(page, 1)
    page.wait_for_selector(".nbflow-widget canvas", timeout=60_000)
    states = wait_until(lambda: (s := node_states(page)) and len(s) == len(STEPS) and s, page=page)
    assert set(states.values()) <= {"fresh", "stale"}, states
    click_node(page, "clean")
    page.wait_for_function(
        "() => (document.querySelector('.nbflow-details .nbflow-step-name') || {}).textContent?.includes('clean')",
        timeout=20_000,
    )
    screenshot(page, "widget-notebook7")
    assert page.outside == []
