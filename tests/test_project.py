"""A pipeline of notebooks (``nbflow/project.py``): links, cycles, parameters, chained keys
and the commands' output. Nothing here starts a kernel (``tests/e2e/test_project.py`` runs)."""

from __future__ import annotations

import json

import pytest

from nbflow.cli import main
from nbflow.errors import ParameterError, PipelineError
from nbflow.project import Link, load_project, plan_project, project_of

from .conftest import code, step, write_notebook


def three_notebooks(folder):
    write_notebook(
        folder / "ingest.ipynb",
        [
            code("n = 5", "parameters"),
            step("load", "rows = list(range(n))"),
            step("export", "open('rows.txt', 'w').write(str(rows))", "out:rows.txt"),
        ],
    )
    (folder / "features.py").write_text(
        '# %% tags=["parameters"]\nn = 2\n\n'
        '# %% tags=["step:build", "in:rows.txt"]\nfeats = open("rows.txt").read() * n\n\n'
        '# %% tags=["step:save", "out:feats.txt"]\nopen("feats.txt", "w").write(feats)\n'
    )
    write_notebook(
        folder / "model.ipynb",
        [
            code("alpha = 0.5", "parameters"),
            step("fit", "score = len(open('feats.txt').read()) * alpha", "in:feats.txt"),
            step("log", "print(score)", "after:ingest.ipynb:load"),
        ],
    )
    return folder


def test_links_come_from_out_in_files_and_after_tags(tmp_path):
    project = load_project(three_notebooks(tmp_path))
    assert project.order == ("ingest.ipynb", "features.py", "model.ipynb")
    assert project.links == (
        Link("ingest.ipynb:export", "features.py:build", "rows.txt"),
        Link("features.py:save", "model.ipynb:fit", "feats.txt"),
        Link("ingest.ipynb:load", "model.ipynb:log"),
    )
    assert project.upstream("model.ipynb") == ["ingest.ipynb", "features.py"]
    assert project.downstream("ingest.ipynb") == {"features.py", "model.ipynb"}


def test_notebooks_run_in_link_order_whatever_the_listed_order(tmp_path):
    three_notebooks(tmp_path)
    (tmp_path / "nbflow.toml").write_text('notebooks = ["model.ipynb", "features.py", "ingest.ipynb"]\n')
    assert load_project(tmp_path / "nbflow.toml").order == ("ingest.ipynb", "features.py", "model.ipynb")


def test_keys_chain_across_notebooks(tmp_path):
    three_notebooks(tmp_path)
    before = plan_project(load_project(tmp_path))
    assert before["features.py"]["build"].parts.upstream == {
        "ingest.ipynb:export": before["ingest.ipynb"]["export"].key
    }
    assert before["features.py"]["build"].parts.files == {}  # the file is keyed by its producing step, not hashed
    # editing the producer changes the consumer's key, and through it the next notebook's
    write_notebook(
        tmp_path / "ingest.ipynb",
        [
            code("n = 5", "parameters"),
            step("load", "rows = list(range(n))"),
            step("export", "open('rows.txt', 'w').write(repr(rows))", "out:rows.txt"),
        ],
    )
    after = plan_project(load_project(tmp_path))
    changed = {f"{nb}:{e.step}" for nb in after for e in after[nb] if e.key != before[nb][e.step].key}
    assert changed == {
        "ingest.ipynb:export",
        "features.py:build",
        "features.py:save",
        "model.ipynb:fit",
        "model.ipynb:log",
    }


def test_a_cycle_across_notebooks_is_refused_with_its_path(tmp_path):
    write_notebook(tmp_path / "a.ipynb", [step("x", "x = open('y.txt').read()", "in:y.txt", "out:x.txt")])
    write_notebook(tmp_path / "b.ipynb", [step("y", "y = open('x.txt').read()", "in:x.txt", "out:y.txt")])
    with pytest.raises(PipelineError) as caught:
        load_project(tmp_path)
    assert str(caught.value) == "the notebooks' steps form a cycle: a.ipynb:x -> b.ipynb:y -> a.ipynb:x"


