"""Setup precision with real runs, on both executors: editing a setup definition re-runs
only the steps that reach it (and their dependants); editing a bare setup call re-runs
all; the values always equal a plain papermill run of the edited notebook."""

from __future__ import annotations

import pytest

import nbflow

from ..conftest import code, step
from .test_fidelity_cases import assert_like_papermill, edit, run, statuses

pytestmark = pytest.mark.slow


SETUP = """import random
SCALE = 3
LIMIT = 10

def clean(v):
    return v * SCALE

def cap(v):
    return min(v, LIMIT)

class Model:
    def fit(self, v):
        return v + 1
"""
CELLS = [
    code(SETUP),
    code("random.seed(0)"),
    step("a", "x = clean(2)"),
    step("b", "y = x + 1"),
    step("c", "z = cap(100)"),
    step("d", "m = Model()\nw = m.fit(1)"),
    step("e", "r = random.random()"),
]


def test_editing_a_setup_helper_reruns_its_callers_only(make_notebook, executor, tmp_path):
    path = make_notebook(CELLS)
    first = run(path, executor)
    assert set(statuses(first).values()) == {"done"}
    edit(path, 0, SETUP.replace("v * SCALE", "v * SCALE * 2"))
    plan = nbflow.load_pipeline(path).plan()
    assert plan["a"].reasons == ("setup: helper clean() changed",)
    r = run(path, executor)
    assert statuses(r) == {"a": "done", "b": "done", "c": "cached", "d": "cached", "e": "cached"}
    assert nbflow.result(path, "b", "y", run=r.id) == 13
    assert_like_papermill(path, r, tmp_path / "pm1")

    edit(path, 0, SETUP.replace("v * SCALE", "v * SCALE * 2").replace("LIMIT = 10", "LIMIT = 20"))
    r = run(path, executor)
    assert statuses(r) == {"a": "cached", "b": "cached", "c": "done", "d": "cached", "e": "cached"}
    assert nbflow.result(path, "c", "z", run=r.id) == 20

    edit(
        path,
        0,
        SETUP.replace("v * SCALE", "v * SCALE * 2").replace("LIMIT = 10", "LIMIT = 20").replace("v + 1", "v + 5"),
    )
    r = run(path, executor)
    assert statuses(r) == {"a": "cached", "b": "cached", "c": "cached", "d": "done", "e": "cached"}
    assert nbflow.result(path, "d", "w", run=r.id) == 6
    assert_like_papermill(path, r, tmp_path / "pm2")


def test_editing_a_bare_setup_call_reruns_every_step(make_notebook, executor, tmp_path):
    path = make_notebook(CELLS)
    run(path, executor)
    edit(path, 1, "random.seed(1)")
    assert nbflow.load_pipeline(path).plan()["c"].reasons == ("setup: statement 1 changed",)
    r = run(path, executor)
    assert set(statuses(r).values()) == {"done"}
    assert_like_papermill(path, r, tmp_path / "pm")


WRITES = (
    "import pathlib\n"
    "for folder in ('parts', 'plots'):\n"
    "    pathlib.Path(folder).mkdir(exist_ok=True)\n"
    "    for i in range(2):\n"
    "        pathlib.Path(f'{folder}/{i}.png').write_text(f'{folder} {i}')\n"
    "pathlib.Path('a.txt').write_text('a')\n"
    "pathlib.Path('b.txt').write_text('b')\n"
    "made = 2"
)


def retag(path, cell: int, *tags: str) -> None:
    import nbformat

    nb = nbformat.read(path, 4)
    nb.cells[cell].metadata["tags"] = list(tags)
    nbformat.write(nb, path)


def test_editing_a_steps_file_tags_reruns_it_with_the_new_manifest(make_notebook, executor):
    """``out:``/``in:`` tags are part of the key: an edit re-runs the step, and its
    entry's file manifest is the new declaration's."""
    path = make_notebook(
        [
            step("make", WRITES, "out:a.txt"),
            step("use", "total = made + 1"),
            step("read", "text = open('a.txt').read()", "in:a.txt"),
        ]
    )
    config = nbflow.load_pipeline(path).config

    def out_files(r) -> list[str]:
        return sorted(config.cache().lookup("make", r.steps["make"]["key"]).out_files)

    first = run(path, executor)
    assert out_files(first) == ["a.txt"]
    assert set(run(path, executor).steps[s]["status"] for s in ("make", "use", "read")) == {"cached"}
    cases = [
        (("out:b.txt",), "outputs changed: out:a.txt -> out:b.txt", ["b.txt"]),
        (("out:parts/",), "outputs changed: out:b.txt -> out:parts/", ["parts/0.png", "parts/1.png"]),
        (("out:plots/*.png",), "outputs changed: out:parts/ -> out:plots/*.png", ["plots/0.png", "plots/1.png"]),
        (("out:plots/*.png", "out?:c.txt"), "outputs changed: none -> out?:c.txt", ["plots/0.png", "plots/1.png"]),
    ]
    for tags, reason, manifest in cases:
        retag(path, 0, "step:make", *tags)
        plan = nbflow.load_pipeline(path).plan()
        assert plan["make"].reasons == (reason,)
        r = run(path, executor)
        assert statuses(r)["make"] == "done"
        assert statuses(r)["use"] == "cached"  # early cut-off: make handed on the same value
        assert out_files(r) == manifest
        assert run(path, executor).steps["make"]["status"] == "cached"  # and it stays cached
    # the in: side: read now names a file make does not declare (an outside file)
    retag(path, 2, "step:read", "in:b.txt")
    plan = nbflow.load_pipeline(path).plan()
    assert plan["read"].reasons == (
        "inputs changed: in:a.txt -> in:b.txt",
        "input file a.txt changed",
        "input file b.txt changed",
    )
    assert plan.to_run == ["read"]
    assert run(path, executor).steps["read"]["status"] == "done"
