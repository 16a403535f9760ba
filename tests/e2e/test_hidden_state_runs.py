"""Hidden kernel state never makes the cache lie: for each idiom (random seeds, NumPy's
global generator, the working folder, sys.path, environment variables, pandas options,
rcParams, a pyplot figure built across cells), after an edit of any one step, the
values and text outputs of ``nbflow run`` equal a plain papermill run of the notebook,
with the kernel executor and with the Dask executor (a real LocalCluster)."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest

import nbflow
from nbflow import load_pipeline
from nbflow.run import pipeline_cache
from nbflow.verify import same, text_outputs

from ..conftest import code, step, write_notebook
from .test_against_papermill import papermill_snapshots

pytestmark = pytest.mark.slow

IDIOMS = {
    "random": [
        code("import random"),
        step("seed", "random.seed(0)"),
        step("a", "x = random.random()\nprint(round(x, 6))"),
        step("b", "y = random.random()"),
        step("c", "z = [random.randint(0, 9) for _ in range(3)]"),
    ],
    "numpy": [
        code("import numpy as np"),
        step("seed", "np.random.seed(0)"),
        step("a", "x = np.random.rand()"),
        step("b", "y = np.random.rand(3)\nprint(y.round(4))"),
        step("c", "z = float(np.random.normal())"),
    ],
    "chdir": [
        code("import os"),
        step("cd", "os.makedirs('sub', exist_ok=True)\nos.chdir('sub')"),
        step("w", "with open('f.txt', 'w') as f:\n    f.write('hi')\nwhere = os.path.basename(os.getcwd())"),
        step("r", "listing = sorted(os.listdir('.'))\nprint(listing)"),
    ],
    "sys.path": [
        code("import os\nimport sys"),
        step(
            "mk",
            "os.makedirs('lib', exist_ok=True)\nwith open('lib/nbflow_helper_mod.py', 'w') as f:\n"
            "    f.write('VALUE = 41\\n')",
        ),
        step("add", "sys.path.insert(0, os.path.abspath('lib'))"),
        step(
            "use", "import nbflow_helper_mod\nvalue = nbflow_helper_mod.VALUE + 1\nfirst = sys.path[0][-3:]", "after:mk"
        ),
    ],
    "environment": [
        code("import os\nimport subprocess"),
        step("env", "os.environ['NBFLOW_DEMO'] = 'on'"),
        step("read", "mode = os.environ.get('NBFLOW_DEMO')"),
        step("shell", "out = subprocess.run(['sh', '-c', 'echo $NBFLOW_DEMO'], capture_output=True, text=True).stdout"),
    ],
    "pandas options": [
        code("import pandas as pd"),
        step("opt", "pd.set_option('display.precision', 2)"),
        step("make", "df = pd.DataFrame({'v': [1.23456, 2.34567]})"),
        step("show", "text = str(df)\ndf"),
    ],
    "rcParams": [
        code("import matplotlib as mpl\nimport matplotlib.pyplot as plt"),
        step("style", "plt.style.use('ggplot')\nmpl.rcParams['lines.linewidth'] = 4.5"),
        step("data", "xs = [1, 2, 3]"),
        step("look", "lw = mpl.rcParams['lines.linewidth']\nface = mpl.rcParams['axes.facecolor']"),
    ],
    "pyplot": [
        # Figures drawn off screen stay open from cell to cell (inline plots are closed at each cell's end).
        code("import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt"),
        step("p1", "plt.figure(figsize=(4, 3))\nplt.plot([1, 2, 3])"),
        step("p2", "plt.title('temperatures')"),
        step("p3", "plt.xlabel('hour')"),
        step(
            "p4",
            "plt.savefig('fig.png')\ntitle = plt.gca().get_title()\nlabel = plt.gca().get_xlabel()\n"
            "lines = len(plt.gca().lines)",
        ),
    ],
}


def papermill_outputs(folder: Path) -> list[list]:
    """The outputs of the notebook's own cells in papermill's output notebook."""
    nb = nbformat.read(folder / "out.ipynb", 4)
    return [
        list(c.get("outputs", []))
        for c in nb.cells
        if not c.source.startswith("import cloudpickle as _nbflow_cp")
        and "injected-parameters" not in c.metadata.get("tags", [])
    ]


def assert_like_papermill(path: Path, run, expected: dict, outputs: list[list]) -> int:
    """Every value and text output of every step of ``run`` equals papermill's."""
    assert run.status == "done", (run.error, run.steps)
    pipeline = load_pipeline(path)
    cache = pipeline_cache(pipeline)
    plan = pipeline.plan()
    compared = 0
    for name in pipeline.order:
        for value_name, value in expected[name].items():
            got = nbflow.result(path, name, value_name, run=run.id)
            assert same(got, value), f"step {name}: {value_name} = {got!r}, papermill: {value!r}"
            compared += 1
        entry = cache.lookup(name, plan[name].key)
        cached = cache.load_outputs(entry)
        for i, cell in enumerate(pipeline.steps[name].cells):
            assert text_outputs(cached[i]) == text_outputs(outputs[cell.index]), f"outputs of step {name}"
    return compared


