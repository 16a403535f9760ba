"""The Jupyter server extension: nbflow's REST API under ``/nbflow/api/``.

Every route sits behind jupyter_server's own authentication (``@authenticated``) and,
for POST and DELETE, its XSRF check; no GET changes anything. It also adds
``nbflow/studio/``, the studio proxied behind the same login (``studio/proxy.py``). The
JupyterLab extension (``extension/``) is one client; ``docs/rest-api.yaml`` documents the API for others.

=====================================  =============================================
``GET    graph?path=&params=``         steps, edges, parameters, states and reasons
                                       (``view.graph_model``), the cytoscape style,
                                       and the notebook's live run if one is going
``GET    plan?path=&params=``          the plan (``Plan.to_dict``)
``POST   runs``                        start a run (``run.start_run``): its id
``GET    runs?path=``                  runs of a notebook (the run store)
``GET    runs/{id}?path=``             one run and its steps
``GET    runs/{id}/events?path=``      server-sent events: the run's events in order
                                       (replayed, then live), ending at RunFinished
``DELETE runs/{id}?path=``             cancel a run started by this server
``POST   runs/{id}/report?path=``      build the run's HTML report (``report``)
``GET    runs/{id}/report?path=``      the report, found by run id in the store
``POST   runs/{id}/outputs``           the run's outputs for the notebook as edited
                                       (``server_lab.py``)
=====================================  =============================================

``path`` is a notebook path relative to the server's root directory. It is resolved
(symlinks included) and must stay inside the root and name an existing notebook
(``.ipynb``, or a percent ``.py`` / MyST ``.md`` kept as text);
anything else is a plain 404. Run ids are the run store's ids; ``path`` says which
notebook's store. A run started through this API executes in this server's process
(a background thread, ``run.start_run``) and is followed through its event bus; a run
of another process is read from the store.

Bad requests are a 4xx with a one-line ``message`` (jupyter_server's JSON error body),
never a 500 with a logged traceback: a ``path`` too long for the file system, JSON (the
body, ``params``) that is not UTF-8 or nested more than ``MAX_NESTING`` deep, a run id
that no run store can hold (``run_id``). Every JSON answer, the event stream included,
is standard JSON (``jsonout.dumps``: a non-finite float is the string ``"NaN"``,
``"Infinity"`` or ``"-Infinity"``).

This module owns HTTP: parsing, path confinement, status codes. It must not plan,
execute or draw anything itself: that is ``run``, ``plan`` and ``view``.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.iostream import StreamClosedError

from .errors import NbflowError, PipelineError
from .jsonout import dumps
from .notebook import TEXT_SUFFIXES

if TYPE_CHECKING:
    from .run import Run

API = "nbflow/api"
#: Finished runs remembered per server for ``GET runs/{id}`` without a store round trip.
KEEP_RUNS = 100
#: JSON (the body, ``params``) nested deeper than this is refused: nothing nbflow takes needs it,
#: and deeper values end in a ``RecursionError`` somewhere down the line.
MAX_NESTING = 64
#: What ``path`` may name: a notebook, ``.ipynb`` or kept as text (``sources.py``).
NOTEBOOK_SUFFIXES = (".ipynb", *TEXT_SUFFIXES)
#: The largest run id a run store holds (SQLite's INTEGER).
MAX_RUN_ID = 2**63 - 1


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    # server_lab.py and server_project.py add their own routes (they build on this module's handler base).
    return [{"module": "nbflow.server"}, {"module": "nbflow.server_lab"}, {"module": "nbflow.server_project"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    web_app = serverapp.web_app
    base = url_path_join(web_app.settings["base_url"], API)
    web_app.settings["nbflow_runs"] = RunRegistry()
    web_app.add_handlers(
        ".*$",
        [
            (url_path_join(base, "graph"), GraphHandler),
            (url_path_join(base, "plan"), PlanHandler),
            (url_path_join(base, "runs"), RunsHandler),
            (url_path_join(base, r"runs/(\d+)"), RunHandler),
            (url_path_join(base, r"runs/(\d+)/events"), RunEventsHandler),
            (url_path_join(base, r"runs/(\d+)/report"), RunReportHandler),
        ],
    )
    serverapp.log.info("nbflow: REST API at %s", base)
    from .studio.proxy import studio_handlers  # <base_url>nbflow/studio/: the studio, proxied

    web_app.add_handlers(".*$", studio_handlers(serverapp))


class RunRegistry:
    """Runs started through this server, newest last (finished ones kept for a while)."""

    def __init__(self) -> None:
        self.runs: list[Run] = []

    def add(self, run: Run) -> None:
        self.runs.append(run)
        finished = [r for r in self.runs if r.done]
        for old in finished[: max(0, len(finished) - KEEP_RUNS)]:
            self.runs.remove(old)

    def find(self, run_id: int, notebook: Path | None) -> Run | None:
        for run in reversed(self.runs):
            if run.id == run_id and (notebook is None or run.pipeline.path.resolve() == notebook):
                return run
        return None

    def live(self, notebook: Path) -> Run | None:
        """The newest unfinished run of ``notebook``."""
        for run in reversed(self.runs):
            if not run.done and run.pipeline.path.resolve() == notebook:
                return run
        return None


def _json(data: Any) -> str:
    return dumps(data, default=str)


def run_id(raw: str) -> int:
    """The run id of a URL (``\\d+`` matched), or a 404 when no run store can hold it."""
    if not (raw.isascii() and raw.isdigit()) or len(raw) > len(str(MAX_RUN_ID)) or int(raw) > MAX_RUN_ID:
        raise web.HTTPError(404, f"no run {raw[:24]}{'...' if len(raw) > 24 else ''}: run ids are below 2**63")
    return int(raw)


def nesting(value: Any) -> int:
    """How deep lists and objects nest in a parsed JSON ``value`` (without recursing)."""
    deepest, todo = 0, [(value, 0)]
    while todo:
        item, depth = todo.pop()
        if isinstance(item, (dict, list)):
            depth += 1
            deepest = max(deepest, depth)
            todo.extend((v, depth) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


def parse_json(text: str | bytes, what: str) -> Any:
    """JSON from a request (``what``: "body", "params"), or a 400 saying what is wrong with it."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise web.HTTPError(
                400, f"{what} is not UTF-8 text (byte {e.start}: {text[e.start : e.start + 1]!r})"
            ) from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise web.HTTPError(400, f"{what} is not JSON: {e}") from None
    except RecursionError:
        raise web.HTTPError(400, f"{what} is nested more than {MAX_NESTING} deep") from None
    if nesting(value) > MAX_NESTING:
        raise web.HTTPError(400, f"{what} is nested more than {MAX_NESTING} deep")
    return value


