"""nbflow/studio/editing.py: notebook edits keep everything they do not touch, byte for byte."""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_output

import nbflow
from nbflow.errors import PipelineError
from nbflow.studio.editing import NotebookEditor, serialize

from .conftest import NOTEBOOKS, code, md, step


def changed_lines(old: bytes, new: bytes) -> list[str]:
    """The lines added (+) or removed (-) between two files."""
    diff = difflib.unified_diff(old.decode().splitlines(), new.decode().splitlines(), n=0, lineterm="")
    return [line for line in diff if line[:1] in "+-" and not line.startswith(("+++", "---"))]


def graph_of(path: Path) -> tuple:
    pipeline = nbflow.load_pipeline(path)
    return pipeline.order, dict(pipeline.deps), {k: v for k, v in pipeline.edge_names.items()}


@pytest.fixture
def pipeline_nb(make_notebook):
    """A small pipeline with outputs, unicode and a multi-cell step, as nbformat writes it."""
    load = step("load", "data = list(range(n))")
    load.outputs = [new_output("stream", name="stdout", text="loaded\nfine – ok\n")]
    square = step("square", "sq = [x * x for x in data]")
    square.outputs = [
        new_output("display_data", data={"text/plain": "line 1\nline 2", "image/png": "iVBORw0KGgo=\n"}),
    ]
    return make_notebook(
        [
            md("# Squares\n\nA tiny pipeline."),
            code("import math"),
            code("n = 10", "parameters"),
            md("## Load\n\nMake the numbers."),
            load,
            code("data.append(n)"),
            md("## Square"),
            square,
            code("scratch = 1", "skip"),
            step("report", "print(sum(sq), math.pi)"),
            md("That is all."),
        ]
    )


def test_serialize_writes_like_nbformat(pipeline_nb):
    raw = pipeline_nb.read_bytes()
    assert serialize(json.loads(raw)) == raw
    example = NOTEBOOKS / "wine_classifier.ipynb"
    assert serialize(json.loads(example.read_bytes())) == example.read_bytes()


def test_no_edit_round_trip_keeps_bytes_and_graph(pipeline_nb):
    raw = pipeline_nb.read_bytes()
    before = graph_of(pipeline_nb)
    editor = NotebookEditor.open(pipeline_nb)
    assert not editor.dirty
    assert editor.to_bytes() == raw
    assert editor.save() is False
    assert pipeline_nb.read_bytes() == raw
    assert graph_of(pipeline_nb) == before


def test_no_edit_keeps_a_notebook_in_another_layout(tmp_path, pipeline_nb):
    other = tmp_path / "indent2.ipynb"
    other.write_text(json.dumps(json.loads(pipeline_nb.read_text()), indent=2))
    editor = NotebookEditor.open(other)
    assert editor.to_bytes() == other.read_bytes()
    # An edit rewrites it in nbformat's layout, and it still reads the same.
    editor.set_layout({"load": {"x": 1, "y": 2}})
    editor.save()
    assert other.read_bytes() == serialize(json.loads(other.read_bytes()))
    assert graph_of(other) == graph_of(pipeline_nb)


def test_an_edit_then_its_undo_writes_nothing(pipeline_nb):
    raw = pipeline_nb.read_bytes()
    editor = NotebookEditor.open(pipeline_nb)
    editor.checkpoint()
    editor.add_after("report", "load")
    assert editor.dirty
    assert editor.undo()
    assert not editor.dirty
    assert editor.save() is False
    assert pipeline_nb.read_bytes() == raw
    assert not editor.undo()


def test_layout_changes_only_the_notebook_metadata(pipeline_nb):
    old = pipeline_nb.read_bytes()
    editor = NotebookEditor.open(pipeline_nb)
    editor.set_layout({"square": {"x": 312.456, "y": 80}})
    assert editor.save() is True
    new = pipeline_nb.read_bytes()
    # Top-level keys are sorted: everything before "metadata" (all cells) is untouched.
    assert new.split(b'\n "metadata": ')[0] == old.split(b'\n "metadata": ')[0]
    assert nbflow.load_pipeline(pipeline_nb).source.layout == {"square": {"x": 312.5, "y": 80.0}}
    editor.set_layout({"load": {"x": 0, "y": 0}})
    editor.save()
    assert set(nbflow.load_pipeline(pipeline_nb).source.layout) == {"square", "load"}
    with pytest.raises(PipelineError, match="no step 'nope'"):
        editor.set_layout({"nope": {"x": 0, "y": 0}})


