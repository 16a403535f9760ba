"""The pure parts of ``nbflow.live`` and the live executor, without a kernel: the driver's
JSON plumbing, the proof that the frontend ran a step's own cells, plan options; and the
output recording on a real (in-process) IPython shell."""

from __future__ import annotations

import json

import pytest

from nbflow import load_pipeline
from nbflow.errors import PipelineError
from nbflow.live import driver
from nbflow.notebook import Cell

from .conftest import code, step


def test_call_answers_json_and_one_line_errors():
    assert json.loads(driver.call("nope", "{}")) == {
        "error": "no driver function 'nope' (choose from begin, restore, step_started, step_finished, run_step, finish, status)"
    }
    assert json.loads(driver.call("finish", "[1]")) == {
        "error": "finish: bad arguments: the arguments must be a JSON object"
    }
    assert json.loads(driver.call("finish", "{not json"))["error"].startswith("finish: bad arguments: ")
    assert "unexpected keyword argument 'colour'" in json.loads(driver.call("finish", '{"colour": 1}'))["error"]


def test_unproven_cells_are_named():
    cells = [Cell(3, "a", "code", "x = 1", ()), Cell(4, "b", "code", "y = x", ())]
    assert driver.unproven_cells(cells, [("a", "x = 1"), ("b", "y = x")]) is None
    assert driver.unproven_cells(cells, []) is None  # nothing seen: no cell ids, the frontend is trusted
    assert driver.unproven_cells(cells, [("a", "x = 2"), ("b", "y = x")]) == (
        "the code executed is not the step's code in the notebook nbflow was given"
    )
    assert driver.unproven_cells(cells, [("a", "x = 1"), (None, "z = 0"), ("b", "y = x")]) is not None


def test_plan_options_per_mode(make_notebook):
    pipeline = load_pipeline(make_notebook([step("a", "x = 1"), step("b", "y = x")]))
    assert driver.plan_options(pipeline, "stale", None) == {}
    assert driver.plan_options(pipeline, "restore", None) == {}
    assert driver.plan_options(pipeline, "to", "b") == {"only": ["b"], "force": []}
    assert driver.plan_options(pipeline, "only", "b") == {"only": ["b"], "force": ["b"]}
    assert driver.plan_options(pipeline, "restore-to", "a") == {}  # restores only: every key as planned
    with pytest.raises(PipelineError, match="mode 'restore-to' needs a step"):
        driver.plan_options(pipeline, "restore-to", None)
    with pytest.raises(PipelineError, match="--restore-to c: no such step"):
        driver.plan_options(pipeline, "restore-to", "c")
    with pytest.raises(PipelineError, match="unknown mode 'up'"):
        driver.plan_options(pipeline, "up", None)
    with pytest.raises(PipelineError, match="mode 'to' needs a step"):
        driver.plan_options(pipeline, "to", None)
    with pytest.raises(PipelineError, match="no such step"):
        driver.plan_options(pipeline, "only", "c")


def test_resolve_notebook_tries_the_file_name_in_the_working_folder(make_notebook, tmp_path, monkeypatch):
    path = make_notebook([code("x = 1")])
    monkeypatch.chdir(tmp_path)
    assert driver.resolve_notebook(f"some/server/folder/{path.name}") == path.resolve()
    with pytest.raises(PipelineError, match="no such notebook"):
        driver.resolve_notebook("gone.ipynb")


def test_record_outputs_keeps_what_a_cell_shows_and_still_shows_it(capsys):
    from IPython.core.interactiveshell import InteractiveShell

    from nbflow.executors.user_kernel import record_outputs

    shell = InteractiveShell.instance()
    with record_outputs(shell) as recorded:
        result = shell.run_cell("print('hello')\n1 + 1", store_history=False)
    assert result.success
    outputs = recorded.finish()
    # (a terminal shell's display hook also prints its "Out[0]: " prompt; a kernel's does not)
    assert outputs[0]["name"] == "stdout" and outputs[0]["text"].startswith("hello\n")
    assert outputs[1]["output_type"] == "execute_result" and outputs[1]["data"]["text/plain"] == "2"
    assert "hello" in capsys.readouterr().out  # shown as usual
    with record_outputs(shell) as recorded:
        shell.run_cell("1 / 0", store_history=False)
    errors = [o for o in recorded.finish() if o["output_type"] == "error"]
    assert [e["ename"] for e in errors] == ["ZeroDivisionError"]
    # everything put back afterwards
    assert "publish" not in vars(shell.display_pub) and "_showtraceback" not in vars(shell)
    assert "write_format_data" not in vars(shell.displayhook)


def test_the_timeout_watchdog_interrupts_only_an_armed_cell_past_its_deadline():
    import time

    from nbflow.executors.live_watchdog import Watchdog

    dog = Watchdog(grace=60)
    try:
        dog.start(0.1)
        ended = time.monotonic() + 1.0
        while time.monotonic() < ended:  # past the deadline, but no cell of the step runs
            time.sleep(0.05)
        assert not dog.fired
        with pytest.raises(KeyboardInterrupt):
            with dog.cell():
                for _ in range(600):
                    time.sleep(0.05)
        assert dog.fired and dog.message() == "timed out after 0.1 s (interrupted)"
        dog.start(None)  # the next step has no timeout
        with dog.cell():
            time.sleep(0.5)
        assert not dog.fired
    finally:
        dog.close()
