"""What every view shows: the graph model, layout and live states."""

from __future__ import annotations

import pytest

from nbflow import load_pipeline
from nbflow.events import RunFinished, RunStarted, StepFinished, StepQueued, StepStarted
from nbflow.view import STATES, GraphState, graph_model, layered_layout

from .conftest import code, step


def test_graph_model_nodes_edges_parameters(make_notebook):
    path = make_notebook([code("k = 2", "parameters"), step("a", "x = k"), step("b", "y = x"), step("c", "z = 1")])
    pipeline = load_pipeline(path)
    model = graph_model(pipeline, pipeline.plan({"k": 3}))
    nodes = {n["id"]: n for n in model["nodes"]}
    assert nodes["a"]["state"] == "stale" and nodes["a"]["reasons"] == ["never run"]
    assert nodes["a"]["params"] == ["k"] and nodes["a"]["cell"] == 2
    assert model["edges"] == [
        {"id": "a->b", "source": "a", "target": "b", "names": ["x"], "explicit": False, "state": "", "hidden": False}
    ]
    assert model["parameters"]["k"] == {"default": 2, "type": "int", "value": 3, "readers": ["a"]}
    assert [entry["state"] for entry in model["legend"]] == list(STATES)


def test_layered_layout_and_saved_positions(make_notebook):
    path = make_notebook(
        [step("a", "x = 1"), step("b", "y = x"), step("c", "z = x")], nbflow={"layout": {"c": {"x": 500, "y": 7}}}
    )
    layout = layered_layout(load_pipeline(path))
    assert layout["a"]["y"] < layout["b"]["y"]
    assert layout["c"] == {"x": 500.0, "y": 7.0}


def test_graph_state_follows_events_and_batches_changes(make_notebook):
    pipeline = load_pipeline(make_notebook([step("a", "x = 1"), step("b", "y = x")]))
    state = GraphState(graph_model(pipeline, pipeline.plan()))
    for event in (
        RunStarted(1, notebook="", params={}, steps=(), executor="kernel"),
        StepQueued(1, step="a"),
        StepQueued(1, step="b"),
        StepStarted(1, step="a"),
    ):
        state.apply(event)
    assert state.take_changes() == {"a": "running", "b": "queued"}
    state.apply(StepFinished(1, step="a", status="done", duration=0.5))
    assert state.take_changes() == {"a": "done"} and state.details["a"]["duration"] == 0.5
    assert state.take_changes() == {}


@pytest.mark.parametrize(("status", "unfinished"), [("cancelled", "cancelled"), ("failed", "interrupted")])
def test_steps_a_run_leaves_queued_or_running_end_as_the_store_records_them(make_notebook, status, unfinished):
    """#15 item 18: after Cancel a step that never started stayed ``queued`` on the studio's canvas
    while the Runs tab (the store) said cancelled."""
    pipeline = load_pipeline(make_notebook([step("a", "x = 1"), step("b", "y = x"), step("c", "z = y")]))
    state = GraphState(graph_model(pipeline, pipeline.plan()))
    for event in (
        RunStarted(1, notebook="", params={}, steps=(), executor="kernel"),
        StepQueued(1, step="a"),
        StepQueued(1, step="b"),
        StepQueued(1, step="c"),
        StepStarted(1, step="a"),
        StepFinished(1, step="a", status="done"),
        StepStarted(1, step="b"),
        RunFinished(1, status=status),
    ):
        state.apply(event)
    assert state.states == {"a": "done", "b": unfinished, "c": unfinished}
    assert state.take_changes() == state.states


def test_cytoscape_style_has_one_rule_per_state_and_per_given_step():
    from nbflow.view import cytoscape_style

    rules = {r["selector"]: r["style"] for r in cytoscape_style({"train": "running", 'we"ird': "done"})}
    for name, s in STATES.items():
        assert rules[f'node[state = "{name}"]']["background-color"] == s.colour
    assert rules['node[id = "train"]']["background-color"] == STATES["running"].colour
    assert rules['node[id = "we\\"ird"]']["shape"] == STATES["done"].shape


def test_check_marks_and_node_labels():
    from nbflow.view import check_mark, node_label

    assert check_mark([]) is None
    assert check_mark(["done", "cached"]) == "passed"
    assert check_mark(["fresh"], warned=True) == "warned"
    assert check_mark(["done", "failed"], warned=True) == "failed"
    assert check_mark(["stale"]) == "pending"
    assert node_label("load", "passed", "df: 3 rows × 2 columns") == "load ✓\ndf: 3 rows × 2 columns"
    assert node_label("load", "failed") == "load ✗"
    assert node_label("load", "pending") == "load"


def test_the_progress_line_counts_a_step_a_check_failed_on_as_failed():
    import io

    from nbflow.events import CheckFailed, RunFinished, RunStarted, StepFinished
    from nbflow.progress import ProgressPrinter

    out = io.StringIO()
    printer = ProgressPrinter(out)
    steps = ({"step": "a", "action": "run"}, {"step": "a.check1", "action": "run"})
    printer(RunStarted(1, notebook="/x/nb.ipynb", params={}, steps=steps, executor="kernel"))
    printer(StepFinished(1, step="a", status="done", duration=0.5))
    printer(StepFinished(1, step="a.check1", status="failed", duration=0.1, error="check failed: rows"))
    printer(CheckFailed(1, step="a", check="a.check1", error="check failed: rows"))
    printer(RunFinished(1, status="failed", duration=1.0))
    lines = out.getvalue().splitlines()
    assert lines[-2].split() == ["✗", "a", "failed", "(check", "a.check1)"]
    assert lines[-1] == "run 1 failed in 1.00 s (2 failed)"