def test_add_after_changes_only_that_cells_tags(pipeline_nb):
    old = pipeline_nb.read_bytes()
    assert "load" not in nbflow.load_pipeline(pipeline_nb).deps["report"]
    editor = NotebookEditor.open(pipeline_nb)
    assert editor.add_after("report", "load") is True
    assert editor.add_after("report", "load") is False
    editor.save()
    new = pipeline_nb.read_bytes()
    assert changed_lines(old, new) == ['-     "step:report"', '+     "step:report",', '+     "after:load"']
    pipeline = nbflow.load_pipeline(pipeline_nb)
    assert "load" in pipeline.deps["report"]
    assert pipeline.steps["report"].after == ("load",)

    assert editor.remove_after("report", "load") is True
    assert editor.remove_after("report", "load") is False
    editor.save()
    assert pipeline_nb.read_bytes() == old


def test_add_step_is_found_by_load_pipeline(pipeline_nb):
    editor = NotebookEditor.open(pipeline_nb)
    editor.add_step("cube", "cubes = [x ** 3 for x in data]\n", docs="## Cube\n\nThe third power.", tags=["keep:cubes"])
    editor.save()
    pipeline = nbflow.load_pipeline(pipeline_nb)
    assert "cube" in pipeline.steps
    cube = pipeline.steps["cube"]
    assert cube.docs == "## Cube\n\nThe third power."
    assert cube.keep == ("cubes",)
    assert pipeline.deps["cube"] == ("load",)
    # After the last code cell: the closing markdown stays last, nothing joins the step.
    nb = nbformat.read(pipeline_nb, as_version=4)
    assert nb.cells[-1].source == "That is all."
    assert len(cube.cells) == 1 and cube.cell.id and len(cube.cell.id) == 8
    nbformat.validate(nb)
    # The rest of the pipeline is as it was.
    assert pipeline.order[:3] == ("load", "square", "report")


def test_add_step_with_docs_to_a_notebook_without_description(make_notebook):
    path = make_notebook([code("n = 1", "parameters"), step("a", "x = n")])
    editor = NotebookEditor.open(path)
    editor.add_step("b", "y = x", docs="Uses x.")
    editor.save()
    pipeline = nbflow.load_pipeline(path)
    assert pipeline.steps["b"].docs == "Uses x."
    assert pipeline.source.description == f"# {path.stem}"
    assert pipeline.source.title == path.stem
    assert pipeline.deps["b"] == ("a",)


def test_add_step_rejects_bad_and_duplicate_names(pipeline_nb):
    editor = NotebookEditor.open(pipeline_nb)
    with pytest.raises(PipelineError, match="invalid step name '2fast'"):
        editor.add_step("2fast", "pass")
    with pytest.raises(PipelineError, match='already a step "load"'):
        editor.add_step("load", "pass")
    assert not editor.dirty


def test_add_step_to_an_old_notebook_adds_no_cell_id(tmp_path, pipeline_nb):
    data = json.loads(pipeline_nb.read_text())
    data["nbformat_minor"] = 4
    for cell in data["cells"]:
        del cell["id"]
    old = tmp_path / "old.ipynb"
    old.write_bytes(serialize(data))
    editor = NotebookEditor.open(old)
    editor.add_step("extra", "z = 1", docs="More.")
    editor.save()
    assert all("id" not in c for c in json.loads(old.read_text())["cells"])
    assert "extra" in nbflow.load_pipeline(old).steps


def test_delete_step_removes_its_cells_docs_edges_and_position(pipeline_nb):
    editor = NotebookEditor.open(pipeline_nb)
    editor.add_after("report", "load")
    editor.set_layout({"load": {"x": 5, "y": 5}, "report": {"x": 1, "y": 1}})
    editor.save()
    editor.delete_step("load")
    editor.save()
    nb = nbformat.read(pipeline_nb, as_version=4)
    sources = [c.source for c in nb.cells]
    assert "data = list(range(n))" not in sources
    assert "data.append(n)" not in sources  # the step's second cell
    assert "## Load\n\nMake the numbers." not in sources  # its docs
    assert "## Square" in sources and "scratch = 1" in sources
    pipeline = nbflow.load_pipeline(pipeline_nb)
    assert pipeline.order == ("square", "report")
    assert pipeline.steps["report"].after == ()
    assert pipeline.source.layout == {"report": {"x": 1.0, "y": 1.0}}
    assert any("data" in w for w in pipeline.warnings)  # square now reads an undefined name


