"""``nbflow watch NB``: re-run what became stale whenever the notebook or an ``in:`` file changes.

A listener on the file system (``watchfiles``, debounced) in front of the ordinary run
path: on a change it reloads the notebook, plans, and starts a run of the stale steps
(``run.start_run``) with the command line's progress printer, so every run is recorded
and cached like ``nbflow run``'s. What is watched is the notebook and the ``in:`` files no
step writes, re-read after every change of the notebook (a new ``in:`` tag is watched at
once). The folder is watched, not the files, so editors that save by renaming are seen;
nbflow's own folder (``.nbflow``) is never watched.

Ctrl-C (or SIGTERM) cancels a run going on -- the running step is interrupted and the
kernel shut down, as in ``nbflow run`` -- and stops watching. It never runs two runs at
once: changes made during a run start the next one when it ends.

It must not plan or execute anything itself: plan and run belong to ``run.py``.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from .errors import NbflowError


def watched_files(notebook: Path) -> set[Path]:
    """The notebook and the external ``in:`` files of its pipeline (just the notebook if it is broken)."""
    from .graph import load_pipeline

    paths = {notebook}
    try:
        pipeline = load_pipeline(notebook)
    except NbflowError:
        return paths
    for step in pipeline.steps.values():
        paths |= {(notebook.parent / _fixed_part(f)).resolve() for f in step.in_files if f not in step.file_inputs}
    return paths


def _fixed_part(name: str) -> str:
    """An ``in:`` path up to its first glob character's folder (``raw/*.csv`` -> ``raw``): what to watch."""
    from .outfiles import kind

    if kind(name) != "glob":
        return name
    fixed = []
    for part in name.split("/"):
        if any(c in part for c in "*?["):
            break
        fixed.append(part)
    return "/".join(fixed) or "."


def run_stale(
    notebook: Path, params: Mapping[str, Any], raw: Mapping[str, str] | None, stream: TextIO, first: bool = False
) -> Any:
    """Start and wait for a run of the stale steps (``None`` when nothing is stale)."""
    from .graph import load_pipeline
    from .progress import ProgressPrinter
    from .project_context import in_project
    from .run import plan_pipeline, start_run

    pipeline = in_project(load_pipeline(notebook))
    if not first and not plan_pipeline(pipeline, params, raw=raw).to_run:
        print("nothing is stale", file=stream, flush=True)
        return None
    run = start_run(pipeline, params, raw=raw, listeners=[ProgressPrinter(stream)])
    try:
        run.wait()
    except KeyboardInterrupt:
        print("nbflow: cancelling the run", file=stream, flush=True)
        run.cancel()
        run.wait()
        raise
    return run


def watch(
    notebook: str | Path,
    params: Mapping[str, Any] | None = None,
    *,
    raw: Mapping[str, str] | None = None,
    debounce: float = 0.5,
    stream: TextIO | None = None,
) -> int:
    """Run ``notebook``'s stale steps, then again after every change, until Ctrl-C; return 0."""
    import watchfiles

    stream = stream or sys.stderr
    path = Path(notebook).resolve()
    params = dict(params or {})

    def terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, terminate)
    home = path.parent / ".nbflow"
    files = watched_files(path)
    first = False  # the first run (of every stale step) is done

    def relevant(change: Any, changed: str) -> bool:
        p = Path(changed)
        return not p.is_relative_to(home) and any(p == f or p.is_relative_to(f) for f in files)

    watcher: Any = None
    folders: list[Path] = []
    try:
        while True:
            if _folders(path, files) != folders:  # at the start, or a new in: file outside those folders
                folders = _folders(path, files)
                if watcher is not None:
                    watcher.close()
                watcher = watchfiles.watch(
                    *folders,
                    watch_filter=relevant,
                    debounce=int(debounce * 1000),
                    rust_timeout=500,
                    yield_on_timeout=True,
                )
                next(watcher)  # watching starts here: changes made during the next run are kept
                if not first:
                    _attempt(path, params, raw, stream, first=True)
                    first = True
            names = ", ".join(sorted(_shown(f, path) for f in files))
            print(f"watching {names} (Ctrl-C stops)", file=stream, flush=True)
            changes: set[Any] = set()
            while not changes:
                changes = next(watcher)
            print(f"changed: {', '.join(sorted({_shown(Path(c), path) for _, c in changes}))}", file=stream, flush=True)
            _attempt(path, params, raw, stream)
            files = watched_files(path)
    except KeyboardInterrupt:
        print("nbflow: stopped watching", file=stream, flush=True)
        return 0
    finally:
        if watcher is not None:
            watcher.close()
        signal.signal(signal.SIGTERM, previous)


def _folders(notebook: Path, files: set[Path]) -> list[Path]:
    """The folders to watch: the notebook's (recursively) and those of ``in:`` files outside it."""
    roots = {notebook.parent}
    for f in files:
        if not f.is_relative_to(notebook.parent):
            roots.add(f if f.is_dir() else f.parent)
    return sorted(r for r in roots if r.exists())


def _shown(p: Path, notebook: Path) -> str:
    return str(p.relative_to(notebook.parent)) if p.is_relative_to(notebook.parent) else str(p)


def _attempt(
    path: Path, params: Mapping[str, Any], raw: Mapping[str, str] | None, stream: TextIO, first: bool = False
) -> None:
    """One run; a broken notebook or parameter is reported and the watch goes on."""
    try:
        run_stale(path, params, raw, stream, first=first)
    except NbflowError as e:
        print(f"nbflow: error: {e}", file=stream, flush=True)
