"""PipelineWidget (nbflow/widget.py) in Python: drawing, batching, details, form, refresh.

The browser side (rendering, clicks, Notebook 7) is tests/e2e/test_widget.py.
"""

from __future__ import annotations

import html
import re
import time

import pytest

import nbflow
from nbflow.events import EventBus, RunStarted, StepFinished, StepQueued, StepStarted
from nbflow.view import STATES

from .conftest import code, md, step, write_notebook

pytest.importorskip("ipycytoscape")


@pytest.fixture
def pipe(tmp_path):
    return write_notebook(
        tmp_path / "pipe.ipynb",
        [
            md("# Pipe"),
            code("n = 3\nlabel = 'x'\nscale = 0.5\nverbose = False\nshape = (2, 3)", "parameters"),
            md("Make the numbers."),
            step("load", "data = list(range(n))"),
            step("square", "sq = [x * x * scale for x in data]\nprint(label, sum(sq))"),
            step("other", "z = 1"),
        ],
    )


def graph_ids(widget):
    return {n.data["id"] for n in widget.graph.graph.nodes}


def style_for(widget, step):
    rules = [
        r
        for r in widget.graph.cytoscape_style
        if r["selector"] == f'node[id = "{step}"]' and "background-color" in r["style"]
    ]
    return rules[-1]["style"]["background-color"] if rules else None


def test_draws_steps_parameter_nodes_edges_and_legend(pipe):
    w = nbflow.show(pipe)
    assert graph_ids(w) == {"load", "square", "other", "param:n", "param:scale", "param:label"}
    edges = {(e.data["source"], e.data["target"]) for e in w.graph.graph.edges}
    assert ("load", "square") in edges and ("param:n", "load") in edges and ("param:scale", "square") in edges
    assert w.graph.cytoscape_layout["name"] == "dagre"
    assert all(s.label in w.legend.value for s in STATES.values())
    assert "3 steps; 3 stale" in w.status.value


def test_parameters_form_is_typed_from_the_parameters_cell(pipe):
    w = nbflow.show(pipe, params={"n": 5})
    inputs = w.params_form.inputs
    assert type(inputs["n"]).__name__ == "IntText" and inputs["n"].value == 5
    assert type(inputs["scale"]).__name__ == "FloatText"
    assert type(inputs["verbose"]).__name__ == "Checkbox"
    assert type(inputs["label"]).__name__ == "Text" and inputs["label"].value == "x"
    assert inputs["shape"].value == "(2, 3)"  # a tuple is edited as text, parsed by the core
    assert w.params_form.values() == {"n": 5, "label": "x", "scale": 0.5, "verbose": False}
    assert w.params_form.raw() == {"shape": "(2, 3)"}


def test_a_burst_of_events_is_one_graph_update(pipe):
    w = nbflow.show(pipe, interval=0.05)
    bus = EventBus()
    w.follow(bus)
    before = w.messages
    bus.publish(RunStarted(1, notebook="", params={}, steps=(), executor="kernel"))
    for name in ("load", "square", "other"):
        bus.publish(StepQueued(1, step=name))
    time.sleep(0.3)
    assert w.messages - before == 1
    assert style_for(w, "square") == STATES["queued"].colour
    bus.publish(StepStarted(1, step="load"))
    time.sleep(0.3)
    assert w.messages - before == 2 and style_for(w, "load") == STATES["running"].colour
    bus.publish(StepFinished(1, step="load", status="failed", duration=0.5, error="ValueError: boom"))
    time.sleep(0.3)
    assert style_for(w, "load") == STATES["failed"].colour
    w.select("load")
    assert "ValueError: boom" in w.details.status.value and "failed" in w.details.status.value


