"""Digests (early cut-off) and fingerprints (run-time writes) of values."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from nbflow import fingerprint as fp


def test_equal_small_values_have_equal_digests_and_different_ones_do_not():
    assert fp.value_digest([1, 2, {"a": 3}]) == fp.value_digest([1, 2, {"a": 3}])
    assert fp.value_digest([1, 2, {"a": 3}]) != fp.value_digest([1, 2, {"a": 4}])
    assert fp.value_digest(np.arange(5)) == fp.value_digest(np.arange(5))
    assert fp.value_digest(np.arange(5)) != fp.value_digest(np.arange(5.0))
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    assert fp.value_digest(frame) == fp.value_digest(frame.copy())


def test_a_generator_has_a_digest_of_its_state():
    rng = np.random.default_rng(42)
    before = fp.value_digest(rng)
    assert before == fp.value_digest(np.random.default_rng(42))
    rng.integers(0, 10, size=3)
    assert fp.value_digest(rng) != before


def test_modules_and_notebook_functions_are_digested_by_name_and_code():
    assert fp.value_digest(math) == "module:math"
    ns: dict = {"__name__": "__main__"}
    exec("def f(x):\n    return x + 1\n", ns)
    first = fp.value_digest(ns["f"])
    exec("def f(x):\n    return x + 1\n", ns)
    assert fp.value_digest(ns["f"]) == first
    exec("def f(x):\n    return x + 2\n", ns)
    assert fp.value_digest(ns["f"]) != first
    assert first.startswith("function:")


def test_values_referring_to_notebook_code_and_large_values_get_no_digest():
    ns: dict = {"__name__": "__main__"}
    exec("def f(x):\n    return x\n", ns)
    assert fp.value_digest({"fn": ns["f"]}) is None
    assert fp.value_digest(np.zeros(fp.DIGEST_BYTES // 8 + 1)) is None
    assert fp.value_digests({"big": np.zeros(fp.DIGEST_BYTES), "n": 3}).keys() == {"n"}


def test_snapshots_stand_for_pseudo_names():
    fp.SNAPSHOTS["<test.state>"] = lambda: {"seed": 1}
    try:
        assert "<test.state>" in fp.value_digests({}, ["<test.state>"])
    finally:
        del fp.SNAPSHOTS["<test.state>"]


def test_changes_through_a_numpy_view_are_seen():
    x2 = np.arange(12).reshape(3, 4)
    big = np.zeros((2000, 100))
    before = fp.fingerprints({"x2": x2, "big": big})
    x2_sub = x2[:2, :2]
    x2_sub[0, 0] = 99
    view = big[:, :10]
    view[:] = 1  # a block of a large array: sampled elements see it
    assert fp.changed(before, {"x2": x2, "big": big}) == ["big", "x2"]


def test_a_shared_pandas_index_renamed_through_another_object_is_seen():
    index = pd.MultiIndex.from_tuples([("a", 1), ("b", 2)], names=["k", "n"])
    series = pd.Series([1, 2], index=index)
    frame = pd.DataFrame({"v": [3, 4]}, index=index)
    before = fp.fingerprints({"series": series, "frame": frame})
    series.index.names = ["key", "num"]
    assert fp.changed(before, {"series": series, "frame": frame}) == ["frame", "series"]


def test_unchanged_values_are_not_reported():
    values = {"df": pd.DataFrame({"a": range(100_000)}), "n": 3, "items": list(range(10))}
    before = fp.fingerprints(values)
    values["df"].head()
    assert fp.changed(before, values) == []


def test_iterators_and_files_moving_on_are_seen(tmp_path):
    it = iter([1, 2, 3])
    path = tmp_path / "f.txt"
    path.write_text("a\nb\n")
    with open(path) as fh:
        gen = (i for i in range(3))
        before = fp.fingerprints({"it": it, "fh": fh, "gen": gen})
        next(it)
        fh.readline()
        next(gen)
        assert fp.changed(before, {"it": it, "fh": fh, "gen": gen}) == ["fh", "gen", "it"]
