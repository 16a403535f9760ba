"""``nbflow clean``: forget old runs and delete the cache entries no run needs -- and
never anything else.

What may be deleted, and why it is safe:

* runs: all but the ``keep`` newest *of each notebook* (one busy notebook does not push
  another's history out), never a run that is ``pending`` or ``running``;
* cache entries: only folders that carry a manifest naming them (proof that nbflow
  wrote them), that no kept run, no running run and no other run store using the same
  cache refers to;
* leftovers: nbflow's own hidden staging/invalidated/corrupt folders and the temporary
  files of crashed writes, once they are an hour old.

The cache folder records which run stores use it (``.nbflow-cache.json``: every
``start_run`` adds its store), because a ``[tool.nbflow] cache-dir`` may be shared by
several folders, each with its own runs: a clean in one folder keeps every entry the
other folders' runs name. What clean cannot account for, it keeps: entries written
before the cache recorded its stores, everything while a run has started but not yet
listed its steps, everything when another store cannot be read.

A cache folder holding anything nbflow did not write (``NBFLOW_CACHE`` pointed at
``~/.cache`` with ``pip/`` inside) is refused before anything is deleted; symbolic
links are never followed.

This module must not plan or run anything.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .cache import _LEFTOVER as LEFTOVER
from .cache import MANIFEST, Entry
from .errors import CacheCorrupt, NbflowError, PipelineError
from .fsutil import atomic_write_text, private_dir

#: The cache's own record: which run stores use it, since when.
CACHE_MARK = ".nbflow-cache.json"
_MARK_LOCK = ".nbflow-cache.lock"


# ------------------------------------------------------------ the cache's record


def read_mark(cache_dir: Path) -> dict[str, Any] | None:
    """The cache's record of its stores, ``None`` if it has none (an older cache)."""
    try:
        data = json.loads((cache_dir / CACHE_MARK).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("stores"), list):
        return None
    return data


def register_store(cache_dir: Path, store_path: Path) -> None:
    """Record in the cache that the run store at ``store_path`` uses it."""
    store = str(Path(store_path).resolve())
    mark = read_mark(cache_dir)
    if mark is not None and store in mark["stores"]:
        return
    private_dir(cache_dir)
    with _locked(cache_dir):
        mark = read_mark(cache_dir) or {"format": 1, "since": time.time(), "stores": []}
        if store not in mark["stores"]:
            mark["stores"].append(store)
            atomic_write_text(cache_dir / CACHE_MARK, json.dumps(mark, indent=1))


