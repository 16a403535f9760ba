"""Data checks with real kernels, on both executors: a ``check:STEP`` cell runs on STEP's
values right after it; a failed check fails the run with one line naming notebook, cell,
step and assertion and skips STEP's dependants; ``check-warn:STEP`` only warns; a check is
keyed apart from its step, so editing only the check re-runs the check on the cached values."""

from __future__ import annotations

import nbformat
import pytest

import nbflow
from nbflow.events import CheckFailed, RunWarning
from nbflow.report import build_report
from nbflow.view import GraphState, graph_model

from ..conftest import code, step, write_notebook
from .test_fidelity_cases import edit

pytestmark = pytest.mark.slow


def check(source: str, target: str, warn: bool = False):
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["tags"] = [f"check{'-warn' if warn else ''}:{target}"]
    return cell


def cells(load_check: str = "assert len(rows) == 10, f'rows dropped: {len(rows)}'"):
    return [
        code("import math"),
        step("load", "rows = list(range(10))"),
        step("clean", "kept = [r for r in rows if r % 2]"),
        check(load_check, "load"),
        check("assert len(kept) > 100, f'only {len(kept)} rows kept'", "clean", warn=True),
        step("total", "t = sum(kept)"),
    ]


def run(path, executor, warnings=None):
    r = nbflow.load_pipeline(path).run(executor=executor())
    if warnings is not None:  # past events are replayed to a late listener
        r.bus.subscribe(lambda e: warnings.append(e) if isinstance(e, RunWarning) else None)
    return r


def statuses(r) -> dict[str, str]:
    return {name: s["status"] for name, s in r.steps.items()}


def test_a_passing_check_runs_after_its_step_and_is_cached(make_notebook, executor):
    path = make_notebook(cells())
    warnings: list[RunWarning] = []
    r = run(path, executor, warnings)
    assert r.status == "done", r.error
    assert statuses(r) == {s: "done" for s in ("load", "load.check1", "clean", "clean.check1", "total")}
    warned = [w.message for w in warnings if w.step == "clean.check1"]
    assert warned == ['pipeline.ipynb, cell 5 (step "clean"): check-warn failed: AssertionError: only 5 rows kept']
    assert nbflow.result(path, "total", "t", run=r.id) == 25
    # the views: one node per step (checks are marks on them), with what each step produced
    pipeline = nbflow.load_pipeline(path)
    state = GraphState(graph_model(pipeline, pipeline.plan()))
    r.bus.subscribe(state.apply)  # the run's events, replayed
    assert state.marks == {"load": "passed", "clean": "warned", "total": None}
    labels = state.labels()
    assert labels["load"].startswith("load ✓\nrows: 10 items · ")
    assert labels["clean"].startswith("clean ⚠\nkept: 5 items · ")
    model = graph_model(pipeline, pipeline.plan())
    assert [n["id"] for n in model["nodes"]] == ["load", "clean", "total"]
    assert model["nodes"][0]["check"] == "passed"
    assert model["nodes"][0]["checks"] == [{"name": "load.check1", "cell": 4, "warn": False, "state": "fresh"}]
    assert model["nodes"][2]["summary"].startswith("t: 25 · ")
    html = build_report(pipeline.config, r.id).read_text(encoding="utf-8")
    assert 'data-check="passed">✓ load.check1 (passed)' in html
    assert 'data-check="warned">⚠ clean.check1 (warned)' in html
    assert "Produced: rows: 10 items · " in html
    again = run(path, executor)
    # the passing check is cached; the warning check re-runs (on the cached values) until it passes
    assert statuses(again) == {
        "load": "cached",
        "load.check1": "cached",
        "clean": "cached",
        "clean.check1": "done",
        "total": "cached",
    }


FAILED_LOAD = {
    "load": "failed",
    "load.check1": "failed",
    "clean": "skipped",
    "clean.check1": "skipped",
    "total": "skipped",
}
CHECK_LINE = 'pipeline.ipynb, cell 4 (step "load"): check failed: AssertionError: rows dropped: 10'


def stored(path, run_id: int) -> dict[str, dict]:
    store = nbflow.load_pipeline(path).config.open_store()
    try:
        return {s["step"]: s for s in store.steps(run_id)}
    finally:
        store.close()


