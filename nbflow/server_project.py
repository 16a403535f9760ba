"""REST routes for a pipeline of notebooks (issue 21), beside ``server.py``'s.

=====================================  =============================================
``GET    project?path=&params=``       the pipeline of notebooks at ``path`` (a folder,
                                       an ``nbflow.toml``, or a notebook: the pipeline
                                       it belongs to, ``project.project_of``): groups,
                                       nodes, edges and states
                                       (``project_view.project_graph_model``), the
                                       cytoscape style, the newest run started here
                                       (its steps' states while it goes on); ``{"project":
                                       null}`` for a notebook of no such pipeline
``POST   project/runs``                run it (``project_run.run_project``, body
                                       ``{path, params, force_all}``): its id
``GET    project/runs?path=``          its runs: those this server started, and each
                                       notebook's runs in the run store
``DELETE project/runs/{id}``           cancel a run this server started
=====================================  =============================================

A run started here is the run ``nbflow run FOLDER`` makes: one record per notebook in
the run store, one kernel per notebook, only files between them. Each notebook's run is
also registered with ``server.py``'s runs, so ``runs/{id}/events?path=NOTEBOOK`` follows
it. A pipeline run's id is this server's own (a counter), not a run store id: the store
knows notebooks' runs, not pipelines'.

Same rules as ``server.py`` (whose ``NbflowHandler`` these handlers share): behind
jupyter_server's authentication (and its XSRF check for POST and DELETE); ``path``
confined to the server's root, and so is every notebook a pipeline lists (an
``nbflow.toml`` naming ``../elsewhere.ipynb`` is refused before that file is read); a bad
``nbflow.toml`` or notebook is a 400 with one line naming the file; every answer is
standard JSON.

This module owns HTTP for these routes; linking, planning and running are ``project``,
``project_run`` and ``project_view``'s.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jupyter_server.utils import url_path_join
from tornado import web

from .errors import NbflowError
from .server import API, NbflowHandler, _json, is_notebook_file, run_id

if TYPE_CHECKING:
    from .project import Project
    from .project_run import ProjectRun

KEEP_PROJECT_RUNS = 50


def _load_jupyter_server_extension(serverapp: Any) -> None:
    """Loaded with ``nbflow.server`` (one of its extension points)."""
    settings = serverapp.web_app.settings
    settings["nbflow_project_runs"] = ProjectRuns()
    base = url_path_join(settings["base_url"], API)
    serverapp.web_app.add_handlers(".*$", project_handlers(base))


def project_handlers(base: str) -> list[tuple[str, type]]:
    """The routes of this module under ``base`` (``<base_url>nbflow/api``)."""
    return [
        (url_path_join(base, "project"), ProjectHandler),
        (url_path_join(base, "project/runs"), ProjectRunsHandler),
        (url_path_join(base, r"project/runs/(\d+)"), ProjectRunHandler),
    ]


@dataclass
class ProjectRunRecord:
    """A pipeline run started by this server: its id, where it was read from, its progress."""

    id: int
    source: Path
    handle: ProjectRun
    error: str | None = None
    finished: threading.Event = field(default_factory=threading.Event)

    @property
    def status(self) -> str:
        if not self.finished.is_set():
            return "running"
        return "failed" if self.error else self.handle.status


class ProjectRuns:
    """Pipeline runs started through this server, newest last (finished ones kept for a while)."""

    def __init__(self) -> None:
        self.runs: list[ProjectRunRecord] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def add(self, source: Path, handle: ProjectRun) -> ProjectRunRecord:
        with self._lock:
            record = ProjectRunRecord(next(self._ids), source, handle)
            self.runs.append(record)
            finished = [r for r in self.runs if r.finished.is_set()]
            for old in finished[: max(0, len(finished) - KEEP_PROJECT_RUNS)]:
                self.runs.remove(old)
            return record

    def of(self, source: Path) -> list[ProjectRunRecord]:
        """The runs of the pipeline read from ``source``, newest first."""
        return [r for r in reversed(self.runs) if r.source == source]

    def live(self, source: Path) -> ProjectRunRecord | None:
        return next((r for r in self.of(source) if not r.finished.is_set()), None)

    def find(self, number: int) -> ProjectRunRecord | None:
        return next((r for r in self.runs if r.id == number), None)


class ProjectHandlerBase(NbflowHandler):
    @property
    def project_runs(self) -> ProjectRuns:
        return self.settings["nbflow_project_runs"]

    def confine_any(self, raw: str) -> Path:
        """``raw`` resolved inside the root: a folder, an ``nbflow.toml`` or a notebook; else a 404."""
        return self.confine(
            raw,
            lambda path: path.is_dir() or is_notebook_file(path) or (path.suffix.lower() == ".toml" and path.is_file()),
        )

    def path_argument(self, raw: str | None) -> Path:
        if not raw:
            raise web.HTTPError(400, "missing path")
        return self.confine_any(raw)

    def project_at(self, path: Path) -> Project | None:
        """The pipeline at ``path`` (a folder, an ``nbflow.toml``, or a notebook: the pipeline it
        belongs to, ``None`` for none), its notebooks confined to the root (``PipelineError`` else)."""
        from .project import find_notebooks, find_project, load_project, read_project_file

        if path.is_dir() or path.suffix.lower() == ".toml":
            self.confined(path, read_project_file(path)[0] if path.is_file() else find_notebooks(path))
            return load_project(path)
        return find_project(path, check=self.in_its_project(path))


class ProjectHandler(ProjectHandlerBase):
    @web.authenticated
    async def get(self) -> None:
        path = self.path_argument(self.get_argument("path", None))
        params = self.params()
        try:
            answer = await asyncio.to_thread(self._model, path, params)
        except NbflowError as e:
            return self.fail(e)
        self.finish(_json(answer))

    def _model(self, path: Path, params: dict[str, Any]) -> dict[str, Any]:
        from .project import plan_project
        from .project_view import group_style, project_graph_model
        from .view import cytoscape_style

        project = self.project_at(path)
        if project is None:
            return {"project": None, "current": self.relative(path)}
        source = project.source
        live = self.project_runs.live(source)
        last = next(iter(self.project_runs.of(source)), None)
        statuses: dict[str, str] = {}
        if live is not None:
            for name, run in list(live.handle.runs.items()):
                statuses.update({f"{name}:{step}": info["status"] for step, info in list(run.steps.items())})
        model = project_graph_model(project, plan_project(project, params), statuses)
        current = path.resolve() if path.is_file() and path.suffix.lower() != ".toml" else None
        for group in model["groups"]:
            notebook = Path(group["notebook"]).resolve()
            group["current"] = notebook == current
            group["notebook"] = self.relative(notebook)
        model.update(
            project=self.relative(source),
            current=self.relative(current) if current else None,
            style=cytoscape_style() + group_style(),
            run=project_run_summary(self, last) if last is not None else None,
        )
        return model


def project_run_summary(handler: NbflowHandler, record: ProjectRunRecord) -> dict[str, Any]:
    """A pipeline run as JSON: its status and, per notebook, its run's id and status (or why it did not start)."""
    handle = record.handle
    return {
        "id": record.id,
        "project": handler.relative(record.source),
        "status": record.status,
        "error": record.error,
        "notebooks": {
            name: {"run": run.id, "status": run.status, "notebook": handler.relative(run.pipeline.path)}
            for name, run in list(handle.runs.items())
        },
        "skipped": dict(handle.skipped),
        "duration": handle.duration,
    }


