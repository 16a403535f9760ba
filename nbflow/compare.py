"""What differs between two runs: parameters, code, git, environment, and each step.

``compare_runs(config, a, b)`` is the one place this is computed; ``nbflow diff`` prints
it (``format_comparison``) and the HTML comparison report renders it. Code is compared
from the notebook snapshots every run keeps (``<home>/notebooks/<content hash>.ipynb``, or ``.py``/``.md`` for a text notebook);
values from the descriptions recorded in the cache manifests (small scalars verbatim,
other values by type and shape), so nothing is unpickled.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import jsonout
from .cache import Cache
from .errors import CacheCorrupt, PipelineError

#: A parameter one run had and the other did not.
ABSENT = "<absent>"


def snapshot_path(config: Any, content_hash: str, suffix: str = ".ipynb") -> Path:
    """Where the notebook a run used is kept; a notebook kept as text keeps its suffix (``.py``)."""
    return config.home / "notebooks" / f"{content_hash}{suffix}"


def _snapshot_of(config: Any, content_hash: str) -> Path | None:
    from .notebook import TEXT_SUFFIXES

    for suffix in (".ipynb", *TEXT_SUFFIXES):
        path = snapshot_path(config, content_hash, suffix)
        if path.exists():
            return path
    return None


def save_snapshot(config: Any, notebook: Path, content_hash: str) -> None:
    """Keep a copy of the notebook a run used (once per distinct content)."""
    from .fsutil import atomic_write_bytes, private_dir
    from .notebook import TEXT_SUFFIXES

    suffix = notebook.suffix.lower()
    target = snapshot_path(config, content_hash, suffix if suffix in TEXT_SUFFIXES else ".ipynb")
    if target.exists():
        return
    data = notebook.read_bytes()
    if hashlib.sha256(data).hexdigest() != content_hash:
        return  # edited since it was read: this run's content is not on disk any more
    private_dir(target.parent)
    atomic_write_bytes(target, data)


def step_sources(config: Any, content_hash: str | None) -> dict[str, str]:
    """Each step's code in the notebook a run used (empty if its snapshot is gone)."""
    path = _snapshot_of(config, content_hash) if content_hash else None
    if path is None:
        return {}
    from .sources import read_source

    try:
        # the snapshot is the notebook the run read: its schema check is remembered (no nbformat import)
        source = read_source(path, memo=config.home / "validated")
    except PipelineError:
        return {}
    return {s.name: s.source for s in source.steps}


def describe_value(info: Mapping[str, Any] | None) -> str | None:
    """A cached value as a comparison shows it: the scalar itself, else type and shape."""
    if info is None:
        return None
    if "scalar" in info:
        return str(info["scalar"])
    return " ".join(str(x) for x in (info.get("type"), info.get("summary")) if x)


def _values(cache: Cache, step: str, key: str | None) -> dict[str, Mapping[str, Any]] | None:
    if not key:
        return None
    try:
        entry = cache.lookup(step, key)
    except CacheCorrupt:
        return None
    return dict(entry.names) if entry is not None else None


def _rows(a: Mapping[str, Any], b: Mapping[str, Any], changed_only: bool = False) -> list[dict[str, Any]]:
    rows = []
    for name in dict.fromkeys([*a, *b]):
        va, vb = a.get(name, ABSENT), b.get(name, ABSENT)
        if not changed_only or va != vb:
            rows.append({"name": name, "a": va, "b": vb, "changed": va != vb})
    return rows