def is_notebook_file(path: Path) -> bool:
    """A notebook file nbflow reads (``.ipynb`` or a text notebook)."""
    return path.suffix.lower() in NOTEBOOK_SUFFIXES and path.is_file()


class NbflowHandler(APIHandler):
    """Path confinement and error mapping shared by every route."""

    @property
    def registry(self) -> RunRegistry:
        return self.settings["nbflow_runs"]

    @property
    def root(self) -> Path:
        return Path(self.settings["server_root_dir"]).resolve()

    def notebook(self, required: bool = True) -> Path | None:
        """The ``path`` argument resolved inside the root, or a 404 that says nothing more."""
        raw = self.get_argument("path", None)
        if raw is None or raw == "":
            if required:
                raise web.HTTPError(400, "missing path")
            return None
        return self.confine(raw)

    def confine(self, raw: str, accept: Callable[[Path], bool] | None = None) -> Path:
        """``raw`` resolved strictly inside the root and accepted by ``accept`` (default: an
        existing notebook file); else a 404 that says nothing more (a 400 for a name too long)."""
        root = self.root
        if len(raw.encode("utf-8", "surrogatepass")) > 4096:
            raise web.HTTPError(400, "path is longer than any path this file system allows")
        try:
            # An absolute ``raw`` replaces root here and is then refused below.
            path = (root / raw).resolve()
            inside = path.is_relative_to(root) and (accept or is_notebook_file)(path)
        except OSError as e:
            if e.errno == errno.ENAMETOOLONG:
                raise web.HTTPError(400, "path has a name longer than this file system allows") from None
            raise web.HTTPError(404) from None
        except (RuntimeError, ValueError):
            raise web.HTTPError(404) from None
        if not inside:
            raise web.HTTPError(404)
        return path

    def confined(self, source: Path, listed: list[Path]) -> None:
        """Refuse a pipeline listing a notebook outside the root, before that notebook is read."""
        for notebook in listed:
            if not Path(notebook).resolve().is_relative_to(self.root):
                raise PipelineError(
                    f"lists {Path(notebook).name}, which is outside the server's root; only notebooks under it "
                    "are run from here",
                    notebook=self.relative(source) or source.name,
                )

    def in_its_project(self, notebook: Path) -> Callable[[list[Path]], None]:
        """The check ``project_context.in_project`` makes of the notebooks ``notebook``'s pipeline lists."""
        return lambda listed: self.confined(notebook.parent / "nbflow.toml", listed)

    def relative(self, path: str | Path) -> str | None:
        """``path`` relative to the root (``None`` when outside: it is never shown)."""
        try:
            return Path(path).resolve().relative_to(self.root).as_posix()
        except ValueError:
            return None

    def params(self) -> dict[str, Any]:
        raw = self.get_argument("params", None)
        if not raw:
            return {}
        value = parse_json(raw, "params")
        if not isinstance(value, dict):
            raise web.HTTPError(400, "params must be a JSON object")
        return value

    def limit(self) -> int:
        raw = self.get_argument("limit", "50")
        if not (raw.isascii() and raw.isdigit()) or len(raw) > 5 or not 0 < int(raw) <= 10_000:
            raise web.HTTPError(400, "limit must be a whole number from 1 to 10000")
        return int(raw)

    def body(self) -> dict[str, Any]:
        value = parse_json(self.request.body or b"{}", "body")
        if not isinstance(value, dict):
            raise web.HTTPError(400, "body must be a JSON object")
        return value

    def fail(self, error: NbflowError) -> None:
        self.set_status(400)
        self.finish(_json({"message": str(error), "reason": type(error).__name__}))

    def run_summary(self, run: Run) -> dict[str, Any]:
        return {
            "id": run.id,
            "notebook": self.relative(run.pipeline.path),
            "status": run.status,
            "error": run.error,
            "params": dict(run.plan.params),
            "steps": run.steps,
            "in_process": True,
            # as the store records them (the report once the run's end wrote it: run_end)
            "artifacts": sorted(
                kind
                for kind, present in (("output_notebook", run.output_notebook), ("report", run.report_path))
                if present is not None
            ),
        }

    def stored_run(self, run_id: int, notebook: Path) -> dict[str, Any]:
        from .config import Config

        config = Config.for_notebook(notebook)
        if not config.store_path.exists():
            raise web.HTTPError(404)
        store = config.open_store()
        try:
            record = store.run(run_id)
            if record is None or Path(record["notebook"]).resolve() != notebook:
                raise web.HTTPError(404)
            steps = {
                s["step"]: {k: s[k] for k in ("status", "duration", "error", "reasons")} for s in store.steps(run_id)
            }
            return {
                "id": run_id,
                "notebook": self.relative(notebook),
                "status": record["status"],
                "error": record["error"],
                "params": record["params"],
                "steps": steps,
                "in_process": False,
                "artifacts": sorted(store.artifacts(run_id)),
            }
        finally:
            store.close()


