"""Compiled templates kept across processes (nbflow/report/template_cache.py), with the real Jinja2 and nbconvert.

A cached file is used only for the same template compiled the same way: a changed
template, environment or Jinja version compiles again; a damaged file is ignored and
written again.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jinja2
import pytest

from nbflow.report import templating
from nbflow.report.template_cache import SourceCache


def env_for(folder, cache, **options):
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(folder)), autoescape=True, **options)
    env.bytecode_cache = cache
    return env


@pytest.fixture
def templates(tmp_path):
    folder = tmp_path / "tpl"
    folder.mkdir()
    (folder / "page.j2").write_text("<p>{{ name }} has {{ n }} runs</p>\n")
    (tmp_path / "home").mkdir()  # the .nbflow folder; its templates/ folder is made when needed
    return folder, SourceCache(tmp_path / "home" / "templates")


def cached_files(cache):
    return sorted(cache.directory.glob("*.json")) if cache.directory.is_dir() else []


def test_a_compiled_template_is_kept_and_used_by_the_next_environment(templates):
    folder, cache = templates
    assert env_for(folder, cache).get_template("page.j2").render(name="a<b", n=3) == "<p>a&lt;b has 3 runs</p>"
    [path] = cached_files(cache)
    data = json.loads(path.read_text())
    assert "has" in data["python"]  # Jinja's generated Python source, as text
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    # the next environment (a new process) compiles the kept source: shown by editing that source
    data["python"] = data["python"].replace(" has ", " ran ")
    path.write_text(json.dumps(data))
    assert env_for(folder, cache).get_template("page.j2").render(name="x", n=1) == "<p>x ran 1 runs</p>"


def test_a_changed_template_is_compiled_again(templates):
    folder, cache = templates
    env_for(folder, cache).get_template("page.j2").render(name="x", n=1)
    (folder / "page.j2").write_text("<p>{{ name }}: {{ n }}</p>\n")
    assert env_for(folder, cache).get_template("page.j2").render(name="x", n=1) == "<p>x: 1</p>"
    assert len(cached_files(cache)) == 2  # one per source; the old one is never used for the new source


def test_another_environment_or_jinja_version_compiles_again(templates, monkeypatch):
    folder, cache = templates
    (folder / "page.j2").write_text("  {% if n %}\n<p>{{ name | shout }}</p>\n  {% endif %}\n")
    plain = env_for(folder, cache)
    plain.filters["shout"] = str.upper
    assert plain.get_template("page.j2").render(name="x", n=1) == "  \n<p>X</p>\n  "
    trimmed = env_for(folder, cache, trim_blocks=True, lstrip_blocks=True)
    trimmed.filters["shout"] = str.upper
    assert trimmed.get_template("page.j2").render(name="x", n=1) == "<p>X</p>\n"
    escaped = env_for(folder, cache)
    escaped.filters["shout"] = jinja2.pass_eval_context(lambda ctx, v: f"{v}!{ctx.autoescape}")
    assert escaped.get_template("page.j2").render(name="x", n=1) == "  \n<p>x!True</p>\n  "
    monkeypatch.setattr(jinja2, "__version__", "0.0.0")  # as after an upgrade of Jinja2
    again = env_for(folder, cache)
    again.filters["shout"] = str.upper
    assert again.get_template("page.j2").render(name="y", n=1) == "  \n<p>Y</p>\n  "
    assert len(cached_files(cache)) == 4


@pytest.mark.parametrize("damage", ["", "not json", "[1, 2]", '{"key": "other", "python": "x = 1"}', '{"key": 1}'])
def test_a_damaged_file_is_ignored_and_written_again(templates, damage):
    folder, cache = templates
    env_for(folder, cache).get_template("page.j2").render(name="x", n=1)
    [path] = cached_files(cache)
    good = path.read_text()
    path.write_text(damage)
    assert env_for(folder, cache).get_template("page.j2").render(name="x", n=2) == "<p>x has 2 runs</p>"
    assert path.read_text() == good


def test_a_cache_folder_that_cannot_be_written_only_costs_time(tmp_path):
    (tmp_path / "tpl").mkdir()
    (tmp_path / "tpl" / "page.j2").write_text("{{ n }}")
    (tmp_path / "file").write_text("not a folder")
    env = env_for(tmp_path / "tpl", SourceCache(tmp_path / "file" / "templates"))
    assert env.get_template("page.j2").render(n=5) == "5"
    gone = env_for(tmp_path / "tpl", SourceCache(tmp_path / "deleted" / ".nbflow" / "templates"))
    assert gone.get_template("page.j2").render(n=6) == "6"
    assert not (tmp_path / "deleted").exists()  # a .nbflow folder that is gone is not made again


NBCONVERT = """
import json, sys
from pathlib import Path
from nbflow.report import templating
from nbflow.report.cells import CellRenderer
if sys.argv[1] != "-":
    templating.use_template_cache(Path(sys.argv[1]))
renderer = CellRenderer(trusted=False)
cells = [{"cell_type": "code", "source": "print('hi')\\n1 + 1", "metadata": {}, "execution_count": 1,
          "outputs": [{"output_type": "stream", "name": "stdout", "text": "hi\\n"},
                      {"output_type": "execute_result", "execution_count": 1, "metadata": {},
                       "data": {"text/plain": "2", "text/html": "<b>2</b><script>x()</script>"}}]}]
print(json.dumps({"css": renderer.css, "cells": renderer.sections([(cells, False)], {}),
                  "md": renderer.markdown("# T\\n*x*"),
                  "page": templating.render("site_runs.html.j2", rows=[], statuses=[], prefix="")}))
"""


def in_a_process(home) -> dict:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", NBCONVERT, str(home)], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_nbconvert_and_nbflow_pages_are_the_same_with_the_cache(tmp_path):
    home = tmp_path / ".nbflow"
    home.mkdir()
    without = in_a_process("-")
    first = in_a_process(home)  # writes the cache
    files = sorted(p.name for p in (home / "templates").glob("*.json"))
    assert len(files) > 5  # nbconvert's lab templates and nbflow's
    second = in_a_process(home)  # compiles from it
    assert without == first == second
    assert "<script>" not in second["cells"][0] and "hi" in second["cells"][0]


def test_use_template_cache_gives_the_pages_a_new_environment(tmp_path):
    before = templating.environment()
    templating.use_template_cache(tmp_path / ".nbflow")
    try:
        env = templating.environment()
        assert env is not before and env.bytecode_cache.directory == tmp_path / ".nbflow" / "templates"
        templating.use_template_cache(tmp_path / ".nbflow")
        assert templating.environment() is env  # the same folder: the same environment
    finally:
        templating._TEMPLATE_CACHE.clear()
        templating.environment.cache_clear()


@pytest.mark.parametrize("what", ["folder", "file"])
def test_a_kept_file_others_could_write_is_never_used(templates, what):
    # A kept file is code: it is trusted as the cache's pickles are (fsutil.check_private).
    folder, cache = templates
    env_for(folder, cache).get_template("page.j2").render(name="x", n=1)
    [path] = cached_files(cache)
    data = json.loads(path.read_text())
    data["python"] = data["python"].replace(" has ", " ran ")
    path.write_text(json.dumps(data))
    (cache.directory if what == "folder" else path).chmod(0o777 if what == "folder" else 0o666)
    assert env_for(folder, cache).get_template("page.j2").render(name="x", n=1) == "<p>x has 1 runs</p>"
    if what == "folder":  # nothing is written into a folder others could write
        assert json.loads(path.read_text())["python"] == data["python"]
