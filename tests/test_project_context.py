"""A notebook planned inside its pipeline of notebooks (nbflow/project_context.py), without
running anything: its keys are those ``plan_project`` gives it, a broken other notebook or
``nbflow.toml`` makes it planned alone with one line saying why, a notebook of no pipeline
comes back as it was, and a run is refused before anything is recorded when a step it
would run needs a step of another notebook that is not ready."""

from __future__ import annotations

import pytest

import nbflow
from nbflow.cli import main
from nbflow.errors import PipelineError
from nbflow.graph import load_pipeline
from nbflow.project import load_project, plan_project
from nbflow.project_context import _project_of, in_project
from nbflow.run import plan_pipeline, start_run

from .conftest import producer_and_consumer, step, write_notebook


def test_a_notebook_is_keyed_as_the_pipeline_of_notebooks_keys_it(tmp_path):
    producer_and_consumer(tmp_path)
    (tmp_path / "rows.txt").write_text("9,9")  # a file left by someone: not what ingest's key says
    alone = load_pipeline(tmp_path / "model.py")
    linked = in_project(alone)
    plans = plan_project(load_project(tmp_path))
    assert linked.project == tmp_path.resolve()
    assert linked.foreign == {"read": {"ingest.ipynb:export": plans["ingest.ipynb"]["export"].key}}
    assert linked.foreign_files == {"read": frozenset({"rows.txt"})}
    assert linked.foreign_stale == {"ingest.ipynb:export": "is stale (never run)"}
    plan = plan_pipeline(linked)
    assert {e.step: e.key for e in plan} == {e.step: e.key for e in plans["model.py"]}
    # planned alone, the file is hashed instead: another key
    assert plan_pipeline(alone)["read"].key != plan["read"].key

    # every single-notebook entry point agrees: the CLI's plan, nbflow.load_pipeline
    assert nbflow.load_pipeline(tmp_path / "model.py").plan()["read"].key == plan["read"].key


def test_a_notebook_of_no_pipeline_of_notebooks_comes_back_as_it_was(tmp_path):
    write_notebook(tmp_path / "alone.ipynb", [step("a", "x = 1")])
    write_notebook(tmp_path / "other.ipynb", [step("b", "y = 2", "in:data.txt")])  # linked to nothing
    for name in ("alone.ipynb", "other.ipynb"):
        pipeline = load_pipeline(tmp_path / name)
        assert in_project(pipeline) is pipeline


def test_running_a_step_whose_upstream_notebook_is_stale_is_refused_before_anything_is_recorded(tmp_path, capsys):
    producer_and_consumer(tmp_path)
    linked = in_project(load_pipeline(tmp_path / "model.py"))
    with pytest.raises(PipelineError) as info:
        start_run(linked)
    message = str(info.value)
    assert message.startswith('model.py, line 1 (step "read"): needs ingest.ipynb:export, which is stale (never run): ')
    assert "nbflow run" in message and "\n" not in message
    assert not (tmp_path / ".nbflow" / "runs.db").exists() and not (tmp_path / "rows.txt").exists()

    # the REST API, the studio and the widget run through start_run: the same line; the CLI plans it
    assert main(["plan", str(tmp_path / "model.py")]) == 0
    assert "upstream ingest.ipynb:export changed" not in capsys.readouterr().out  # never run: no older entry


def test_a_broken_other_notebook_plans_the_notebook_alone_with_one_line(tmp_path, capsys):
    producer_and_consumer(tmp_path)
    (tmp_path / "broken.ipynb").write_text('{"cells": [{"cell_type": "code", "metadata": {"tags": ["step:x"]')
    pipeline = load_pipeline(tmp_path / "model.py")
    planned = in_project(pipeline)
    assert planned.foreign == {} and planned.project is None
    [note] = planned.warnings
    assert note.startswith("planned on its own, without the other notebooks of its pipeline: broken.ipynb")
    assert "\n" not in note
    plan_pipeline(planned)  # plans as a notebook of its own

    # the pipeline's own commands keep their one-line error
    assert main(["plan", str(tmp_path)]) == 2
    assert "broken.ipynb" in capsys.readouterr().err
    assert main(["plan", str(tmp_path / "model.py")]) == 0
    assert "warning: planned on its own" in capsys.readouterr().err


def test_a_bad_nbflow_toml_plans_its_notebooks_alone_with_one_line(tmp_path, capsys):
    producer_and_consumer(tmp_path)
    (tmp_path / "nbflow.toml").write_text("notebooks = [ingest.ipynb\n")
    [note] = in_project(load_pipeline(tmp_path / "model.py")).warnings
    assert note.startswith("planned on its own, without the other notebooks of its pipeline: nbflow.toml: invalid TOML")
    assert main(["plan", str(tmp_path / "nbflow.toml")]) == 2
    assert "nbflow.toml: invalid TOML" in capsys.readouterr().err


def test_an_nbflow_toml_links_what_it_lists(tmp_path):
    producer_and_consumer(tmp_path)
    (tmp_path / "nbflow.toml").write_text('notebooks = ["ingest.ipynb", "model.py"]\n[parameters]\nn = 2\n')
    linked = in_project(load_pipeline(tmp_path / "model.py"))
    plans = plan_project(load_project(tmp_path / "nbflow.toml"))
    assert linked.project == tmp_path / "nbflow.toml"
    assert plan_pipeline(linked)["read"].key == plans["model.py"]["read"].key  # shared n = 2 upstream


def test_reading_the_pipeline_is_remembered_until_a_notebook_changes(tmp_path):
    producer_and_consumer(tmp_path)
    model = (tmp_path / "model.py").resolve()
    first = _project_of(model, None)
    assert first is not None and _project_of(model, None) is first
    producer_and_consumer(tmp_path, export="open('rows.txt', 'w').write('1')")  # a different size
    again = _project_of(model, None)
    assert again is not first and again is not None
    assert "write('1')" in again.pipelines["ingest.ipynb"].steps["export"].cells[0].source


def test_an_edited_notebook_is_linked_as_edited(tmp_path):
    """The studio and JupyterLab plan the notebook as edited, not as saved: a new in: tag links it."""
    from nbflow.notebook import notebook_from_data

    producer_and_consumer(tmp_path)
    write_notebook(tmp_path / "report.ipynb", [step("show", "text = 'x'")])
    import nbformat

    data = nbformat.read(tmp_path / "report.ipynb", as_version=4)
    data.cells[0].metadata["tags"] = ["step:show", "in:rows.txt"]
    data.cells[0].source = "text = open('rows.txt').read()"
    edited = load_pipeline(tmp_path / "report.ipynb", source=notebook_from_data(dict(data), tmp_path / "report.ipynb"))
    assert in_project(edited).foreign_files == {"show": frozenset({"rows.txt"})}


def test_the_project_file_name_is_the_one_project_reads():
    from nbflow import project, project_context

    assert project_context.PROJECT_FILE == project.PROJECT_FILE


def test_a_notebook_that_reads_no_file_is_not_bothered_by_a_broken_neighbour(tmp_path):
    producer_and_consumer(tmp_path)
    (tmp_path / "broken.ipynb").write_text('{"cells": [{"metadata": {"tags": ["step:x"]')
    ingest = load_pipeline(tmp_path / "ingest.ipynb")  # a producer: no other notebook's key is in its keys
    assert in_project(ingest) is ingest
