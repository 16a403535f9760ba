"""Only standard JSON leaves nbflow: the one encoder of every JSON text nbflow hands out.

Python's ``json`` writes ``NaN``, ``Infinity`` and ``-Infinity`` for non-finite floats.
They are not JSON (RFC 8259): ``JSON.parse`` in a browser, and most clients, reject the
whole document, so one run made with ``-p lr nan`` would hide a notebook's whole history
from the JupyterLab panel. ``dumps`` never writes them (``allow_nan=False``): a
non-finite float, wherever it sits (a value, a dict key, inside lists), is written as the
string ``"NaN"``, ``"Infinity"`` or ``"-Infinity"`` -- the names JavaScript gives them
(``Number("NaN")`` reads them back) -- and ``NON_FINITE`` lists them for documentation.

Used by the REST API and its event stream (``server.py``), the CLI's ``--json`` output,
and the report pages. It must not be used for files nbflow reads back itself (the run
store keeps exact values); it does no I/O.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

#: How each non-finite float is written.
NON_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}

#: Containers nested deeper than this are refused rather than walked.
MAX_DEPTH = 200


def finite_name(value: float) -> str:
    """``"NaN"``, ``"Infinity"`` or ``"-Infinity"`` for a non-finite float."""
    if math.isnan(value):
        return NON_FINITE["nan"]
    return NON_FINITE["inf"] if value > 0 else NON_FINITE["-inf"]


def standard(value: Any, _depth: int = 0) -> Any:
    """``value`` with every non-finite float (values and keys) replaced by its name."""
    if isinstance(value, float):
        return value if math.isfinite(value) else finite_name(value)
    if _depth > MAX_DEPTH:
        raise ValueError(f"JSON value nested more than {MAX_DEPTH} deep")
    if isinstance(value, dict):
        return {
            (finite_name(k) if isinstance(k, float) and not math.isfinite(k) else k): standard(v, _depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [standard(v, _depth + 1) for v in value]
    return value


def dumps(value: Any, *, default: Callable[[Any], Any] | None = str, **options: Any) -> str:
    """``json.dumps`` that only writes standard JSON (see the module docstring).

    ``default`` converts what JSON cannot hold (``str`` unless given); ``options`` are
    ``json.dumps``'s (``indent``, ``sort_keys`` ...).
    """

    def convert(obj: Any) -> Any:
        converted = default(obj) if default is not None else obj
        if converted is obj:
            raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")
        return standard(converted)

    try:
        return json.dumps(value, allow_nan=False, default=convert, **options)
    except ValueError as e:
        if "Out of range float" not in str(e):
            raise
    return json.dumps(standard(value), allow_nan=False, default=convert, **options)