def test_rename_step_renames_after_tags_and_position(pipeline_nb):
    editor = NotebookEditor.open(pipeline_nb)
    editor.add_after("report", "load")
    editor.set_layout({"load": {"x": 7, "y": 8}})
    editor.rename_step("load", "fetch")
    editor.save()
    pipeline = nbflow.load_pipeline(pipeline_nb)
    assert pipeline.order == ("fetch", "square", "report")
    assert pipeline.steps["report"].after == ("fetch",)
    assert pipeline.source.layout == {"fetch": {"x": 7.0, "y": 8.0}}
    assert pipeline.steps["fetch"].docs == "## Load\n\nMake the numbers."
    with pytest.raises(PipelineError, match='already a step "square"'):
        editor.rename_step("fetch", "square")


def test_set_code_docs_and_tags(pipeline_nb):
    editor = NotebookEditor.open(pipeline_nb)
    assert editor.set_code("square", "sq = [x * x for x in data]") is False
    assert editor.set_docs("square", "## Square\n") is False
    assert editor.set_tags("square", []) is False
    assert not editor.dirty

    assert editor.step_code("load") == ["data = list(range(n))", "data.append(n)"]
    assert editor.set_code("load", "data = list(range(n, 2 * n))") is True
    assert editor.set_code("load", "data.extend([n, n])", cell=1) is True
    assert editor.step_code("load") == ["data = list(range(n, 2 * n))", "data.extend([n, n])"]
    with pytest.raises(PipelineError, match="has 2 cells, not 3"):
        editor.set_code("load", "", cell=2)
    assert editor.set_docs("square", "## Square\n\nNow with words.") is True
    assert editor.set_docs("report", "## Report") is True  # had no docs: a cell is added
    assert editor.set_tags("report", ["timeout:30", " after:load ", "timeout:30"]) is True
    editor.save()
    pipeline = nbflow.load_pipeline(pipeline_nb)
    assert pipeline.steps["load"].source == "data = list(range(n, 2 * n))\ndata.extend([n, n])"
    assert pipeline.steps["square"].docs == "## Square\n\nNow with words."
    assert pipeline.steps["report"].docs == "## Report"
    assert pipeline.steps["report"].timeout == 30.0
    assert pipeline.steps["report"].after == ("load",)
    nb = nbformat.read(pipeline_nb, as_version=4)
    assert nb.cells[4].outputs[0]["text"] == "loaded\nfine – ok\n"  # outputs kept

    assert editor.set_docs("square", "") is True
    with pytest.raises(PipelineError, match="rename the step"):
        editor.set_tags("report", ["step:other"])
    editor.save()
    assert nbflow.load_pipeline(pipeline_nb).steps["square"].docs == ""


def test_save_refuses_to_overwrite_a_change_made_elsewhere(pipeline_nb):
    editor = NotebookEditor.open(pipeline_nb)
    editor.set_layout({"load": {"x": 1, "y": 1}})
    nb = nbformat.read(pipeline_nb, as_version=4)
    nb.cells[1].source = "import math  # edited in JupyterLab"
    nbformat.write(nb, pipeline_nb)
    with pytest.raises(PipelineError, match="changed on disk"):
        editor.save()
    assert "edited in JupyterLab" in pipeline_nb.read_text()
    assert editor.save(force=True)
    assert "edited in JupyterLab" not in pipeline_nb.read_text()


def test_save_keeps_permissions_and_writes_through_symlinks(tmp_path, pipeline_nb):
    os.chmod(pipeline_nb, 0o640)
    link = tmp_path / "link.ipynb"
    link.symlink_to(pipeline_nb)
    editor = NotebookEditor.open(link)
    editor.set_layout({"load": {"x": 3, "y": 4}})
    editor.save()
    assert link.is_symlink()
    assert os.stat(pipeline_nb).st_mode & 0o777 == 0o640
    assert nbflow.load_pipeline(pipeline_nb).source.layout == {"load": {"x": 3.0, "y": 4.0}}


def test_save_refuses_an_invalid_notebook(pipeline_nb):
    editor = NotebookEditor.open(pipeline_nb)
    editor.data["cells"][1]["cell_type"] = "nonsense"
    with pytest.raises(PipelineError, match="not a valid notebook"):
        editor.save()


def test_open_rejects_what_is_not_a_notebook(tmp_path):
    bad = tmp_path / "bad.ipynb"
    bad.write_text("{ nope")
    with pytest.raises(PipelineError, match="bad.ipynb: not a readable notebook"):
        NotebookEditor.open(bad)
    with pytest.raises(PipelineError, match="cannot read"):
        NotebookEditor.open(tmp_path / "missing.ipynb")
