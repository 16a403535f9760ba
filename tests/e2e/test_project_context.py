"""One notebook of a pipeline of notebooks, run for real on its own (``nbflow run NB``): its
keys are the pipeline's, so switching between ``nbflow run FOLDER`` and ``nbflow run NB``
re-runs nothing; the notebooks it needs run first when a step of theirs is not ready (a
stale step, an ``out:`` file changed on disk), as ``make`` builds a target's prerequisites;
an interactive run is refused instead, and the cache never holds a result computed from a
file its key does not describe."""

from __future__ import annotations

from pathlib import Path

import pytest

import nbflow
from nbflow.cli import main
from nbflow.errors import PipelineError
from nbflow.graph import load_pipeline
from nbflow.project_context import in_project
from nbflow.run import start_run

from ..conftest import producer_and_consumer

pytestmark = pytest.mark.slow


def statuses(run) -> dict[str, str]:
    return {s: i["status"] for s, i in run.steps.items()}


def test_run_folder_then_run_one_notebook_reruns_nothing(tmp_path, capsys):
    producer_and_consumer(tmp_path)
    assert main(["run", str(tmp_path), "-q"]) == 0
    capsys.readouterr()
    assert main(["run", str(tmp_path / "model.py")]) == 0
    err = capsys.readouterr().err
    assert "(2 cached)" in err and "running" not in err
    assert main(["plan", str(tmp_path / "model.py")]) == 0
    assert "0 of 2 steps would run; 2 are cached." in capsys.readouterr().out


def test_run_one_notebook_runs_what_it_needs_first_then_run_folder_reruns_nothing(tmp_path, capsys):
    producer_and_consumer(tmp_path)
    assert main(["run", str(tmp_path / "model.py")]) == 0
    err = capsys.readouterr().err
    assert (
        "nbflow: model.py (step read) needs ingest.ipynb:export, which is stale (never run); running ingest.ipynb first"
        in err
    )
    assert nbflow.result(tmp_path / "model.py", "fit", "total") == 6
    assert main(["run", str(tmp_path), "-q"]) == 0
    assert "ingest.ipynb run 3 done, model.py run 4 done" in capsys.readouterr().err
    store = nbflow.load_pipeline(tmp_path / "model.py").config.open_store()
    try:
        assert {s["step"]: s["status"] for s in store.steps(4)} == {"read": "cached", "fit": "cached"}
        assert {s["step"]: s["status"] for s in store.steps(3)} == {"load": "cached", "export": "cached"}
    finally:
        store.close()


def test_a_changed_upstream_file_is_never_cached_under_the_upstream_key(tmp_path, capsys):
    producer_and_consumer(tmp_path)
    assert main(["run", str(tmp_path), "-q"]) == 0
    capsys.readouterr()
    rows = tmp_path / "rows.txt"
    rows.write_text("100,200")  # edited by hand: not what ingest.ipynb:export's key says
    linked = in_project(load_pipeline(tmp_path / "model.py"))
    assert linked.foreign_stale == {"ingest.ipynb:export": "made out:rows.txt, which was changed since"}
    # nothing would run: the consumer's entry was computed from the file the key describes
    run = start_run(linked)
    assert run.wait() == "done" and statuses(run) == {"read": "cached", "fit": "cached"}
    # forced, it would compute from the edited file: refused, nothing recorded for it
    with pytest.raises(PipelineError, match=r"needs ingest.ipynb:export, which made out:rows.txt, which was changed"):
        start_run(linked, force=["read"])

    # nbflow run NB runs the notebook it needs first: a cached run that puts the file back
    assert main(["run", str(tmp_path / "model.py"), "--force", "read"]) == 0
    err = capsys.readouterr().err
    assert "running ingest.ipynb first" in err
    assert rows.read_text() == "0,1,2,3"
    assert nbflow.result(tmp_path / "model.py", "fit", "total") == 6


def test_editing_the_producer_makes_the_consumer_stale_in_its_own_plan(tmp_path, capsys):
    producer_and_consumer(tmp_path)
    assert main(["run", str(tmp_path), "-q"]) == 0
    producer_and_consumer(tmp_path, export="open('rows.txt', 'w').write(','.join(str(r * 10) for r in rows))")
    capsys.readouterr()
    assert main(["plan", str(tmp_path / "model.py")]) == 0
    out = capsys.readouterr().out
    assert "read  stale  run     upstream ingest.ipynb:export changed" in out
    # an interactive run of the consumer alone would read the old file under the new key: refused
    with pytest.raises(PipelineError, match=r"needs ingest.ipynb:export, which is stale \(code changed\)"):
        nbflow.load_pipeline(tmp_path / "model.py").run()
    assert (tmp_path / "rows.txt").read_text() == "0,1,2,3"


def test_the_shared_parameters_of_nbflow_toml_apply_to_a_notebook_run_alone(tmp_path, capsys):
    producer_and_consumer(tmp_path)
    (tmp_path / "nbflow.toml").write_text('notebooks = ["ingest.ipynb", "model.py"]\n[parameters]\nn = 2\n')
    assert main(["run", str(tmp_path / "nbflow.toml"), "-q"]) == 0
    assert (tmp_path / "rows.txt").read_text() == "0,1"
    capsys.readouterr()
    for name in ("ingest.ipynb", "model.py"):
        assert main(["run", str(tmp_path / name)]) == 0
        assert "(2 cached)" in capsys.readouterr().err
    # a step run again computes with the shared value, which its key holds (injected, not the notebook's 4)
    assert main(["run", str(tmp_path / "ingest.ipynb"), "--force", "load", "--force", "export"]) == 0
    assert (tmp_path / "rows.txt").read_text() == "0,1"
    assert main(["run", str(tmp_path / "ingest.ipynb"), "-p", "n", "3"]) == 0  # given wins over shared
    assert (tmp_path / "rows.txt").read_text() == "0,1,2"


def test_when_a_notebook_it_needs_fails_the_notebook_is_not_run(tmp_path, capsys):
    producer_and_consumer(tmp_path, export="raise ValueError('no rows today')")
    assert main(["run", str(tmp_path / "model.py")]) == 1
    err = capsys.readouterr().err
    assert "running ingest.ipynb first" in err
    [line] = [x for x in err.splitlines() if x.startswith("nbflow: error:")]
    assert line.startswith("nbflow: error: model.py: not run: the notebook it needs, ingest.ipynb, did not finish (")
    assert "no rows today" in line
    store = nbflow.load_pipeline(tmp_path / "model.py").config.open_store()
    try:
        assert [Path(r["notebook"]).name for r in store.runs()] == ["ingest.ipynb"]  # model.py never started
    finally:
        store.close()
