"""The JupyterLab extension (extension/) in a real JupyterLab 4, in headless Chromium.

Marks a cell as a step from the cell toolbar (the tag is saved to disk), opens the side
panel and sees the graph, runs from the command palette and watches the badges and the
graph change state, then clicks a node and lands on its cell. The extension reaches
nbflow only through the REST API (nbflow/server.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ..conftest import code, step, write_notebook
from .conftest import screenshot
from .jupyterlab import FIND_CY, lab_server, wait_until  # noqa: F401 - fixture

BIN = Path(sys.executable).parent


def test_pip_install_enables_both_extensions():
    lab = subprocess.run([str(BIN / "jupyter"), "labextension", "list"], capture_output=True, text=True, check=True)
    listing = lab.stdout + lab.stderr
    line = next((x for x in listing.splitlines() if "nbflow-jupyterlab" in x), "")
    assert "enabled" in line and "OK" in line, listing
    server = subprocess.run(
        [str(BIN / "jupyter"), "server", "extension", "list"], capture_output=True, text=True, check=True
    )
    listing = server.stdout + server.stderr
    assert any("nbflow.server" in x and "enabled" in x for x in listing.splitlines()), listing


def panel_states(page) -> dict[str, str]:
    return page.evaluate(
        "() => Object.fromEntries([...document.querySelectorAll('#nbflow-graph-panel li[data-step]')]"
        ".map(li => [li.dataset.step, li.dataset.state]))"
    )


def badge_states(page) -> dict[str, str]:
    return page.evaluate(
        "() => Object.fromEntries([...document.querySelectorAll('.jp-Notebook .nbflow-badge')]"
        ".map(b => [b.dataset.step, b.dataset.state]))"
    )


def graph_states(page) -> dict[str, str]:
    return page.evaluate(
        "() => { const cy = (" + FIND_CY + ")('#nbflow-graph-panel'); if (!cy) return {};"
        " return Object.fromEntries(cy.nodes().map(n => [n.id(), n.data('state')])); }"
    )


@pytest.mark.browser
@pytest.mark.slow
def test_mark_step_panel_run_from_palette_and_jump_to_cell(lab_server, page):  # noqa: F811
    nb_path = write_notebook(
        lab_server.root / "steps.ipynb",
        [
            code("n = 3", "parameters"),
            step("a", "import time\ntime.sleep(2)\nx = list(range(n))"),
            step("b", "time.sleep(1)\ny = [v * 2 for v in x]"),
            code("z = sum(y)\nprint(z)"),
        ],
    )
    lab_server.open(page, "steps.ipynb")
    page.wait_for_selector(".nbflow-badge[data-step='b'][data-state='stale']", timeout=30_000)

    # Mark the last cell a step from its cell toolbar; the tag is saved with the notebook.
    last = page.locator(".jp-Notebook .jp-CodeCell").nth(3)
    last.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Escape")
    last.locator("[data-command='nbflow:mark-step']").click()
    page.locator(".jp-Dialog input").fill("total")
    page.locator(".jp-Dialog .jp-mod-accept").click()
    page.wait_for_selector(".jp-Dialog", state="detached")  # else the next click lands on its backdrop

    def saved() -> bool:
        return "step:total" in json.loads(nb_path.read_text())["cells"][3]["metadata"].get("tags", [])

    page.locator(".jp-NotebookPanel-toolbar [data-command='docmanager:save']").click()
    wait_until(saved, 30, page=page)
    page.wait_for_selector(".nbflow-badge[data-step='total'][data-state='stale']", timeout=30_000)
    screenshot(page, "extension-marked-step")

    # The side panel shows the pipeline graph.
    page.locator(".jp-SideBar [data-id='nbflow-graph-panel']").click()
    page.wait_for_selector("#nbflow-graph-panel canvas", timeout=20_000)
    wait_until(lambda: graph_states(page) == {"a": "stale", "b": "stale", "total": "stale"}, 20, page=page)
    assert panel_states(page) == {"a": "stale", "b": "stale", "total": "stale"}
    screenshot(page, "extension-panel")

    # Run from the command palette; watch the graph and the badges follow the run.
    page.locator(".jp-Notebook").click(position={"x": 5, "y": 5})
    page.keyboard.press("Escape")
    page.keyboard.press("Control+Shift+c")
    page.locator(".lm-CommandPalette-input").fill("Run pipeline")
    page.locator(".lm-CommandPalette-item[data-command='nbflow:run']").first.click()
    seen_graph, seen_badges = [], []

    def done() -> bool:
        g, b = graph_states(page), badge_states(page)
        if not seen_graph or seen_graph[-1] != g:
            seen_graph.append(g)
        if not seen_badges or seen_badges[-1] != b:
            seen_badges.append(b)
        if "running" in g.values() and not any("running" in s.values() for s in seen_graph[:-1]):
            screenshot(page, "extension-mid-run", docs="jupyterlab-panel-mid-run.png")
        return page.get_attribute("#nbflow-graph-panel", "data-run-status") == "done"

    wait_until(done, timeout=180, every=0.05, page=page)
    assert graph_states(page) == {"a": "done", "b": "done", "total": "done"}, seen_graph
    wait_until(lambda: badge_states(page) == {"a": "done", "b": "done", "total": "done"}, 10, page=page)
    assert any("running" in s.values() for s in seen_graph), seen_graph
    assert any("running" in s.values() or "queued" in s.values() for s in seen_badges), seen_badges
    assert "done in" in page.inner_text("#nbflow-graph-panel .nbflow-Panel-status")
    screenshot(page, "extension-after-run")

    # Click a node: the notebook's active cell becomes that step's cell.
    box = page.evaluate(
        "() => { const cy = (" + FIND_CY + ")('#nbflow-graph-panel'); const p = cy.$id('b').renderedPosition();"
        " const r = cy.container().getBoundingClientRect(); return {x: r.left + p.x, y: r.top + p.y}; }"
    )
    page.mouse.click(box["x"], box["y"])
    page.wait_for_selector(".jp-Notebook .jp-Cell.jp-mod-active .nbflow-badge[data-step='b']", timeout=10_000)
    assert "y = [v * 2" in page.inner_text(".jp-Notebook .jp-Cell.jp-mod-active .jp-InputArea")
    screenshot(page, "extension-jumped-to-cell")
    assert page.outside == []
    assert not [e for e in page.console_errors if "nbflow" in e.lower()], page.console_errors
