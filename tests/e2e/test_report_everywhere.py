"""``report = true`` in ``[tool.nbflow]``: every run of the notebook leaves its report,
whoever starts it (``nbflow/run_end.py``): ``nbflow run`` (``--no-report`` still wins),
a pipeline of notebooks (each notebook's run), ``nbflow sweep`` (each run), a failed run,
``%nbflow run`` in a real kernel (written by a child process: nothing of the report enters
the kernel) and a run started from a real ``nbflow studio`` server driven by headless
Chromium. Unset, no run leaves one. A report that cannot be written is one line on the
run, never a failed run. (JupyterLab's REST API: ``tests/test_server.py``.)"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from nbflow.cli import main
from nbflow.config import Config

from ..conftest import code, step, write_notebook
from .conftest import studio_server
from .live import Kernel

pytestmark = pytest.mark.slow


def reporting(folder: Path) -> None:
    (folder / "pyproject.toml").write_text("[tool.nbflow]\nreport = true\n")


def runs_of(folder: Path) -> dict[int, dict]:
    """Every run of the store in ``folder``'s nbflow home: status, messages and the report
    recorded on it (``None``: none)."""
    store = Config.for_folder(folder).open_store()
    try:
        found = {}
        for run in store.runs(limit=100):
            report = store.artifacts(run["id"]).get("report")
            found[run["id"]] = {
                "status": run["status"],
                "notebook": Path(run["notebook"]).name,
                "report": Path(report) if report else None,
                "messages": [m["text"] for m in store.messages(run["id"])],
            }
        return found
    finally:
        store.close()


def assert_reported(folder: Path, run_id: int, record: dict) -> None:
    """The run's report is at the path recorded on it: ``<runs>/<id>/report.html``, a page of that run."""
    assert record["report"] == Config.for_folder(folder).runs_dir.resolve() / str(run_id) / "report.html", record
    page = record["report"].read_text(encoding="utf-8")
    assert f"run {run_id}" in page.lower(), page[:300]


