"""The shared canvas (``extension/canvas``) draws a pipeline of notebooks as groups: the
model ``project_view`` makes, drawn by the canvas's own code (bundled with its esbuild) in
headless Chromium."""

from __future__ import annotations

import json
import subprocess

import pytest

from nbflow.project import load_project, plan_project
from nbflow.project_view import project_graph_model

from ..conftest import ROOT, code, step, write_notebook

pytestmark = pytest.mark.browser
CANVAS = ROOT / "extension" / "canvas"
ESBUILD = CANVAS / "node_modules" / ".bin" / "esbuild"


def test_the_canvas_draws_notebooks_as_groups_with_links_between_them(tmp_path, page):
    if not ESBUILD.exists():
        pytest.fail("extension/canvas has no node_modules: `make install` (npm ci) builds the canvas")
    write_notebook(
        tmp_path / "ingest.ipynb",
        [
            code("n = 3", "parameters"),
            step("load", "rows = list(range(n))"),
            step("export", "x = len(rows)", "out:r.txt"),
        ],
    )
    write_notebook(tmp_path / "model.ipynb", [step("read", "t = 1", "in:r.txt"), step("fit", "s = t")])
    project = load_project(tmp_path)
    model = project_graph_model(project, plan_project(project))
    site = tmp_path / "site"
    site.mkdir()
    subprocess.run(
        [
            str(ESBUILD),
            "src/canvas.js",
            "--bundle",
            "--format=iife",
            "--global-name=nbflowCanvas",
            f"--outfile={site / 'canvas.js'}",
        ],
        cwd=CANVAS,
        check=True,
        capture_output=True,
    )
    (site / "index.html").write_text(
        "<!DOCTYPE html><html><body><div id='c' style='width:900px;height:700px'></div>"
        "<script src='canvas.js'></script><script>"  # a classic script: file:// pages cannot import modules
        "window.canvas = nbflowCanvas.createCanvas(document.getElementById('c'));"
        f"window.canvas.setGraph({json.dumps(model)}); window.drawn = true;</script></body></html>"
    )
    page.goto((site / "index.html").as_uri())
    page.wait_for_function("window.drawn === true")
    parents = page.evaluate(
        "Object.fromEntries(window.canvas.cy.nodes().filter(n => n.isChild()).map(n => [n.id(), n.parent().id()]))"
    )
    assert parents == {
        "ingest.ipynb:load": "group:ingest.ipynb",
        "ingest.ipynb:export": "group:ingest.ipynb",
        "model.ipynb:read": "group:model.ipynb",
        "model.ipynb:fit": "group:model.ipynb",
    }
    assert page.evaluate("window.canvas.cy.nodes(':parent').map(n => n.data('display'))") == [
        "ingest.ipynb",
        "model.ipynb",
    ]
    assert page.evaluate("window.canvas.cy.edges('.link').map(e => e.id())") == [
        "ingest.ipynb:export->model.ipynb:read"
    ]
    # each group encloses its steps, and the groups do not overlap (the consumer sits below)
    boxes = page.evaluate("Object.fromEntries(window.canvas.cy.nodes(':parent').map(n => [n.id(), n.boundingBox()]))")
    first, second = boxes["group:ingest.ipynb"], boxes["group:model.ipynb"]
    assert first["y2"] < second["y1"]
    # states are the steps' only (not the groups'), and a run's states recolour them
    assert set(page.evaluate("window.canvas.states()").values()) == {"stale"}
    page.evaluate("window.canvas.setStates({'model.ipynb:fit': 'running'})")
    assert page.evaluate("window.canvas.states()")["model.ipynb:fit"] == "running"
    assert page.console_errors == [] and page.outside == []
