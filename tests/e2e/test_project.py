"""A pipeline of notebooks run for real: one kernel per notebook, files between them, keys
chained across them; a text notebook (Jupytext) runs like its ``.ipynb``; independent
notebooks run at the same time on Dask."""

from __future__ import annotations

import pytest

import nbflow
from nbflow.project import load_project, plan_project
from nbflow.project_run import run_project

from ..conftest import producer_and_consumer, step, write_notebook
from ..test_sources import CELLS, MYST, PERCENT

pytestmark = pytest.mark.slow


def test_editing_the_producer_makes_the_consumer_stale_with_that_reason(tmp_path):
    producer_and_consumer(tmp_path)
    first = run_project(load_project(tmp_path))
    assert first.status == "done", {n: r.error for n, r in first.runs.items()}
    assert nbflow.result(tmp_path / "model.py", "fit", "total") == 6
    # the consumer's kernel never saw the producer's values: only the file crossed
    assert {s: i["status"] for s, i in first.runs["model.py"].steps.items()} == {"read": "done", "fit": "done"}

    producer_and_consumer(tmp_path, export="open('rows.txt', 'w').write(','.join(str(r * 10) for r in rows))")
    plans = plan_project(load_project(tmp_path))
    assert plans["ingest.ipynb"]["load"].state == "fresh"
    assert plans["ingest.ipynb"]["export"].reasons == ("code changed",)
    assert plans["model.py"]["read"].reasons == ("upstream ingest.ipynb:export changed",)
    assert plans["model.py"]["fit"].reasons == ("upstream read changed",)

    second = run_project(load_project(tmp_path))
    assert second.status == "done"
    steps = second.runs["model.py"].store.steps(second.runs["model.py"].id)
    assert [(s["step"], s["status"], s["reasons"]) for s in steps] == [
        ("read", "done", ["upstream ingest.ipynb:export changed"]),
        ("fit", "done", ["upstream read changed"]),
    ]
    assert nbflow.result(tmp_path / "model.py", "fit", "total") == 60

    # a parameter given to one notebook changes only what reads it, downstream included
    third = run_project(load_project(tmp_path), {"ingest.ipynb:n": 3})
    assert {s: i["status"] for s, i in third.runs["model.py"].steps.items()} == {"read": "done", "fit": "done"}
    assert nbflow.result(tmp_path / "model.py", "fit", "total") == 30


def test_a_failed_notebook_stops_the_notebooks_that_need_it(tmp_path):
    producer_and_consumer(tmp_path, export="raise ValueError('no rows today')")
    result = run_project(load_project(tmp_path))
    assert result.status == "failed"
    assert result.runs["ingest.ipynb"].status == "failed"
    assert result.skipped == {"model.py": "upstream notebook ingest.ipynb failed"}
    assert not (tmp_path / "rows.txt").exists()


def test_text_notebooks_run_and_give_the_values_of_the_ipynb(tmp_path):
    values = {}
    for name, text in (("nb.ipynb", None), ("nb.py", PERCENT), ("nb.md", MYST)):
        folder = tmp_path / name.replace(".", "_")
        folder.mkdir()
        path = folder / name
        if text is None:
            write_notebook(path, CELLS)
        else:
            path.write_text(text)
        run = nbflow.load_pipeline(path).run({"n": 4})
        assert run.status == "done", run.error
        values[name] = [nbflow.result(path, s, v) for s, v in (("load", "data"), ("square", "sq"), ("report", "total"))]
        if text is not None:
            assert path.read_text() == text  # the user's text file is never rewritten
            assert run.output_notebook.is_relative_to(folder / ".nbflow")
            assert [sorted(p.name for p in folder.iterdir())] == [[".nbflow", name]]
    assert values["nb.py"] == values["nb.md"] == values["nb.ipynb"] == [[0, 1, 2, 3], [0, 1, 4, 9], 14.0]

    # nbflow diff shows the code that changed in a text notebook, as in an .ipynb
    from nbflow.compare import compare_runs, format_comparison

    path = tmp_path / "nb_py" / "nb.py"
    first = nbflow.load_pipeline(path).plan({"n": 4})["report"].key
    path.write_text(PERCENT.replace("total = math.fsum(sq)", "total = math.fsum(sq) + 1"))
    pipeline = nbflow.load_pipeline(path)
    changed = pipeline.run({"n": 4})
    assert changed.status == "done" and pipeline.plan({"n": 4})["report"].key != first
    text = format_comparison(compare_runs(pipeline.config, changed.id - 1, changed.id))
    assert "-total = math.fsum(sq)\n" in text + "\n" and "+total = math.fsum(sq) + 1" in text


def test_independent_notebooks_run_at_the_same_time_on_dask(tmp_path):
    stamp = "import time\nstart = time.time()\ntime.sleep(4)\nend = time.time()"
    write_notebook(
        tmp_path / "left.ipynb",
        [step("wait", stamp), step("write", "open('left.txt', 'w').write('L')", "out:left.txt")],
    )
    write_notebook(tmp_path / "right.ipynb", [step("wait", stamp)])
    write_notebook(
        tmp_path / "join.ipynb",
        [step("join", "text = open('left.txt').read()", "in:left.txt", "after:right.ipynb:wait")],
    )
    result = run_project(load_project(tmp_path), executor="dask")
    assert result.status == "done", {n: r.error for n, r in result.runs.items()}
    assert {r.store.run(r.id)["executor"] for r in result.runs.values()} == {"dask"}
    left = [nbflow.result(tmp_path / "left.ipynb", "wait", v) for v in ("start", "end")]
    right = [nbflow.result(tmp_path / "right.ipynb", "wait", v) for v in ("start", "end")]
    assert left[0] < right[1] and right[0] < left[1]  # the two waits overlapped
    join_started = result.runs["join.ipynb"].store.run(result.runs["join.ipynb"].id)["started"]
    assert join_started >= max(left[1], right[1])  # and the notebook needing both ran after them
    assert nbflow.result(tmp_path / "join.ipynb", "join", "text") == "L"


@pytest.mark.browser
def test_one_report_for_the_pipeline_with_a_section_per_notebook(tmp_path, page):
    from nbflow.report.project import build_project_report

    producer_and_consumer(tmp_path)
    result = run_project(load_project(tmp_path))
    assert result.status == "done"
    report = build_project_report(result)
    assert (
        report
        == tmp_path
        / ".nbflow"
        / "runs"
        / f"pipeline-{result.runs['ingest.ipynb'].id}-{result.runs['model.py'].id}.html"
    )
    page.goto(report.as_uri())
    assert page.locator("h1").inner_text() == tmp_path.name
    assert page.locator("table").nth(1).inner_text().split("\n")[1].split("\t") == [
        "ingest.ipynb:export",
        "model.py:read",
        "rows.txt",
    ]
    for index, (name, steps) in enumerate((("ingest.ipynb", ["load", "export"]), ("model.py", ["read", "fit"]))):
        assert page.locator(f"section#notebook-{index} h2").inner_text().startswith(f"{name}: run ")
        frame = page.frame_locator(f"section#notebook-{index} iframe")
        frame.locator("#nbflow-graph canvas").first.wait_for(state="attached")  # its Bokeh scripts ran
        for step_name in steps:
            assert frame.locator(f"section#nbflow-step-{step_name}").count() == 1
    page.wait_for_timeout(300)
    assert page.outside == [] and page.console_errors == []