def test_two_notebooks_needing_steps_of_each_other_are_refused(tmp_path):
    write_notebook(tmp_path / "a.ipynb", [step("x", "x = 1", "out:x.txt"), step("w", "w = 2", "in:z.txt")])
    write_notebook(tmp_path / "b.ipynb", [step("y", "y = 1", "in:x.txt"), step("z", "z = 2", "out:z.txt")])
    with pytest.raises(PipelineError) as caught:
        load_project(tmp_path)
    assert str(caught.value).startswith("notebooks a.ipynb and b.ipynb need steps of each other (")
    assert "a.ipynb:x -> b.ipynb:y" in str(caught.value) and "b.ipynb:z -> a.ipynb:w" in str(caught.value)


def test_bad_after_tags_name_the_notebook_cell_and_step(tmp_path):
    write_notebook(tmp_path / "a.ipynb", [step("x", "x = 1")])
    write_notebook(tmp_path / "b.ipynb", [code("import os"), step("y", "y = 1", "after:a.ipynb:xx")])
    with pytest.raises(PipelineError, match=r'^b\.ipynb, cell 2 \(step "y"\): after:a\.ipynb:xx: a\.ipynb has no step'):
        load_project(tmp_path)
    write_notebook(tmp_path / "b.ipynb", [step("y", "y = 1", "after:c.ipynb:x")])
    with pytest.raises(PipelineError, match=r"after:c\.ipynb:x names no notebook of the pipeline \(notebooks: "):
        load_project(tmp_path)
    write_notebook(tmp_path / "b.ipynb", [step("y", "y = 1", "after:a.txt:x")])
    with pytest.raises(PipelineError, match=r"tag 'after:a\.txt:x' must name a step"):
        load_project(tmp_path)


def test_two_notebooks_writing_one_file_are_refused(tmp_path):
    write_notebook(tmp_path / "a.ipynb", [step("x", "x = 1", "out:data.csv")])
    write_notebook(tmp_path / "b.ipynb", [step("y", "y = 1", "out:data.csv")])
    with pytest.raises(PipelineError, match=r"out:data\.csv is also made by a\.ipynb:x; one file has one producing"):
        load_project(tmp_path)


def test_parameters_go_to_every_notebook_declaring_them_or_to_one(tmp_path):
    project = load_project(three_notebooks(tmp_path))
    split = project.parameters_for({"n": 7, "model.ipynb:alpha": 2.0, "features.py:n": 3})
    assert {nb: values for nb, (values, _) in split.items()} == {
        "ingest.ipynb": {"n": 7},
        "features.py": {"n": 3},
        "model.ipynb": {"alpha": 2.0},
    }
    plans = plan_project(project, {"n": 7})
    assert plans["ingest.ipynb"].params == {"n": 7} and plans["features.py"].params == {"n": 7}
    with pytest.raises(ParameterError, match=r"unknown parameter 'alpah'; did you mean \"alpha\"\?: no notebook"):
        project.parameters_for({"alpah": 1.0})
    with pytest.raises(ParameterError, match=r"-p nope\.ipynb:n: no notebook 'nope\.ipynb' in the pipeline"):
        project.parameters_for({"nope.ipynb:n": 1})
    with pytest.raises(ParameterError, match=r"^model\.ipynb: unknown parameter 'n'"):
        plan_project(project, {"model.ipynb:n": 1})
    with pytest.raises(ParameterError, match=r"^ingest\.ipynb: parameter 'n' expects int"):
        plan_project(project, {"n": "many"}, {"n": "many"})


