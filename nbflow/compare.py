"""What differs between two runs: parameters, code, git, environment, and each step.

``compare_runs(config, a, b)`` returns plain data that ``nbflow diff`` prints and the
comparison report renders. Code is compared from the notebook snapshots every run keeps
(``<home>/notebooks/<content hash>.ipynb``); scalar outputs from the values recorded in
the cache manifests (no unpickling).
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

from .cache import Cache
from .errors import CacheCorrupt, PipelineError


def snapshot_path(config: Any, content_hash: str) -> Path:
    return config.home / "notebooks" / f"{content_hash}.ipynb"


def save_snapshot(config: Any, notebook: Path, content_hash: str) -> None:
    """Keep a copy of the notebook a run used (once per distinct content)."""
    from .fsutil import atomic_write_bytes, private_dir

    target = snapshot_path(config, content_hash)
    if target.exists():
        return
    data = notebook.read_bytes()
    import hashlib

    if hashlib.sha256(data).hexdigest() != content_hash:
        return  # edited since it was read: this run's content is not on disk any more
    private_dir(target.parent)
    atomic_write_bytes(target, data)


def _step_sources(path: Path | None) -> dict[str, str]:
    if path is None or not path.exists():
        return {}
    from .notebook import read_notebook

    try:
        source = read_notebook(path)
    except PipelineError:
        return {}
    return {s.name: s.source for s in source.steps}


def _scalars(cache: Cache, step: str, key: str | None) -> dict[str, str]:
    if not key:
        return {}
    try:
        entry = cache.lookup(step, key)
    except CacheCorrupt:
        return {}
    if entry is None:
        return {}
    return {name: info["scalar"] for name, info in entry.names.items() if "scalar" in info}


def _changed(a: dict[str, Any], b: dict[str, Any]) -> dict[str, list[Any]]:
    return {k: [a.get(k), b.get(k)] for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


def compare_runs(config: Any, run_a: int, run_b: int) -> dict[str, Any]:
    """The differences between runs ``run_a`` and ``run_b`` of the same home."""
    from .store import RunStore

    store = RunStore(config.store_path, heartbeat_interval=config.heartbeat_interval)
    try:
        runs = [store.run(run_a), store.run(run_b)]
        for run_id, run in zip((run_a, run_b), runs, strict=True):
            if run is None:
                raise PipelineError(f"no run {run_id} in {config.home}")
        steps = [{s["step"]: s for s in store.steps(r["id"])} for r in runs]
    finally:
        store.close()
    a, b = runs
    prov_a, prov_b = a["provenance"], b["provenance"]
    sources = [_step_sources(snapshot_path(config, r["notebook_hash"])) if r["notebook_hash"] else {} for r in runs]
    cache = Cache(config.cache_dir)
    step_rows = []
    for name in list(dict.fromkeys([*steps[0], *steps[1]])):
        sa, sb = steps[0].get(name), steps[1].get(name)
        code_a, code_b = sources[0].get(name), sources[1].get(name)
        diff = []
        if code_a is not None and code_b is not None and code_a != code_b:
            diff = list(
                difflib.unified_diff(
                    code_a.splitlines(), code_b.splitlines(), f"run {a['id']}", f"run {b['id']}", lineterm=""
                )
            )
        scalars = _changed(_scalars(cache, name, sa and sa["key"]), _scalars(cache, name, sb and sb["key"]))
        step_rows.append(
            {
                "step": name,
                "in": [bool(sa), bool(sb)],
                "same_key": bool(sa and sb and sa["key"] == sb["key"]),
                "status": [sa and sa["status"], sb and sb["status"]],
                "reasons": [sa["reasons"] if sa else [], sb["reasons"] if sb else []],
                "duration": [sa and sa["duration"], sb and sb["duration"]],
                "code_diff": diff,
                "scalars": scalars,
            }
        )
    return {
        "runs": [a["id"], b["id"]],
        "notebooks": [a["notebook"], b["notebook"]],
        "status": [a["status"], b["status"]],
        "duration": [(r["finished"] - r["started"]) if r["finished"] and r["started"] else None for r in runs],
        "params": _changed(a["params"], b["params"]),
        "notebook_hash": [a["notebook_hash"], b["notebook_hash"]],
        "git": _changed(prov_a.get("git") or {}, prov_b.get("git") or {}),
        "python": _changed({"python": prov_a.get("python")}, {"python": prov_b.get("python")}),
        "packages": _changed(prov_a.get("packages") or {}, prov_b.get("packages") or {}),
        "host": _changed(
            {"host": a["host"], "user": prov_a.get("user")}, {"host": b["host"], "user": prov_b.get("user")}
        ),
        "steps": step_rows,
    }


def format_comparison(data: dict[str, Any]) -> str:
    """``nbflow diff`` text: what changed, then each step that differs."""
    a, b = data["runs"]
    lines = [f"run {a} ({data['status'][0]}) -> run {b} ({data['status'][1]})"]
    if data["notebooks"][0] != data["notebooks"][1]:
        lines.append(f"notebooks: {data['notebooks'][0]} -> {data['notebooks'][1]}")
    for section in ("params", "git", "python", "packages", "host"):
        for name, (old, new) in data[section].items():
            lines.append(f"{section}: {name}: {old!r} -> {new!r}")
    if data["notebook_hash"][0] != data["notebook_hash"][1]:
        lines.append("notebook content changed")
    for row in data["steps"]:
        if row["same_key"] and not row["scalars"]:
            continue
        status = " -> ".join(str(s) for s in row["status"])
        why = "; ".join(row["reasons"][1]) or "fresh"
        lines.append(f"\nstep {row['step']}: {status} ({why})")
        for name, (old, new) in row["scalars"].items():
            lines.append(f"  {name}: {old} -> {new}")
        lines.extend(f"  {line}" for line in row["code_diff"])
    same = [r["step"] for r in data["steps"] if r["same_key"] and not r["scalars"]]
    if same:
        lines.append(f"\nunchanged: {', '.join(same)}")
    return "\n".join(lines)


def to_json(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, default=repr)
