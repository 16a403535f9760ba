"""Load: a 1000-step notebook plans, runs and lists; 50 runs are recorded and listed."""

from __future__ import annotations

import sys
import time

import pytest

import nbflow
from nbflow.graph import load_pipeline
from nbflow.store import RunStore

from .conftest import check_invariants, nbflow_cli

pytestmark = pytest.mark.slow

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[2] / "benchmarks"))
from common import chain_notebook  # noqa: E402


def test_a_1000_step_notebook_plans_runs_and_lists(folder):
    path = chain_notebook(folder / "big.ipynb", 1000)
    plan = nbflow_cli("plan", str(path))
    assert plan.returncode == 0 and "1000 of 1000 steps would run" in plan.stdout
    started = time.monotonic()
    run = nbflow_cli("run", str(path), "--quiet", timeout=900)
    print(f"1000 trivial steps ran in {time.monotonic() - started:.1f} s")
    assert run.returncode == 0, run.stderr[-2000:]
    assert nbflow.result(path, "s999", "v999") == 1000
    assert load_pipeline(path).plan().to_run == []
    listing = nbflow_cli("runs", str(path))
    assert "1000 done" in listing.stdout
    check_invariants(folder)


def test_fifty_runs_are_recorded_and_listed(folder):
    path = chain_notebook(folder / "small.ipynb", 5)
    pipeline = load_pipeline(path)
    for _ in range(50):  # the first run executes; the others are recorded fully cached runs
        assert pipeline.run().status == "done"
    assert len(RunStore(pipeline.config.store_path).runs(limit=100)) == 50
    started = time.monotonic()
    listing = nbflow_cli("runs", str(path), "--limit", "100")
    print(f"listed 50 runs in {time.monotonic() - started:.2f} s")
    rows = [line.split() for line in listing.stdout.splitlines()[2:]]
    assert listing.returncode == 0 and len(rows) == 50 and {row[2] for row in rows} == {"done"}
    check_invariants(folder)
