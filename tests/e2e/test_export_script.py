"""``nbflow export --to script``: the script, run with nbflow, IPython and Jupyter
unimportable, produces the same values as ``nbflow run`` on every example notebook."""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import nbflow
from nbflow import load_pipeline
from nbflow.cli import main as cli
from nbflow.export import step_functions

from ..conftest import NOTEBOOKS, code, md, step, write_notebook
from .test_against_papermill import same

pytestmark = pytest.mark.slow

#: Runs a script's main() where nbflow, IPython and Jupyter cannot be imported; pickles its values.
WITHOUT_JUPYTER = """\
import importlib.abc, pickle, runpy, sys

BLOCKED = {"nbflow", "IPython", "ipykernel", "jupyter_client", "jupyter_core", "nbformat", "nbclient", "papermill"}


class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(name + " must not be needed by an exported script")


sys.meta_path.insert(0, Block())
ns = runpy.run_path(sys.argv[1], run_name="exported")
values = ns["main"](**ns["parse_args"](sys.argv[3:]))
with open(sys.argv[2], "wb") as f:
    pickle.dump(values, f)
"""


def run_script(script: Path, *args: str) -> dict:
    runner = script.parent / "_run_without_jupyter.py"
    runner.write_text(WITHOUT_JUPYTER)
    out = script.parent / "_values.pkl"
    env = {**os.environ, "MPLBACKEND": "Agg"}
    env.pop("PYTHONPATH", None)
    result = subprocess.run(
        [sys.executable, "-I", str(runner), str(script), str(out), *args],
        cwd=script.parent,
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    with open(out, "rb") as f:
        return pickle.load(f)


def nbflow_values(path: Path, run_id: int) -> dict:
    """The values each step passed on, from nbflow's cache (the last writer of a name wins)."""
    pipeline = load_pipeline(path)
    values = {}
    for name, fn in step_functions(pipeline).items():
        for value in fn.returns:
            values[value] = nbflow.result(path, name, value, run=run_id)
    return values


def assert_script_matches(path: Path, params: dict | None = None) -> dict:
    run = load_pipeline(path).run(params or {})
    assert run.status == "done", run.error
    assert cli(["export", str(path), "--to", "script"]) == 0
    script = path.with_suffix(".py")
    args = [a for k, v in (params or {}).items() for a in (f"--{k}", str(v))]
    got = run_script(script, *args)
    expected = nbflow_values(path, run.id)
    assert got.keys() == expected.keys()
    for name in expected:
        assert same(got[name], expected[name]), f"{path.name}: {name} differs from nbflow's"
    return got


@pytest.mark.parametrize("notebook", sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")))
def test_every_example_exports_to_a_script_with_nbflows_values(notebook, tmp_path):
    path = tmp_path / notebook
    shutil.copy(NOTEBOOKS / notebook, path)
    if load_pipeline(path).language.name != "Python":  # refused in one line (see the test below)
        assert cli(["export", str(path), "--to", "script"]) == 2
        assert not path.with_suffix(".py").exists()
        return
    values = assert_script_matches(path)
    assert values


def test_script_translates_shell_syntax_and_fan_out(tmp_path):
    path = write_notebook(
        tmp_path / "shell.ipynb",
        [
            md("# Shell things\n\nA pipeline with IPython syntax."),
            code("import json\n\n\ndef double(v):\n    return 2 * v"),
            code("count = 3\nnames = ['a', 'b']\nverbose = False", "parameters"),
            md("## Make\nWrites a file with the shell."),
            step(
                "make",
                "!echo hello > greeting.txt\nlisting = !ls *.txt\nitems = [double(i) for i in range(count)]",
                "keep:listing",
            ),
            step("shell", '%%bash\nset -e\necho "from bash" >> greeting.txt\n', "after:make"),
            step("each", "label = f'{names}:{items}'\nsquare = items * items", "map:items"),
            step(
                "read",
                "with open('greeting.txt') as fh:\n    text = fh.read()\n"
                "summary = json.dumps({'square': square, 'label': label, 'verbose': verbose})",
                "after:shell",
                "keep:text",
            ),
        ],
    )
    got = assert_script_matches(path, {"count": 4})
    assert got["square"] == [0, 4, 16, 36]
    assert got["text"] == "hello\nfrom bash\n"
    assert got["listing"] == ["greeting.txt"]
    script = path.with_suffix(".py").read_text()
    compile(script, "shell.py", "exec")
    assert "def step_make(count):" in script and "get_ipython" not in script
    assert "subprocess.run(['bash']" in script
    assert '"""Make\n' in script  # the step's documentation is its docstring


def test_script_refuses_ipython_without_plain_equivalent(tmp_path, capsys):
    path = write_notebook(
        tmp_path / "magic.ipynb",
        [code("x = 1", "parameters"), step("ok", "y = x"), step("timed", "%time z = y + 1")],
    )
    assert cli(["export", str(path), "--to", "script"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        'nbflow: error: magic.ipynb, cell 3 (step "timed"): %time has no plain Python equivalent for '
        "`nbflow export`; rewrite it or tag the cell skip"
    )
    assert not path.with_suffix(".py").exists()


def test_script_refuses_a_notebook_in_another_language(tmp_path, capsys):
    path = write_notebook(
        tmp_path / "r.ipynb",
        [code("x <- 1", "step:one")],
        kernelspec={"name": "ir", "display_name": "R", "language": "R"},
    )
    assert cli(["export", str(path), "--to", "cwl"]) == 2
    assert (
        capsys.readouterr().err.strip()
        == "nbflow: error: r.ipynb: its kernel runs R; `nbflow export` writes Python only"
    )
    assert not (tmp_path / "r-cwl").exists()
