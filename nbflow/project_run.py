"""Running a pipeline of notebooks: each notebook is one ordinary run (``run.start_run``,
its own kernel or Dask tasks, its own record in the run store), started once every
notebook it needs a step of has finished, with those steps' final keys in its keys.

Worked example, ``ingest -> features -> model`` plus an independent ``report``::

    plan every notebook first     (parameters checked before anything starts)
    kernel executor:  ingest, report, features, model, one after the other
    dask executor:    ingest and report at once; features when ingest is done; model last
    ingest failed ->  features and model are not started ("upstream notebook ingest.ipynb failed")

Only files cross between notebooks: a consumer reads what the producer's run left on
disk (or what a cached producer restored). When every step of every notebook is cached,
no kernel, no cluster and nothing heavier than the standard library is started.

With ``--executor dask`` and no cluster given, one ``LocalCluster`` serves every
notebook (started only when a notebook has a step to run), closed at the end.

Must not: decide freshness (``plan.py``) or link notebooks (``project.py``).
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .parameters import resolve_parameters
from .project import Project, plan_project
from .run import Run, start_run


@dataclass
class ProjectRun:
    """The runs of a pipeline of notebooks: one ``Run`` per notebook that started."""

    project: Project
    runs: dict[str, Run] = field(default_factory=dict)
    #: notebooks not started, with why (an upstream notebook failed or was cancelled)
    skipped: dict[str, str] = field(default_factory=dict)
    duration: float = 0.0
    cancelled: threading.Event = field(default_factory=threading.Event)

    @property
    def status(self) -> str:
        statuses = [r.status for r in self.runs.values()]
        if self.cancelled.is_set() or "cancelled" in statuses:
            return "cancelled"
        if self.skipped or any(s != "done" for s in statuses):
            return "failed"
        return "done"

    def cancel(self) -> None:
        """Stop the running notebooks; start no other."""
        self.cancelled.set()
        for run in list(self.runs.values()):
            run.cancel()


def run_project(
    project: Project,
    values: Mapping[str, Any] | None = None,
    raw: Mapping[str, str] | None = None,
    *,
    executor: Any = None,
    force_all: bool = False,
    timeout: float | None = None,
    fail_fast: bool = False,
    retries: int = 0,
    listeners: Callable[[str], list[Callable[[Any], None]]] | None = None,
    on_start: Callable[[str, Run], None] | None = None,
    handle: ProjectRun | None = None,
    hooks: Callable[[Any], Any] | None = None,
    report: bool | None = None,
) -> ProjectRun:
    """Run the notebooks of ``project`` and wait for them (see module docstring).

    ``executor`` as ``start_run``'s (a name or an executor object); notebooks without
    links between them run at the same time when it is ``dask``. ``listeners(notebook)``
    gives the event listeners of that notebook's run; ``on_start`` is told of each run
    started; ``handle`` is filled in as runs start (so another thread can cancel).
    ``hooks(config)``: the hooks of a notebook's run (``run_end``; by default its
    ``[tool.nbflow]``'s): each notebook's run fires its own when it ends. ``report``: each
    notebook's run writes its report as it ends (``None``: as its ``[tool.nbflow] report`` says).
    """
    started = time.time()
    params = project.parameters_for(values, raw)
    for name in project.order:  # bad parameters are refused before any notebook runs
        resolve_parameters(project.pipelines[name].parameters, *params[name], project.pipelines[name].path)
    result = handle or ProjectRun(project)
    parallel = _is_dask(executor)
    cluster = None
    if parallel and _needs_own_cluster(executor):
        plans = plan_project(project, values, raw, force_all=force_all)
        if any(plan.to_run for plan in plans.values()):  # a fully cached pipeline starts no cluster
            cluster, executor = _shared_local_cluster(executor)
    keys: dict[str, str] = {}
    done: set[str] = set()
    finished: queue.Queue[str] = queue.Queue()
    try:
        pending = list(project.order)
        running: dict[str, Run] = {}
        while pending or running:
            for name in list(pending):
                upstream = project.upstream(name)
                failed = [u for u in upstream if u in result.skipped or (u in done and _failed(result.runs[u]))]
                if result.cancelled.is_set() or failed:
                    why = "run cancelled" if result.cancelled.is_set() else f"upstream notebook {failed[0]} failed"
                    result.skipped[name] = why
                    pending.remove(name)
                    continue
                if any(u not in done for u in upstream) or (running and not parallel):
                    continue
                given, texts = params[name]
                run = start_run(
                    project.linked(name, keys),
                    given,
                    raw=texts,
                    executor=executor,
                    force_all=force_all,
                    timeout=timeout,
                    fail_fast=fail_fast,
                    retries=retries,
                    listeners=listeners(name) if listeners else (),
                    hooks=hooks(project.pipelines[name].config) if hooks is not None else None,
                    report=report,
                )
                result.runs[name] = running[name] = run
                pending.remove(name)
                if on_start is not None:
                    on_start(name, run)
                threading.Thread(target=_report_end, args=(name, run, finished), daemon=True).start()
            if not running:
                continue
            name = finished.get()
            run = running.pop(name)
            keys.update({f"{name}:{step}": info["key"] for step, info in run.steps.items()})
            done.add(name)
            if fail_fast and _failed(run):
                result.cancel()
    finally:
        if cluster is not None:
            cluster.close()
    result.duration = time.time() - started
    return result


def _report_end(name: str, run: Run, finished: queue.Queue[str]) -> None:
    run.wait()
    finished.put(name)


def _failed(run: Run) -> bool:
    return run.status != "done"


def _is_dask(executor: Any) -> bool:
    return getattr(executor, "name", executor) == "dask"


def _needs_own_cluster(executor: Any) -> bool:
    return executor == "dask" or (
        getattr(executor, "cluster", None) is None and getattr(executor, "scheduler", 1) is None
    )


def _shared_local_cluster(executor: Any) -> tuple[Any, Any]:
    """One ``LocalCluster`` for every notebook's run, and a ``DaskExecutor`` using it."""
    from .executors.dask import DaskExecutor
    from .executors.dask_cluster import start_forkserver, start_local_cluster

    options = {} if isinstance(executor, str) else vars(executor)
    start_method = options.get("start_method")
    if start_method in (None, "forkserver"):
        start_method = "forkserver" if start_forkserver() else "spawn"
    cluster = start_local_cluster(options.get("workers"), start_method=start_method)
    kept = {k: options[k] for k in ("retries", "shared_cache", "worker_timeout") if k in options}
    if options.get("announce", True) and getattr(cluster, "dashboard_link", None):
        print(f"nbflow: Dask dashboard: {cluster.dashboard_link}", file=sys.stderr)  # once, not once per notebook
    return cluster, DaskExecutor(cluster, announce=False, **kept)
