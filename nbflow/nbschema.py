"""Checking a notebook's JSON against nbformat's schema, cheaply when it is valid.

``nbformat.validate`` is the authority, but importing nbformat imports jsonschema and
its format checkers (0.5 to 4 s on a loaded 2-core machine): more than a whole
edit-and-rerun is allowed to take. nbformat itself accepts a notebook with
``fastjsonschema`` and only uses jsonschema to describe an error. This module does the
same without importing nbformat: it compiles nbformat's own schema file (found
without executing the package) with ``fastjsonschema``; a notebook it accepts is
valid. Anything else -- an error, a version this shortcut does not handle (nbformat 3,
a minor version from the future, a v4.5 cell without an id, which nbformat repairs
with a warning) -- goes to ``nbformat.validate``, which gives the verdict and the
message, exactly as before.

It must not read files other than nbformat's schema, and must not raise for a valid
notebook when fastjsonschema is missing (the caller then validates with nbformat).

Example::

    >>> quick_accept({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": []})
    True
"""

from __future__ import annotations

import functools
import importlib.util
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


def quick_accept(data: Any) -> bool:
    """``True`` if ``data`` is certainly a valid notebook (nbformat's schema, via
    fastjsonschema); ``False`` means "ask ``nbformat.validate``", not "invalid"."""
    if not isinstance(data, dict) or data.get("nbformat") != 4:
        return False
    minor = data.get("nbformat_minor")
    if not isinstance(minor, int) or isinstance(minor, bool):
        return False
    check = _validator(minor)
    if check is None:
        return False
    try:
        check(data)
    except Exception:  # noqa: BLE001 - any complaint: nbformat gives the verdict and the message
        return False
    return True


@functools.cache
def _validator(minor: int) -> Callable[[Any], Any] | None:
    try:
        import fastjsonschema
    except ImportError:
        return None
    schema = _schema_path(minor)
    if schema is None:
        return None
    try:
        return fastjsonschema.compile(json.loads(schema.read_text(encoding="utf-8")))
    except (OSError, ValueError, fastjsonschema.JsonSchemaDefinitionException):
        return None


def _schema_path(minor: int) -> Path | None:
    """nbformat's schema file for v4.``minor`` (without importing nbformat)."""
    spec = importlib.util.find_spec("nbformat")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "v4" / f"nbformat.v4.{minor}.schema.json"
    return path if path.is_file() else None
