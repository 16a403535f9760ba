"""The run store: transitions, listener, reconciliation, concurrency."""

from __future__ import annotations

import multiprocessing
import os

import pytest

from nbflow.events import CheckFailed, RunFinished, RunStarted, RunWarning, StepFinished, StepStarted
from nbflow.store import RunStore, StoreError

STEPS = (
    {"step": "a", "key": "ka", "action": "run", "reasons": ["never run"]},
    {"step": "b", "key": "kb", "action": "cached", "reasons": []},
)


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_listener_records_a_run(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    run_id = store.create_run(tmp_path / "nb.ipynb", params={"lr": 0.1}, provenance={"git": {"dirty": True}})
    for event in (
        RunStarted(run_id, notebook="nb.ipynb", params={"lr": 0.1}, steps=STEPS, executor="kernel"),
        StepFinished(run_id, step="b", status="cached"),
        StepStarted(run_id, step="a"),
        RunWarning(run_id, message="value x not cached", step="a"),
        StepFinished(run_id, step="a", status="done", duration=1.5, reasons=("never run",)),
        RunFinished(run_id, status="done", duration=2.0),
    ):
        store.listener(event)
    run = store.run(run_id)
    assert run["status"] == "done" and run["params"] == {"lr": 0.1}
    assert run["provenance"]["git"]["dirty"] is True
    steps = {s["step"]: s for s in store.steps(run_id)}
    assert steps["a"]["status"] == "done" and steps["a"]["duration"] == 1.5
    assert steps["a"]["reasons"] == ["never run"]
    assert steps["b"]["status"] == "cached"
    assert store.messages(run_id) == [
        {"step": "a", "text": "value x not cached", "time": pytest.approx(store.messages(run_id)[0]["time"])}
    ]
    assert store.latest_step_key(tmp_path / "nb.ipynb", "a") == (run_id, "ka")
    assert store.integrity_check() == "ok"


def test_illegal_transitions_are_refused(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    run_id = store.create_run(tmp_path / "nb.ipynb")
    store.listener(RunStarted(run_id, notebook="nb", params={}, steps=STEPS, executor="kernel"))
    with pytest.raises(StoreError, match="cannot go from pending to done"):
        store.set_step_status(run_id, "a", "done")
    store.set_step_status(run_id, "a", "running")
    store.set_step_status(run_id, "a", "failed")
    with pytest.raises(StoreError, match="cannot go from failed to running"):
        store.set_step_status(run_id, "a", "running")
    store.set_run_status(run_id, "failed")
    with pytest.raises(StoreError):
        store.set_run_status(run_id, "done")


def test_only_a_failed_check_moves_a_finished_step_back_to_failed(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    run_id = store.create_run(tmp_path / "nb.ipynb")
    store.listener(RunStarted(run_id, notebook="nb", params={}, steps=STEPS, executor="kernel"))
    with pytest.raises(StoreError, match="a failed check cannot fail it from pending"):
        store.listener(CheckFailed(run_id, step="a", check="a.check1", error="check failed"))
    store.listener(StepStarted(run_id, step="a"))
    store.listener(StepFinished(run_id, step="a", status="done", duration=1.5))
    with pytest.raises(StoreError, match="cannot go from done to failed"):  # not by an ordinary finish
        store.set_step_status(run_id, "a", "failed")
    store.listener(CheckFailed(run_id, step="a", check="a.check1", error="nb.ipynb, cell 4: check failed"))
    store.listener(StepFinished(run_id, step="b", status="cached"))
    store.listener(CheckFailed(run_id, step="b", check="b.check1", error="b's check failed"))
    steps = {s["step"]: s for s in store.steps(run_id)}
    assert (steps["a"]["status"], steps["a"]["error"], steps["a"]["duration"]) == (
        "failed",
        "nb.ipynb, cell 4: check failed",
        1.5,
    )
    assert (steps["b"]["status"], steps["b"]["error"]) == ("failed", "b's check failed")
    with pytest.raises(StoreError, match="a failed check cannot fail it from failed"):
        store.listener(CheckFailed(run_id, step="a", check="a.check2", error="again"))
    assert store.latest_step_key(tmp_path / "nb.ipynb", "a") is None  # never handed on as a good result


def test_run_finished_closes_open_steps(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    run_id = store.create_run(tmp_path / "nb.ipynb")
    store.listener(RunStarted(run_id, notebook="nb", params={}, steps=STEPS, executor="kernel"))
    store.listener(RunFinished(run_id, status="cancelled"))
    assert {s["status"] for s in store.steps(run_id)} == {"cancelled"}


def test_reconcile_dead_owner_and_stale_heartbeat(tmp_path):
    clock = Clock()
    alive = {os.getpid(): True}
    store = RunStore(
        tmp_path / "runs.db", clock=clock, is_alive=lambda pid: alive.get(pid, False), heartbeat_interval=5
    )
    run_id = store.create_run(tmp_path / "nb.ipynb")
    store.listener(RunStarted(run_id, notebook="nb", params={}, steps=STEPS, executor="kernel"))
    store.set_step_status(run_id, "a", "running")
    assert store.reconcile() == []  # owner alive, heartbeat fresh
    clock.now += 20
    assert store.reconcile() == []  # 20 s < 3 heartbeats + 10 s grace
    clock.now += 10
    assert store.reconcile() == [run_id]  # heartbeat silent for 30 s
    assert store.run(run_id)["status"] == "interrupted"
    assert {s["status"] for s in store.steps(run_id)} == {"interrupted"}


def test_reconcile_dead_pid_on_this_host(tmp_path):
    clock = Clock()
    store = RunStore(tmp_path / "runs.db", clock=clock, is_alive=lambda pid: False)
    run_id = store.create_run(tmp_path / "nb.ipynb")
    # a new store (the next command) finds the owner gone at once
    RunStore(tmp_path / "runs.db", clock=clock, is_alive=lambda pid: False)
    assert store.run(run_id)["status"] == "interrupted"
    assert "stopped" in store.run(run_id)["error"]


def _writer(path: str, n: int, out: multiprocessing.Queue) -> None:
    errors = 0
    store = RunStore(path)
    for _ in range(n):
        try:
            run_id = store.create_run("/x/nb.ipynb")
            store.listener(RunStarted(run_id, notebook="nb", params={}, steps=STEPS, executor="kernel"))
            store.listener(StepFinished(run_id, step="b", status="cached"))
            store.listener(StepStarted(run_id, step="a"))
            store.listener(StepFinished(run_id, step="a", status="done"))
            store.listener(RunFinished(run_id, status="done"))
        except Exception as e:  # noqa: BLE001
            errors += 1
            out.put(repr(e))
    out.put(errors)


def test_concurrent_writers_never_see_database_locked(tmp_path):
    path = str(tmp_path / "runs.db")
    RunStore(path)
    out: multiprocessing.Queue = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=_writer, args=(path, 25, out)) for _ in range(4)]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join()
    assert results == [0, 0, 0, 0]
    store = RunStore(path)
    assert len(store.runs(limit=1000)) == 100
    assert store.integrity_check() == "ok"
