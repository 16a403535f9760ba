"""The command line: graph and plan output, parameters, and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nbflow.cli import main

from .conftest import code, step

PIPE = [
    code("lr = 0.1\nname = 'run'\nlayers = [4]", "parameters"),
    step("load", "data = [1, 2, 3]"),
    step("train", "w = sum(data) * lr"),
    step("report", "text = f'{name}: {w}'"),
]


def run_cli(*args: str) -> tuple[int, str, str]:
    proc = subprocess.run([sys.executable, "-m", "nbflow", *args], capture_output=True, text=True)
    return proc.returncode, proc.stdout, proc.stderr


def test_graph_text(make_notebook, capsys):
    assert main(["graph", str(make_notebook(PIPE))]) == 0
    out = capsys.readouterr().out
    assert out.splitlines() == [
        "pipeline.ipynb: 3 steps; parameters: lr=0.1, name='run', layers=[4]",
        "  load    cell 2    <- (no upstream step)",
        "  train   cell 3    <- load [data]  params: lr",
        "  report  cell 4    <- train [w]  params: name",
    ]


def test_graph_json_and_dot(make_notebook, capsys):
    path = make_notebook(PIPE)
    main(["graph", str(path), "--format", "json"])
    data = json.loads(capsys.readouterr().out)
    assert [s["name"] for s in data["steps"]] == ["load", "train", "report"]
    assert {
        "source": "load",
        "target": "train",
        "names": ["data"],
        "explicit": False,
        "state": "",
        "hidden": False,
    } in data["edges"]
    assert data["parameters"]["lr"] == {"default": 0.1, "type": "float"}
    main(["graph", str(path), "--format", "dot"])
    dot = capsys.readouterr().out
    assert dot.startswith('digraph "pipeline" {') and '"load" -> "train" [label="data"];' in dot


def test_plan_table_with_parameters(make_notebook, capsys):
    assert main(["plan", str(make_notebook(PIPE)), "-p", "lr", "0.5", "-p", "name", "7"]) == 0
    out = capsys.readouterr().out
    assert "train   stale  run     never run" in out
    assert "3 of 3 steps would run; 0 are cached." in out


def test_plan_json_yaml_and_raw(make_notebook, capsys, tmp_path):
    path = make_notebook(PIPE)
    params_file = tmp_path / "p.yaml"
    params_file.write_text("layers: [8, 8]\n")
    main(["plan", str(path), "-y", "lr: 0.2", "-f", str(params_file), "-r", "name", "True", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert data["params"] == {"lr": 0.2, "name": "True", "layers": [8, 8]}


@pytest.mark.parametrize(
    "args, message",
    [
        (["-p", "lrr", "1"], "unknown parameter 'lrr'; did you mean \"lr\"?"),
        (["-p", "lr", "fast"], "parameter 'lr' expects float (default 0.1), got fast (str)"),
        (["-p", "x\nimport os", "1"], "is not a valid Python name"),
        (["--only", "tran"], '--only tran: no such step; did you mean "train"?'),
    ],
)
def test_bad_input_exits_2_with_one_line(make_notebook, capsys, args, message):
    assert main(["plan", str(make_notebook(PIPE)), *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and err.startswith("nbflow: error: pipeline.ipynb")


def test_missing_notebook(tmp_path, capsys):
    assert main(["plan", str(tmp_path / "nope.ipynb")]) == 2
    assert capsys.readouterr().err == "nbflow: error: nope.ipynb: no such notebook\n"


def test_warnings_go_to_stderr(make_notebook, capsys):
    main(["graph", str(make_notebook([step("a", "x = undefined_thing")]))])
    assert "warning: pipeline.ipynb, cell 1 (step \"a\"): reads 'undefined_thing'" in capsys.readouterr().err


def test_console_script_and_module(make_notebook):
    path = make_notebook(PIPE)
    code_, out, err = run_cli("plan", str(path))
    assert code_ == 0 and "report" in out, err
    exe = Path(sys.executable).parent / "nbflow"
    assert exe.exists(), "the nbflow console script is installed beside the interpreter"
    proc = subprocess.run([str(exe), "graph", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0 and "3 steps" in proc.stdout


def test_plan_imports_nothing_heavy(make_notebook):
    # The plan path reads JSON with the standard library (after the first validation).
    path = make_notebook(PIPE)
    main(["plan", str(path)])
    script = (
        "import sys\nfrom nbflow.cli import main\n"
        f"main(['plan', {str(path)!r}])\n"
        "heavy = [m for m in ('nbformat', 'papermill', 'networkx', 'jupyter_client', 'IPython', 'joblib', 'rich')"
        " if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out
