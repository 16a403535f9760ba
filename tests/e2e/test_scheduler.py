"""Jupyter Scheduler with nbflow's classes: a real ``jupyter server`` (token, 127.0.0.1,
``allow_unauthenticated_access=False``) with jupyter-scheduler configured through its
traitlets; jobs created through its REST API run through nbflow: the first computes, a
second job -- and a job started from a job definition, as its cron schedule starts them
-- is cached; each run is recorded in the notebook's own ``.nbflow``, and the run's report
comes down with the job's files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

import nbflow
from nbflow.config import Config
from nbflow.store import RunStore

from ..conftest import code, md, step, write_notebook
from .conftest import free_port, wait_for_http

pytest.importorskip("jupyter_scheduler")
pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
TOKEN = "nbflow-scheduler-token"


class Server:
    def __init__(self, url: str, root: Path) -> None:
        self.url, self.root = url, root

    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        request = urllib.request.Request(
            f"{self.url}{path}",
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"token {TOKEN}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read()
        return json.loads(text) if text else {}

    def wait_for_job(self, job_id: str, timeout: float = 240) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.call("GET", f"scheduler/jobs/{job_id}")
            # a new job reads STOPPED (the column's default) until its process starts
            if job["status"] in ("COMPLETED", "FAILED"):
                return job
            time.sleep(0.2)
        raise AssertionError(f"job {job_id} did not finish: {job}")


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "root"
    (root / "work").mkdir(parents=True)
    port = free_port()
    env = {
        **os.environ,
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "JUPYTER_DATA_DIR": str(tmp_path / "data"),
    }
    env.pop("NBFLOW_HOME", None)
    args = [
        str(BIN / "jupyter"),
        "server",
        "--no-browser",
        f"--port={port}",
        "--ServerApp.port_retries=0",  # never another server's port
        "--ServerApp.ip=127.0.0.1",
        f"--IdentityProvider.token={TOKEN}",
        f"--ServerApp.root_dir={root}",
        "--ServerApp.allow_unauthenticated_access=False",
        "--SchedulerApp.scheduler_class=nbflow.scheduler.NbflowScheduler",
        "--Scheduler.execution_manager_class=nbflow.scheduler.NbflowExecutionManager",
        "--SchedulerApp.job_files_manager_class=nbflow.scheduler.NbflowJobFilesManager",
        f"--SchedulerApp.db_url=sqlite:///{tmp_path / 'scheduler.sqlite'}",
        f"--Scheduler.staging_path={tmp_path / 'staging'}",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        args.append("--allow-root")
    log = tmp_path / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=root)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/api/status?token={TOKEN}", proc, timeout=90)
        yield Server(f"http://127.0.0.1:{port}/", root)
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        print(log.read_text()[-8000:])  # shown when the test fails


def statuses(path: Path, run_id: int) -> dict[str, str]:
    store = RunStore(Config.for_notebook(path).store_path)
    try:
        return {s["step"]: s["status"] for s in store.steps(run_id)}
    finally:
        store.close()


def job_body(name: str, **extra: object) -> dict:
    return {
        "input_uri": "work/pipeline.ipynb",
        "runtime_environment_name": "python3",
        "output_formats": ["ipynb", "html"],
        "parameters": {"n": "3", "label": "'scheduled'"},
        "name": name,
        **extra,
    }


def test_scheduler_jobs_run_through_nbflow_and_are_cached(server):
    path = write_notebook(
        server.root / "work" / "pipeline.ipynb",
        [
            md("# Scheduled squares"),
            code("import math"),
            code("n = 2\nlabel = 'interactive'", "parameters"),
            step("make", "values = [i * i for i in range(n)]"),
            step("total", "total = sum(values)\nprint(label, total)"),
        ],
    )
    api = server.call("GET", "api/status")  # behind jupyter_server's authentication
    assert "started" in api

    first_id = server.call("POST", "scheduler/jobs", job_body("first"))["job_id"]
    first = server.wait_for_job(first_id)
    assert first["status"] == "COMPLETED", first.get("status_message")
    runs = nbflow.Config.for_notebook(path)
    store = RunStore(runs.store_path)  # the run is in the notebook's own .nbflow
    recorded = store.runs(None)
    store.close()
    assert len(recorded) == 1 and recorded[0]["params"] == {"n": 3, "label": "scheduled"}
    run_id = recorded[0]["id"]
    assert statuses(path, run_id) == {"make": "done", "total": "done"}
    assert nbflow.result(path, "total", "total", run=run_id) == 0 + 1 + 4

    second_id = server.call("POST", "scheduler/jobs", job_body("second"))["job_id"]
    second = server.wait_for_job(second_id)
    assert second["status"] == "COMPLETED", second.get("status_message")
    store = RunStore(runs.store_path)
    latest = store.runs(None)[0]["id"]
    store.close()
    assert latest != run_id and statuses(path, latest) == {"make": "cached", "total": "cached"}

    # the job's files: its outputs and the run's report, downloaded like any job's
    assert {"ipynb", "html", "input"} <= {f["file_format"] for f in second["job_files"]}
    assert "pipeline-nbflow-report.html" in second["packaged_files"]
    server.call("GET", f"scheduler/jobs/{second_id}/download_files?redownload=true")
    deadline = time.monotonic() + 60
    while True:
        second = server.call("GET", f"scheduler/jobs/{second_id}")
        if all(f.get("file_path") for f in second["job_files"]):
            break
        assert time.monotonic() < deadline, second
        time.sleep(0.5)
    names = {f["file_format"]: f["file_path"] for f in second["job_files"]}
    report = server.root / Path(names["ipynb"]).parent / "pipeline-nbflow-report.html"
    while not report.exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert "Scheduled squares" in report.read_text()
    executed = nbformat.read(server.root / names["ipynb"], 4)
    total = next(c for c in executed.cells if "step:total" in c.metadata.get("tags", []))
    assert "scheduled 5" in "".join(o.get("text", "") for o in total.outputs)
    assert not any(Path(f).parts[0] == ".nbflow" for f in second["packaged_files"])

    # a job definition with a cron schedule: the jobs it starts run the same way
    definition = server.call(
        "POST", "scheduler/job_definitions", {**job_body("nightly"), "schedule": "0 3 * * *", "timezone": "UTC"}
    )["job_definition_id"]
    from_definition = server.call("POST", f"scheduler/job_definitions/{definition}/jobs", {})["job_id"]
    third = server.wait_for_job(from_definition)
    assert third["status"] == "COMPLETED", third.get("status_message")
    store = RunStore(runs.store_path)
    newest = store.runs(None)[0]["id"]
    store.close()
    assert newest > latest and statuses(path, newest) == {"make": "cached", "total": "cached"}
