"""Rendering the pages of a site that come from runs: reports, comparisons and sweep summaries.

A task is ``(config, "report", run, trusted)``, ``(config, "compare", a, b)`` or
``(config, "sweep", sweep)``; ``render_task`` turns one into HTML with ``nbflow.report``.
``render_pages`` renders the stale ones -- only those: what is fresh was set aside by
the writer before anything here is imported -- in this process or in a pool of
processes:

* Bokeh and nbconvert (imported only when a page needs them) and the shared parts of
  every page (nbconvert's exporter and CSS, Bokeh's inline JavaScript) are made once,
  in this process, before the pool forks: the workers inherit them instead of paying
  for them again each.
* A run's records are collected once per process and used for its report and for the
  comparisons either side of it (neighbouring tasks go to the same worker).
* Few pages are not worth a pool: below ``PARALLEL_FROM`` tasks they are rendered here,
  except the nbconvert half of their reports, which one forked worker renders while this
  process imports Bokeh and draws the charts, the other pages and ``then``'s (the
  history and index pages; ``report.overlap``). With ``jobs=1`` (the studio, which must
  not fork its server) everything is rendered here.

It reads run stores and cache manifests; it writes nothing (the writer does).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import NbflowError
from ..report.overlap import can_fork

if TYPE_CHECKING:
    from ..config import Config
    from .writer import SiteWriter

#: From this many pages to render, a pool of processes renders them.
PARALLEL_FROM = 6

#: Per process: open run stores, and the last few collected runs (a report, then its comparisons).
_STORES: dict[Path, Any] = {}
_RECORDS: dict[tuple[Path, int], Any] = {}


def _record(config: Config, run_id: int) -> Any:
    from ..report import collect_run

    key = (config.store_path, run_id)
    if key not in _RECORDS:
        if config.store_path not in _STORES:
            _STORES[config.store_path] = config.open_store(reconcile=False)
        _RECORDS[key] = collect_run(config, run_id, _STORES[config.store_path], config.cache())
        while len(_RECORDS) > 4:
            _RECORDS.pop(next(iter(_RECORDS)))
    return _RECORDS[key]


def _close_stores() -> None:
    for store in _STORES.values():
        store.close()
    _STORES.clear()
    _RECORDS.clear()


def render_task(task: tuple, cells: Callable[[], Any] | None = None) -> tuple[str | None, str]:
    """One page made from the run store -- ``(config, "report", run, trusted)``, ``(config,
    "compare", a, b)`` or ``(config, "sweep", sweep)`` -- as ``(html, "")``, or ``(None, why)``.
    ``cells``: where a report's nbconvert half comes from (``report.overlap``; default: made here)."""
    from ..report import render_comparison, render_report, render_sweep
    from ..sweep import summary_rows

    config, kind, *args = task
    try:
        if kind == "report":
            return render_report(_record(config, args[0]), trusted=args[1], cells=cells), ""
        if kind == "compare":
            return render_comparison(config, _record(config, args[0]), _record(config, args[1])), ""
        return render_sweep(args[0], summary_rows(config, args[0]["id"])), ""
    except NbflowError as e:
        return None, str(e)


def prepare(tasks: Sequence[tuple]) -> None:
    """Make, in this process, what the ``tasks`` share: Bokeh, and nbconvert's renderer for reports."""
    from ..report.cells import shared_renderer
    from ..report.figures import warm_bokeh

    warm_bokeh()
    for trusted in sorted({t[3] for t in tasks if t[1] == "report"}):
        shared_renderer(trusted)


def render_pages(
    writer: SiteWriter, pages: list[tuple[str, str, tuple]], jobs: int | None, then: Callable[[], None] = lambda: None
) -> None:
    """Render ``(page, inputs, task)`` and hand each to ``writer`` (``jobs`` processes; default: one per core).

    ``then``: this process's other work (the history and index pages), done while workers render."""
    jobs = min(os.cpu_count() or 1, 4) if jobs is None else max(1, jobs)
    # fork is cheap (what is imported stays imported) and safe while this process has one thread
    fork = can_fork()
    reports = [page for page in pages if page[2][1] == "report"]
    if jobs == 1 or not pages or (len(pages) < PARALLEL_FROM and not (fork and reports)):
        try:
            for rel, inputs, task in pages:
                writer.put(rel, inputs, *render_task(task))
            then()
        finally:
            _close_stores()
        return
    if len(pages) < PARALLEL_FROM:
        _render_overlapped(writer, pages, then)
        return
    if fork:
        prepare([t for _, _, t in pages])
    tasks = [t for _, _, t in pages]
    method = "fork" if fork else "spawn"
    chunk = max(1, len(tasks) // (jobs * 4))  # neighbours share a worker: a report, then its comparison
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context(method)) as pool:
        results = pool.map(render_task, tasks, chunksize=chunk)
        then()
        for (rel, inputs, _), (html, error) in zip(pages, results, strict=True):
            writer.put(rel, inputs, html, error)


def _render_overlapped(writer: SiteWriter, pages: list[tuple[str, str, tuple]], then: Callable[[], None]) -> None:
    """A few pages, some of them reports: their nbconvert half in one forked worker, the rest here meanwhile.

    The reports' records are collected before the fork (the worker inherits them); here,
    the other pages, ``then`` and the reports' charts are made before their cells are
    waited for."""
    from ..report.overlap import CellsElsewhere

    reports: dict[tuple, tuple[Any, bool]] = {}
    try:
        for _, _, (config, kind, *args) in pages:
            if kind == "report":
                try:
                    reports[(config.store_path, args[0], args[1])] = (_record(config, args[0]), args[1])
                except NbflowError:
                    continue  # rendered (and its error reported) below, as on the serial path
        with CellsElsewhere(reports) as elsewhere:
            for rel, inputs, task in pages:
                if task[1] != "report":
                    writer.put(rel, inputs, *render_task(task))
            then()
            for rel, inputs, task in pages:
                config, kind, *args = task
                if kind != "report":
                    continue
                key = (config.store_path, args[0], args[1])
                if key in reports:  # this very record (not one read again): the worker's cells are of it
                    _RECORDS[(config.store_path, args[0])] = reports[key][0]
                writer.put(rel, inputs, *render_task(task, cells=lambda key=key: elsewhere.get(key)))
    finally:
        _close_stores()