def test_a_failed_check_fails_the_step_and_the_run_with_one_line(make_notebook, executor):
    path = make_notebook(cells("assert len(rows) == 11, f'rows dropped: {len(rows)}'"))
    r = run(path, executor)
    assert r.status == "failed"
    assert statuses(r) == FAILED_LOAD
    assert r.steps["load.check1"]["error"] == CHECK_LINE
    assert r.steps["load"]["error"] == CHECK_LINE  # the step's error names the check's cell
    # the event of its own, after the check's StepFinished
    failed = [e for e in r.bus.history if isinstance(e, CheckFailed)]
    assert [(e.step, e.check, e.error) for e in failed] == [("load", "load.check1", CHECK_LINE)]
    # the run store: what nbflow show, nbflow runs and the report read
    record = stored(path, r.id)
    assert {name: s["status"] for name, s in record.items()} == FAILED_LOAD
    assert record["load"]["error"] == CHECK_LINE and record["load"]["duration"] > 0  # its timing is kept
    # the widget and the studio (GraphState), fed the run's events
    pipeline = nbflow.load_pipeline(path)
    state = GraphState(graph_model(pipeline, pipeline.plan()))
    r.bus.subscribe(state.apply)
    assert state.states["load"] == "failed"
    assert state.marks["load"] == "failed"
    assert state.details["load"]["error"] == CHECK_LINE
    html = build_report(pipeline.config, r.id).read_text(encoding="utf-8")
    assert 'data-step="load" data-status="failed"' in html
    assert "check failed: AssertionError: rows dropped: 10" in html
    # nothing changed: the step's values are kept (cached), its check runs again on them and
    # fails again, failing the step again -- never a silent pass
    plan = nbflow.load_pipeline(path).plan()
    assert plan["load"].action == "cached" and plan["load.check1"].action == "run"
    again = run(path, executor)
    assert again.status == "failed"
    assert {name: s["status"] for name, s in stored(path, again.id).items()} == FAILED_LOAD
    assert stored(path, again.id)["load"]["error"] == CHECK_LINE


def test_a_failed_check_fails_its_step_in_the_users_kernel(tmp_path):
    """The live executor (``%nbflow run``) gives the same record as the other two."""
    from .live import Kernel

    path = write_notebook(tmp_path / "pipeline.ipynb", cells("assert len(rows) == 11, f'rows dropped: {len(rows)}'"))
    kernel = Kernel(tmp_path)
    try:
        assert kernel.text("%load_ext nbflow") == ""
        shown = kernel.text("%nbflow run --notebook pipeline.ipynb")
    finally:
        kernel.close()
    assert "run 1: failed" in shown, shown
    record = stored(path, 1)
    assert {name: s["status"] for name, s in record.items()} == FAILED_LOAD
    assert record["load"]["error"] == CHECK_LINE


def test_editing_only_a_check_reruns_the_check_on_the_cached_values(make_notebook, executor):
    path = make_notebook(cells("assert len(rows) == 11, f'rows dropped: {len(rows)}'"))
    run(path, executor)
    edit(path, 3, "assert len(rows) == 10 and rows[0] == 0")
    plan = nbflow.load_pipeline(path).plan()
    assert [(e.step, e.action) for e in plan if e.action == "run"] == [
        ("load.check1", "run"),
        ("clean", "run"),
        ("clean.check1", "run"),
        ("total", "run"),
    ]
    r = run(path, executor)
    assert r.status == "done", r.error
    assert statuses(r)["load"] == "cached"  # the step did not run again
    assert statuses(r)["load.check1"] == "done"
    edit(path, 3, "assert rows[-1] == 9")
    r = run(path, executor)
    assert statuses(r) == {
        "load": "cached",
        "load.check1": "done",
        "clean": "cached",
        "clean.check1": "done",
        "total": "cached",
    }
    assert nbflow.result(path, "total", "t", run=r.id) == 25


def test_a_check_reading_another_steps_value_is_refused(make_notebook):
    path = make_notebook([*cells()[:3], check("assert kept", "load")])
    with pytest.raises(nbflow.errors.PipelineError) as e:
        nbflow.load_pipeline(path)
    assert str(e.value) == (
        "pipeline.ipynb, cell 4 (step \"load\"): tag 'check:load': the check reads 'kept', which step load does "
        "not make; a check reads the values of the step it checks"
    )


def test_a_check_above_its_step_is_refused(make_notebook):
    path = make_notebook([code("import math"), check("assert rows", "load"), step("load", "rows = [1]")])
    with pytest.raises(nbflow.errors.PipelineError) as e:
        nbflow.load_pipeline(path)
    assert "checks step load, which starts below (cell 3)" in str(e.value)