def wait_for_report(folder: Path, run_id: int, timeout: float = 180.0) -> dict:
    """The run's record once its report is recorded (a run's end is on a thread of its own)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = runs_of(folder).get(run_id)
        if record is not None and record["report"] is not None:
            return record
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} has no report after {timeout:g} s: {runs_of(folder).get(run_id)}")


def test_nbflow_run_follows_report_true_and_no_report_wins(tmp_path, capsys):
    path = write_notebook(tmp_path / "p.ipynb", [step("load", "x = [1, 2]"), step("total", "t = sum(x)")])
    assert main(["run", str(path), "-q"]) == 0  # report unset: none
    reporting(tmp_path)
    assert main(["run", str(path), "-q", "--force-all"]) == 0
    assert main(["run", str(path), "-q", "--force-all", "--no-report"]) == 0
    runs = runs_of(tmp_path)
    assert sorted(runs) == [1, 2, 3]
    assert runs[1]["report"] is None and runs[3]["report"] is None
    assert_reported(tmp_path, 2, runs[2])
    assert f"report: {runs[2]['report']}" in capsys.readouterr().err
    assert not (Config.for_folder(tmp_path).runs_dir / "1" / "report.html").exists()


def test_a_failed_run_leaves_its_report_and_a_report_that_fails_is_a_line_on_the_run(tmp_path, capsys):
    reporting(tmp_path)
    path = write_notebook(tmp_path / "p.ipynb", [step("load", "x = 1"), step("boom", "raise ValueError('no')")])
    assert main(["run", str(path), "-q"]) == 1
    run = runs_of(tmp_path)[1]
    assert run["status"] == "failed" and run["messages"] == []
    assert_reported(tmp_path, 1, run)
    assert "ValueError" in run["report"].read_text(encoding="utf-8")

    # the report's place is taken (a folder where the file goes): the run is done, its end says why
    (Config.for_folder(tmp_path).runs_dir / "2" / "report.html").mkdir(parents=True)
    write_notebook(path, [step("load", "x = 1"), step("fine", "y = x + 1")])
    assert main(["run", str(path), "-q"]) == 0
    run = runs_of(tmp_path)[2]
    assert run["status"] == "done" and run["report"] is None
    (message,) = run["messages"]
    assert message.startswith("no report: ") and "\n" not in message, message
    assert f"nbflow: warning: {message} (the run's status is unchanged)" in capsys.readouterr().err


def test_each_notebook_of_a_pipeline_and_each_run_of_a_sweep_leave_their_report(tmp_path):
    reporting(tmp_path)
    write_notebook(tmp_path / "a.ipynb", [step("make", "open('x.txt', 'w').write('1')", "out:x.txt")])
    write_notebook(tmp_path / "b.ipynb", [step("use", "x = open('x.txt').read()", "in:x.txt")])
    assert main(["run", str(tmp_path), "-q"]) == 0
    swept = write_notebook(
        tmp_path / "sweep.ipynb", [code("n = 1", "parameters"), step("check", "assert n < 3, f'n is {n}'\nm = n")]
    )
    assert main(["sweep", str(swept), "-p", "n", "1", "5"]) == 1
    runs = runs_of(tmp_path)
    assert sorted((r["notebook"], r["status"]) for r in runs.values()) == [
        ("a.ipynb", "done"),
        ("b.ipynb", "done"),
        ("sweep.ipynb", "done"),
        ("sweep.ipynb", "failed"),
    ]
    for run_id, record in runs.items():
        assert_reported(tmp_path, run_id, record)


def test_nbflow_run_in_the_users_kernel_leaves_its_report_made_outside_the_kernel(tmp_path):
    reporting(tmp_path)
    write_notebook(tmp_path / "p.ipynb", [step("load", "x = 1"), step("boom", "raise ValueError('no')")])
    kernel = Kernel(tmp_path)
    try:
        assert kernel.text("%load_ext nbflow") == ""
        shown = kernel.text("%nbflow run --notebook p.ipynb")
        assert "run 1: failed" in shown, shown
        assert kernel.value("1 + 1") == 2
        record = wait_for_report(tmp_path, 1)
        # the report was rendered by a child process: none of its libraries came into the kernel
        assert (
            kernel.value("sorted(m for m in ('bokeh', 'nbconvert', 'nbflow.report') if m in __import__('sys').modules)")
            == []
        )
    finally:
        kernel.close()
    assert record["status"] == "failed" and record["messages"] == []
    assert_reported(tmp_path, 1, record)


def test_without_report_true_the_users_kernel_leaves_none(tmp_path):
    write_notebook(tmp_path / "p.ipynb", [step("load", "x = 1")])
    kernel = Kernel(tmp_path)
    try:
        assert kernel.text("%load_ext nbflow") == ""
        assert "run 1: done" in kernel.text("%nbflow run --notebook p.ipynb")
        assert kernel.value("sorted(t.name for t in __import__('threading').enumerate() if 'run-end' in t.name)") == []
    finally:
        kernel.close()
    assert runs_of(tmp_path)[1]["report"] is None


@pytest.mark.browser
def test_a_run_started_from_the_studio_leaves_its_report(page, tmp_path):
    reporting(tmp_path)
    write_notebook(tmp_path / "studio.ipynb", [step("load", "data = [1, 2]"), step("total", "t = sum(data)")])
    with studio_server(tmp_path) as server:
        page.goto(f"{server.url}?notebook=studio.ipynb")
        page.wait_for_function("window.nbflowCanvas && window.nbflowCanvas.cy.nodes().length === 2", timeout=60_000)
        page.get_by_role("button", name="Run", exact=True).click()
        record = wait_for_report(tmp_path, 1)
    assert record["status"] == "done"
    assert_reported(tmp_path, 1, record)
    assert page.outside == []
