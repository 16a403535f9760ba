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