def test_a_toml_lists_notebooks_and_shared_parameters(tmp_path):
    three_notebooks(tmp_path)
    toml = tmp_path / "nbflow.toml"
    toml.write_text('notebooks = ["ingest.ipynb", "features.py"]\n\n[parameters]\nn = 9\n')
    project = load_project(toml)
    assert project.order == ("ingest.ipynb", "features.py")
    plans = plan_project(project, {"features.py:n": 4})
    assert plans["ingest.ipynb"].params == {"n": 9} and plans["features.py"].params == {"n": 4}
    toml.write_text('notebooks = ["ingest.ipynb"]\nparams = {n = 1}\n')
    with pytest.raises(PipelineError, match=r"^nbflow\.toml: unknown key\(s\) params"):
        load_project(toml)
    toml.write_text('notebooks = ["missing.ipynb"]\n')
    with pytest.raises(PipelineError, match=r"^nbflow\.toml: notebooks lists 'missing\.ipynb', which does not exist"):
        load_project(toml)


def test_graph_and_plan_commands_print_one_section_per_notebook(tmp_path, capsys):
    three_notebooks(tmp_path)
    assert main(["graph", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{tmp_path.name}: 3 notebooks, 6 steps"
    assert "features.py: 2 steps; parameters: n=2" in out
    assert "  build <- ingest.ipynb:export [file:rows.txt]" in out
    assert "  log <- ingest.ipynb:load [after]" in out
    assert main(["graph", str(tmp_path), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [n["name"] for n in data["notebooks"]] == ["ingest.ipynb", "features.py", "model.ipynb"]
    assert {"source": "features.py:save", "target": "model.ipynb:fit", "file": "feats.txt"} in data["links"]
    assert main(["graph", str(tmp_path), "--format", "dot"]) == 0
    dot = capsys.readouterr().out
    assert 'label="model.ipynb";' in dot and '"ingest.ipynb:export" -> "features.py:build"' in dot
    assert main(["plan", str(tmp_path), "-p", "model.ipynb:alpha", "1.5"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ingest.ipynb:\n") and "6 of 6 steps in 3 notebooks would run; 0 are cached." in out
    assert main(["run", str(tmp_path), "--only", "fit"]) == 2
    assert "--only select within one notebook" in capsys.readouterr().err
    assert main(["plan", str(tmp_path), "-p", "bogus", "1"]) == 2


def test_the_pipeline_of_notebooks_a_notebook_belongs_to(tmp_path):
    write_notebook(tmp_path / "ingest.ipynb", [step("export", "x = 1", "out:r.txt")])
    write_notebook(tmp_path / "model.ipynb", [step("read", "y = 2", "in:r.txt")])
    write_notebook(tmp_path / "alone.ipynb", [step("solo", "z = 3")])
    (tmp_path / "notes.ipynb").write_text("{}")  # no steps: not a pipeline notebook
    # a folder: when a link joins the notebook to another pipeline notebook there
    assert project_of(tmp_path / "model.ipynb") == tmp_path
    assert project_of(tmp_path / "ingest.ipynb") == tmp_path
    assert project_of(tmp_path / "alone.ipynb") is None
    assert project_of(tmp_path / "notes.ipynb") is None
    # the folder's nbflow.toml wins when it lists the notebook
    (tmp_path / "nbflow.toml").write_text('notebooks = ["alone.ipynb"]\n')
    assert project_of(tmp_path / "alone.ipynb") == tmp_path / "nbflow.toml"
    assert project_of(tmp_path / "model.ipynb") == tmp_path  # not listed there: the folder's links
    (tmp_path / "nbflow.toml").write_text('notebooks = ["alone.ipynb"\n')
    with pytest.raises(PipelineError, match=r"^nbflow.toml: invalid TOML"):
        project_of(tmp_path / "alone.ipynb")
    # a folder whose notebooks do not load together is no pipeline of notebooks for the others
    (tmp_path / "nbflow.toml").unlink()
    write_notebook(tmp_path / "broken.ipynb", [step("b", "w = 1", "after:nowhere")])
    assert project_of(tmp_path / "model.ipynb") is None
