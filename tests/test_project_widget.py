"""The views of a pipeline of notebooks: ``project_view`` (notebooks as groups) and
``ProjectWidget`` (ipycytoscape compound nodes, live states from real runs)."""

from __future__ import annotations

import pytest

import nbflow
from nbflow.project import load_project, plan_project
from nbflow.project_view import project_graph_model
from nbflow.view import STATES

from .conftest import code, step, write_notebook

pytest.importorskip("ipycytoscape")


@pytest.fixture
def folder(tmp_path):
    write_notebook(
        tmp_path / "ingest.ipynb",
        [
            code("n = 3", "parameters"),
            step("load", "rows = list(range(n))"),
            step("export", "open('r.txt', 'w').write(str(rows))", "out:r.txt"),
        ],
    )
    write_notebook(
        tmp_path / "model.ipynb",
        [step("read", "text = open('r.txt').read()", "in:r.txt"), step("fit", "size = len(text)")],
    )
    return tmp_path


def test_the_model_puts_each_notebook_s_steps_in_its_group(folder):
    project = load_project(folder)
    model = project_graph_model(project, plan_project(project))
    assert [g["id"] for g in model["groups"]] == ["group:ingest.ipynb", "group:model.ipynb"]
    assert {(n["id"], n["label"], n["parent"], n["state"]) for n in model["nodes"]} == {
        ("ingest.ipynb:load", "load", "group:ingest.ipynb", "stale"),
        ("ingest.ipynb:export", "export", "group:ingest.ipynb", "stale"),
        ("model.ipynb:read", "read", "group:model.ipynb", "stale"),
        ("model.ipynb:fit", "fit", "group:model.ipynb", "stale"),
    }
    assert {(e["source"], e["target"], e["link"], e["file"]) for e in model["edges"]} == {
        ("ingest.ipynb:load", "ingest.ipynb:export", False, None),
        ("ingest.ipynb:export", "model.ipynb:read", True, "r.txt"),
        ("model.ipynb:read", "model.ipynb:fit", False, None),
    }
    y = {n["id"]: n["y"] for n in model["nodes"]}
    assert y["ingest.ipynb:load"] < y["ingest.ipynb:export"] < y["model.ipynb:read"] < y["model.ipynb:fit"]


@pytest.mark.slow
def test_the_widget_draws_groups_and_follows_a_run(folder):
    widget = nbflow.show(folder)
    groups = {n.data["id"]: n.data["label"] for n in widget.graph.graph.nodes if "notebook" in n.classes}
    assert groups == {"group:ingest.ipynb": "ingest.ipynb", "group:model.ipynb": "model.ipynb"}
    parents = {n.data["id"]: n.data.get("parent") for n in widget.graph.graph.nodes if "notebook" not in n.classes}
    assert parents == {
        "ingest.ipynb:load": "group:ingest.ipynb",
        "ingest.ipynb:export": "group:ingest.ipynb",
        "model.ipynb:read": "group:model.ipynb",
        "model.ipynb:fit": "group:model.ipynb",
    }
    links = [e.data for e in widget.graph.graph.edges if "link" in e.classes]
    assert [(d["source"], d["target"]) for d in links] == [("ingest.ipynb:export", "model.ipynb:read")]
    assert any(r["selector"] == "node.notebook" for r in widget.graph.cytoscape_style)
    assert "2 notebooks, 4 steps; 4 stale" in widget.status.value

    widget.run()
    widget.wait(600)
    assert "pipeline done" in widget.status.value, widget.status.value
    done = STATES["done"].colour
    for node in ("ingest.ipynb:load", "model.ipynb:fit"):
        rules = [r for r in widget.graph.cytoscape_style if r["selector"] == f'node[id = "{node}"]']
        assert rules and rules[-1]["style"]["background-color"] == done
    again = nbflow.show(folder)
    assert "4 steps; 0 stale" in again.status.value
