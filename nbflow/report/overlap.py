"""nbconvert's half of reports rendered in a forked process while this one draws Bokeh's charts.

A report needs two heavy libraries that do not depend on each other: nbconvert (import,
its exporter's templates, the cells) and Bokeh (import, the figures, ``components``).
In a fresh process -- ``nbflow report RUN``, ``nbflow run --report``, a re-publish with a
few new pages -- each costs most of a second of CPU, one after the other. ``CellsElsewhere``
forks one worker that renders the nbconvert half (``pages.report_cells``) of the given
reports while this process imports Bokeh, draws the charts and renders the other pages;
``render_report(record, cells=...)`` asks for that half only once its charts are drawn.

The records are collected here before the fork and inherited by the worker (nothing is
re-read, so both halves show the same state of the run); the worker sends back plain
strings. It forks only when it is safe and asked for: on POSIX, from a process with a
single thread (a server never forks), and only for callers that opt in (the CLI; the
studio and the Jupyter extension render in their own thread). When the worker cannot
be started or fails, the half is rendered here: the page is the same either way.

It renders nothing itself (``pages.py`` does); it reads no store and writes no file.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Hashable, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .pages import ReportCells
    from .records import RunRecord

#: The reports the worker renders, by key: set before the fork, so the worker has them as they were.
_HANDOFF: dict[Hashable, tuple[RunRecord, bool]] = {}


def can_fork() -> bool:
    """Whether this process may fork a worker now (POSIX, one thread: nothing is left half-locked in the child)."""
    return os.name == "posix" and threading.active_count() == 1


def _cells_of(key: Hashable) -> ReportCells:
    from .pages import report_cells

    record, trusted = _HANDOFF[key]
    return report_cells(record, trusted)


class CellsElsewhere:
    """The nbconvert half of some reports, rendered by one forked worker (or nowhere: then ``get`` gives ``None``)."""

    def __init__(self, reports: Mapping[Hashable, tuple[RunRecord, bool]]) -> None:
        self.pool: ProcessPoolExecutor | None = None
        self.futures: dict[Hashable, Future[Any]] = {}
        if not reports or not can_fork() or _HANDOFF:
            return
        _HANDOFF.update(reports)
        try:
            self.pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork"))
            # the first submit forks the worker, before the pool starts its own thread
            self.futures = {key: self.pool.submit(_cells_of, key) for key in reports}
        except OSError:  # no process to be had (limits): render here
            self.close()

    def get(self, key: Hashable) -> ReportCells | None:
        """The worker's half of report ``key``, or ``None`` (not given to it, or it failed: render it here)."""
        future = self.futures.get(key)
        if future is None:
            return None
        try:
            return future.result()
        except Exception:  # noqa: BLE001 - whatever went wrong there, the same work is done here (and raises here)
            return None

    def close(self) -> None:
        """Stop the worker (what it has not started is cancelled)."""
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None
        self.futures = {}
        _HANDOFF.clear()

    def __enter__(self) -> CellsElsewhere:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