class GraphHandler(NbflowHandler):
    @web.authenticated
    async def get(self) -> None:
        notebook = self.notebook()
        params = self.params()
        live = self.registry.live(notebook)
        try:
            model = await asyncio.to_thread(_graph, notebook, params, live, check=self.in_its_project(notebook))
        except NbflowError as e:
            return self.fail(e)
        model["notebook"] = self.relative(notebook)
        model["run"] = {"id": live.id, "status": live.status} if live is not None else None
        self.finish(_json(model))

    @web.authenticated
    async def post(self) -> None:
        body = self.body()
        if not isinstance(body.get("path"), str) or not body["path"]:
            raise web.HTTPError(400, "missing path")
        notebook = self.confine(body["path"])
        data, params = body.get("notebook"), body.get("params") or {}
        if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
            raise web.HTTPError(400, "notebook must be notebook JSON (an object with a cells list)")
        if not isinstance(params, dict):
            raise web.HTTPError(400, "params must be a JSON object")
        live = self.registry.live(notebook)
        try:
            model = await asyncio.to_thread(_graph, notebook, params, live, data, self.in_its_project(notebook))
        except NbflowError as e:
            return self.fail(e)
        model["notebook"] = self.relative(notebook)
        model["run"] = {"id": live.id, "status": live.status} if live is not None else None
        self.finish(_json(model))


