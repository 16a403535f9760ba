"""The JupyterLab side panel (extension/) follows a run started from it through the run's
events, in a real JupyterLab 4 in headless Chromium: a data check that fails turns the
step it checks failed (the ``CheckFailed`` event), as ``nbflow show`` and the report say.
A module of its own: a JupyterLab of its own, with no other notebook open."""

from __future__ import annotations

import nbformat
import pytest

from ..conftest import step, write_notebook
from .jupyterlab import FIND_CY, lab_server, wait_until  # noqa: F401 - fixture
from .test_jupyterlab_live import open_alone, palette


def graph_states(page) -> dict[str, str]:
    return page.evaluate(
        "() => { const cy = (" + FIND_CY + ")('#nbflow-graph-panel'); if (!cy) return {};"
        " return Object.fromEntries(cy.nodes().map(n => [n.id(), n.data('state')])); }"
    )


@pytest.mark.browser
@pytest.mark.slow
def test_the_side_panel_shows_a_step_its_check_failed_on_as_failed(lab_server, page):  # noqa: F811
    """A run started from the panel follows the run's events: ``CheckFailed`` turns the
    checked step failed (as ``nbflow show`` and the report say), its dependant skipped."""
    check = nbformat.v4.new_code_cell("assert len(x) == 4, f'x has {len(x)} rows'")
    check.metadata["tags"] = ["check:c"]
    write_notebook(
        lab_server.root / "failing_check.ipynb",
        [step("c", "x = list(range(3))"), check, step("d", "y = [v * 2 for v in x]")],
    )
    lab_server.open(page, "failing_check.ipynb")
    page.locator(".jp-SideBar [data-id='nbflow-graph-panel']").click()
    page.wait_for_selector("#nbflow-graph-panel canvas", timeout=20_000)
    wait_until(lambda: graph_states(page) == {"c": "stale", "d": "stale"}, 30, page=page)
    page.locator(".jp-Notebook").click(position={"x": 5, "y": 5})
    page.keyboard.press("Escape")
    page.keyboard.press("Control+Shift+c")
    page.locator(".lm-CommandPalette-input").fill("Run pipeline")
    page.locator(".lm-CommandPalette-item[data-command='nbflow:run']").first.click()
    wait_until(lambda: page.get_attribute("#nbflow-graph-panel", "data-run-status") == "failed", 180, page=page)
    assert graph_states(page) == {"c": "failed", "d": "skipped"}


def run_snapshot(page) -> dict:
    """The panel's run status and every step badge's state, read at one instant."""
    return page.evaluate(
        "() => ({run: document.querySelector('#nbflow-graph-panel')?.getAttribute('data-run-status'),"
        " badges: Object.fromEntries([...document.querySelectorAll('.jp-Notebook .nbflow-badge')]"
        ".map(b => [b.dataset.step, b.dataset.state]))})"
    )


@pytest.mark.browser
@pytest.mark.slow
def test_a_run_in_the_notebook_kernel_turns_the_checked_step_failed_as_its_check_fails(lab_server, page):  # noqa: F811
    """*Run stale steps in this kernel*: the check's failure comes back with the driver's
    answer as the run's events (``CheckFailed``), so the checked step's badge turns failed
    while a later, independent, slow step still runs; its dependant is skipped; the run
    goes on to the end and ends failed."""
    check = nbformat.v4.new_code_cell("assert len(x) == 4, f'x has {len(x)} rows'")
    check.metadata["tags"] = ["check:c"]
    write_notebook(
        lab_server.root / "kernel_check.ipynb",
        [
            step("c", "x = list(range(3))"),
            check,
            step("d", "y = [v * 2 for v in x]"),
            step("slow", "import time\ntime.sleep(25)\nz = 1"),
        ],
    )
    open_alone(lab_server, page, "kernel_check.ipynb")  # the first test's workspace has the panel open
    page.locator(".jp-SideBar [data-id='nbflow-graph-panel']").click()
    page.wait_for_selector("#nbflow-graph-panel canvas", timeout=20_000)
    wait_until(lambda: run_snapshot(page)["badges"].get("slow") == "stale", 30, page=page)
    palette(page, "Run stale steps in this kernel", "nbflow:run-stale-kernel")

    during = wait_until(lambda: (s := run_snapshot(page))["badges"].get("c") == "failed" and s, 120, page=page)
    assert during["run"] == "running", during  # before the run ends...
    assert during["badges"]["slow"] in ("queued", "running"), during  # ...with the slow step still to finish
    wait_until(lambda: run_snapshot(page)["badges"].get("slow") == "running", 60, page=page)
    assert run_snapshot(page)["badges"]["c"] == "failed"

    wait_until(lambda: run_snapshot(page)["run"] == "failed", 180, page=page)
    badges = run_snapshot(page)["badges"]
    assert (badges["c"], badges["d"], badges["slow"]) == ("failed", "skipped", "done"), badges
    assert graph_states(page) == {"c": "failed", "d": "skipped", "slow": "done"}