class ProjectRunsHandler(ProjectHandlerBase):
    @web.authenticated
    async def get(self) -> None:
        path = self.path_argument(self.get_argument("path", None))
        limit = self.limit()
        try:
            answer = await asyncio.to_thread(self._runs, path, limit)
        except NbflowError as e:
            return self.fail(e)
        self.finish(_json(answer))

    def _runs(self, path: Path, limit: int) -> dict[str, Any]:
        project = self.project_at(path)
        if project is None:
            raise web.HTTPError(404, "this notebook belongs to no pipeline of notebooks")
        source = project.source
        stored: list[dict[str, Any]] = []
        if project.config.store_path.exists():
            store = project.config.open_store()
            try:
                for name in project.order:
                    for run in store.runs(project.pipelines[name].path, limit=limit):
                        stored.append({**run, "notebook": self.relative(run["notebook"]), "name": name})
            finally:
                store.close()
        stored.sort(key=lambda r: r["id"], reverse=True)
        return {
            "project": self.relative(source),
            "started_here": [project_run_summary(self, r) for r in self.project_runs.of(source)][:limit],
            "runs": stored[:limit],
        }

    @web.authenticated
    async def post(self) -> None:
        body = self.body()
        raw = body.get("path")
        path = self.path_argument(raw if isinstance(raw, str) else None)
        params = body.get("params") or {}
        if not isinstance(params, dict):
            raise web.HTTPError(400, "params must be a JSON object")
        force_all = bool(body.get("force_all", False))
        try:
            source, project = await asyncio.to_thread(self._checked, path, params, force_all)
        except NbflowError as e:
            return self.fail(e)
        if source is None:
            raise web.HTTPError(404, "this notebook belongs to no pipeline of notebooks")
        if self.project_runs.live(source) is not None:
            raise web.HTTPError(409, f"{self.relative(source)} is running already; cancel that run first")
        record = self._start(source, project, params, force_all)
        self.set_status(201)
        self.set_header("Location", url_path_join(self.base_url, API, "project/runs", str(record.id)))
        self.finish(_json(project_run_summary(self, record)))

    def _checked(self, path: Path, params: dict[str, Any], force_all: bool) -> tuple[Path | None, Any]:
        """The source and project, planned once so bad parameters are refused before anything starts."""
        from .project import plan_project

        project = self.project_at(path)
        if project is None:
            return None, None
        source = project.source
        plan_project(project, params, force_all=force_all)
        return source, project

    def _start(self, source: Path, project: Project, params: dict[str, Any], force_all: bool) -> ProjectRunRecord:
        from .project_run import ProjectRun, run_project

        record = self.project_runs.add(source, ProjectRun(project))
        registry = self.registry

        def work() -> None:
            try:
                run_project(
                    project,
                    params,
                    force_all=force_all,
                    on_start=lambda name, run: registry.add(run),
                    handle=record.handle,
                )
            except NbflowError as e:
                record.error = str(e)
            except Exception as e:  # noqa: BLE001 - the run's thread must say why it ended, not die silently
                record.error = f"{type(e).__name__}: {e}"
            finally:
                record.finished.set()

        threading.Thread(target=work, name=f"nbflow-project-run-{record.id}", daemon=True).start()
        return record


class ProjectRunHandler(ProjectHandlerBase):
    @web.authenticated
    async def get(self, raw_id: str) -> None:
        record = self.project_runs.find(run_id(raw_id))
        if record is None:
            raise web.HTTPError(404)
        self.finish(_json(project_run_summary(self, record)))

    @web.authenticated
    async def delete(self, raw_id: str) -> None:
        record = self.project_runs.find(run_id(raw_id))
        if record is None:
            raise web.HTTPError(404)
        if record.finished.is_set():
            raise web.HTTPError(409, f"pipeline run {record.id} has already finished ({record.status})")
        record.handle.cancel()
        self.set_status(202)
        self.finish(_json({"id": record.id, "status": "cancelling"}))
