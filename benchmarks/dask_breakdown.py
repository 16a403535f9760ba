"""Where the time of one ``nbflow run --executor dask`` goes (``bench_dask.py --breakdown``).

Run as a script it is the whole ``nbflow run NOTEBOOK --executor dask --workers N``
process, with timers around the executor's parts (wrapped from outside, nothing in
nbflow changed): the cluster's start and close, each task's outcome as the worker
measured it (its cells, the dump of its values), the client's commit of each entry
and the output notebook; at the end it asks Dask's scheduler for its task stream
(each task's compute span on its worker) and prints all of it as JSON on stdout.
``breakdown(...)`` runs it in a fresh process and turns the JSON into report rows.

    python benchmarks/dask_breakdown.py NOTEBOOK [WORKERS]
"""

from __future__ import annotations

import time

T0 = time.time()  # before any import: the process's start, as near as Python sees it

import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402


def instrumented_run(notebook: str, workers: int) -> dict[str, Any]:
    """Run the notebook through nbflow's CLI with timers around the Dask executor's parts."""
    spans: dict[str, list[tuple[float, float]]] = {}
    found: dict[str, Any] = {"results": {}, "stream": []}

    def timed(owner: Any, name: str, label: str, before: Any = None) -> None:
        original = getattr(owner, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if before is not None:
                before(*args)
            start = time.time()
            try:
                return original(*args, **kwargs)
            finally:
                spans.setdefault(label, []).append((start, time.time()))

        setattr(owner, name, wrapper)

    t_import = time.time()
    from nbflow import cli
    from nbflow.executors import dask as dask_executor
    from nbflow.executors import dask_cluster

    def keep_stream(cluster: Any) -> None:
        # The scheduler's record of every task: where and when it computed.
        try:
            recorder = found.pop("recorder")
            recorder.__exit__(None, None, None)
            found["stream"] = recorder.data
        except Exception as e:  # noqa: BLE001 - reported, the run is measured anyway
            found["stream_error"] = repr(e)

    connect = dask_cluster.Cluster.__init__

    def record_stream(cluster: Any, *args: Any, **kwargs: Any) -> None:
        connect(cluster, *args, **kwargs)
        from distributed import get_task_stream

        found["recorder"] = get_task_stream(client=cluster.client)
        found["recorder"].__enter__()

    dask_cluster.Cluster.__init__ = record_stream

    def keep_result(session: Any, attempt: Any, result: dict[str, Any]) -> None:
        found["results"][attempt.step] = {
            k: result.get(k) for k in ("duration", "dump_seconds", "cpu_seconds", "pid") if k in result
        }

    timed(dask_cluster.Cluster, "__init__", "cluster start")
    timed(dask_cluster.Cluster, "close", "cluster close", before=keep_stream)
    timed(dask_executor.DaskSession, "on_result", "client: handle a result", before=keep_result)
    timed(dask_executor.DaskSession, "commit", "client: commit an entry")
    timed(dask_executor.DaskSession, "submit", "client: submit a task")
    timed(dask_executor, "write_output_notebook", "client: output notebook")
    timed(dask_executor.DaskSession, "verify_restores", "client: verify restores")
    imported = time.time()
    code = cli.main(["run", notebook, "--executor", "dask", "--workers", str(workers), "--quiet"])
    ended = time.time()
    stream = [
        {
            "worker": t.get("worker"),
            "key": str(t.get("key")),
            "spans": [[s.get("action"), s.get("start"), s.get("stop")] for s in t.get("startstops", ())],
        }
        for t in found["stream"]
    ]
    return {
        "t0": T0,
        "import_start": t_import,
        "imported": imported,
        "ended": ended,
        "code": code,
        "spans": spans,
        "results": found["results"],
        "stream": stream,
        "stream_error": found.get("stream_error"),
    }


def _store_times(notebook: Path) -> dict[str, Any]:
    import sqlite3

    db = sqlite3.connect(notebook.parent / ".nbflow" / "runs.db")
    try:
        (run_id,) = db.execute("SELECT MAX(id) FROM runs").fetchone()
        created, started, finished = db.execute(
            "SELECT created, started, finished FROM runs WHERE id = ?", (run_id,)
        ).fetchone()
        steps = db.execute(
            "SELECT step, started, finished, duration FROM step_runs WHERE run_id = ?", (run_id,)
        ).fetchall()
    finally:
        db.close()
    return {"created": created, "started": started, "finished": finished, "steps": steps}


def breakdown(notebook: Path, workers: int = 2) -> tuple[list[tuple[str, float, str]], float]:
    """Report rows of where one dask run's wall time went, and that run's wall time."""
    import os
    import shutil

    shutil.rmtree(notebook.parent / ".nbflow", ignore_errors=True)
    start = time.time()
    cpu = os.times()
    proc = subprocess.run(
        [sys.executable, str(Path(__file__)), str(notebook), str(workers)], capture_output=True, text=True
    )
    end = time.time()
    after = os.times()
    if proc.returncode != 0:
        raise SystemExit(f"breakdown run failed:\n{proc.stdout}\n{proc.stderr}")
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    store = _store_times(notebook)
    spans = data["spans"]

    def total(label: str) -> float:
        return sum(b - a for a, b in spans.get(label, []))

    cluster = spans["cluster start"][0]
    closing = spans["cluster close"][0]
    steps = store["steps"]
    first_step = min(s[1] for s in steps)
    last_step = max(s[2] for s in steps)
    results = data["results"]
    per_step = [r["duration"] for r in results.values()]
    dumps = [r.get("dump_seconds") or 0.0 for r in results.values()]
    computes: dict[str, list[tuple[float, float]]] = {}
    for task in data["stream"]:
        if str(task["key"]).startswith("nbflow-"):
            for action, a, b in task["spans"]:
                if action == "compute":
                    computes.setdefault(task["worker"], []).append((a, b))
    compute_total = sum(b - a for spans_ in computes.values() for a, b in spans_)
    first_compute = min((a for s in computes.values() for a, _ in s), default=float("nan"))
    last_compute = max((b for s in computes.values() for _, b in s), default=float("nan"))
    busy_window = sum(max(b for _, b in s) - min(a for a, _ in s) for s in computes.values())
    wall = end - start
    n = len(per_step)
    rows = [
        (
            "whole process (wall)",
            wall,
            f"CPU of the process and its children: {after.children_user + after.children_system - cpu.children_user - cpu.children_system:.2f} s",
        ),
        (
            "  interpreter start to nbflow imported",
            data["imported"] - start,
            "python start-up, nbflow's CLI and the dask executor imported",
        ),
        ("  ... to run recorded", store["created"] - data["imported"], "read the notebook, plan, open the run store"),
        (
            "  cluster start (LocalCluster + client)",
            cluster[1] - cluster[0],
            f"began {cluster[0] - start:+.2f} s after the process, ready {cluster[1] - start:.2f} s in "
            f"(overlaps reading/planning by {max(0.0, store['created'] - cluster[0]):.2f} s)",
        ),
        (
            "  cluster ready to first task computing",
            first_compute - cluster[1],
            "sharing probe, topic, first submissions, worker picks it",
        ),
        (
            "  tasks computing on the workers (sum)",
            compute_total,
            f"{n} tasks; per task {compute_total / max(n, 1):.3f} s, of which the step's cells "
            f"{(sum(per_step) - sum(dumps)) / max(n, 1):.3f} s and writing its values {sum(dumps) / max(n, 1):.3f} s; "
            f"set-up (namespace, setup cells, restores) {(compute_total - sum(per_step)) / max(n, 1):.3f} s",
        ),
        (
            "  workers idle between their tasks (sum)",
            busy_window - compute_total,
            "scheduler hand-off, result transfer, waiting for the client to submit",
        ),
        ("  first to last task computing (wall)", last_compute - first_compute, f"{len(computes)} workers"),
        (
            "  last task done to last step recorded",
            last_step - last_compute,
            "result back to the client, commit, event",
        ),
        (
            "  client: commit entries (sum)",
            total("client: commit an entry"),
            "fsync, manifest, rename: on the client, beside the tasks",
        ),
        ("  client: submit tasks (sum)", total("client: submit a task"), "spec, restores, client.submit"),
        ("  last step recorded to run recorded", store["finished"] - last_step, "output notebook, end of the run"),
        ("  client: output notebook", total("client: output notebook"), ""),
        ("  cluster close", closing[1] - closing[0], "(task stream fetched first, not counted)"),
        ("  run recorded to CLI returned", data["ended"] - store["finished"], "cluster close, the CLI's last lines"),
        ("  CLI returned to process exit", end - data["ended"], "interpreter exit (atexit handlers, child processes)"),
        ("  first step started to last finished", last_step - first_step, "as the run store shows the run"),
    ]
    return rows, wall


if __name__ == "__main__":
    out = instrumented_run(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 2)
    print(json.dumps(out, default=repr))