def _graph(
    notebook: Path,
    params: dict[str, Any],
    live: Run | None,
    data: dict[str, Any] | None = None,
    check: Callable[[list[Path]], None] | None = None,
) -> dict[str, Any]:
    from .graph import load_pipeline
    from .project_context import in_project
    from .run import plan_pipeline
    from .view import cytoscape_style, graph_model

    if data is None:
        pipeline = load_pipeline(notebook)
    else:
        from .notebook import notebook_from_data

        pipeline = load_pipeline(notebook, source=notebook_from_data(data, notebook))
    pipeline = in_project(pipeline, check)  # keyed with the other notebooks of its pipeline
    plan = plan_pipeline(pipeline, params)
    statuses = {name: s["status"] for name, s in live.steps.items()} if live is not None else None
    model = graph_model(pipeline, plan, statuses)
    model["style"] = cytoscape_style()
    model["warnings"] = list(pipeline.warnings)
    return model


class PlanHandler(NbflowHandler):
    @web.authenticated
    async def get(self) -> None:
        notebook = self.notebook()
        params = self.params()
        try:
            plan = await asyncio.to_thread(_plan, notebook, params, self.in_its_project(notebook))
        except NbflowError as e:
            return self.fail(e)
        plan["notebook"] = self.relative(notebook)
        self.finish(_json(plan))


def _plan(notebook: Path, params: dict[str, Any], check: Callable[[list[Path]], None]) -> dict[str, Any]:
    from .graph import load_pipeline
    from .project_context import in_project
    from .run import plan_pipeline

    return plan_pipeline(in_project(load_pipeline(notebook), check), params).to_dict()


def _names(body: dict[str, Any], key: str) -> list[str]:
    value = body.get(key) or []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise web.HTTPError(400, f"{key} must be a list of step names")
    return value


class RunsHandler(NbflowHandler):
    @web.authenticated
    async def get(self) -> None:
        notebook = self.notebook(required=False)
        limit = self.limit()
        if notebook is None:
            runs = [self.run_summary(r) for r in reversed(self.registry.runs)][:limit]
            return self.finish(_json({"runs": runs}))
        from .config import Config

        config = Config.for_notebook(notebook)
        if not config.store_path.exists():
            return self.finish(_json({"runs": []}))
        store = config.open_store()
        try:
            runs = store.runs(notebook, limit=limit)
        finally:
            store.close()
        for r in runs:
            r["notebook"] = self.relative(r["notebook"])
            r["in_process"] = self.registry.find(r["id"], notebook) is not None
        self.finish(_json({"runs": runs}))

    @web.authenticated
    async def post(self) -> None:
        body = self.body()
        notebook = self.confine(str(body.get("path") or ""))
        params = body.get("params") or {}
        if not isinstance(params, dict):
            raise web.HTTPError(400, "params must be a JSON object")
        options = {
            "only": _names(body, "only"),
            "from_": _names(body, "from"),
            "force": _names(body, "force"),
            "force_all": bool(body.get("force_all", False)),
        }
        try:
            run = await asyncio.to_thread(_start, notebook, params, options, self.in_its_project(notebook))
        except NbflowError as e:
            return self.fail(e)
        self.registry.add(run)
        self.set_status(201)
        self.set_header("Location", url_path_join(self.base_url, API, "runs", str(run.id)))
        self.finish(_json({"id": run.id, "notebook": self.relative(notebook), "status": run.status}))


def _start(notebook: Path, params: dict[str, Any], options: dict[str, Any], check: Callable[[list[Path]], None]) -> Run:
    from .graph import load_pipeline
    from .project_context import in_project
    from .run import start_run

    return start_run(in_project(load_pipeline(notebook), check), params, **options)


