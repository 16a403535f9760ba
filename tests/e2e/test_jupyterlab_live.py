"""The notebook's own kernel in the pipeline (issue 17), in a real JupyterLab 4 and headless Chromium.

* Staleness as you type: editing a step's code turns its badge (and its dependants')
  stale from the unsaved notebook, before any save.
* A finished CLI run's outputs are written into the open notebook's cells through the
  notebook model: unsaved, undoable (Ctrl-Z), a cell edited since the run skipped and named.
* The wine example, as a new user would: after a CLI run, *Restore pipeline state into this
  kernel*; a new cell uses the restored ``model``; an edit of ``train`` makes ``train`` and
  ``evaluate`` stale before saving; *Run stale steps in this kernel* runs them through the
  notebook's session (fresh outputs in their cells), the side panel ends done, and ``nbflow
  runs`` lists the run with 3 cached and 2 done. Nothing is saved behind the user's back.
* A step tagged ``retry:1`` that fails once (a file counts) is run again by the kernel
  (``step_finished``, the loop ``%nbflow run`` uses): the run ends done, its cell shows the
  retry's outputs, the failed attempt is in ``nbflow show``.
* Each command's outcome is a notification (an error one names the failed step and its line).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ..conftest import code, step, write_notebook
from .conftest import screenshot
from .jupyterlab import lab_server, wait_until  # noqa: F401 - fixture
from .test_jupyterlab_extension import badge_states, panel_states

BIN = Path(sys.executable).parent

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def open_alone(lab, page, notebook: str) -> None:
    """``lab.open`` in a workspace of the notebook's own: the lab server is shared by this
    module's tests, and the default workspace would reopen the notebooks of earlier tests."""
    workspace = notebook.replace(".", "-")
    page.goto(f"{lab.url}lab/workspaces/{workspace}/tree/{notebook}?token={lab.token}")
    page.wait_for_selector(".jp-Notebook", timeout=90_000)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", state="attached", timeout=90_000)
    page.wait_for_function(
        "() => (document.querySelector('#jp-main-statusbar') || {}).innerText?.includes('| Idle')",
        timeout=90_000,
    )


