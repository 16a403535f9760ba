"""The side panel's pipeline of notebooks (extension/src/project.ts) in a real JupyterLab 4, in
headless Chromium, on the three-notebook example (``notebooks/diabetes_pipeline``): the whole
pipeline under the notebook's own graph, notebooks as groups with the file edges between them,
the open notebook's group highlighted; *Run pipeline of notebooks* from the command palette
runs it through the REST API (recorded in the run store, one run per notebook) and the states
follow; clicking a step of another notebook opens that notebook at the step's cell."""

from __future__ import annotations

import pytest

from ..conftest import PIPELINE_STEPS as STEPS
from .conftest import screenshot
from .jupyterlab import lab_server, wait_until  # noqa: F401 - fixture

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CY = "window.nbflowLab.project.view.canvas.cy"


def project_states(page) -> dict[str, str]:
    return page.evaluate("() => window.nbflowLab.project.view.canvas.states()")


def test_side_panel_shows_and_runs_the_pipeline_of_notebooks(lab_server, page):  # noqa: F811
    lab_server.open(page, "diabetes_pipeline/ingest.ipynb")
    page.locator(".jp-SideBar [data-id='nbflow-graph-panel']").click()
    page.wait_for_selector(".nbflow-ProjectSection canvas", timeout=30_000)
    wait_until(lambda: project_states(page) == dict.fromkeys(STEPS, "stale"), 30, page=page)
    assert page.evaluate(f"() => {CY}.nodes('.notebook').map(n => n.id())") == [
        "group:ingest.ipynb",
        "group:features.py",
        "group:model.ipynb",
    ]
    assert page.evaluate(f"() => {CY}.nodes('.notebook.current').map(n => n.id())") == ["group:ingest.ipynb"]
    parents = page.evaluate(
        f"() => Object.fromEntries({CY}.nodes().filter(n => n.isChild()).map(n => [n.id(), n.parent().id()]))"
    )
    assert parents == {s: "group:" + s.split(":")[0] for s in STEPS}
    assert sorted(page.evaluate(f"() => {CY}.edges('.link').map(e => e.id() + ' ' + e.data('label'))")) == [
        "features.py:save->model.ipynb:split file:data/features.csv",
        "ingest.ipynb:export->features.py:build file:data/diabetes.csv",
    ]
    # read-only: nodes do not move, Move and Connect are not offered
    assert page.evaluate(f"() => {CY}.autoungrabify()") is True
    assert page.locator(".nbflow-ProjectSection button", has_text="Connect").is_hidden()
    title = page.inner_text(".nbflow-ProjectSection .nbflow-Project-title")
    assert title == "Pipeline of notebooks: diabetes_pipeline (3 notebooks)"
    assert page.inner_text(".nbflow-ProjectSection .nbflow-Project-status") == "7 steps, 7 to run"

    # Run pipeline of notebooks, from the command palette
    page.locator(".jp-Notebook").click(position={"x": 5, "y": 5})
    page.keyboard.press("Escape")
    page.keyboard.press("Control+Shift+c")
    page.locator(".lm-CommandPalette-input").fill("Run pipeline of notebooks")
    page.locator(".lm-CommandPalette-item[data-command='nbflow:run-project']").first.click()
    seen: list[dict[str, str]] = []
    shot = False

    def done() -> bool:
        nonlocal shot
        states = project_states(page)
        if not seen or seen[-1] != states:
            seen.append(states)
        if not shot and {"running", "done"} & set(states.values()) and "stale" in states.values():
            screenshot(page, "jupyterlab-project-mid-run", docs="jupyterlab-project.png")
            shot = True
        return page.get_attribute(".nbflow-ProjectSection", "data-run-status") == "done"

    wait_until(done, timeout=300, every=0.1, page=page)
    wait_until(lambda: project_states(page) == dict.fromkeys(STEPS, "fresh"), 30, page=page)
    # the states followed the run (a run's "done" is not the plan's "fresh"), one notebook after the other
    assert any(s["ingest.ipynb:export"] in ("running", "done") and s["model.ipynb:fit"] == "stale" for s in seen), seen
    status = page.inner_text(".nbflow-ProjectSection .nbflow-Project-status")
    assert status == "pipeline run 1 done: ingest.ipynb done, features.py done, model.ipynb done"
    if not shot:
        screenshot(page, "jupyterlab-project-mid-run", docs="jupyterlab-project.png")

    # one run per notebook in the run store, as `nbflow run FOLDER` records them
    answer = page.request.get(
        f"{lab_server.url}nbflow/api/project/runs?path=diabetes_pipeline&token={lab_server.token}"
    ).json()
    assert sorted((r["name"], r["status"]) for r in answer["runs"]) == [
        ("features.py", "done"),
        ("ingest.ipynb", "done"),
        ("model.ipynb", "done"),
    ]

    # a step of another notebook: that notebook opens at the step's cell, and its group is the current one
    point = page.evaluate("() => window.nbflowLab.project.view.canvas.nodeCenter('model.ipynb:fit')")
    page.mouse.click(point["x"], point["y"])
    page.wait_for_function(
        "() => (document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell.jp-mod-active .nbflow-badge')"
        " || {}).dataset?.step === 'fit'",
        timeout=60_000,
    )
    assert page.evaluate("() => window.nbflowLab.project.notebook") == "diabetes_pipeline/model.ipynb"
    wait_until(
        lambda: page.evaluate(f"() => {CY}.nodes('.notebook.current').map(n => n.id())") == ["group:model.ipynb"],
        30,
        page=page,
    )
    screenshot(page, "jupyterlab-project-other-notebook")
    assert page.outside == []
    assert not [e for e in page.console_errors if "nbflow" in e.lower() or "cytoscape" in e.lower()], (
        page.console_errors
    )


