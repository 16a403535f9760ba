"""Sweeps with real kernels: the upstream of a sweep runs once."""

from __future__ import annotations

import subprocess
import sys

import pytest

from nbflow import load_pipeline
from nbflow.store import RunStore
from nbflow.sweep import run_sweep, summary_rows

from ..conftest import code, step

pytestmark = pytest.mark.slow

NB = [
    code("lr = 0.1\ndepth = 3\nrows = 100", "parameters"),
    step("load", "data = list(range(rows))"),
    step("prepare", "xs = [d / rows for d in data]"),
    step("train", "score = round(sum(x * lr for x in xs) + depth, 6)"),
    step("evaluate", "accuracy = score / (1 + score)"),
]


def test_a_2x2_sweep_runs_the_shared_upstream_once(make_notebook):
    path = make_notebook(NB)
    pipeline = load_pipeline(path)
    sweep = run_sweep(pipeline, {"lr": [0.1, 0.2], "depth": [3, 5]})
    assert sweep.status == "done" and len(sweep.runs) == 4
    store = RunStore(pipeline.config.store_path)
    done = {}
    for entry in store.sweep_runs(sweep.id):
        for s in store.steps(entry["run_id"]):
            done.setdefault(s["step"], []).append(s["status"])
    assert done["load"].count("done") == 1 and done["prepare"].count("done") == 1
    assert done["train"].count("done") == 4 and done["evaluate"].count("done") == 4
    rows = summary_rows(pipeline.config, sweep.id)
    assert [r["params"] for r in rows] == [
        {"lr": 0.1, "depth": 3},
        {"lr": 0.1, "depth": 5},
        {"lr": 0.2, "depth": 3},
        {"lr": 0.2, "depth": 5},
    ]
    first = rows[0]["outputs"]["evaluate.accuracy"]
    assert abs(float(first) - (4.95 + 3) / (1 + 4.95 + 3)) < 1e-9


def test_sweep_cli_checks_values_before_running(make_notebook):
    path = make_notebook(NB)
    proc = subprocess.run(
        [sys.executable, "-m", "nbflow", "sweep", str(path), "-p", "depth", "3", "x"], capture_output=True, text=True
    )
    assert proc.returncode == 2 and "parameter 'depth' expects int" in proc.stderr
    assert not load_pipeline(path).config.store_path.exists()
    ok = subprocess.run(
        [
            sys.executable,
            "-m",
            "nbflow",
            "sweep",
            str(path),
            "-p",
            "lr",
            "0.1",
            "0.3",
            "--zip",
            "-p",
            "depth",
            "1",
            "2",
            "--collect",
            "accuracy",
        ],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
    assert "evaluate.accuracy" in ok.stdout and ok.stdout.count("done") == 3  # header status + 2 runs


@pytest.mark.browser
def test_sweep_report_opens_offline_with_its_chart(make_notebook, page):
    from nbflow.report import build_sweep_report

    path = make_notebook(NB)
    pipeline = load_pipeline(path)
    sweep = run_sweep(pipeline, {"lr": [0.1, 0.2], "depth": [3, 5]})
    report = build_sweep_report(pipeline.config, sweep.id, names=["accuracy"])
    page.goto(report.as_uri())
    page.locator("canvas").first.wait_for(timeout=30_000)
    rows = page.locator("tr[data-run]")
    assert rows.count() == 4
    assert "evaluate.accuracy" in page.text_content("table")
    assert page.outside == [] and page.console_errors == []
