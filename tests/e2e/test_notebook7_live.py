"""The notebook's own kernel in the pipeline (issue 17) in a real Notebook 7 (``jupyter
notebook``'s app, served by the same server as ``tests/e2e/test_widget.py``'s Notebook 7
test), in headless Chromium: after a CLI run of the wine example, the extension has loaded
nbflow in the notebook's kernel, *Restore pipeline state into this kernel* from Notebook 7's
command palette puts the run's values there (its outcome on the side panel's status line:
Notebook 7 shows no toasts), a new cell uses ``model``, and the ``%nbflow`` magics work in
its cells.
"""

from __future__ import annotations

import pytest

from .conftest import screenshot
from .jupyterlab import lab_server, wait_until  # noqa: F401 - fixture
from .test_jupyterlab_live import cli_run, last_output, run_cell_below, wait_status

pytestmark = [pytest.mark.browser, pytest.mark.slow]

STEPS = ["load", "clean", "features", "train", "evaluate"]


def run_and_read(page, source: str, expected: str, timeout: float = 120) -> str:
    """Run ``source`` in a new cell at the end; the newest output once it contains ``expected``."""
    run_cell_below(page, source)
    try:
        return wait_until(lambda: expected in (text := last_output(page)) and text, timeout, 0.2, page=page)
    except AssertionError:
        raise AssertionError(f"{source!r} shows {last_output(page)!r}, not {expected!r}") from None


def test_restore_command_and_magics_in_notebook_7(lab_server, page):  # noqa: F811
    run_id = cli_run(lab_server.root, "wine_classifier.ipynb")
    lab_server.open_in_notebook7(page, "wine_classifier.ipynb")

    # Notebook 7's command palette has the command, and it restores the run's values (cells
    # are added only after it: a cell below evaluate's would be part of that step's code).
    # Notebook 7 shows no toasts: the outcome is on the side panel's status line.
    page.locator(".jp-Notebook").click(position={"x": 5, "y": 5})
    page.keyboard.press("Escape")
    page.keyboard.press("Control+Shift+c")
    page.locator(".lm-CommandPalette-input").fill("Restore pipeline state")
    page.locator(".lm-CommandPalette-item[data-command='nbflow:restore-kernel']").first.click()
    wait_status(page, f"restored {', '.join(STEPS)} into the kernel")

    # The extension had loaded nbflow in the kernel when it started.
    run_and_read(page, "print('loaded', 'nbflow' in get_ipython().extension_manager.loaded)", "loaded True")
    score = run_and_read(page, "print('score', model.score(X_test, y_test))", "score ")
    assert 0.5 < float(score.split()[-1]) <= 1.0, score
    status = run_and_read(page, "%nbflow status", "evaluate")
    assert status.splitlines() == [f"{s.ljust(8)}  current values (restored, run {run_id})" for s in STEPS], status

    # The magics themselves, in Notebook 7's cells.
    again = run_and_read(page, "del model\n%nbflow restore", "restored from")
    assert again.strip() == f"restored from train (run {run_id}): model", again
    run_and_read(page, "%nbflow run --stale", "nothing to run: the steps asked for are fresh")
    # The other live commands are in Notebook 7's palette too.
    page.locator(".jp-Notebook").click(position={"x": 5, "y": 5})
    page.keyboard.press("Escape")
    page.keyboard.press("Control+Shift+c")
    page.locator(".lm-CommandPalette-input").fill("this")
    listed = {
        c: page.locator(f".lm-CommandPalette-item[data-command='nbflow:{c}']").count()
        for c in ("restore-kernel", "restore-to-kernel", "run-stale-kernel", "run-to-kernel")
    }
    assert all(listed.values()), listed
    page.keyboard.press("Escape")
    screenshot(page, "live-notebook7-restore")
    assert page.outside == []
    assert not [e for e in page.console_errors if "nbflow" in e.lower()], page.console_errors
