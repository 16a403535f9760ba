"""The six ways the cache lied on real notebooks (issue 14), on both executors.

Each case runs a notebook, edits it, runs it again and compares the values with what a
plain papermill run of the edited notebook gives (``papermill_snapshots``), on the
kernel executor and on the Dask executor with a real ``LocalCluster``.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

import nbflow
from nbflow import load_pipeline

from ..conftest import step
from .test_against_papermill import papermill_snapshots, same

pytestmark = pytest.mark.slow


def edit(path: Path, cell: int, source: str) -> None:
    nb = nbformat.read(path, 4)
    nb.cells[cell].source = source
    nbformat.write(nb, path)


def run(path: Path, executor):
    r = load_pipeline(path).run(executor=executor())
    assert r.status == "done", r.error
    return r


def assert_like_papermill(path: Path, r, tmp: Path) -> None:
    expected = papermill_snapshots(path, {}, tmp)
    compared = 0
    for name, values in expected.items():
        for value_name, value in values.items():
            try:
                got = nbflow.result(path, name, value_name, run=r.id)
            except nbflow.errors.NbflowError:
                continue
            assert same(got, value), f"step {name}: {value_name} = {got!r}, papermill gave {value!r}"
            compared += 1
    assert compared


def statuses(r) -> dict[str, str]:
    return {name: s["status"] for name, s in r.steps.items()}


def test_a_generator_drawn_from_in_several_steps(make_notebook, executor, tmp_path):
    path = make_notebook(
        [
            step("make", "import numpy as np\nrng = np.random.default_rng(42)"),
            step("first", "a = rng.integers(0, 100, size=3)"),
            step("second", "b = rng.integers(0, 100, size=3)"),
        ]
    )
    run(path, executor)
    edit(path, 1, "a = rng.integers(0, 100, size=4)")
    r = run(path, executor)
    assert statuses(r) == {"make": "cached", "first": "done", "second": "done"}
    assert_like_papermill(path, r, tmp_path / "pm")


def test_a_change_through_a_numpy_view(make_notebook, executor, tmp_path):
    path = make_notebook(
        [
            step("make", "import numpy as np\nx2 = np.arange(12).reshape(3, 4)"),
            step("alias", "x2_sub = x2[:2, :2]\nfirst = int(x2_sub[0, 0])"),
            step("total", "total = int(x2.sum())"),
        ]
    )
    run(path, executor)
    edit(path, 1, "x2_sub = x2[:2, :2]\nx2_sub[0, 0] = 99\nfirst = int(x2_sub[0, 0])")
    r = run(path, executor)
    assert statuses(r) == {"make": "cached", "alias": "done", "total": "done"}
    assert nbflow.result(path, "total", "total", run=r.id) == 66 + 99
    assert_like_papermill(path, r, tmp_path / "pm")
    again = run(path, executor)  # the run-time write is recorded: the next plan knows it
    assert set(statuses(again).values()) == {"cached"}


def test_a_pandas_index_shared_by_two_objects(make_notebook, executor, tmp_path):
    path = make_notebook(
        [
            step(
                "make",
                "import pandas as pd\nindex = pd.MultiIndex.from_product([['a', 'b'], [1, 2]], names=['k', 'n'])\n"
                "pop = pd.Series([1, 2, 3, 4], index=index)\nframe = pd.DataFrame({'v': [5, 6, 7, 8]}, index=index)",
            ),
            step("rename", "pop.index.names = ['key', 'num']"),
            step("levels", "levels = list(frame.index.names)"),
        ]
    )
    r = run(path, executor)
    assert nbflow.result(path, "levels", "levels", run=r.id) == ["key", "num"]
    edit(path, 1, "pop.index.names = ['state', 'year']")
    r = run(path, executor)
    assert nbflow.result(path, "levels", "levels", run=r.id) == ["state", "year"]
    assert_like_papermill(path, r, tmp_path / "pm")


def test_a_value_changed_through_an_alias_keys_the_step_that_changed_it(make_notebook, executor, tmp_path):
    """Found by the full fidelity harness: ``rename`` changes ``frame`` through the index it
    shares with ``pop``, without reading ``frame``. When only ``frame``'s data changes,
    ``rename``'s key must change too, or its entry hands the old ``frame`` to ``density``."""
    make = (
        "import pandas as pd\nindex = pd.MultiIndex.from_product([['a', 'b'], [1, 2]], names=['k', 'n'])\n"
        "pop = pd.Series([1, 2, 3, 4], index=index)\nframe = pd.DataFrame({'area': [1.5, %s, 4.0, 4.0]}, index=index)"
    )
    path = make_notebook(
        [
            step("make", make % "1.5"),
            step("rename", "pop.index.names = ['key', 'num']"),
            step(
                "density", "density = frame.assign(pop=pop.values)\ndensity['per'] = density['pop'] / density['area']"
            ),
        ]
    )
    run(path, executor)
    edit(path, 0, make % "3.0")
    r = run(path, executor)
    assert statuses(r) == {"make": "done", "rename": "done", "density": "done"}
    assert list(nbflow.result(path, "density", "density", run=r.id)["area"]) == [1.5, 3.0, 4.0, 4.0]
    assert_like_papermill(path, r, tmp_path / "pm")
    again = run(path, executor)
    assert set(statuses(again).values()) == {"cached"}


