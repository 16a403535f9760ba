"""The REST API (nbflow/server.py) in a real jupyter_server, through pytest-jupyter.

The server runs with ``allow_unauthenticated_access=False``, so a handler that forgot
``@authenticated`` fails here. Runs are real: a kernel executes the steps.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from .conftest import code, md, step, write_notebook

pytest_plugins = ["pytest_jupyter.jupyter_server"]

API = "nbflow/api"


@pytest.fixture
def jp_server_config():
    return {
        "ServerApp": {
            "jpserver_extensions": {"nbflow.server": True},
            "allow_unauthenticated_access": False,
        }
    }


@pytest.fixture
def notebook(jp_root_dir: Path) -> Path:
    folder = jp_root_dir / "work"
    folder.mkdir()
    return write_notebook(
        folder / "pipe.ipynb",
        [
            md("# Pipe"),
            code("n = 3", "parameters"),
            md("Make the numbers."),
            step("load", "data = list(range(n))"),
            step("square", "sq = [x * x for x in data]"),
            step("total", "print(sum(sq))"),
        ],
    )


async def fetch_json(jp_fetch, *parts, **kwargs):
    response = await jp_fetch(API, *parts, **kwargs)
    return response.code, json.loads(response.body)


async def error_code(jp_fetch, *parts, **kwargs) -> tuple[int, bytes]:
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch(API, *parts, **kwargs)
    return info.value.code, info.value.response.body if info.value.response else b""


def parse_sse(body: bytes) -> list[tuple[int, str, dict]]:
    events = []
    for block in body.decode().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if line and not line.startswith(":"))
        if fields:
            events.append((int(fields["id"]), fields["event"], json.loads(fields["data"])))
    return events


async def wait_for(predicate, timeout: float = 120.0, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(every)
    raise AssertionError("condition not met in time")


# ------------------------------------------------------------------ graph / plan
async def test_graph_gives_steps_edges_states_reasons_and_style(jp_fetch, notebook):
    code_, model = await fetch_json(jp_fetch, "graph", params={"path": "work/pipe.ipynb"})
    assert code_ == 200
    assert model["notebook"] == "work/pipe.ipynb"
    nodes = {n["id"]: n for n in model["nodes"]}
    assert list(nodes) == ["load", "square", "total"]
    assert nodes["load"]["state"] == "stale" and nodes["load"]["reasons"] == ["never run"]
    assert nodes["load"]["params"] == ["n"] and nodes["load"]["docs"] == "Make the numbers."
    assert [(e["source"], e["target"]) for e in model["edges"]] == [("load", "square"), ("square", "total")]
    assert model["parameters"]["n"]["default"] == 3
    assert any(rule["selector"] == 'node[state = "running"]' for rule in model["style"])
    assert model["run"] is None


async def test_graph_carries_check_marks_and_what_each_step_produced(jp_fetch, jp_root_dir):
    import nbformat

    from nbflow import load_pipeline

    check = nbformat.v4.new_code_cell("assert len(data) == 3")
    check.metadata["tags"] = ["check:load"]
    path = write_notebook(
        jp_root_dir / "checked.ipynb",
        [step("load", "data = list(range(3))"), check, step("total", "t = sum(data)")],
    )
    run = await asyncio.to_thread(load_pipeline(path).run)  # a real kernel run
    assert run.status == "done", run.error
    _, model = await fetch_json(jp_fetch, "graph", params={"path": "checked.ipynb"})
    nodes = {n["id"]: n for n in model["nodes"]}
    assert list(nodes) == ["load", "total"]  # the check is a mark on its step, not a node
    assert nodes["load"]["check"] == "passed" and nodes["total"]["check"] is None
    assert nodes["load"]["checks"] == [{"name": "load.check1", "cell": 2, "warn": False, "state": "fresh"}]
    assert nodes["load"]["summary"].startswith("data: 3 items · ")
    assert nodes["load"]["label"] == "load ✓\n" + nodes["load"]["summary"]


async def test_plan_with_parameters_and_bad_parameters(jp_fetch, notebook):
    _, plan = await fetch_json(jp_fetch, "plan", params={"path": "work/pipe.ipynb", "params": json.dumps({"n": 5})})
    assert plan["params"] == {"n": 5}
    assert [(s["step"], s["action"]) for s in plan["steps"]] == [("load", "run"), ("square", "run"), ("total", "run")]
    status, body = await error_code(jp_fetch, "plan", params={"path": "work/pipe.ipynb", "params": '{"m": 5}'})
    assert status == 400 and "unknown parameter" in json.loads(body)["message"].lower()
    status, _ = await error_code(jp_fetch, "plan", params={"path": "work/pipe.ipynb", "params": "[1"})
    assert status == 400


async def test_graph_of_a_broken_notebook_names_the_problem(jp_fetch, jp_root_dir):
    write_notebook(jp_root_dir / "bad.ipynb", [step("a", "x = 1", "after:nope")])
    status, body = await error_code(jp_fetch, "graph", params={"path": "bad.ipynb"})
    assert status == 400 and "after:nope" in json.loads(body)["message"]


async def test_graph_of_unsaved_notebook_json_reads_the_body_not_the_file(jp_fetch, notebook):
    on_disk = notebook.read_bytes()
    data = json.loads(on_disk)
    # The JupyterLab panel sends the notebook as edited: a new after: tag and a moved node.
    total = next(c for c in data["cells"] if "step:total" in c["metadata"].get("tags", []))
    total["metadata"]["tags"].append("after:load")
    data["metadata"]["nbflow"] = {"layout": {"load": {"x": 11.0, "y": 22.0}}}
    body = json.dumps({"path": "work/pipe.ipynb", "notebook": data})
    code_, model = await fetch_json(jp_fetch, "graph", method="POST", body=body)
    assert code_ == 200 and model["notebook"] == "work/pipe.ipynb"
    edges = {(e["source"], e["target"]): e for e in model["edges"]}
    assert edges[("load", "total")]["explicit"] is True
    load = next(n for n in model["nodes"] if n["id"] == "load")
    assert (load["x"], load["y"]) == (11.0, 22.0)
    assert notebook.read_bytes() == on_disk

    # A cycle is refused with its path, naming the notebook; bad bodies get a 400.
    load_cell = next(c for c in data["cells"] if "step:load" in c["metadata"].get("tags", []))
    load_cell["metadata"]["tags"].append("after:total")
    status, answer = await error_code(
        jp_fetch, "graph", method="POST", body=json.dumps({"path": "work/pipe.ipynb", "notebook": data})
    )
    message = json.loads(answer)["message"]
    assert status == 400 and "cycle" in message and "pipe.ipynb" in message, message
    for bad in ({"path": "work/pipe.ipynb", "notebook": [1]}, {"notebook": data}, {"path": "work/pipe.ipynb"}):
        status, _ = await error_code(jp_fetch, "graph", method="POST", body=json.dumps(bad))
        assert status == 400, bad
    status, _ = await error_code(
        jp_fetch, "graph", method="POST", body=json.dumps({"path": "../x.ipynb", "notebook": data})
    )
    assert status == 404


# ------------------------------------------------------------------ security
ENDPOINTS = [
    ("GET", "graph", None),
    ("POST", "graph", "{}"),
    ("GET", "plan", None),
    ("GET", "runs", None),
    ("POST", "runs", "{}"),
    ("GET", "runs/1", None),
    ("DELETE", "runs/1", None),
    ("GET", "runs/1/events", None),
    ("GET", "runs/1/report", None),
    ("POST", "runs/1/report", ""),
    ("POST", "runs/1/outputs", "{}"),
]


@pytest.mark.parametrize(("method", "route", "body"), ENDPOINTS)
async def test_every_endpoint_requires_authentication(
    jp_fetch, jp_http_port, jp_base_url, notebook, method, route, body
):
    url = f"http://127.0.0.1:{jp_http_port}{jp_base_url}{API}/{route}?path=work/pipe.ipynb"
    response = await AsyncHTTPClient().fetch(url, method=method, body=body, raise_error=False)
    assert response.code == 403, (route, response.code)
    assert b"load" not in response.body


async def _cookie_session(jp_serverapp, jp_http_port, jp_base_url) -> tuple[str, dict[str, str]]:
    """Log in like a browser: the login form with the token, keeping cookies."""
    client = AsyncHTTPClient()
    base = f"http://127.0.0.1:{jp_http_port}{jp_base_url}"
    login = await client.fetch(base + "login", raise_error=False)
    cookies = {}
    for header in login.headers.get_list("Set-Cookie"):
        name, value = header.split(";", 1)[0].split("=", 1)
        cookies[name] = value
    token = jp_serverapp.identity_provider.token
    form = f"_xsrf={quote(cookies['_xsrf'])}&password={quote(token)}"
    response = await client.fetch(
        base + "login",
        method="POST",
        body=form,
        headers={"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())},
        follow_redirects=False,
        raise_error=False,
    )
    assert response.code == 302, response.code
    for header in response.headers.get_list("Set-Cookie"):
        name, value = header.split(";", 1)[0].split("=", 1)
        cookies[name] = value
    return base, cookies


async def test_xsrf_is_enforced_on_post_and_delete_for_cookie_sessions(
    jp_fetch, jp_serverapp, jp_http_port, jp_base_url, notebook
):
    base, cookies = await _cookie_session(jp_serverapp, jp_http_port, jp_base_url)
    client = AsyncHTTPClient()
    cookie = "; ".join(f"{k}={v}" for k, v in cookies.items())
    # A logged-in GET works with the cookie alone: the session is real.
    ok = await client.fetch(f"{base}{API}/graph?path=work/pipe.ipynb", headers={"Cookie": cookie})
    assert ok.code == 200
    body = json.dumps({"path": "work/pipe.ipynb"})
    for method, route, payload in (("POST", "runs", body), ("DELETE", "runs/1", None), ("POST", "runs/1/report", "")):
        forged = await client.fetch(
            f"{base}{API}/{route}?path=work/pipe.ipynb",
            method=method,
            body=payload,
            headers={"Cookie": cookie},
            raise_error=False,
        )
        assert forged.code == 403, (route, forged.code)
    assert not (notebook.parent / ".nbflow" / "runs.db").exists(), "a forged POST must not start a run"
    good = await client.fetch(
        f"{base}{API}/runs",
        method="POST",
        body=body,
        headers={"Cookie": cookie, "X-XSRFToken": cookies["_xsrf"]},
        raise_error=False,
    )
    assert good.code == 201, good.body
    run_id = json.loads(good.body)["id"]
    await wait_for(lambda: _finished(client, f"{base}{API}/runs/{run_id}", cookie))


async def _finished(client, url, cookie) -> bool:
    response = await client.fetch(url, headers={"Cookie": cookie})
    return json.loads(response.body)["status"] not in ("pending", "running")


@pytest.fixture
def outside(tmp_path: Path, jp_root_dir: Path) -> dict[str, str]:
    """Notebooks outside the root, and the ways a path could try to reach them."""
    secret = write_notebook(tmp_path / "secret.ipynb", [step("secret", "x = 1")])
    sibling = tmp_path / (jp_root_dir.name + "2")  # shares the root's name as a prefix
    sibling.mkdir()
    write_notebook(sibling / "s.ipynb", [step("secret", "x = 1")])
    os.symlink(secret, jp_root_dir / "link.ipynb")
    os.symlink(tmp_path, jp_root_dir / "up")
    (jp_root_dir / "notes.txt").write_text("not a notebook")
    return {
        "dotdot": "../secret.ipynb",
        "deep dotdot": "work/../../secret.ipynb",
        "absolute": str(secret),
        "encoded": "%2e%2e/secret.ipynb",
        "symlink file": "link.ipynb",
        "symlink folder": "up/secret.ipynb",
        "sibling prefix": f"../{sibling.name}/s.ipynb",
        "not a notebook": "notes.txt",
        "missing": "nothing.ipynb",
        "the root itself": ".",
    }


@pytest.mark.parametrize(
    "kind",
    [
        "dotdot",
        "deep dotdot",
        "absolute",
        "encoded",
        "symlink file",
        "symlink folder",
        "sibling prefix",
        "not a notebook",
        "missing",
        "the root itself",
    ],
)
async def test_paths_outside_the_root_are_refused_with_a_bare_404(jp_fetch, notebook, outside, tmp_path, kind):
    path = outside[kind]
    if kind == "encoded":
        path = "../secret.ipynb".replace(".", "%2e")  # decoded once by the server
    for route in ("graph", "plan", "runs", "runs/1", "runs/1/events", "runs/1/report"):
        status, body = await error_code(jp_fetch, route, params={"path": path})
        assert status == 404, (route, kind, status)
        assert b"secret" not in body and str(tmp_path).encode() not in body
    status, body = await error_code(jp_fetch, "runs", method="POST", body=json.dumps({"path": outside[kind]}))
    assert status == 404 and b"secret" not in body
    assert not (tmp_path / ".nbflow").exists()


# ------------------------------------------------------------------ runs
@pytest.mark.slow
async def test_run_lifecycle_events_in_order_and_store_fallback(jp_fetch, jp_serverapp, notebook):
    status, started = await fetch_json(
        jp_fetch, "runs", method="POST", body=json.dumps({"path": "work/pipe.ipynb", "params": {"n": 4}})
    )
    assert status == 201 and started["notebook"] == "work/pipe.ipynb"
    run_id = started["id"]
    response = await jp_fetch(API, "runs", str(run_id), "events", request_timeout=180)
    assert response.headers["Content-Type"].startswith("text/event-stream")
    events = parse_sse(response.body)
    assert [seq for seq, _, _ in events] == list(range(1, len(events) + 1))
    kinds = [kind for _, kind, _ in events]
    assert kinds[0] == "RunStarted" and kinds[-1] == "RunFinished"
    assert all(data["type"] == kind and data["run_id"] == run_id for _, kind, data in events)
    per_step = [(d["type"], d["step"]) for _, _, d in events if "step" in d and d["type"] != "RunWarning"]
    for name in ("load", "square", "total"):
        mine = [kind for kind, s in per_step if s == name]
        assert mine == ["StepQueued", "StepStarted", "StepFinished"], (name, mine)
    assert [s for kind, s in per_step if kind == "StepFinished"] == ["load", "square", "total"]
    assert events[-1][2]["status"] == "done"

    _, run = await fetch_json(jp_fetch, "runs", str(run_id))
    assert run["status"] == "done" and run["in_process"] and run["params"] == {"n": 4}
    assert {s: v["status"] for s, v in run["steps"].items()} == {"load": "done", "square": "done", "total": "done"}
    _, listing = await fetch_json(jp_fetch, "runs", params={"path": "work/pipe.ipynb"})
    assert [r["id"] for r in listing["runs"]] == [run_id] and listing["runs"][0]["notebook"] == "work/pipe.ipynb"
    _, graph = await fetch_json(jp_fetch, "graph", params={"path": "work/pipe.ipynb", "params": '{"n": 4}'})
    assert {n["id"]: n["state"] for n in graph["nodes"]} == {"load": "fresh", "square": "fresh", "total": "fresh"}

    # A run this server did not start (another process, or before a restart) comes from the store.
    jp_serverapp.web_app.settings["nbflow_runs"].runs.clear()
    _, stored = await fetch_json(jp_fetch, "runs", str(run_id), params={"path": "work/pipe.ipynb"})
    assert stored["status"] == "done" and not stored["in_process"] and "output_notebook" in stored["artifacts"]
    response = await jp_fetch(API, "runs", str(run_id), "events", params={"path": "work/pipe.ipynb"})
    (snapshot,) = parse_sse(response.body)
    assert snapshot[1] == "RunSnapshot" and snapshot[2]["steps"]["total"]["status"] == "done"
    status, _ = await error_code(jp_fetch, "runs", str(run_id))  # no path, not in process
    assert status == 404
    status, _ = await error_code(jp_fetch, "runs", "999", params={"path": "work/pipe.ipynb"})
    assert status == 404
    status, _ = await error_code(jp_fetch, "runs", str(run_id), method="DELETE", params={"path": "work/pipe.ipynb"})
    assert status == 409


@pytest.mark.slow
async def test_a_run_started_through_the_api_fires_the_pyproject_hooks_off_the_loop(
    jp_fetch, jp_serverapp, jp_root_dir
):
    from .test_hooks import serve_webhook

    folder = jp_root_dir / "hooked"
    folder.mkdir()
    write_notebook(folder / "pipe.ipynb", [step("load", "x = 1"), step("boom", "raise ValueError('no')")])
    with serve_webhook() as webhook:
        webhook.delay = 120.0  # the webhook hangs until released
        (folder / "pyproject.toml").write_text(f'[tool.nbflow]\nnotify = "{webhook.url}"\nhook-timeout = 120\n')
        _, started = await fetch_json(jp_fetch, "runs", method="POST", body=json.dumps({"path": "hooked/pipe.ipynb"}))
        run_id = started["id"]
        await jp_fetch(API, "runs", str(run_id), "events", request_timeout=180)  # ends at RunFinished

        async def posted():
            return webhook.received

        ((_, body),) = await wait_for(posted)
        # the hook waits on its own thread: the server answers meanwhile
        run = jp_serverapp.web_app.settings["nbflow_runs"].find(run_id, None)
        _, record = await fetch_json(jp_fetch, "runs", str(run_id))
        assert record["status"] == "failed" and not run.ended.is_set()
        webhook.release.set()
        assert await asyncio.to_thread(run.wait_end, 60) == []
    assert body["run_id"] == run_id and body["status"] == "failed" and body["failed_step"] == "boom"
    assert body["notebook"] == str((folder / "pipe.ipynb").resolve())


@pytest.mark.slow
async def test_a_run_started_through_the_api_leaves_its_report_when_report_is_true(jp_fetch, jp_serverapp, jp_root_dir):
    """``report = true``: the run's end writes its report (a child process, off the server's
    loop); the run JSON lists it, in process and from the store, and GET serves it by run id.
    Without the setting, a run leaves none."""
    records = {}
    for name, setting in (("reported", "report = true"), ("plain", "")):
        folder = jp_root_dir / name
        folder.mkdir()
        (folder / "pyproject.toml").write_text(f"[tool.nbflow]\n{setting}\n")
        notebook = write_notebook(
            folder / "pipe.ipynb", [step("load", "x = 1"), step("boom", "raise ValueError('no')")]
        )
        where = {"path": f"{name}/pipe.ipynb"}
        _, started = await fetch_json(jp_fetch, "runs", method="POST", body=json.dumps(where))
        await jp_fetch(API, "runs", str(started["id"]), "events", params=where, request_timeout=180)  # to RunFinished
        run = jp_serverapp.web_app.settings["nbflow_runs"].find(started["id"], notebook.resolve())
        assert await asyncio.to_thread(run.wait_end, 180) == []
        _, records[name] = await fetch_json(jp_fetch, "runs", str(started["id"]), params=where)
    assert records["reported"]["status"] == "failed" and records["reported"]["in_process"]
    assert records["reported"]["artifacts"] == ["output_notebook", "report"]
    assert records["plain"]["status"] == "failed" and records["plain"]["artifacts"] == ["output_notebook"]
    run_id = records["reported"]["id"]
    path = jp_root_dir / "reported" / ".nbflow" / "runs" / str(run_id) / "report.html"
    page = await jp_fetch(API, "runs", str(run_id), "report", params={"path": "reported/pipe.ipynb"})
    assert page.body == path.read_bytes() and b"ValueError" in page.body
    jp_serverapp.web_app.settings["nbflow_runs"].runs.clear()
    _, stored = await fetch_json(jp_fetch, "runs", str(run_id), params={"path": "reported/pipe.ipynb"})
    assert not stored["in_process"] and stored["artifacts"] == ["output_notebook", "report"]
    assert not (jp_root_dir / "plain" / ".nbflow" / "runs" / str(records["plain"]["id"]) / "report.html").exists()


@pytest.mark.slow
async def test_cancel_stops_a_running_step(jp_fetch, jp_root_dir):
    write_notebook(
        jp_root_dir / "slow.ipynb",
        [step("first", "a = 1"), step("nap", "import time\ntime.sleep(60)\nb = a"), step("after", "c = b")],
    )
    _, started = await fetch_json(jp_fetch, "runs", method="POST", body=json.dumps({"path": "slow.ipynb"}))
    run_id = str(started["id"])

    async def napping():
        _, run = await fetch_json(jp_fetch, "runs", run_id)
        return run["steps"]["nap"]["status"] == "running"

    await wait_for(napping)
    t0 = time.monotonic()
    status, body = await fetch_json(jp_fetch, "runs", run_id, method="DELETE")
    assert status == 202 and body["status"] == "cancelling"

    async def ended():
        _, run = await fetch_json(jp_fetch, "runs", run_id)
        return run if run["status"] not in ("pending", "running") else None

    run = await wait_for(ended, timeout=60)
    assert time.monotonic() - t0 < 45, "cancel must not wait for the step's sleep"
    assert run["status"] == "cancelled"
    assert run["steps"]["first"]["status"] == "done"
    assert run["steps"]["nap"]["status"] == "cancelled" and run["steps"]["after"]["status"] == "cancelled"
    events = parse_sse((await jp_fetch(API, "runs", run_id, "events")).body)
    assert events[-1][2] == {**events[-1][2], "type": "RunFinished", "status": "cancelled"}
    status, _ = await error_code(jp_fetch, "runs", run_id, method="DELETE")
    assert status == 409


async def test_start_run_rejects_bad_input(jp_fetch, notebook):
    for body, fragment in (
        ({"path": "work/pipe.ipynb", "params": {"n": "x"}}, "expects int"),
        ({"path": "work/pipe.ipynb", "only": ["lod"]}, "did you mean"),
        ({"path": "work/pipe.ipynb", "only": "load", "from": [1]}, "list of step names"),
    ):
        status, raw = await error_code(jp_fetch, "runs", method="POST", body=json.dumps(body))
        assert status == 400 and fragment in raw.decode(), raw
    status, _ = await error_code(jp_fetch, "runs", method="POST", body="not json")
    assert status == 400
    status, _ = await error_code(jp_fetch, "runs", params={"path": "work/pipe.ipynb", "limit": "x"})
    assert status == 400


DEEP = 100_000  # far past Python's recursion limit


def strict_json(body: bytes):
    """Parse as standard JSON only: NaN, Infinity and -Infinity are refused."""

    def refuse(name):
        raise AssertionError(f"not JSON: {name} in {body[:300]!r}")

    return json.loads(body, parse_constant=refuse)


@pytest.mark.parametrize(
    ("case", "route", "kwargs", "expected", "message"),
    [
        ("a file name past NAME_MAX", "graph", {"params": {"path": "a" * 300 + ".ipynb"}}, 400, "longer than"),
        ("a path past PATH_MAX", "plan", {"params": {"path": "ab/" * 2000 + "p.ipynb"}}, 400, "longer than"),
        (
            "a long name in POST runs",
            "runs",
            {"method": "POST", "body": json.dumps({"path": "x" * 300 + ".ipynb"})},
            400,
            "longer",
        ),
        ("deep JSON body", "runs", {"method": "POST", "body": "[" * DEEP + "]" * DEEP}, 400, "nested more than"),
        (
            "deep params in the body",
            "runs",
            {"method": "POST", "body": '{"path": "work/pipe.ipynb", "params": {"n": ' + "[" * 200 + "]" * 200 + "}}"},
            400,
            "nested more than",
        ),
        (
            "deep params in the query",
            "graph",
            {"params": {"path": "work/pipe.ipynb", "params": '{"n": ' + "[" * 3000 + "]" * 3000 + "}"}},
            400,
            "nested more than",
        ),
        (
            "a body that is not UTF-8",
            "runs",
            {"method": "POST", "body": b'{"path": "w\xffrk/pipe.ipynb"}'},
            400,
            "UTF-8",
        ),
        ("a run id of 2**63", f"runs/{2**63}", {"params": {"path": "work/pipe.ipynb"}}, 404, "below 2**63"),
        (
            "a run id past 2**64",
            f"runs/{2**64 + 5}/events",
            {"params": {"path": "work/pipe.ipynb"}},
            404,
            "below 2**63",
        ),
        ("a run id of 5000 digits", "runs/" + "9" * 5000, {"params": {"path": "work/pipe.ipynb"}}, 404, "below 2**63"),
        (
            "a report of a huge run id",
            "runs/" + "7" * 5000 + "/report",
            {"method": "POST", "body": "", "params": {"path": "work/pipe.ipynb"}},
            404,
            "below 2**63",
        ),
        ("DELETE a huge run id", f"runs/{2**63}", {"method": "DELETE"}, 404, "below 2**63"),
        ("a limit of 5000 digits", "runs", {"params": {"path": "work/pipe.ipynb", "limit": "9" * 5000}}, 400, "limit"),
        (
            "a limit in superscript digits",
            "runs",
            {"params": {"path": "work/pipe.ipynb", "limit": "\u00b2"}},
            400,
            "limit",
        ),
    ],
)
async def test_bad_requests_are_a_4xx_with_a_message_never_a_500(
    jp_fetch, notebook, caplog, case, route, kwargs, expected, message
):
    """#15 item 14: each of these was a 500 with a logged traceback."""
    status, body = await error_code(jp_fetch, *route.split("/"), request_timeout=60, **kwargs)
    assert status == expected, (case, status, body[:300])
    assert message in strict_json(body)["message"], (case, body[:300])
    assert not [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()], case
    assert not (notebook.parent / ".nbflow").exists()