def show_run_of(root: Path, told: str) -> str:
    """What ``nbflow show`` prints for the run a notification or status line ``told`` names."""
    run_id = re.search(r"run (\d+) in the kernel", told).group(1)
    done = subprocess.run([str(BIN / "nbflow"), "show", run_id], cwd=root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def cli_run(root: Path, notebook: str) -> int:
    """Run ``notebook`` with the CLI; the run's id (the module's notebooks share one run store)."""
    done = subprocess.run([str(BIN / "nbflow"), "run", notebook], cwd=root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return int(re.search(r"run (\d+) of", done.stdout + done.stderr).group(1))


def palette(page, label: str, command: str, step_name: str | None = None) -> None:
    """Run ``command`` from the command palette (JupyterLab's or Notebook 7's), as a user
    types ``label``; with ``step_name``, that step's cell active first (the "this step"
    commands act on the active cell's step)."""
    if step_name is None:
        page.locator(".jp-Notebook").click(position={"x": 5, "y": 5})
    else:
        cell_of(page, step_name).locator(".jp-InputPrompt").click()
    page.keyboard.press("Escape")
    page.keyboard.press("Control+Shift+c")
    page.locator(".lm-CommandPalette-input").fill(label)
    page.locator(f".lm-CommandPalette-item[data-command='{command}']").first.click()


def editor_model(page) -> dict:
    return page.evaluate("() => { const m = window.nbflowLab.notebook(); return {json: m.toJSON(), dirty: m.dirty}; }")


def cell_of(page, name: str):
    return page.locator(f".jp-Notebook .jp-Cell:has(> .nbflow-badge[data-step='{name}'])")


def type_into(page, name: str, old: str, new: str) -> None:
    """Replace ``old`` by ``new`` in step ``name``'s cell by typing, as a user does."""
    editor = cell_of(page, name).locator(".cm-content")
    editor.click()
    text = editor.inner_text()
    assert old in text, text
    page.keyboard.press("Control+Home")
    before = text[: text.index(old)]
    for _ in before.split("\n")[:-1]:
        page.keyboard.press("ArrowDown")
    page.keyboard.press("Home")
    for _ in range(len(before.split("\n")[-1])):
        page.keyboard.press("ArrowRight")
    for _ in range(len(old)):
        page.keyboard.press("Delete")
    page.keyboard.type(new)


def outputs_text(cell: dict) -> str:
    parts = []
    for o in cell.get("outputs", []):
        text = o.get("text") or o.get("data", {}).get("text/plain", "")
        parts.append("".join(text) if isinstance(text, list) else text)
    return "".join(parts)


def panel_status(page) -> str:
    return page.inner_text("#nbflow-graph-panel .nbflow-Panel-status")


def wait_status(page, text: str, timeout: float = 120) -> str:
    """Wait until the side panel's status line says ``text``; fail saying what it says."""
    try:
        wait_until(lambda: text in panel_status(page), timeout, 0.2, page=page)
    except AssertionError:
        toasts = page.locator(".jp-toast-container").all_inner_texts()
        raise AssertionError(f"the panel says {panel_status(page)!r}, not {text!r}; toasts: {toasts}") from None
    return panel_status(page)


def toasts(page, kind: str) -> list[str]:
    """The texts of the notifications of ``kind`` (success, warning, error) shown as toasts."""
    return page.locator(f".jp-Notification-Toast-{kind}").all_inner_texts()


def wait_toast(page, kind: str, text: str, timeout: float = 120) -> str:
    """Wait for a ``kind`` notification saying ``text`` (the outcome of a command); its text."""
    try:
        return wait_until(lambda: next((t for t in toasts(page, kind) if text in t), None), timeout, 0.2, page=page)
    except AssertionError:
        shown = {k: toasts(page, k) for k in ("success", "warning", "error", "info")}
        raise AssertionError(f"no {kind} notification says {text!r}; shown: {shown}") from None


def step_cell(notebook: dict, name: str) -> dict:
    return next(c for c in notebook["cells"] if f"step:{name}" in c["metadata"].get("tags", []))


def step_outputs(page, names: str | list[str]) -> dict[str, str]:
    """The text each of steps ``names`` shows in its cell, in the editor's notebook."""
    notebook = editor_model(page)["json"]
    return {name: outputs_text(step_cell(notebook, name)) for name in names}


def test_badges_turn_stale_as_you_type_before_saving(lab_server, page):  # noqa: F811
    path = write_notebook(
        lab_server.root / "typing.ipynb",
        [code("n = 3", "parameters"), step("a", "x = list(range(n))"), step("b", "y = [v * 2 for v in x]")],
    )
    cli_run(lab_server.root, "typing.ipynb")
    saved = path.read_bytes()
    open_alone(lab_server, page, "typing.ipynb")
    page.wait_for_selector(".nbflow-badge[data-step='b'][data-state='fresh']", timeout=30_000)
    assert badge_states(page) == {"a": "fresh", "b": "fresh"}

    type_into(page, "a", "range(n)", "range(n + 1)")
    # Debounced (300 ms) and planned from the unsaved notebook: a, and b that reads x, are stale.
    wait_until(lambda: badge_states(page) == {"a": "stale", "b": "stale"}, 20, page=page)
    assert editor_model(page)["dirty"] and path.read_bytes() == saved  # not saved
    page.locator(".jp-SideBar [data-id='nbflow-graph-panel']").click()
    wait_until(lambda: panel_states(page) == {"a": "stale", "b": "stale"}, 20, page=page)
    screenshot(page, "live-stale-as-you-type")

    # Typing it back makes them fresh again, still without saving.
    type_into(page, "a", "range(n + 1)", "range(n)")
    wait_until(lambda: badge_states(page) == {"a": "fresh", "b": "fresh"}, 20, page=page)
    assert path.read_bytes() == saved
    assert not [e for e in page.console_errors if "nbflow" in e.lower()], page.console_errors


def test_write_a_cli_runs_outputs_into_the_notebook_undoably(lab_server, page):  # noqa: F811
    path = write_notebook(
        lab_server.root / "outs.ipynb",
        [
            code("import math"),
            step("load", "data = list(range(4))\nprint('loaded', len(data))"),
            step("square", "sq = [x * x for x in data]\nprint('squares', sq)"),
            step("total", "print('total', sum(sq))"),
        ],
    )
    run_id = cli_run(lab_server.root, "outs.ipynb")
    saved = path.read_bytes()
    open_alone(lab_server, page, "outs.ipynb")
    page.wait_for_selector(".nbflow-badge[data-step='total'][data-state='fresh']", timeout=30_000)
    type_into(page, "total", "'total'", "'sum'")  # edited since the run: must not get its outputs

    palette(page, "Write a run's outputs", "nbflow:write-outputs")
    page.locator(".jp-Dialog select").select_option(label=f"run {run_id} (done)")
    page.locator(".jp-Dialog .jp-mod-accept").click()
    page.wait_for_selector(".jp-Notebook .jp-OutputArea-output:has-text('squares [0, 1, 4, 9]')", timeout=30_000)
    model = editor_model(page)["json"]
    assert outputs_text(step_cell(model, "load")) == "loaded 4\n"
    assert outputs_text(step_cell(model, "square")) == "squares [0, 1, 4, 9]\n"
    assert outputs_text(step_cell(model, "total")) == "" and "'sum'" in "".join(step_cell(model, "total")["source"])
    assert isinstance(step_cell(model, "load")["execution_count"], int)
    message = page.inner_text("#nbflow-graph-panel .nbflow-Panel-message")
    assert f"skipped cell 4 (step total): code changed since run {run_id}" in message, message
    assert path.read_bytes() == saved  # the file is not touched
    screenshot(page, "live-run-outputs-written")

    # One Ctrl-Z in command mode takes the outputs back; the edit of total stays.
    page.locator(".jp-Notebook .jp-Cell .jp-InputPrompt").first.click()
    page.keyboard.press("Escape")
    page.keyboard.press("Control+z")
    wait_until(lambda: outputs_text(step_cell(editor_model(page)["json"], "square")) == "", 10, page=page)
    model = editor_model(page)["json"]
    assert outputs_text(step_cell(model, "load")) == ""
    assert "'sum'" in "".join(step_cell(model, "total")["source"])
    assert not [e for e in page.console_errors if "nbflow" in e.lower()], page.console_errors


def run_cell_below(page, source: str) -> None:
    """Add a code cell at the end with ``source`` and run it (Shift+Enter)."""
    last = page.locator(".jp-Notebook .jp-Cell").last
    last.locator(".jp-InputPrompt").click()
    page.keyboard.press("Escape")
    page.keyboard.press("b")
    page.keyboard.press("Enter")
    page.keyboard.type(source)
    page.keyboard.press("Shift+Enter")


def test_wine_restore_use_edit_and_run_stale_in_the_notebook_kernel(lab_server, page):  # noqa: F811
    root = lab_server.root
    cli_run(root, "wine_classifier.ipynb")
    path = root / "wine_classifier.ipynb"
    saved = path.read_bytes()
    open_alone(lab_server, page, "wine_classifier.ipynb")
    names = ["load", "clean", "features", "train", "evaluate"]
    wait_until(lambda: badge_states(page) == dict.fromkeys(names, "fresh"), 60, page=page)

    palette(page, "Restore pipeline state", "nbflow:restore-kernel")
    wait_status(page, "restored load, clean, features, train, evaluate into the kernel")
    model = editor_model(page)["json"]
    assert "accuracy:" in outputs_text(step_cell(model, "evaluate"))  # cached outputs in the cell
    assert "rows kept" in outputs_text(step_cell(model, "clean"))

    run_cell_below(page, "print('score', model.score(X_test, y_test))")
    page.wait_for_selector(".jp-Notebook .jp-OutputArea-output:has-text('score 0.')", timeout=60_000)

    type_into(page, "train", "random_state=seed)", "random_state=seed + 1)")
    wait_until(
        lambda: (
            {k: v for k, v in badge_states(page).items() if v == "stale"} == {"train": "stale", "evaluate": "stale"}
        ),
        30,
        page=page,
    )
    assert path.read_bytes() == saved and editor_model(page)["dirty"]
    screenshot(page, "live-wine-train-edited")

    before = editor_model(page)["json"]
    counts_before = {n: step_cell(before, n)["execution_count"] for n in ("train", "evaluate")}
    # From the cell's context menu (the toolbar and the palette have it too).
    cell_of(page, "evaluate").locator(".jp-InputPrompt").click(button="right")
    page.locator(".lm-Menu-item[data-command='nbflow:run-stale-kernel']").click()
    status = wait_status(page, "in the kernel done", 240)
    assert page.get_attribute("#nbflow-graph-panel", "data-run-status") == "done", status
    after = editor_model(page)["json"]
    for name in ("train", "evaluate"):
        count = step_cell(after, name)["execution_count"]
        assert isinstance(count, int) and count != counts_before[name], (
            name,
            count,
            panel_status(page),
            panel_states(page),
        )
    assert "accuracy:" in outputs_text(step_cell(after, "evaluate"))
    assert "random_state=seed + 1" in "".join(step_cell(after, "train")["source"])
    assert panel_states(page) == {
        "load": "cached",
        "clean": "cached",
        "features": "cached",
        "train": "done",
        "evaluate": "done",
    }
    assert "in the kernel done" in page.inner_text("#nbflow-graph-panel .nbflow-Panel-status")
    screenshot(page, "live-wine-run-stale-in-kernel", docs="jupyterlab-live-kernel.png")
    assert path.read_bytes() == saved  # nothing saved behind the user's back

    runs = subprocess.run(
        [str(BIN / "nbflow"), "runs", "wine_classifier.ipynb"], cwd=root, capture_output=True, text=True, check=True
    ).stdout
    newest = runs.splitlines()[2]
    assert "done" in newest and "3 cached" in newest and "2 done" in newest, runs

    # The fresh state is the kernel's: the new cell sees the retrained model.
    run_cell_below(page, "print('seed used', model.random_state)")
    page.wait_for_selector(".jp-Notebook .jp-OutputArea-output:has-text('seed used 1')", timeout=60_000)
    assert not [e for e in page.console_errors if "nbflow" in e.lower()], page.console_errors
    assert json.loads(path.read_text()) == json.loads(saved)


def last_output(page) -> str:
    """The text of the newest output (Shift+Enter leaves a new empty cell at the end)."""
    outputs = page.locator(".jp-Notebook .jp-OutputArea-output")
    return outputs.last.inner_text() if outputs.count() else ""


def test_nbflow_is_loaded_silently_in_the_kernel_at_start_and_restart(lab_server, page):  # noqa: F811
    write_notebook(lab_server.root / "autoload.ipynb", [step("a", "x = 1")])
    open_alone(lab_server, page, "autoload.ipynb")
    probe = "print('loaded', 'nbflow' in get_ipython().extension_manager.loaded, 'history', len(In))"
    # The first cell the user runs finds the extension there; the load left no history entry.
    run_cell_below(page, probe)
    page.wait_for_selector(".jp-Notebook .jp-OutputArea-output:has-text('loaded True history 2')", timeout=60_000)

    # After a restart it is loaded again.
    page.locator(".jp-NotebookPanel-toolbar [data-command='notebook:restart-kernel']").click()
    page.locator(".jp-Dialog .jp-mod-accept").click()
    page.wait_for_selector(".jp-Dialog", state="detached")
    page.wait_for_function(
        "() => (document.querySelector('#jp-main-statusbar') || {}).innerText?.includes('| Idle')", timeout=90_000
    )
    page.evaluate("() => { for (const c of window.nbflowLab.notebook().sharedModel.cells) c.clearOutputs?.(); }")
    run_cell_below(page, probe)
    wait_until(lambda: last_output(page).strip() == "loaded True history 2", 60, page=page)
    run_cell_below(page, "%nbflow status")
    wait_until(lambda: last_output(page).strip() == "a  not in this kernel", 60, page=page)
    assert not [e for e in page.console_errors if "nbflow" in e.lower()], page.console_errors


def context_menu(page, step_name: str, command: str) -> None:
    cell_of(page, step_name).locator(".jp-InputPrompt").click(button="right")
    page.locator(f".lm-Menu-item[data-command='{command}']").click()


def three_steps(root: Path, name: str) -> tuple[Path, int]:
    """Notebook ``name`` of steps a -> b -> c (parameter n = 3) run by the CLI: its path and the run's id."""
    path = write_notebook(
        root / name,
        [
            code("n = 3", "parameters"),
            step("a", "x = list(range(n))\nprint('a ran')"),
            step("b", "y = [v * 2 for v in x]\nprint('b', y)"),
            step("c", "z = sum(y)\nprint('c', z)"),
        ],
    )
    return path, cli_run(root, name)


def test_restore_up_to_a_step_run_up_to_a_step_and_a_failing_step(lab_server, page):  # noqa: F811
    path, _ = three_steps(lab_server.root, "upto.ipynb")
    saved = path.read_bytes()
    open_alone(lab_server, page, "upto.ipynb")
    wait_until(lambda: badge_states(page) == {"a": "fresh", "b": "fresh", "c": "fresh"}, 30, page=page)

    # Restore up to b (the driver's restore-to mode): what a run up to b leaves -- a's and b's
    # values, their cells showing their cached outputs; c's values and outputs stay out.
    context_menu(page, "b", "nbflow:restore-to-kernel")
    status = wait_status(page, "restored a, b into the kernel")
    assert "not restored" not in status and "restored a, b, c" not in status, status
    run_cell_below(page, "print('held', [k for k in ('x', 'y', 'z') if k in globals()], x, y)")
    wait_until(lambda: last_output(page).strip() == "held ['x', 'y'] [0, 1, 2] [0, 2, 4]", 60, page=page)
    assert step_outputs(page, "abc") == {"a": "a ran\n", "b": "b [0, 2, 4]\n", "c": ""}
    assert step_cell(editor_model(page)["json"], "c")["outputs"] == []  # none at all

    # c edited (not saved), then run up to c in the kernel: c runs, a and b are restored.
    type_into(page, "c", "sum(y)", "sum(y) + 1")
    wait_until(lambda: badge_states(page)["c"] == "stale", 30, page=page)
    context_menu(page, "c", "nbflow:run-to-kernel")
    status = wait_status(page, "in the kernel done")
    assert "1 done" in status and "failed" not in status, status
    assert outputs_text(step_cell(editor_model(page)["json"], "c")) == "c 7\n"

    # A step that raises: the run ends failed, naming the step and the error; c does not run.
    type_into(page, "b", "print('b', y)", "raise ValueError('boom')")
    wait_until(lambda: badge_states(page)["b"] == "stale", 30, page=page)
    palette(page, "Run stale steps in this kernel", "nbflow:run-stale-kernel")
    status = wait_status(page, "in the kernel failed")
    assert "b: ValueError: boom" in status, status
    # the same line as an error notification (kept until dismissed), as in Notebook 7
    assert wait_toast(page, "error", "in the kernel failed").strip() == status.strip()
    assert page.get_attribute("#nbflow-graph-panel", "data-run-status") == "failed"
    assert panel_states(page)["b"] == "failed", panel_states(page)
    assert "ValueError" in json.dumps(step_cell(editor_model(page)["json"], "b")["outputs"])
    assert path.read_bytes() == saved
    assert not [e for e in page.console_errors if "nbflow" in e.lower()], page.console_errors


def test_a_map_step_and_a_timeout_run_in_the_notebook_kernel(lab_server, page):  # noqa: F811
    path = write_notebook(
        lab_server.root / "fanout.ipynb",
        [
            code("words = ['a', 'bb']", "parameters"),
            step("load", "upper = [w.upper() for w in words]"),
            step("measure", "size = len(word) * 10\nprint('measured', word, size)", "map:word=upper"),
            step("total", "t = sum(size)\nprint('total', t)"),
            step("slow", "import time\nfor _ in range(600):\n    time.sleep(0.1)\nlate = t", "timeout:2"),
        ],
    )
    saved = path.read_bytes()
    open_alone(lab_server, page, "fanout.ipynb")

    # measure runs in the kernel, element by element, and its cell gets its outputs; slow's
    # timeout interrupts it in the kernel and the run ends failed, saying so.
    palette(page, "Run stale steps in this kernel", "nbflow:run-stale-kernel")
    status = wait_status(page, "in the kernel failed")
    assert "(3 done, 1 failed)" in status and status.endswith("slow: timed out after 2 s (interrupted)"), status
    assert panel_states(page) == {"load": "done", "measure": "done", "total": "done", "slow": "failed"}
    notebook = editor_model(page)["json"]
    assert outputs_text(step_cell(notebook, "measure")) == (
        "[nbflow] element 0: 'A'\nmeasured A 10\n[nbflow] element 1: 'BB'\nmeasured BB 20\n"
    )
    assert outputs_text(step_cell(notebook, "total")) == "total 30\n"
    assert "KeyboardInterrupt" in json.dumps(step_cell(notebook, "slow")["outputs"])
    run_cell_below(page, "print('held', size, t, 'word' in globals())")
    wait_until(lambda: last_output(page).strip() == "held [10, 20] 30 False", 60, page=page)
    assert path.read_bytes() == saved
    assert not [e for e in page.console_errors if "nbflow" in e.lower()], page.console_errors


def untouched(page, path: Path, saved: bytes) -> None:
    """Nothing saved behind the user's back, and no nbflow error in the browser's console."""
    assert path.read_bytes() == saved
    assert not [e for e in page.console_errors if "nbflow" in e.lower()], page.console_errors


def test_a_tagged_step_failing_once_is_retried_from_jupyterlabs_command(lab_server, page):  # noqa: F811
    marker = lab_server.root / "flaky-failed-once"
    path = write_notebook(
        lab_server.root / "flaky.ipynb",
        [
            step("load", "data = [1, 2, 3]"),
            step(
                "flaky",
                f"import pathlib\nm = pathlib.Path({str(marker)!r})\ndata.append(99)\nprint('attempt sees', len(data))\n"
                "if not m.exists():\n    m.touch()\n    raise ConnectionError('network blip')\ntotal = sum(data)",
                "retry:1:0",
            ),
        ],
    )
    saved = path.read_bytes()
    open_alone(lab_server, page, "flaky.ipynb")

    # The cell raises once (the counter is a file); the kernel runs flaky again, with load's
    # data restored (the failed attempt's append does not leak), and the run ends done.
    palette(page, "Run stale steps in this kernel", "nbflow:run-stale-kernel")
    toast = wait_toast(page, "success", "in the kernel done")
    assert toast.strip().endswith("(2 done)"), toast
    assert marker.exists()
    assert panel_states(page) == {"load": "done", "flaky": "done"}
    cell = step_cell(editor_model(page)["json"], "flaky")
    assert outputs_text(cell) == "attempt sees 4\n"  # the retry's outputs replaced the failed attempt's
    assert "ConnectionError" not in json.dumps(cell["outputs"])
    shown = show_run_of(lab_server.root, toast)
    assert "attempt 1 of 2 failed (ConnectionError: network blip)" in shown, shown
    run_cell_below(page, "print('total', total)")
    wait_until(lambda: last_output(page).strip() == "total 105", 60, page=page)
    untouched(page, path, saved)


def test_interrupting_a_step_from_jupyterlab_cancels_it_without_a_retry(lab_server, page):  # noqa: F811
    path = write_notebook(
        lab_server.root / "stopped.ipynb",
        [
            step("load", "data = [1, 2, 3]"),
            step("slow", "import time\nprint('slow starts')\nfor _ in range(600):\n    time.sleep(0.1)", "retry:1:0"),
        ],
    )
    saved = path.read_bytes()
    open_alone(lab_server, page, "stopped.ipynb")
    palette(page, "Run stale steps in this kernel", "nbflow:run-stale-kernel")
    page.wait_for_selector(".jp-Notebook .jp-OutputArea-output:has-text('slow starts')", timeout=120_000)

    # The kernel's stop button: the run ends cancelled, a warning notification says so, and
    # slow is not run again although it is tagged retry:1.
    page.locator(".jp-NotebookPanel-toolbar [data-command='notebook:interrupt-kernel']").click()
    toast = wait_toast(page, "warning", "in the kernel cancelled")
    assert toast.strip().endswith("slow: interrupted (KeyboardInterrupt)"), toast
    assert panel_states(page)["slow"] == "cancelled", panel_states(page)
    assert page.get_attribute("#nbflow-graph-panel", "data-run-status") == "cancelled"
    assert "KeyboardInterrupt" in json.dumps(step_cell(editor_model(page)["json"], "slow")["outputs"])
    shown = show_run_of(lab_server.root, toast)
    assert "attempt 1 of 2" not in shown, shown
    untouched(page, path, saved)