def _step(row: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {
        "status": row["status"],
        "reasons": list(row["reasons"]),
        "why": "; ".join(row["reasons"]) or "fresh",
        "duration": row["duration"],
        "key": row["key"],
    }


def compare_runs(config: Any, run_a: int, run_b: int) -> dict[str, Any]:
    """The differences between runs ``run_a`` and ``run_b`` of the same nbflow home.

    ``params`` / ``environment``: rows ``{name, a, b, changed}``; ``steps``: rows
    ``{name, a, b, same_key, reran, delta, code_diff}`` (``a``/``b``: the step's status,
    reasons, why, duration, key in each run, or None); ``changed_values``: rows
    ``{step, name, a, b, note}``.
    """

    store = config.open_store()
    try:
        runs = [store.run(run_a), store.run(run_b)]
        for run_id, run in zip((run_a, run_b), runs, strict=True):
            if run is None:
                raise PipelineError(f"no run {run_id} in {config.home}")
        steps = [{s["step"]: s for s in store.steps(r["id"])} for r in runs]
    finally:
        store.close()
    a, b = runs
    sources = [step_sources(config, r["notebook_hash"]) for r in runs]
    cache = config.cache()
    step_rows: list[dict[str, Any]] = []
    changed_values: list[dict[str, Any]] = []
    for name in dict.fromkeys([*steps[0], *steps[1]]):
        sa, sb = _step(steps[0].get(name)), _step(steps[1].get(name))
        same_key = bool(sa and sb and sa["key"] == sb["key"])
        code_a, code_b = sources[0].get(name), sources[1].get(name)
        code_diff = []
        if code_a is not None and code_b is not None and code_a != code_b:
            code_diff = list(
                difflib.unified_diff(
                    code_a.splitlines(), code_b.splitlines(), f"run {a['id']}", f"run {b['id']}", lineterm=""
                )
            )
        delta = None
        if sa and sb and sa["duration"] is not None and sb["duration"] is not None:
            delta = sb["duration"] - sa["duration"]
        step_rows.append(
            {
                "name": name,
                "a": sa,
                "b": sb,
                "same_key": same_key,
                "delta": delta,
                "code_diff": code_diff,
                "reran": bool(sb and sb["status"] in ("done", "failed")),
            }
        )
        if sa is None or sb is None or same_key:
            continue  # the same key means the same values
        va, vb = _values(cache, name, sa["key"]), _values(cache, name, sb["key"])
        if va is None or vb is None:
            if sa["status"] in ("done", "cached") and sb["status"] in ("done", "cached"):
                changed_values.append(
                    {
                        "step": name,
                        "name": "",
                        "a": None,
                        "b": None,
                        "note": "values not comparable: a cache entry was removed (nbflow clean)",
                    }
                )
            continue
        for value in sorted(set(va) | set(vb)):
            da, db = describe_value(va.get(value)), describe_value(vb.get(value))
            if da != db:
                changed_values.append({"step": name, "name": value, "a": da, "b": db, "note": ""})
    prov_a, prov_b = a["provenance"] or {}, b["provenance"] or {}
    git_a, git_b = prov_a.get("git") or {}, prov_b.get("git") or {}
    environment = _rows(
        {
            "notebook": a["notebook"],
            "notebook hash": a["notebook_hash"],
            "git commit": git_a.get("commit"),
            "git branch": git_a.get("branch"),
            "git dirty": git_a.get("dirty"),
            "Python": prov_a.get("python"),
            "host": a["host"],
            "user": prov_a.get("user"),
            "executor": a["executor"],
        },
        {
            "notebook": b["notebook"],
            "notebook hash": b["notebook_hash"],
            "git commit": git_b.get("commit"),
            "git branch": git_b.get("branch"),
            "git dirty": git_b.get("dirty"),
            "Python": prov_b.get("python"),
            "host": b["host"],
            "user": prov_b.get("user"),
            "executor": b["executor"],
        },
    ) + _rows(prov_a.get("packages") or {}, prov_b.get("packages") or {}, changed_only=True)
    return {
        "runs": [a["id"], b["id"]],
        "status": [a["status"], b["status"]],
        "duration": [(r["finished"] - r["started"]) if r["finished"] and r["started"] else None for r in runs],
        "params": _rows(a["params"], b["params"]),
        "environment": environment,
        "steps": step_rows,
        "changed_values": changed_values,
    }


def format_comparison(data: Mapping[str, Any]) -> str:
    """``nbflow diff`` text: what changed, then each step that differs."""
    a, b = data["runs"]
    lines = [f"run {a} ({data['status'][0]}) -> run {b} ({data['status'][1]})"]
    for section in ("params", "environment"):
        label = "params" if section == "params" else "environment"
        for row in data[section]:
            if row["changed"]:
                lines.append(f"{label}: {row['name']}: {row['a']!r} -> {row['b']!r}")
    values: dict[str, list[Mapping[str, Any]]] = {}
    for row in data["changed_values"]:
        values.setdefault(row["step"], []).append(row)
    for row in data["steps"]:
        if row["same_key"] and not row["code_diff"]:
            continue
        status = " -> ".join(str(s["status"]) if s else "absent" for s in (row["a"], row["b"]))
        why = row["b"]["why"] if row["b"] else "not in run " + str(b)
        lines.append(f"\nstep {row['name']}: {status} ({why})")
        for value in values.get(row["name"], []):
            lines.append(f"  {value['note']}" if value["note"] else f"  {value['name']}: {value['a']} -> {value['b']}")
        lines.extend(f"  {line}" for line in row["code_diff"])
    same = [r["name"] for r in data["steps"] if r["same_key"] and not r["code_diff"]]
    if same:
        lines.append(f"\nunchanged: {', '.join(same)}")
    return "\n".join(lines)


def to_json(data: Mapping[str, Any]) -> str:
    return jsonout.dumps(data, indent=2, default=repr)