def check_idiom(tmp_path: Path, idiom: str, executor) -> None:
    path = write_notebook(tmp_path / "nb.ipynb", IDIOMS[idiom])
    expected = papermill_snapshots(path, {}, tmp_path / "plain")
    outputs = papermill_outputs(tmp_path / "plain")
    first = load_pipeline(path).run(executor=executor())
    assert assert_like_papermill(path, first, expected, outputs) > 0
    for number, name in enumerate(load_pipeline(path).order):
        # An edit that changes no value or output: the plain run of the edited notebook is the one above.
        nb = nbformat.read(path, 4)
        cell = load_pipeline(path).steps[name].cells[0].index
        nb.cells[cell].source = f"_edit_{number} = {number}\n" + nb.cells[cell].source
        nbformat.write(nb, path)
        edited = load_pipeline(path).run(executor=executor())
        assert edited.steps[name]["status"] == "done"
        assert_like_papermill(path, edited, expected, outputs)


def kernel_executor():
    return "kernel"


@pytest.mark.parametrize("idiom", sorted(IDIOMS))
def test_idiom_equals_papermill_after_any_edit_kernel(idiom, tmp_path):
    check_idiom(tmp_path, idiom, kernel_executor)


@pytest.mark.parametrize("idiom", sorted(IDIOMS))
def test_idiom_equals_papermill_after_any_edit_dask(idiom, tmp_path, client):  # noqa: F811
    from nbflow.executors.dask import DaskExecutor

    check_idiom(tmp_path, idiom, lambda: DaskExecutor(client, announce=False))


def test_the_issue_random_example_reexecutes_nothing_and_gets_the_plain_value(tmp_path):
    path = write_notebook(tmp_path / "nb.ipynb", IDIOMS["numpy"])
    load_pipeline(path).run()
    nb = nbformat.read(path, 4)
    nb.cells[3].source = "y = np.random.rand(3) * 1\nprint(y.round(4))"
    nbformat.write(nb, path)
    plan = load_pipeline(path).plan()
    assert plan.to_run == ["b", "c"]
    assert plan["c"].why == "random state changed (numpy) after step b"
    expected = papermill_snapshots(path, {}, tmp_path / "plain")
    run = load_pipeline(path).run()
    assert {n: s["status"] for n, s in run.steps.items()} == {
        "seed": "cached",
        "a": "cached",
        "b": "done",
        "c": "done",
    }
    assert same(nbflow.result(path, "b", "y", run=run.id), expected["b"]["y"])


def test_pyplot_steps_are_reexecuted_and_the_plan_says_why(tmp_path):
    path = write_notebook(tmp_path / "nb.ipynb", IDIOMS["pyplot"])
    load_pipeline(path).run()
    nb = nbformat.read(path, 4)
    nb.cells[4].source = "saved = True\n" + nb.cells[4].source
    nbformat.write(nb, path)
    plan = load_pipeline(path).plan()
    assert plan.to_run == ["p1", "p2", "p3", "p4"]
    assert [plan[s].why for s in ("p1", "p2", "p3")] == ["re-executed: pyplot state"] * 3
    run = load_pipeline(path).run()
    assert nbflow.result(path, "p4", "title", run=run.id) == "temperatures"
    assert (tmp_path / "fig.png").stat().st_size > 0


def test_graph_explains_hidden_state_edges(tmp_path):
    path = write_notebook(tmp_path / "nb.ipynb", IDIOMS["chdir"])
    shutil.rmtree(tmp_path / "sub", ignore_errors=True)
    from nbflow.cli import graph_text

    text = graph_text(load_pipeline(path))
    assert "  w   cell 3    <- cd [working folder]" in text
    assert "  r   cell 4    <- cd [working folder]" in text