def test_functions_that_change_their_argument(make_notebook, executor, tmp_path):
    path = make_notebook(
        [
            step("make", "import numpy as np\ncounts = np.zeros(4, dtype=int)\nm = np.ones((2, 2))"),
            step("count", "np.add.at(counts, [0, 1, 1], 1)\nnp.fill_diagonal(m, 3)"),
            step("use", "total = int(counts.sum()) + float(m.sum())"),
        ]
    )
    run(path, executor)
    edit(path, 1, "np.add.at(counts, [0, 1, 1, 2], 1)\nnp.fill_diagonal(m, 3)")
    r = run(path, executor)
    assert statuses(r) == {"make": "cached", "count": "done", "use": "done"}
    assert_like_papermill(path, r, tmp_path / "pm")


def test_names_read_through_eval(make_notebook, executor, tmp_path):
    path = make_notebook(
        [
            step("helper", "def show(name):\n    return f'{name} = {eval(name)!r}'"),
            step("make", "secret = 41"),
            step("use", "line = show('secret')\nprint(line)"),
        ]
    )
    run(path, executor)
    edit(path, 2, "line = show('secret') + '!'\nprint(line)")
    r = run(path, executor)  # make is cached: secret is not in the kernel until restored
    assert statuses(r) == {"helper": "cached", "make": "cached", "use": "done"}
    assert nbflow.result(path, "use", "line", run=r.id) == "secret = 41!"
    assert_like_papermill(path, r, tmp_path / "pm")
    edit(path, 1, "secret = 42")
    r = run(path, executor)  # the read found at run time is part of use's key now
    assert statuses(r)["use"] == "done"
    assert nbflow.result(path, "use", "line", run=r.id) == "secret = 42!"


def test_a_name_error_says_which_name(make_notebook, executor):
    path = make_notebook([step("use", "value = eval('nowhere') + 1")])
    r = load_pipeline(path).run(executor=executor())
    assert r.status == "failed"
    assert "NameError: name 'nowhere' is not defined" in r.steps["use"]["error"]


def test_timeit_neither_assigns_nor_reads_its_options(make_notebook, executor, tmp_path):
    path = make_notebook(
        [
            step("make", "import numpy as np\ndata = np.arange(100.0)"),
            step("time", "%timeit -n1 -r1 counts, edges = np.histogram(data, bins=5)\nsize = len(data)"),
            step("hist", "counts, edges = np.histogram(data, bins=5)"),
        ]
    )
    pipeline = load_pipeline(path)
    assert not pipeline.warnings
    assert "counts" not in pipeline.steps["time"].writes
    run(path, executor)
    edit(path, 0, "import numpy as np\ndata = np.arange(50.0)")
    r = run(path, executor)
    assert_like_papermill(path, r, tmp_path / "pm")


def test_readers_of_imports_stay_cached_when_a_literal_changes(make_notebook, executor, tmp_path):
    path = make_notebook(
        [
            step("setup", "import numpy as np\nthreshold = 0.5"),
            step("grid", "grid = np.linspace(0, 1, 5)"),
            step("flags", "flags = int((np.linspace(0, 1, 5) > threshold).sum())"),
        ]
    )
    run(path, executor)
    edit(path, 0, "import numpy as np\nthreshold = 0.2")
    r = run(path, executor)
    assert statuses(r) == {"setup": "done", "grid": "cached", "flags": "done"}
    assert_like_papermill(path, r, tmp_path / "pm")
