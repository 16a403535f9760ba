"""``nbflow publish``'s pure parts and its writer: reproduce commands, incremental writes, refusals.

The site built from real runs and opened in Chromium is in ``tests/e2e/test_publish.py``.
"""

from __future__ import annotations

import json
import os

import pytest

from nbflow.cli import build_parser, parameters_from_args
from nbflow.config import Config
from nbflow.errors import PipelineError
from nbflow.provenance import reproduce_lines
from nbflow.publish import MANIFEST, PublishError, SiteWriter, parameter_text


def run_row(params: dict, git: dict | None = None) -> dict:
    return {"notebook": "/work/my project/wine.ipynb", "params": params, "provenance": {"git": git or {}}}


def test_reproduce_lines_give_back_the_stored_parameters():
    params = {
        "lr": 0.5,
        "n": 3,
        "flag": True,
        "none": None,
        "name": "red wine",
        "looks_numeric": "42",
        "sizes": [1, 2],
        "opts": {"a": "b"},
    }
    lines = reproduce_lines(run_row(params, {"commit": "abc123", "dirty": False}))
    assert lines[:2] == ["cd '/work/my project'", "git checkout abc123"]
    import shlex

    argv = shlex.split(lines[2])
    assert argv[:3] == ["nbflow", "run", "wine.ipynb"]
    args = build_parser().parse_args(argv[1:])
    values, _raw = parameters_from_args(args)
    assert values == params


def test_reproduce_lines_without_git_have_no_checkout():
    assert reproduce_lines(run_row({})) == ["cd '/work/my project'", "nbflow run wine.ipynb"]


def test_parameter_text():
    assert parameter_text({"lr": 0.5, "name": "x", "sizes": [1, 2]}) == 'lr=0.5, name="x", sizes=[1, 2]'


def test_writer_writes_once_and_skips_unchanged_inputs(tmp_path):
    site = tmp_path / "site"
    renders = []

    def render(text):
        def page():
            renders.append(text)
            return text

        return page

    w = SiteWriter(site)
    w.page("index.html", "in-1", render("<p>one</p>"))
    w.page("a/runs/1.html", "in-a", render("<p>a</p>"))
    result = w.finish()
    assert sorted(result.written) == ["a/runs/1.html", "index.html"]
    assert (site / "a/runs/1.html").read_text() == "<p>a</p>"
    assert oct((site / "index.html").stat().st_mode & 0o777) == "0o644"

    stamp = (site / "a/runs/1.html").stat().st_mtime_ns
    w = SiteWriter(site)
    w.page("index.html", "in-2", render("<p>one</p>"))  # new inputs, same content: not rewritten
    w.page("a/runs/1.html", "in-a", render("never rendered"))
    result = w.finish()
    assert renders == ["<p>one</p>", "<p>a</p>", "<p>one</p>"]
    assert result.written == [] and result.updated == []
    assert sorted(result.unchanged) == ["a/runs/1.html", "index.html"]
    assert (site / "a/runs/1.html").stat().st_mtime_ns == stamp
    assert json.loads((site / MANIFEST).read_text())["pages"]["index.html"]["inputs"] == "in-2"


def test_writer_removes_only_its_own_pages_that_are_gone(tmp_path):
    site = tmp_path / "site"
    w = SiteWriter(site)
    w.page("index.html", "1", lambda: "index")
    w.page("a/runs/1.html", "1", lambda: "run 1")
    w.finish()
    (site / "notes.txt").write_text("the user's own file")
    w = SiteWriter(site)
    w.page("index.html", "2", lambda: "index, no run 1")
    result = w.finish()
    assert result.removed == ["a/runs/1.html"] and result.updated == ["index.html"]
    assert not (site / "a/runs/1.html").exists()
    assert (site / "notes.txt").read_text() == "the user's own file"


def test_a_page_edited_by_hand_is_rendered_again(tmp_path):
    site = tmp_path / "site"
    w = SiteWriter(site)
    w.page("index.html", "1", lambda: "index")
    w.finish()
    (site / "index.html").write_text("edited by someone")
    w = SiteWriter(site)
    w.page("index.html", "1", lambda: "index")
    assert w.finish().updated == ["index.html"]
    assert (site / "index.html").read_text() == "index"


def test_a_page_that_cannot_be_rendered_keeps_the_previous_one(tmp_path):
    site = tmp_path / "site"
    w = SiteWriter(site)
    w.page("a.html", "1", lambda: "first")
    w.finish()

    def broken() -> str:
        raise PipelineError("run 3: the store has no such run")

    w = SiteWriter(site)
    w.page("a.html", "2", broken)
    result = w.finish()
    assert result.failed == {"a.html": "run 3: the store has no such run"}
    assert (site / "a.html").read_text() == "first" and result.removed == []


def test_a_folder_that_is_not_a_site_is_refused(tmp_path):
    (tmp_path / "important.txt").write_text("keep me")
    with pytest.raises(PublishError, match="is not empty and is not a site nbflow published"):
        SiteWriter(tmp_path)
    assert os.listdir(tmp_path) == ["important.txt"]


def test_report_setting_must_be_a_boolean(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[tool.nbflow]\nreport = 'yes'\n")
    with pytest.raises(PipelineError, match="report = 'yes': write true or false"):
        Config.for_folder(tmp_path)
    (tmp_path / "pyproject.toml").write_text("[tool.nbflow]\nreport = true\n")
    assert Config.for_folder(tmp_path).report is True
