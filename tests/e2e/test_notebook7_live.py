"""The notebook's own kernel in the pipeline (issue 17) in a real Notebook 7 (``jupyter
notebook``'s app, served by the same server as ``tests/e2e/test_widget.py``'s Notebook 7
test), in headless Chromium:

* after a CLI run of the wine example, the extension has loaded nbflow in the notebook's
  kernel, *Restore pipeline state into this kernel* from Notebook 7's command palette puts
  the run's values there (its outcome a notification and the side panel's status line), a
  new cell uses ``model``, and the ``%nbflow`` magics work in its cells;
* *Restore up to this step*, *Run up to this step in this kernel* and *Run stale steps in
  this kernel* from the palette, end to end: outputs in the cells, the values in the
  kernel, each outcome a notification; a failing step's names the step and its one line.
"""

from __future__ import annotations

import json

import pytest

from .conftest import screenshot
from .jupyterlab import lab_server, wait_until  # noqa: F401 - fixture
from .test_jupyterlab_extension import badge_states
from .test_jupyterlab_live import (
    cli_run,
    editor_model,
    last_output,
    outputs_text,
    palette,
    run_cell_below,
    step_cell,
    step_outputs,
    three_steps,
    type_into,
    wait_status,
    wait_toast,
)

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
    # The outcome is a notification, as in JupyterLab, and on the side panel's status line.
    palette(page, "Restore pipeline state", "nbflow:restore-kernel")
    wait_toast(page, "success", f"restored {', '.join(STEPS)} into the kernel")
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


def test_run_stale_run_up_to_and_restore_up_to_a_step_in_notebook_7(lab_server, page):  # noqa: F811
    path, first = three_steps(lab_server.root, "upto7.ipynb")
    saved = path.read_bytes()
    lab_server.open_in_notebook7(page, "upto7.ipynb")
    wait_until(lambda: badge_states(page) == {"a": "fresh", "b": "fresh", "c": "fresh"}, 60, page=page)

    # Restore up to b: a's and b's values and cached outputs; c's stay out.
    palette(page, "Restore up to this step", "nbflow:restore-to-kernel", "b")
    wait_toast(page, "success", "restored a, b into the kernel")
    assert step_outputs(page, "abc") == {"a": "a ran\n", "b": "b [0, 2, 4]\n", "c": ""}
    assert step_cell(editor_model(page)["json"], "c")["outputs"] == []  # none at all

    # c edited (not saved), run up to c: c runs in the kernel, its output in its cell.
    type_into(page, "c", "sum(y)", "sum(y) + 1")
    wait_until(lambda: badge_states(page)["c"] == "stale", 30, page=page)
    palette(page, "Run up to this step in this kernel", "nbflow:run-to-kernel", "c")
    toast = wait_toast(page, "success", f"run {first + 1} in the kernel done")
    assert "1 done" in toast and "failed" not in toast, toast
    assert outputs_text(step_cell(editor_model(page)["json"], "c")) == "c 7\n"

    # a edited: run stale steps runs a, b and c through the notebook's session.
    type_into(page, "a", "range(n)", "range(n + 1)")
    wait_until(lambda: badge_states(page) == {"a": "stale", "b": "stale", "c": "stale"}, 30, page=page)
    palette(page, "Run stale steps in this kernel", "nbflow:run-stale-kernel")
    toast = wait_toast(page, "success", f"run {first + 2} in the kernel done")
    assert "(3 done)" in toast, toast
    assert step_outputs(page, "abc") == {"a": "a ran\n", "b": "b [0, 2, 4, 6]\n", "c": "c 13\n"}
    ran = editor_model(page)["json"]
    assert all(isinstance(step_cell(ran, s)["execution_count"], int) for s in "abc")

    # A step that raises: an error notification naming the step and its one line.
    type_into(page, "b", "print('b', y)", "raise ValueError('boom')")
    wait_until(lambda: badge_states(page)["b"] == "stale", 30, page=page)
    palette(page, "Run stale steps in this kernel", "nbflow:run-stale-kernel")
    toast = wait_toast(page, "error", f"run {first + 3} in the kernel failed")
    assert toast.strip().endswith("b: ValueError: boom"), toast
    assert "ValueError" in json.dumps(step_cell(editor_model(page)["json"], "b")["outputs"])
    screenshot(page, "live-notebook7-run-failed")

    # The values are the kernel's (probed last: a cell added below c is part of c's code).
    run_and_read(page, "print('held', x, y, z)", "held ")
    assert last_output(page).strip() == "held [0, 1, 2, 3] [0, 2, 4, 6] 13"
    assert path.read_bytes() == saved  # nothing saved behind the user's back
    assert page.outside == []
    assert not [e for e in page.console_errors if "nbflow" in e.lower()], page.console_errors
