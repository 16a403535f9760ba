"""nbflow's results equal a plain papermill run's, step by step.

For each notebook, a copy instrumented with a snapshot cell after every step is run by
the papermill CLI; every value each step produced under nbflow (first run, fully
cached re-run, after editing a step, after changing a parameter) must equal the value
the plain run had right after that step.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import cloudpickle
import nbformat
import pytest

import nbflow
from nbflow import load_pipeline
from nbflow.verify import same

from ..conftest import NOTEBOOKS, code, step, write_notebook

pytestmark = pytest.mark.slow

SNAPSHOT = """\
import cloudpickle as _nbflow_cp, types as _nbflow_types
_nbflow_values = {{}}
for _nbflow_name in {names!r}:
    _nbflow_value = globals().get(_nbflow_name, _nbflow_types)
    if isinstance(_nbflow_value, _nbflow_types.ModuleType):
        continue
    try:
        _nbflow_cp.dumps(_nbflow_value)
    except Exception:
        continue
    _nbflow_values[_nbflow_name] = _nbflow_value
with open({path!r}, "wb") as _nbflow_f:
    _nbflow_cp.dump(_nbflow_values, _nbflow_f)"""


def papermill_snapshots(path: Path, params: dict, folder: Path) -> dict[str, dict]:
    """Run ``path`` with plain papermill; return each step's values right after it ran."""
    pipeline = load_pipeline(path)
    nb = nbformat.read(path, 4)
    folder.mkdir(parents=True, exist_ok=True)
    for name in sorted(pipeline.order, key=lambda s: -pipeline.steps[s].cells[-1].index):
        last = pipeline.steps[name].cells[-1].index
        snap = folder / f"{name}.pkl"
        nb.cells.insert(
            last + 1,
            nbformat.v4.new_code_cell(SNAPSHOT.format(names=sorted(pipeline.steps[name].writes), path=str(snap))),
        )
    instrumented = folder / path.name
    nbformat.write(nb, instrumented)
    args = [
        str(Path(sys.executable).parent / "papermill"),
        str(instrumented),
        str(folder / "out.ipynb"),
        "--cwd",
        str(path.parent),
        "--no-progress-bar",
    ]
    for key, value in params.items():
        args += ["-p", key, str(value)]
    subprocess.run(args, check=True, capture_output=True)
    snapshots = {}
    for name in pipeline.order:
        with open(folder / f"{name}.pkl", "rb") as f:
            snapshots[name] = cloudpickle.load(f)
    return snapshots


def assert_same_values(path: Path, expected: dict[str, dict], run_id: int) -> int:
    pipeline = load_pipeline(path)
    compared = 0
    for name in pipeline.order:
        for value_name, value in expected[name].items():
            try:
                got = nbflow.result(path, name, value_name, run=run_id)
            except nbflow.errors.NbflowError:
                continue  # not cached (e.g. unpicklable): nothing to compare
            assert same(got, value), f"step {name}: {value_name} differs from papermill's"
            compared += 1
    return compared


def check_notebook(path: Path, tmp: Path, param: tuple[str, object], edit_step: str) -> None:
    pipeline = load_pipeline(path)
    first = pipeline.run()
    assert first.status == "done", first.error
    plain = papermill_snapshots(path, {}, tmp / "plain")
    assert assert_same_values(path, plain, first.id) > 0

    cached = load_pipeline(path).run()
    assert {s["status"] for s in cached.steps.values()} == {"cached"}
    assert_same_values(path, plain, cached.id)

    name, value = param
    changed = load_pipeline(path).run({name: value})
    assert changed.status == "done", changed.error
    assert_same_values(path, papermill_snapshots(path, {name: value}, tmp / "param"), changed.id)

    nb = nbformat.read(path, 4)
    cell = pipeline.steps[edit_step].cells[-1].index
    nb.cells[cell].source += "\n_edited = True"
    nbformat.write(nb, path)
    edited = load_pipeline(path).run()
    assert edited.steps[edit_step]["status"] == "done"
    assert any(s["status"] == "cached" for s in edited.steps.values())
    assert_same_values(path, papermill_snapshots(path, {}, tmp / "edit"), edited.id)


# A parameter to change and a step to edit, per example. Examples with map: steps are not
# here: a plain papermill run cannot execute a fan-out cell (the element is bound by nbflow);
# test_examples.py checks them against their own first run.
EXAMPLES = {
    "wine_classifier.ipynb": (("max_depth", 2), "features"),
    "diabetes_report.ipynb": (("folds", 3), "bmi"),
}


def _has_fan_out(path: Path) -> bool:
    return any(step.map_over for step in load_pipeline(path).steps.values())


@pytest.mark.parametrize("notebook", sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")))
def test_examples_match_papermill(notebook, tmp_path):
    if load_pipeline(NOTEBOOKS / notebook).language.name != "Python":
        pytest.skip("compared with plain papermill in R itself: test_r_pipelines.py::test_r_example_matches_papermill")
    if notebook not in EXAMPLES:
        assert _has_fan_out(NOTEBOOKS / notebook), f"add {notebook} to EXAMPLES with a parameter and a step to edit"
        return
    path = tmp_path / notebook
    shutil.copy(NOTEBOOKS / notebook, path)
    param, edit_step = EXAMPLES[notebook]
    check_notebook(path, tmp_path, param, edit_step)


def test_generated_notebook_matches_papermill(tmp_path):
    path = write_notebook(
        tmp_path / "generated.ipynb",
        [
            code("import numpy as np\nimport collections\n\ndef norm(v):\n    return v / np.linalg.norm(v)"),
            code("size = 1000\nseed = 3\nlabel = 'run'", "parameters"),
            step("make", "rng = np.random.default_rng(seed)\nx = rng.normal(size=size)\ny = x ** 2"),
            step("table", "counts = collections.Counter(np.round(x).astype(int).tolist())\nkeys = sorted(counts)"),
            step("mutate", "y[:10] = 0\nsummary = {'mean': float(y.mean()), 'label': label}"),
            step(
                "helper",
                "def shift(v, k=2):\n    return v + k\nclass Box:\n    def __init__(self, v):\n        self.v = v",
            ),
            step("use", "shifted = shift(norm(x))\nbox = Box(float(shifted.sum()))\nbv = box.v"),
            step("files", "with open('side.txt', 'w') as fh:\n    fh.write(label)"),
            step("reads", "side = open('side.txt').read()", "after:files"),
        ],
    )
    check_notebook(path, tmp_path, ("seed", 4), "table")