@contextlib.contextmanager
def _locked(cache_dir: Path) -> Iterator[None]:
    fd = os.open(cache_dir / _MARK_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


# ----------------------------------------------------------- what is nbflow's


def foreign_items(cache_dir: Path) -> list[Path]:
    """Everything in ``cache_dir`` nbflow cannot have written (symbolic links included)."""
    found: list[Path] = []
    try:
        top = list(os.scandir(cache_dir))
    except FileNotFoundError:
        return []
    for item in top:
        if item.name in (CACHE_MARK, _MARK_LOCK):
            continue
        if item.is_symlink() or not item.is_dir(follow_symlinks=False):
            found.append(Path(item.path))
            continue
        for child in os.scandir(item.path):
            if child.is_symlink() or not child.is_dir(follow_symlinks=False):
                found.append(Path(child.path))
            elif child.name.startswith("."):
                if not LEFTOVER.match(child.name):
                    found.append(Path(child.path))
            elif not os.path.isfile(os.path.join(child.path, MANIFEST)):
                found.append(Path(child.path))
    return sorted(found)


def _refuse_foreign(cache_dir: Path) -> None:
    found = foreign_items(cache_dir)
    if found:
        shown = ", ".join(str(p.relative_to(cache_dir)) for p in found[:3]) + (" ..." if len(found) > 3 else "")
        raise PipelineError(
            f"{cache_dir} holds files nbflow did not write ({shown}); nothing was deleted. Is NBFLOW_CACHE or "
            "cache-dir pointing at another program's folder? Give nbflow a folder of its own"
        )


# ------------------------------------------------------------------- clean


def clean(config: Any, keep: int = 10, notebook: str | Path | None = None) -> dict[str, int]:
    """Delete all but the ``keep`` newest runs of each notebook and every cache entry
    no run still needs (see the module docstring).

    The entry of each kept run stays, so the next run is still fully cached.
    """

    cache = config.cache()
    store = config.open_store()  # first: a damaged or blocked run store is what the user must hear of
    try:
        _refuse_foreign(cache.root)
        runs = store.runs(notebook, limit=1_000_000)
        by_notebook: dict[str, list[dict[str, Any]]] = {}
        for r in runs:
            by_notebook.setdefault(r["notebook"], []).append(r)
        kept = [r for group in by_notebook.values() for r in group[:keep]]
        dropped = [
            r for group in by_notebook.values() for r in group[keep:] if r["status"] not in ("pending", "running")
        ]
        dropped_ids = {r["id"] for r in dropped}
        # Every run that stays (other notebooks' too, and running ones) keeps its entries.
        everyone = store.runs(None, limit=1_000_000)
        staying = [r for r in everyone if r["id"] not in dropped_ids]
        keep_entries, accounted = _entries_of(store, staying)
        others, readable = _other_stores_entries(config)
        keep_entries |= others
        accounted = accounted and readable
        for step, key in list(keep_entries):  # a map: step's entry needs its elements' entries
            with contextlib.suppress(CacheCorrupt):
                entry = cache.lookup(step, key)
                keep_entries |= {(step, item) for item in (entry.items if entry else [])}
        store.delete_runs([r["id"] for r in dropped])
        for r in dropped:
            shutil.rmtree(config.runs_dir / str(r["id"]), ignore_errors=True)
        leftovers = _sweep_temp_files([config.runs_dir / str(r["id"]) for r in kept])
        mark = read_mark(cache.root)
        since = mark.get("since", 0.0) if mark is not None else float("inf")
        removed, freed = cache.prune(keep_entries, may_delete=lambda e: accounted and e.created >= since)
    finally:
        store.close()
    return {"runs": len(dropped), "entries": removed, "bytes": freed, "leftovers": leftovers}


def _entries_of(store: Any, runs: list[dict[str, Any]]) -> tuple[set[tuple[str, str]], bool]:
    """(step, key) of every step of ``runs``; False when a running run has not listed its
    steps yet (its entries cannot be told apart)."""
    found: set[tuple[str, str]] = set()
    accounted = True
    for r in runs:
        steps = store.steps(r["id"])
        if not steps and r["status"] in ("pending", "running"):
            accounted = False
        found |= {(s["step"], s["key"]) for s in steps if s["key"]}
    return found, accounted


def _other_stores_entries(config: Any) -> tuple[set[tuple[str, str]], bool]:
    """Entries every other store recorded in the cache refers to, and whether all could be read."""
    from .store import RunStore

    mark = read_mark(Path(config.cache_dir)) or {"stores": []}
    own = str(Path(config.store_path).resolve())
    found: set[tuple[str, str]] = set()
    readable = True
    for path in mark["stores"]:
        if path == own or not Path(path).exists():
            continue  # a store that is gone has no runs left to keep entries for
        try:
            other = RunStore(path, readonly=True, reconcile=False)
            try:
                entries, accounted = _entries_of(other, other.runs(None, limit=1_000_000))
            finally:
                other.close()
        except (NbflowError, OSError):
            readable = False
            continue
        found |= entries
        readable = readable and accounted
    return found, readable


def _sweep_temp_files(folders: list[Path], older_than: float = 3600.0) -> int:
    """Delete the temporary files of atomic writes that never reached their rename (a
    crash while writing an output notebook or a report). Nothing reads them; a recent
    one may belong to a write going on now, so only those older than ``older_than``."""
    removed = 0
    now = time.time()
    for folder in folders:
        for tmp in folder.glob(".*.tmp") if folder.is_dir() else ():
            with contextlib.suppress(OSError):
                if now - tmp.stat().st_mtime > older_than and not tmp.is_symlink():
                    tmp.unlink()
                    removed += 1
    return removed


__all__ = ["CACHE_MARK", "Entry", "clean", "foreign_items", "register_store"]
