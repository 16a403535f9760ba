"""The REST routes of a pipeline of notebooks (nbflow/server_project.py) in a real jupyter_server:
the pipeline asked for by folder, ``nbflow.toml`` or one of its notebooks, run for real (a
kernel per notebook) and recorded in the run store as ``nbflow run FOLDER`` records it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import code, producer_and_consumer, step, write_notebook
from .test_server import API, error_code, fetch_json, jp_server_config, wait_for  # noqa: F401 - the server settings

pytest_plugins = ["pytest_jupyter.jupyter_server"]


def two_notebooks(folder: Path) -> Path:
    return producer_and_consumer(folder)


@pytest.fixture
def pipeline_folder(jp_root_dir: Path) -> Path:
    return two_notebooks(jp_root_dir / "pipe")


async def test_the_pipeline_of_a_folder_its_toml_and_its_notebooks_is_one_graph(jp_fetch, pipeline_folder):
    code_, model = await fetch_json(jp_fetch, "project", params={"path": "pipe"})
    assert code_ == 200
    assert model["project"] == "pipe" and model["current"] is None
    assert [(g["id"], g["notebook"], g["current"]) for g in model["groups"]] == [
        ("group:ingest.ipynb", "pipe/ingest.ipynb", False),
        ("group:model.py", "pipe/model.py", False),
    ]
    assert {n["id"]: (n["parent"], n["state"]) for n in model["nodes"]} == {
        "ingest.ipynb:load": ("group:ingest.ipynb", "stale"),
        "ingest.ipynb:export": ("group:ingest.ipynb", "stale"),
        "model.py:read": ("group:model.py", "stale"),
        "model.py:fit": ("group:model.py", "stale"),
    }
    assert [(e["id"], e["file"]) for e in model["edges"] if e["link"]] == [
        ("ingest.ipynb:export->model.py:read", "rows.txt")
    ]
    assert model["run"] is None and any(rule["selector"] == "node.notebook" for rule in model["style"])

    # one of its notebooks (text ones too): the same pipeline, that notebook's group marked current
    _, of_notebook = await fetch_json(jp_fetch, "project", params={"path": "pipe/model.py"})
    assert of_notebook["project"] == "pipe" and of_notebook["current"] == "pipe/model.py"
    assert [g["id"] for g in of_notebook["groups"] if g["current"]] == ["group:model.py"]
    assert of_notebook["nodes"] == model["nodes"]

    # an nbflow.toml listing the notebooks wins over the folder, and its shared parameters apply
    (pipeline_folder / "nbflow.toml").write_text('notebooks = ["ingest.ipynb", "model.py"]\n[parameters]\nn = 2\n')
    _, of_toml = await fetch_json(jp_fetch, "project", params={"path": "pipe/ingest.ipynb"})
    assert of_toml["project"] == "pipe/nbflow.toml" and of_toml["title"] == "nbflow.toml"
    assert [g["id"] for g in of_toml["groups"] if g["current"]] == ["group:ingest.ipynb"]


async def test_a_notebook_of_no_pipeline_of_notebooks_says_so(jp_fetch, jp_root_dir):
    two_notebooks(jp_root_dir / "pipe")
    write_notebook(jp_root_dir / "pipe" / "alone.ipynb", [step("solo", "x = 1")])  # links to nothing
    write_notebook(jp_root_dir / "single.ipynb", [step("a", "x = 1")])
    for path in ("pipe/alone.ipynb", "single.ipynb"):
        assert await fetch_json(jp_fetch, "project", params={"path": path}) == (
            200,
            {"project": None, "current": path},
        )


async def test_bad_paths_and_a_bad_toml_are_one_line_4xx(jp_fetch, jp_root_dir, tmp_path):
    two_notebooks(jp_root_dir / "pipe")
    outside = two_notebooks(tmp_path / "elsewhere")
    (jp_root_dir / "link").symlink_to(outside)
    for path in ("../", str(outside), "link", "link/ingest.ipynb", "missing", "pipe/rows.csv"):
        assert (await error_code(jp_fetch, "project", params={"path": path}))[0] == 404, path
    assert (await error_code(jp_fetch, "project"))[0] == 400

    # a toml naming a notebook outside the root is refused before that notebook is read
    (jp_root_dir / "pipe" / "nbflow.toml").write_text(f'notebooks = ["ingest.ipynb", "{outside}/model.py"]\n')
    status, body = await error_code(jp_fetch, "project", params={"path": "pipe/nbflow.toml"})
    assert status == 400
    assert json.loads(body)["message"] == (
        "nbflow.toml: lists model.py, which is outside the server's root; only notebooks under it are run from here"
    )
    # a broken toml: one line naming the file, whether asked for by itself or by a notebook it should list
    (jp_root_dir / "pipe" / "nbflow.toml").write_text('notebooks = ["ingest.ipynb"\n')
    for path in ("pipe/nbflow.toml", "pipe/ingest.ipynb"):
        status, body = await error_code(jp_fetch, "project", params={"path": path})
        message = json.loads(body)["message"]
        assert status == 400 and message.startswith("nbflow.toml: invalid TOML (") and "\n" not in message
    status, body = await error_code(
        jp_fetch, "project", "runs", method="POST", body=json.dumps({"path": "pipe/nbflow.toml"})
    )
    assert status == 400 and json.loads(body)["message"].startswith("nbflow.toml: invalid TOML")
    # a run of an unknown parameter is refused before anything starts
    (jp_root_dir / "pipe" / "nbflow.toml").unlink()
    status, body = await error_code(
        jp_fetch, "project", "runs", method="POST", body=json.dumps({"path": "pipe", "params": {"m": 1}})
    )
    assert status == 400 and json.loads(body)["message"].startswith("pipe: unknown parameter 'm'")
    assert (await fetch_json(jp_fetch, "project", "runs", params={"path": "pipe"}))[1]["runs"] == []


async def test_a_run_through_the_api_is_recorded_as_nbflow_run_folder_records_it(jp_fetch, pipeline_folder):
    code_, started = await fetch_json(
        jp_fetch, "project", "runs", method="POST", body=json.dumps({"path": "pipe/ingest.ipynb", "params": {"n": 3}})
    )
    assert code_ == 201 and started["project"] == "pipe" and started["status"] == "running"

    async def finished():
        _, run = await fetch_json(jp_fetch, "project", "runs", str(started["id"]))
        return run if run["status"] != "running" else None

    run = await wait_for(finished, timeout=300)
    assert run["status"] == "done", run
    assert {name: r["status"] for name, r in run["notebooks"].items()} == {"ingest.ipynb": "done", "model.py": "done"}

    # each notebook's run is in the run store, and followed through the notebook routes
    _, runs = await fetch_json(jp_fetch, "project", "runs", params={"path": "pipe"})
    assert sorted((r["name"], r["notebook"], r["status"]) for r in runs["runs"]) == [
        ("ingest.ipynb", "pipe/ingest.ipynb", "done"),
        ("model.py", "pipe/model.py", "done"),
    ]
    assert [r["id"] for r in runs["started_here"]] == [started["id"]]
    model_run = run["notebooks"]["model.py"]["run"]
    _, stored = await fetch_json(jp_fetch, "runs", str(model_run), params={"path": "pipe/model.py"})
    assert {s: v["status"] for s, v in stored["steps"].items()} == {"read": "done", "fit": "done"}
    assert (pipeline_folder / "rows.txt").read_text() == "0,1,2"

    # the graph now says fresh for the same parameters, and stale where n changes
    _, model = await fetch_json(jp_fetch, "project", params={"path": "pipe", "params": json.dumps({"n": 3})})
    assert {n["id"]: n["state"] for n in model["nodes"]} == dict.fromkeys(
        ["ingest.ipynb:load", "ingest.ipynb:export", "model.py:read", "model.py:fit"], "fresh"
    )
    assert (await error_code(jp_fetch, "project", "runs", str(started["id"]), method="DELETE"))[0] == 409
    assert (await error_code(jp_fetch, "project", "runs", "99", method="DELETE"))[0] == 404


async def test_a_notebooks_own_graph_is_keyed_in_its_pipeline_and_agrees_with_the_pipelines(jp_fetch, pipeline_folder):
    _, started = await fetch_json(jp_fetch, "project", "runs", method="POST", body=json.dumps({"path": "pipe"}))

    async def finished():
        _, run = await fetch_json(jp_fetch, "project", "runs", str(started["id"]))
        return run if run["status"] != "running" else None

    assert (await wait_for(finished, timeout=300))["status"] == "done"
    _, project = await fetch_json(jp_fetch, "project", params={"path": "pipe"})
    in_project = {
        n["id"].split(":")[1]: (n["state"], n["key"]) for n in project["nodes"] if n["parent"] == "group:model.py"
    }
    _, graph = await fetch_json(jp_fetch, "graph", params={"path": "pipe/model.py"})
    assert {n["id"]: (n["state"], n["key"]) for n in graph["nodes"]} == in_project
    assert {state for state, _ in in_project.values()} == {"fresh"} and graph["warnings"] == []
    _, plan = await fetch_json(jp_fetch, "plan", params={"path": "pipe/model.py"})
    assert {e["step"]: e["state"] for e in plan["steps"]} == {"read": "fresh", "fit": "fresh"}

    # the producer edited: the consumer's own badge says why, naming the upstream step
    two_notebooks(pipeline_folder)
    write_notebook(
        pipeline_folder / "ingest.ipynb",
        [
            code("n = 4", "parameters"),
            step("load", "rows = list(range(n))"),
            step("export", "open('rows.txt', 'w').write(','.join(str(r + 1) for r in rows))", "out:rows.txt"),
        ],
    )
    _, graph = await fetch_json(jp_fetch, "graph", params={"path": "pipe/model.py"})
    assert {n["id"]: (n["state"], n["reasons"]) for n in graph["nodes"]} == {
        "read": ("stale", ["upstream ingest.ipynb:export changed"]),
        "fit": ("stale", ["upstream read changed"]),
    }
    # and running that notebook alone would read the old rows.txt under the new key: a 400 saying what to run
    status, body = await error_code(jp_fetch, "runs", method="POST", body=json.dumps({"path": "pipe/model.py"}))
    message = json.loads(body)["message"]
    assert status == 400 and message.startswith(
        'model.py, line 1 (step "read"): needs ingest.ipynb:export, which is stale (code changed): '
    )

    # a broken notebook beside them: the notebook's own graph is planned alone, with a note
    (pipeline_folder / "broken.ipynb").write_text('{"cells": [{"metadata": {"tags": ["step:x"]')
    code_, graph = await fetch_json(jp_fetch, "graph", params={"path": "pipe/model.py"})
    assert code_ == 200 and [n["state"] for n in graph["nodes"]] == ["stale", "stale"]
    [note] = graph["warnings"]
    assert note.startswith("planned on its own, without the other notebooks of its pipeline: broken.ipynb")