class RunHandler(NbflowHandler):
    @web.authenticated
    async def get(self, raw_id: str) -> None:
        number = run_id(raw_id)
        notebook = self.notebook(required=False)
        run = self.registry.find(number, notebook)
        if run is not None:
            return self.finish(_json(self.run_summary(run)))
        if notebook is None:
            raise web.HTTPError(404)
        self.finish(_json(await asyncio.to_thread(self.stored_run, number, notebook)))

    @web.authenticated
    async def delete(self, raw_id: str) -> None:
        number = run_id(raw_id)
        notebook = self.notebook(required=False)
        run = self.registry.find(number, notebook)
        if run is None:
            if notebook is not None:
                await asyncio.to_thread(self.stored_run, number, notebook)  # 404 if unknown
                raise web.HTTPError(409, "this run was not started by this server; it cannot be cancelled here")
            raise web.HTTPError(404)
        if run.done:
            raise web.HTTPError(409, f"run {run.id} has already finished ({run.status})")
        run.cancel()
        self.set_status(202)
        self.finish(_json({"id": run.id, "status": "cancelling"}))


class RunEventsHandler(NbflowHandler):
    """Server-sent events (``text/event-stream``): one ``data:`` line of JSON per event."""

    #: Seconds between keep-alive comments, so proxies keep a quiet stream open.
    keepalive = 15.0

    @web.authenticated
    async def get(self, raw_id: str) -> None:
        number = run_id(raw_id)
        notebook = self.notebook(required=False)
        run = self.registry.find(number, notebook)
        if run is None:
            if notebook is None:
                raise web.HTTPError(404)
            record = await asyncio.to_thread(self.stored_run, number, notebook)
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")
        if run is None:
            # Not in this process: what the store recorded, as one snapshot.
            await self._send(0, "RunSnapshot", {"type": "RunSnapshot", "run_id": number, **record})
            return self.finish(set_content_type="text/event-stream")
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        # The bus calls listeners on the run's thread (and replays on this one), in order.
        unsubscribe = run.bus.subscribe(lambda event: loop.call_soon_threadsafe(queue.put_nowait, event.to_dict()))
        try:
            seq = 0
            while True:
                try:
                    event = await asyncio.wait_for(queue.get(), self.keepalive)
                except asyncio.TimeoutError:
                    self.write(": keep-alive\n\n")
                    await self.flush()
                    continue
                seq += 1
                await self._send(seq, event["type"], event)
                if event["type"] == "RunFinished":
                    break
        except StreamClosedError:
            return
        finally:
            unsubscribe()
        self.finish(set_content_type="text/event-stream")

    async def _send(self, seq: int, kind: str, data: dict[str, Any]) -> None:
        self.write(f"id: {seq}\nevent: {kind}\ndata: {_json(data)}\n\n")
        await self.flush()


class RunReportHandler(NbflowHandler):
    """A run's report: built on POST (``report.build_report``), served by run id on GET."""

    @web.authenticated
    async def post(self, raw_id: str) -> None:
        number = run_id(raw_id)
        notebook = self.notebook()
        record = await asyncio.to_thread(self.stored_run, number, notebook)
        if record["status"] in ("pending", "running"):
            raise web.HTTPError(409, f"run {number} is still {record['status']}")
        try:
            path = await asyncio.to_thread(_build_report, notebook, number)
        except NbflowError as e:
            return self.fail(e)
        url = url_path_join(self.base_url, API, "runs", str(number), "report")
        self.set_status(201)
        query = urlencode({"path": self.relative(notebook)})
        self.finish(_json({"id": number, "url": f"{url}?{query}", "size": path.stat().st_size}))

    @web.authenticated
    async def get(self, raw_id: str) -> None:
        number = run_id(raw_id)
        notebook = self.notebook()
        from .report import recorded_report

        report = await asyncio.to_thread(recorded_report, notebook, number)
        if report is None:
            raise web.HTTPError(404)
        try:
            body, modified = await asyncio.to_thread(_read, report)
        except OSError:  # removed since the lookup (nbflow clean)
            raise web.HTTPError(404) from None
        # The report runs in an opaque origin: its scripts (Bokeh) work, but cannot reach
        # this server's cookies or API.
        self.set_header("Content-Security-Policy", "sandbox allow-scripts")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Last-Modified", time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(modified)))
        self.finish(body, set_content_type="text/html; charset=utf-8")


def _read(path: Path) -> tuple[bytes, float]:
    with path.open("rb") as f:
        return f.read(), os.fstat(f.fileno()).st_mtime


def _build_report(notebook: Path, run_id: int) -> Path:
    from .config import Config
    from .report import build_report  # written alongside; imported only when asked

    return build_report(Config.for_notebook(notebook), run_id)
