"""``nbflow/outfiles.py``: what an ``out:`` pattern stands for on disk, and the tags that declare it."""

from __future__ import annotations

import os

import pytest

from nbflow.errors import PipelineError
from nbflow.graph import load_pipeline
from nbflow.outfiles import expand, kind, problem, same_path

from .conftest import step


def test_kinds():
    assert [kind(p) for p in ("a.csv", "parts/", "plots/*.png", "x/[ab].txt")] == ["file", "folder", "glob", "glob"]
    assert same_path("parts/") == "parts" and same_path("a/*.png") == "a/*.png"


def test_expand_lists_regular_files_and_never_follows_links(tmp_path):
    (tmp_path / "parts" / "sub").mkdir(parents=True)
    (tmp_path / "parts" / "a.csv").write_text("a")
    (tmp_path / "parts" / "sub" / "b.csv").write_text("b")
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    (outside / "secret.png").write_text("s")
    os.symlink(outside, tmp_path / "parts" / "link")
    os.symlink(outside / "secret.png", tmp_path / "parts" / "file-link.png")
    (tmp_path / "plots").mkdir()
    for name in ("1.png", "2.png", "notes.txt"):
        (tmp_path / "plots" / name).write_text(name)
    os.symlink(outside, tmp_path / "plots" / "linked")
    assert expand(tmp_path, "parts/") == ["parts/a.csv", "parts/sub/b.csv"]
    assert expand(tmp_path, "plots/*.png") == ["plots/1.png", "plots/2.png"]
    assert expand(tmp_path, "**/*.png") == ["plots/1.png", "plots/2.png"]
    assert expand(tmp_path, "plots/linked/*.png") == []
    assert expand(tmp_path, "parts/a.csv") == ["parts/a.csv"]
    assert expand(tmp_path, "nope/") == [] and expand(tmp_path, "nope.txt") == []


def test_problem_names_the_first_missing_output(tmp_path):
    (tmp_path / "parts").mkdir()
    assert problem(tmp_path, ["parts/"]) == ""  # an empty folder is a folder
    assert problem(tmp_path, ["out/"]) == f"out:out/ was not produced (no folder {tmp_path / 'out/'})"
    assert problem(tmp_path, ["p/*.png"]).startswith("out:p/*.png matched no file")
    assert problem(tmp_path, ["p/*.png", "x.txt", "out/"], optional={"p/*.png", "x.txt", "out/"}) == ""
    assert problem(tmp_path, ["x.txt"]) == f"out:x.txt was not produced (no file {tmp_path / 'x.txt'})"


def test_tags_keep_the_folder_slash_and_mark_optional_outputs(make_notebook):
    path = make_notebook(
        [
            step("make", "x = 1", "out:parts/", "out?:maybe.txt", "out:plots/*.png"),
            step("use", "y = 1", "in:parts/", "in:plots/3.png"),
        ]
    )
    pipeline = load_pipeline(path)
    make = pipeline.steps["make"]
    assert make.out_files == ("parts/", "plots/*.png", "maybe.txt")
    assert make.optional_outs == ("maybe.txt",)
    # in: of the folder, and of a file the glob matches, both wait for make
    assert pipeline.steps["use"].file_inputs == {"parts": "make", "plots/3.png": "make"}


@pytest.mark.parametrize("tag", ["out?:../up.txt", "out:/etc/", "out:../*.png"])
def test_outputs_outside_the_folder_are_refused(make_notebook, tag):
    with pytest.raises(PipelineError, match="names a path outside the notebook's folder"):
        load_pipeline(make_notebook([step("make", "x = 1", tag)]))
