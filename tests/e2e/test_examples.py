"""Every example in notebooks/ runs, then resumes fully cached with the same results."""

from __future__ import annotations

import shutil

import pytest

import nbflow
from nbflow import load_pipeline

from ..conftest import NOTEBOOKS

pytestmark = pytest.mark.slow

EXAMPLES = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))


def copy_example(name: str, tmp_path):
    path = tmp_path / name
    shutil.copy(NOTEBOOKS / name, path)
    return path


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_runs_then_resumes_fully_cached(name, tmp_path):
    path = copy_example(name, tmp_path)
    pipeline = load_pipeline(path)
    assert pipeline.warnings == ()
    first = pipeline.run()
    assert first.status == "done", first.error
    values = {
        (step, value): repr(info.get("scalar"))
        for step in pipeline.order
        for value, info in nbflow.cache.Cache(pipeline.config.cache_dir)
        .lookup(step, first.steps[step]["key"])  # the key it ended with (early cut-off re-keys)
        .names.items()
    }
    again = load_pipeline(path).run()
    assert [s["status"] for s in again.steps.values()] == ["cached"] * len(pipeline.order)
    for step in pipeline.order:
        entry = nbflow.cache.Cache(pipeline.config.cache_dir).lookup(step, again.steps[step]["key"])
        for value, info in entry.names.items():
            assert values[(step, value)] == repr(info.get("scalar"))


def test_sensor_example_processes_only_the_new_file(tmp_path):
    path = copy_example("sensor_files.ipynb", tmp_path)
    load_pipeline(path).run()
    before = nbflow.result(path, "measure", "stats")
    events = []
    grown = load_pipeline(path).run({"n_sensors": 5}, listeners=[events.append])
    assert grown.status == "done", grown.error
    assert [e.status for e in events if e.type == "ItemFinished"] == ["cached"] * 4 + ["done"]
    after = nbflow.result(path, "measure", "stats")
    assert after[:4] == before and after[4]["sensor"] == "sensor_04"
    summary = nbflow.result(path, "summary", "summary")
    assert list(summary.index) == [f"sensor_0{i}" for i in range(5)]
    assert (tmp_path / "sensor_data" / "line_counts.txt").read_text().count(".csv") == 5


def test_wine_sweep_runs_the_data_steps_once(tmp_path):
    from nbflow.sweep import run_sweep, summary_rows

    path = copy_example("wine_classifier.ipynb", tmp_path)
    pipeline = load_pipeline(path)
    sweep = run_sweep(pipeline, {"max_depth": [1, 4], "n_estimators": [10, 100]})
    assert sweep.status == "done"
    ran = [s["status"] for r in sweep.runs for s in r.store.steps(r.id) if s["step"] == "features"]
    assert ran.count("done") == 1
    rows = summary_rows(pipeline.config, sweep.id, ["accuracy"])
    accuracies = {float(r["outputs"]["evaluate.accuracy"]) for r in rows}
    assert len(accuracies) > 1  # the parameters matter


def test_pipeline_of_notebooks_example_resumes_fully_cached_without_a_kernel(tmp_path):
    import json
    import subprocess
    import sys
    import textwrap

    from nbflow.project import load_project
    from nbflow.project_run import run_project

    folder = tmp_path / "diabetes_pipeline"
    shutil.copytree(NOTEBOOKS / "diabetes_pipeline", folder)
    first = run_project(load_project(folder))
    assert first.status == "done", {n: r.error for n, r in first.runs.items()}
    metrics = json.loads((folder / "data" / "metrics.json").read_text())
    assert 0.2 < metrics["r2"] < 0.7 and metrics["alpha"] == 1.0

    probe = textwrap.dedent(
        f"""
        import json, sys
        from nbflow.project import load_project
        from nbflow.project_run import run_project
        result = run_project(load_project({str(folder)!r}))
        print(json.dumps({{
            "status": result.status,
            "steps": {{n: sorted({{i["status"] for i in r.steps.values()}}) for n, r in result.runs.items()}},
            "outputs": [r.output_notebook is not None for r in result.runs.values()],
            "heavy": sorted(m for m in ("jupyter_client", "papermill", "nbformat", "distributed") if m in sys.modules),
        }}))
        """
    )
    again = json.loads(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout)
    assert again == {
        "status": "done",
        "steps": {"ingest.ipynb": ["cached"], "features.py": ["cached"], "model.ipynb": ["cached"]},
        "outputs": [False, False, False],
        "heavy": [],
    }
    assert json.loads((folder / "data" / "metrics.json").read_text()) == metrics
