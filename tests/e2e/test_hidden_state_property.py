"""Property: for generated notebooks that mix hidden-state idioms (seeds and draws of
NumPy's and Python's generators, environment variables, pandas options) with ordinary
steps, after each random edit, every value of ``nbflow run`` equals a plain papermill
run of the edited notebook. Bounded to a few examples (real kernels are slow)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import nbformat
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import nbflow
from nbflow import load_pipeline
from nbflow.verify import same

from ..conftest import code, step, write_notebook
from .test_against_papermill import papermill_snapshots

pytestmark = pytest.mark.slow

# Seeded in the setup: a plain run must be reproducible to be compared with at all.
SETUP = "import os\nimport random\nimport numpy as np\nimport pandas as pd\nnp.random.seed(123)\nrandom.seed(123)"
#: Step bodies: ``{i}`` is the step's number, ``{k}`` a constant an edit changes.
TEMPLATES = {
    "seed numpy": "np.random.seed({k})",
    "draw numpy": "v{i} = float(np.random.rand()) + {k}",
    "seed random": "random.seed({k})",
    "draw random": "v{i} = random.randint(0, 1000) + {k}",
    "set env": "os.environ['NBFLOW_PROPERTY'] = 'value {k}'",
    "read env": "v{i} = (os.environ.get('NBFLOW_PROPERTY'), {k})",
    "set option": "pd.set_option('display.precision', {k})",
    "show frame": "v{i} = str(pd.DataFrame({{'a': [1.23456789 * {k}]}}))",
    "plain": "v{i} = {k} * 2",
}

steps = st.lists(st.tuples(st.sampled_from(sorted(TEMPLATES)), st.integers(1, 6)), min_size=3, max_size=5)
edits = st.lists(st.tuples(st.integers(0, 4), st.integers(1, 6)), min_size=1, max_size=2)


def build(path: Path, chosen: list[tuple[str, int]]) -> Path:
    cells = [code(SETUP)]
    cells += [step(f"s{i}", TEMPLATES[kind].format(i=i, k=k)) for i, (kind, k) in enumerate(chosen)]
    return write_notebook(path, cells)


def check(path: Path, folder: Path) -> None:
    expected = papermill_snapshots(path, {}, folder)
    run = load_pipeline(path).run()
    assert run.status == "done", run.error
    for name, values in expected.items():
        for value_name, value in values.items():
            got = nbflow.result(path, name, value_name, run=run.id)
            assert same(got, value), f"{name}: {value_name} = {got!r}, papermill: {value!r}"


# No shrinking: a failing example is printed as generated (shrinking reruns kernels for minutes).
@settings(
    max_examples=3,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)
@given(chosen=steps, changes=edits)
def test_generated_notebooks_equal_papermill_after_each_edit(chosen, changes):
    folder = Path(tempfile.mkdtemp(prefix="nbflow-property-"))
    try:
        path = build(folder / "nb.ipynb", chosen)
        check(path, folder / "plain-0")
        for n, (index, k) in enumerate(changes, start=1):
            index %= len(chosen)
            chosen[index] = (chosen[index][0], k + 10 * n)  # a new constant: a real edit
            nb = nbformat.read(path, 4)
            nb.cells[1 + index].source = TEMPLATES[chosen[index][0]].format(i=index, k=chosen[index][1])
            nbformat.write(nb, path)
            check(path, folder / f"plain-{n}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