@pytest.mark.slow
def test_run_details_outputs_invalidate_and_refresh(pipe):
    w = nbflow.show(pipe)
    run = w.run()
    assert run.wait(120) == "done"
    deadline = time.monotonic() + 10
    while "done in" not in w.status.value and time.monotonic() < deadline:
        time.sleep(0.05)
    assert f"run {run.id} done" in w.status.value
    assert all(style_for(w, s) == STATES["done"].colour for s in ("load", "square", "other"))

    w.select("square")
    code_text = re.sub(r"<[^>]+>", "", w.details.code.value)
    assert "sq = [x * x * scale for x in data]" in html.unescape(code_text)
    assert "<span" in w.details.code.value  # highlighted
    assert "last status: <b>done</b>" in w.details.status.value
    assert [o["text"] for o in w.details.outputs.outputs] == ["x 2.5\n"]
    w.select("load")
    assert "Make the numbers." in w.details.header.value and "parameters: n" in w.details.header.value

    w.refresh()
    assert w.state.states == {"load": "fresh", "square": "fresh", "other": "fresh"}
    w.select("square")
    w._invalidate_selected()
    assert w.state.states["square"] == "stale" and w.state.reasons["square"] == ["invalidated"]

    nb = pipe.read_text().replace("z = 1", "z = 2")
    pipe.write_text(nb)
    w.refresh()
    assert w.state.reasons["other"] == ["code changed"]
    assert w.state.states["load"] == "fresh"

    w.params_form.inputs["n"].value = 4
    w.refresh()
    assert w.state.reasons["load"] == ["parameter n changed"]
    assert w.state.states["other"] == "stale" and w.state.reasons["other"] == ["code changed"]


def test_a_run_from_code_shows_its_parameters_in_the_form(pipe):
    """#15 item 18: after ``w.run({'n': 5})`` the form still showed the notebook's default."""
    w = nbflow.show(pipe)
    run = w.run({"n": 5, "scale": 2, "label": "y", "shape": (1, 1)})
    assert run.wait(120) == "done"
    inputs = w.params_form.inputs
    assert inputs["n"].value == 5 and inputs["scale"].value == 2.0 and inputs["label"].value == "y"
    assert inputs["shape"].value == "(1, 1)" and inputs["verbose"].value is False
    assert w.params_form.values() == {"n": 5, "label": "y", "scale": 2.0, "verbose": False}
    w.refresh()  # the plan is now the run's: everything it ran is fresh
    assert set(w.state.states.values()) == {"fresh"}, w.state.reasons


def label_for(widget, step):
    rules = [
        r for r in widget.graph.cytoscape_style if r["selector"] == f'node[id = "{step}"]' and "label" in r["style"]
    ]
    return rules[-1]["style"]["label"] if rules else None


def test_a_fan_out_step_is_one_node_with_its_count_and_element_states(tmp_path):
    from nbflow.events import ItemFinished

    path = write_notebook(
        tmp_path / "fan.ipynb",
        [step("make", "names = ['a', 'b', 'c']"), step("measure", "size = len(name)", "map:name=names")],
    )
    w = nbflow.show(path, interval=0.05)
    assert graph_ids(w) == {"make", "measure"}  # one node, whatever the count
    bus = EventBus()
    w.follow(bus)
    bus.publish(RunStarted(1, notebook="", params={}, steps=(), executor="kernel"))
    bus.publish(StepStarted(1, step="measure"))
    bus.publish(ItemFinished(1, step="measure", item=0, total=3, status="cached", label="'a'"))
    bus.publish(ItemFinished(1, step="measure", item=1, total=3, status="done", label="'b'"))
    time.sleep(0.3)
    assert label_for(w, "measure") == "measure ×3\n1 cached, 1 done"
    bus.publish(ItemFinished(1, step="measure", item=2, total=3, status="failed", label="'c'", error="boom"))
    bus.publish(StepFinished(1, step="measure", status="failed", duration=0.1, error="1 of 3 elements failed"))
    time.sleep(0.3)
    assert label_for(w, "measure") == "measure ×3\n1 cached, 1 done, 1 failed"
    assert style_for(w, "measure") == STATES["failed"].colour
    w.select("measure")
    assert "3 items: 1 cached, 1 done, 1 failed" in w.details.status.value


def test_a_notebook_of_a_pipeline_of_notebooks_is_drawn_with_the_pipelines_keys(tmp_path):
    from nbflow.project import load_project, plan_project

    from .conftest import producer_and_consumer

    producer_and_consumer(tmp_path)
    (tmp_path / "rows.txt").write_text("7")  # a stray file: the pipeline keys read by ingest's key, not its hash
    w = nbflow.show(tmp_path / "model.py")
    plans = plan_project(load_project(tmp_path))
    assert w.plan["read"].key == plans["model.py"]["read"].key
    assert w.pipeline.foreign_stale == {"ingest.ipynb:export": "is stale (never run)"}
    # its Run button would compute read from the stray file under ingest's key: refused, said in the widget
    w._act(w.run)
    assert "needs ingest.ipynb:export, which is stale (never run)" in w.status.value
