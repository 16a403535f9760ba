"""Sweep combinations (pure)."""

from __future__ import annotations

import pytest

from nbflow.errors import ParameterError
from nbflow.sweep import combinations


def test_grid_and_zip():
    assert combinations({"a": [1, 2], "b": ["x", "y"]}) == [
        {"a": 1, "b": "x"},
        {"a": 1, "b": "y"},
        {"a": 2, "b": "x"},
        {"a": 2, "b": "y"},
    ]
    assert combinations({"a": [1, 2], "b": ["x", "y"]}, zip_=True) == [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]
    assert combinations({}) == [{}]


def test_zip_needs_equal_lengths_and_values():
    with pytest.raises(ParameterError, match="same length"):
        combinations({"a": [1, 2], "b": [1]}, zip_=True)
    with pytest.raises(ParameterError, match="at least one value"):
        combinations({"a": []})
