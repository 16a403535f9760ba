"""The routes of nbflow/server_lab.py in a real jupyter_server (pytest-jupyter), after real runs.

``POST runs/{id}/outputs``: a finished run's outputs for the cells of the notebook as it
is being edited; cells whose code changed since the run are named, never given outputs.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pytest

from nbflow.api import load_pipeline

from .conftest import code, md, step, write_notebook
from .test_server import API, error_code, fetch_json, jp_server_config  # noqa: F401 - the server settings fixture

pytest_plugins = ["pytest_jupyter.jupyter_server"]


@pytest.fixture
def ran(jp_root_dir: Path) -> Path:
    """A notebook and one finished run of it (a real kernel)."""
    path = write_notebook(
        jp_root_dir / "pipe.ipynb",
        [
            md("# Pipe"),
            code("import math"),
            step("load", "data = list(range(4))\nprint('loaded', len(data))"),
            step("square", "sq = [x * x for x in data]\nsq"),
            step("total", "print('total', sum(sq))"),
        ],
    )
    run = load_pipeline(path).run()
    assert run.wait(180) == "done", run.error
    return path


def editor(path: Path) -> dict:
    """The notebook as the editor sends it: outputs stripped."""
    data = json.loads(path.read_text())
    for cell in data["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    return data


def texts(outputs: list[dict]) -> str:
    return "".join(o.get("text", "") or o.get("data", {}).get("text/plain", "") for o in outputs)


async def post_outputs(jp_fetch, run_id: int, data: dict, path: str = "pipe.ipynb"):
    return await fetch_json(
        jp_fetch, "runs", str(run_id), "outputs", method="POST", body=json.dumps({"path": path, "notebook": data})
    )


@pytest.mark.slow
async def test_outputs_of_a_run_for_unchanged_cells_and_changed_ones_named(jp_fetch, ran):
    data = editor(ran)
    data["cells"][3]["source"] = "sq = [x * x * x for x in data]\nsq"  # square edited, not saved
    status, answer = await post_outputs(jp_fetch, 1, data)
    assert status == 200 and answer["from"] == "output notebook" and answer["status"] == "done"
    got = {c["index"]: c for c in answer["cells"]}
    assert sorted(got) == [1, 2, 4]  # the setup cell ran too; square is skipped
    assert texts(got[2]["outputs"]) == "loaded 4\n" and got[2]["id"] == data["cells"][2]["id"]
    assert texts(got[4]["outputs"]) == "total 14\n"
    assert got[1]["outputs"] == [] and isinstance(got[1]["execution_count"], int)
    assert answer["skipped"] == [
        {"id": data["cells"][3]["id"], "index": 3, "cell": 4, "step": "square", "why": "code changed since run 1"}
    ]
    # Nothing was written: the file keeps no outputs of its own.
    assert all(not c.get("outputs") for c in json.loads(ran.read_text())["cells"] if c["cell_type"] == "code")


@pytest.mark.slow
async def test_a_run_without_an_executed_notebook_gives_its_cache_entries_outputs(jp_fetch, ran):
    second = load_pipeline(ran).run()  # every step cached: no executed notebook is written
    assert second.wait(120) == "done" and second.output_notebook is None
    data = editor(ran)
    data["cells"][4]["source"] = "print('total:', sum(sq))"
    status, answer = await post_outputs(jp_fetch, second.id, data)
    assert status == 200 and answer["from"] == "cache"
    got = {c["index"]: texts(c["outputs"]) for c in answer["cells"]}
    assert got == {2: "loaded 4\n", 3: "[0, 1, 4, 9]"}
    assert [(s["step"], s["cell"], s["why"]) for s in answer["skipped"]] == [
        ("total", 5, f"code changed since run {second.id}")
    ]


@pytest.mark.slow
async def test_cells_are_matched_by_id_when_cells_were_added_and_moved(jp_fetch, ran):
    data = editor(ran)
    extra = nbformat.v4.new_code_cell("print('mine')")
    data["cells"].insert(2, {**extra, "id": "added-by-me"})
    data["cells"][4], data["cells"][5] = data["cells"][5], data["cells"][4]  # square and total swap places
    _, answer = await post_outputs(jp_fetch, 1, data)
    got = {c["id"]: (c["index"], texts(c["outputs"])) for c in answer["cells"]}
    assert "added-by-me" not in got
    assert got[data["cells"][4]["id"]] == (4, "total 14\n")
    assert got[data["cells"][5]["id"]] == (5, "[0, 1, 4, 9]")
    assert answer["skipped"] == []


async def test_bad_requests_are_one_line_4xx(jp_fetch, jp_root_dir, tmp_path):
    path = write_notebook(jp_root_dir / "pipe.ipynb", [step("load", "a = 1")])
    data = editor(path)
    status, body = await error_code(
        jp_fetch, "runs", "1", "outputs", method="POST", body=json.dumps({"path": "pipe.ipynb", "notebook": data})
    )
    assert status == 404  # no run yet
    for bad, code_ in (
        ({"notebook": data}, 400),
        ({"path": "pipe.ipynb"}, 400),
        ({"path": "pipe.ipynb", "notebook": {"cells": "x"}}, 400),
        ({"path": "../outside.ipynb", "notebook": data}, 404),
    ):
        status, body = await error_code(jp_fetch, "runs", "1", "outputs", method="POST", body=json.dumps(bad))
        assert status == code_, (bad, status, body)
        assert b"Traceback" not in body
    outside = tmp_path / "outside.ipynb"
    shutil.copy(path, outside)
    status, _ = await error_code(
        jp_fetch, "runs", "1", "outputs", method="POST", body=json.dumps({"path": str(outside), "notebook": data})
    )
    assert status == 404


@pytest.mark.slow
async def test_a_running_run_is_refused(jp_fetch, jp_root_dir):
    path = write_notebook(jp_root_dir / "slow.ipynb", [step("nap", "import time\ntime.sleep(30)\nb = 1")])
    _, started = await fetch_json(jp_fetch, "runs", method="POST", body=json.dumps({"path": "slow.ipynb"}))

    async def running() -> bool:
        _, run = await fetch_json(jp_fetch, "runs", str(started["id"]), params={"path": "slow.ipynb"})
        return run["status"] == "running"

    from .test_server import wait_for

    await wait_for(running)
    status, body = await error_code(
        jp_fetch,
        "runs",
        str(started["id"]),
        "outputs",
        method="POST",
        body=json.dumps({"path": "slow.ipynb", "notebook": editor(path)}),
    )
    assert status == 409 and b"still running" in body
    await jp_fetch(API, "runs", str(started["id"]), method="DELETE", params={"path": "slow.ipynb"})
