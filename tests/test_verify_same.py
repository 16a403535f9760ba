"""``verify.same``: the structural equality ``nbflow verify`` and the papermill comparison tests use."""

from __future__ import annotations

import numpy as np

from nbflow.verify import same


def define(body: str) -> dict:
    namespace: dict = {}
    exec(compile(body, "<step>", "exec"), namespace)  # noqa: S102 - a class as a step defines it
    return namespace


def test_classes_are_the_same_only_with_the_same_methods():
    first = define("class Box:\n    def __init__(self, v):\n        self.v = v")["Box"]
    again = define("class Box:\n    def __init__(self, v):\n        self.v = v")["Box"]
    edited = define("class Box:\n    def __init__(self, v):\n        self.v = v + 1")["Box"]
    assert first is not again and same(first, again)
    assert not same(first, edited)
    assert not same(first, define("class Other:\n    pass")["Other"])


def test_arrays_records_and_containers():
    rec = np.zeros(3, dtype=[("a", "i4"), ("b", "f8")])
    assert same(rec, rec.copy())
    assert same(np.array([1.0, np.nan]), np.array([1.0, np.nan]))
    assert not same(np.zeros(3), np.zeros(4))
    assert same({"x": [1, (2, 3)]}, {"x": [1, (2, 3)]})
    assert not same([1, 2], (1, 2)) and not same(1, 1.0)