@pytest.mark.slow
async def test_a_nan_parameter_never_makes_the_api_answer_non_standard_json(jp_fetch, jp_root_dir):
    """#15 item 15: a run with lr = NaN made ``GET runs`` answer ``NaN``, which JSON.parse refuses."""
    write_notebook(jp_root_dir / "lr.ipynb", [code("lr = 0.1", "parameters"), step("fit", "loss = lr * 2")])
    # JSON's NaN is what Python and JavaScript clients send for float("nan") (not standard, but read)
    body = json.dumps({"path": "lr.ipynb", "params": {"lr": float("nan")}})
    assert "NaN" in body
    response = await jp_fetch(API, "runs", method="POST", body=body)
    run_id = strict_json(response.body)["id"]
    events = await jp_fetch(API, "runs", str(run_id), "events", request_timeout=180)
    for block in events.body.decode().split("\n\n"):
        for line in block.splitlines():
            if line.startswith("data: "):
                strict_json(line[6:].encode())
    answers = [
        await jp_fetch(API, "runs", params={"path": "lr.ipynb"}),
        await jp_fetch(API, "runs", str(run_id), params={"path": "lr.ipynb"}),
        await jp_fetch(API, "runs"),
        await jp_fetch(API, "graph", params={"path": "lr.ipynb", "params": '{"lr": Infinity}'}),
        await jp_fetch(API, "plan", params={"path": "lr.ipynb", "params": '{"lr": -Infinity}'}),
    ]
    listing, run, in_process, graph, plan = (strict_json(a.body) for a in answers)
    assert listing["runs"][0]["params"] == {"lr": "NaN"} and run["params"] == {"lr": "NaN"}
    assert in_process["runs"][0]["params"] == {"lr": "NaN"}
    assert run["status"] == "done", run
    assert plan["params"] == {"lr": "-Infinity"} and graph["nodes"], (plan, graph)