def test_a_notebook_of_no_pipeline_of_notebooks_shows_no_section(lab_server, page):  # noqa: F811
    # ?reset: not the notebooks the test before left open in this server's workspace
    page.goto(f"{lab_server.url}lab/tree/wine_classifier.ipynb?reset&token={lab_server.token}")
    page.wait_for_selector(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook", timeout=90_000)
    page.locator(".jp-SideBar [data-id='nbflow-graph-panel']").click()
    page.wait_for_selector("#nbflow-graph-panel > .nbflow-GraphView canvas", timeout=30_000)
    page.wait_for_function("() => window.nbflowLab.project.notebook === 'wine_classifier.ipynb'")
    page.wait_for_timeout(2000)  # the section's answer is in by now; it must stay hidden
    assert page.locator(".nbflow-ProjectSection").is_hidden()
    assert page.evaluate("() => window.nbflowLab.project.hasProject") is False
    assert page.locator("#nbflow-graph-panel .nbflow-canvas").count() == 1  # no second canvas made for nothing


def test_a_notebooks_own_badges_are_keyed_in_its_pipeline_and_a_broken_neighbour_is_a_note(lab_server, page):  # noqa: F811
    """After the pipeline ran, the last notebook's own badges and graph are fresh (keyed with
    the notebooks it reads files of, as the section is); a broken notebook put beside them
    plans it on its own, said in one note line of the panel, and the badges still answer."""
    from nbflow.project import load_project
    from nbflow.project_run import run_project

    folder = lab_server.root / "diabetes_pipeline"
    result = run_project(load_project(folder))
    assert result.status == "done", {n: r.error for n, r in result.runs.items()}
    page.goto(f"{lab_server.url}lab/tree/diabetes_pipeline/model.ipynb?reset&token={lab_server.token}")
    page.wait_for_selector(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook", timeout=90_000)
    page.locator(".jp-SideBar [data-id='nbflow-graph-panel']").click()
    badges = (
        "() => Object.fromEntries([...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .nbflow-badge')]"
        ".map(b => [b.dataset.step, b.dataset.state]))"
    )
    steps = ("split", "fit", "evaluate")
    wait_until(lambda: page.evaluate(badges) == dict.fromkeys(steps, "fresh"), 60, page=page)
    wait_until(lambda: project_states(page) == dict.fromkeys(STEPS, "fresh"), 60, page=page)
    assert page.inner_text("#nbflow-graph-panel .nbflow-Panel-notes") == ""

    (folder / "broken.ipynb").write_text('{"cells": [{"metadata": {"tags": ["step:x"]')
    page.locator(".jp-Notebook").click(position={"x": 5, "y": 5})
    page.keyboard.press("Control+s")  # a save re-asks the graph
    wait_until(
        lambda: page.inner_text("#nbflow-graph-panel .nbflow-Panel-notes").startswith(
            "warning: planned on its own, without the other notebooks of its pipeline: broken.ipynb"
        ),
        60,
        page=page,
    )
    # planned alone, its in: file is hashed: the entries of the pipeline run are not its keys
    wait_until(lambda: page.evaluate(badges) == dict.fromkeys(steps, "stale"), 60, page=page)
    (folder / "broken.ipynb").unlink()
    assert page.outside == []