async def test_report_endpoints(jp_fetch, notebook):
    status, _ = await error_code(jp_fetch, "runs", "1", "report", params={"path": "work/pipe.ipynb"})
    assert status == 404  # no store yet, no report
    pytest.importorskip("nbflow.report")
    _, started = await fetch_json(jp_fetch, "runs", method="POST", body=json.dumps({"path": "work/pipe.ipynb"}))
    run_id = str(started["id"])
    await jp_fetch(API, "runs", run_id, "events", request_timeout=180)  # returns when the run ends
    status, _ = await error_code(jp_fetch, "runs", run_id, "report", params={"path": "work/pipe.ipynb"})
    assert status == 404  # not built yet
    status, built = await fetch_json(
        jp_fetch, "runs", run_id, "report", method="POST", body="", params={"path": "work/pipe.ipynb"}
    )
    assert status == 201 and built["url"].endswith(f"runs/{run_id}/report?path=work%2Fpipe.ipynb")
    response = await jp_fetch(API, "runs", run_id, "report", params={"path": "work/pipe.ipynb"}, request_timeout=120)
    assert response.headers["Content-Type"].startswith("text/html")
    assert response.headers["Content-Security-Policy"] == "sandbox allow-scripts"
    assert b"square" in response.body


def test_the_openapi_document_lists_every_route_and_method():
    import re

    import yaml

    import nbflow.server as server
    import nbflow.server_lab as server_lab
    import nbflow.server_project as server_project

    spec = yaml.safe_load((Path(__file__).resolve().parents[1] / "docs" / "rest-api.yaml").read_text())
    documented = {p.strip("/"): set(ops) - {"parameters"} for p, ops in spec["paths"].items()}
    for module in (server, server_lab, server_project):
        source = Path(module.__file__).read_text()
        routes = re.findall(r'url_path_join\(base, r?"([^"]+)"\), (\w+)\)', source)
        assert routes, module
        for route, handler in routes:
            methods = {m for m in ("get", "post", "delete") if f"def {m}(" in _class_source(source, handler)}
            assert documented[re.sub(r"\(\\d\+\)", "{id}", route)] == methods, route


def _class_source(source: str, name: str) -> str:
    start = source.index(f"class {name}(")
    end = source.find("\nclass ", start + 1)
    return source[start : end if end > 0 else None]
