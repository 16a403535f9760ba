"""The core API every view calls: plan a pipeline, start a run, follow it.

``plan_pipeline`` resolves parameters, hashes declared input files, computes keys and
asks the cache what exists. ``start_run`` plans, records a new run in the store,
starts the executor in a background thread and returns a ``Run`` whose ``bus``
delivers the run's events. The CLI, the widget, the studio and the REST API all call
these two functions and listen to that bus; none of them talks to an executor.

Worked example (``nbflow run nb.ipynb -p lr 0.5``)::

    plan_pipeline   -> lr checked against its default; train, evaluate stale
    RunStore        -> run 7 allocated (pending), pid/host/heartbeat recorded
    EventBus        -> store (critical), progress printer, any views
    executor thread -> RunStarted, StepFinished(cached) x3, StepQueued x2,
                       StepStarted/StepFinished x2, RunFinished(done)
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import shutil
import threading
import time
import traceback as traceback_module
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .cache import Cache, file_sha256
from .compare import save_snapshot
from .cutoff import Knowledge
from .errors import CacheCorrupt, NbflowError, PipelineError
from .events import Event, EventBus, RunFinished, RunStarted, StepFinished, StepStarted
from .parameters import resolve_parameters
from .plan import Plan, compute_plan

if TYPE_CHECKING:
    from .executors import Executor
    from .graph import Pipeline
    from .store import RunStore

log = logging.getLogger(__name__)

#: Runs started in this process that have not finished, by id (for in-process views).
ACTIVE_RUNS: dict[int, Run] = {}


def input_file_hashes(pipeline: Pipeline) -> dict[str, str]:
    """SHA-256 of every external ``in:`` file (relative to the notebook's folder), or ``missing``.

    Files another step produces (``out:``) are not hashed: that step's key stands for them.
    """
    hashes = {}
    folder = pipeline.path.parent
    for step in pipeline.steps.values():
        for name in step.in_files:
            if name not in hashes and name not in step.file_inputs:
                hashes[name] = path_digest(folder / name)
    return hashes


def path_digest(path: Path) -> str:
    """SHA-256 of a file; for a folder, of its files' relative names and contents."""
    try:
        if path.is_dir():
            digest = hashlib.sha256()
            for item in sorted(p for p in path.rglob("*") if p.is_file()):
                digest.update(f"{item.relative_to(path).as_posix()}\0{file_sha256(item)}\n".encode())
            return digest.hexdigest()
        return file_sha256(path)
    except OSError:
        return "missing"


def pipeline_cache(pipeline: Pipeline) -> Cache:
    assert pipeline.config is not None, "use nbflow.load_pipeline(), which attaches a Config"
    return Cache(pipeline.config.cache_dir)


def plan_pipeline(
    pipeline: Pipeline,
    params: Mapping[str, Any] | None = None,
    *,
    raw: Mapping[str, str] | None = None,
    force: Iterable[str] = (),
    force_all: bool = False,
    only: Iterable[str] = (),
    from_: Iterable[str] = (),
    cache: Cache | None = None,
) -> Plan:
    """The plan of a run of ``pipeline`` with ``params`` (nothing is executed).

    ``raw`` holds parameter values as typed on a command line (see
    ``parameters.resolve_parameters``).
    """
    values = resolve_parameters(pipeline.parameters, params, raw, pipeline.path)
    pipeline.check_steps(force, "--force")
    pipeline.check_steps(from_, "--from")
    cache = cache or pipeline_cache(pipeline)
    knowledge = Knowledge(pipeline, cache)
    parts = knowledge.keys(values, input_file_hashes(pipeline))
    return compute_plan(
        pipeline,
        values,
        parts,
        knowledge.lookup,
        knowledge.latest,
        force=force,
        force_all=force_all,
        only=only,
        from_=from_,
        invalidated=cache.was_invalidated,
    )


def invalidate(pipeline: Pipeline, steps: Iterable[str], params: Mapping[str, Any] | None = None) -> list[str]:
    """Forget the cached results of ``steps`` (for ``params``); return those forgotten.

    The next plan shows them ``stale`` with the reason ``invalidated``.
    """
    plan = plan_pipeline(pipeline, params)
    cache = pipeline_cache(pipeline)
    return [s for s in pipeline.check_steps(steps, "invalidate") if cache.invalidate(s, plan[s].key)]


class Run:
    """A run of a pipeline, executing in a background thread.

    ``bus`` delivers its events (subscribe before or after: past events are replayed);
    ``steps`` holds each step's latest state; ``wait()`` blocks until it ends;
    ``cancel()`` stops it cleanly.
    """

    def __init__(
        self,
        run_id: int,
        pipeline: Pipeline,
        plan: Plan,
        ctx: Any,
        store: RunStore,
        executor: Executor,
        copy_to: Path | None,
    ) -> None:
        self.id = run_id
        self.pipeline = pipeline
        self.plan = plan
        self.bus: EventBus = ctx.bus
        self.store = store
        self.status = "pending"
        self.error = ""
        self.exception: BaseException | None = None
        self.duration = 0.0
        self.steps: dict[str, dict[str, Any]] = {
            e.step: {"status": "pending", "action": e.action, "reasons": list(e.reasons), "duration": None, "error": ""}
            for e in plan
        }
        self._ctx = ctx
        self._executor = executor
        self._copy_to = copy_to
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self.bus.subscribe(self._track)

    def __repr__(self) -> str:
        return f"<Run {self.id} of {self.pipeline.path.name}: {self.status}>"

    @property
    def output_notebook(self) -> Path | None:
        """The executed notebook (``None`` when no step had to run)."""
        path = self._ctx.output_path
        return path if path is not None and path.exists() else None

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def _track(self, event: Event) -> None:
        if isinstance(event, StepStarted):
            self.steps[event.step]["status"] = "running"
        elif isinstance(event, StepFinished):
            self.steps[event.step].update(
                status=event.status, duration=event.duration, error=event.error, reasons=list(event.reasons)
            )
        elif isinstance(event, RunStarted):
            self.status = "running"

    def start(self) -> Run:
        self._thread = threading.Thread(target=self._execute, name=f"nbflow-run-{self.id}")
        ACTIVE_RUNS[self.id] = self
        self._thread.start()
        return self

    def wait(self, timeout: float | None = None) -> str:
        """Block until the run ends (or ``timeout`` passes); return its status."""
        self._done.wait(timeout)
        return self.status

    def cancel(self) -> None:
        """Stop the run: the running step is interrupted, the rest is not started."""
        self._ctx.cancel.set()

    def report(self, **options: Any) -> Path:
        """Write this run's self-contained HTML report and return its path.

        Options are those of ``nbflow.report.build_report`` (``output``, ``trusted``).
        Call it after ``wait()``: a run still going is reported as it stands.
        """
        from .report import build_report

        assert self.pipeline.config is not None, "use nbflow.load_pipeline(), which attaches a Config"
        return build_report(self.pipeline.config, self.id, **options)

    def _execute(self) -> None:
        ctx = self._ctx
        beat = threading.Event()
        heart = threading.Thread(target=self._heartbeat, args=(beat,), daemon=True, name=f"nbflow-heartbeat-{self.id}")
        status, error = "done", ""
        try:
            ctx.publish(
                RunStarted(
                    self.id,
                    notebook=str(self.pipeline.path),
                    params=ctx.params,
                    executor=self._executor.name,
                    steps=tuple(
                        {"step": e.step, "key": e.key, "state": e.state, "action": e.action, "reasons": list(e.reasons)}
                        for e in self.plan
                    ),
                )
            )
            heart.start()
            ctx.set_aside_corrupt_entries()
            save_snapshot(ctx.config, self.pipeline.path, self.pipeline.source.content_hash)
            self._executor.execute(ctx)
        except NbflowError as e:
            status, error, self.exception = "failed", str(e), e
        except BaseException as e:  # noqa: BLE001 - reported on the run, never lost in a thread
            status, error, self.exception = "failed", f"{type(e).__name__}: {e}", e
            log.error("nbflow: run %s failed unexpectedly:\n%s", self.id, traceback_module.format_exc())
        try:
            ctx.finish_unrun()
            if ctx.cancel.is_set():
                status = "cancelled"
            elif status == "done" and ctx.failure:
                status, error = "failed", ctx.failure
            elif status == "done" and any(v == "failed" for v in ctx.status.values()):
                status = "failed"
                error = error or "; ".join(
                    f"{s}: {self.steps[s]['error']}" for s, v in ctx.status.items() if v == "failed"
                )
            output = self.output_notebook
            if output is not None:
                self.store.add_artifact(self.id, "output_notebook", output)
                if self._copy_to is not None:
                    from .fsutil import atomic_write_bytes

                    atomic_write_bytes(self._copy_to, output.read_bytes(), perms=0o644)
            self.duration = time.time() - ctx.started
            self.status, self.error = status, error
            ctx.publish(RunFinished(self.id, status=status, duration=self.duration, error=error))
        except BaseException as e:  # noqa: BLE001
            self.status, self.error, self.exception = "failed", f"{type(e).__name__}: {e}", e
            log.error("nbflow: run %s could not be finished:\n%s", self.id, traceback_module.format_exc())
        finally:
            beat.set()
            ACTIVE_RUNS.pop(self.id, None)
            self.store.close()
            self._done.set()

    def _heartbeat(self, stop: threading.Event) -> None:
        interval = self._ctx.config.heartbeat_interval
        while not stop.wait(interval):
            try:
                self.store.heartbeat(self.id)
            except Exception:  # noqa: BLE001 - a missed heartbeat is not worth failing a run
                log.warning("nbflow: heartbeat of run %s not recorded", self.id, exc_info=True)
        self.store.close()


def start_run(
    pipeline: Pipeline,
    params: Mapping[str, Any] | None = None,
    *,
    raw: Mapping[str, str] | None = None,
    only: Iterable[str] = (),
    from_: Iterable[str] = (),
    force: Iterable[str] = (),
    force_all: bool = False,
    executor: str | Executor | None = None,
    output: str | Path | None = None,
    timeout: float | None = None,
    fail_fast: bool = False,
    listeners: Iterable[Callable[[Event], None]] = (),
    widget: Any = None,
    items: Iterable[int] = (),
) -> Run:
    """Plan ``pipeline`` and start running it in a background thread.

    Parameters are checked before anything starts (``ParameterError``). ``output``
    also writes the executed notebook there; every run with executed steps keeps it
    in ``<home>/runs/<id>/output.ipynb``. ``timeout`` applies to steps without a
    ``timeout:`` tag. ``listeners`` (and ``widget``) receive the run's events.
    ``items`` recomputes those elements of the one ``map:`` step named by ``only``.
    """
    from . import provenance
    from .executors import RunContext, get_executor
    from .store import RunStore

    config = pipeline.config
    assert config is not None, "use nbflow.load_pipeline(), which attaches a Config"
    if not pipeline.steps:
        raise PipelineError(
            "has no steps to run: tag a code cell step:<name> (JupyterLab: the property inspector's cell tags)",
            notebook=pipeline.path,
        )
    _refuse_shared_cache(config)
    given = resolve_parameters(pipeline.parameters, params, raw, pipeline.path)
    given = {k: v for k, v in given.items() if k in (params or {})}
    cache = pipeline_cache(pipeline)
    items = sorted(set(items))
    forced_items: dict[str, list[int]] = {}
    if items:
        only = list(only)
        if len(only) != 1 or not pipeline.steps.get(only[0]) or not pipeline.steps[only[0]].map_over:
            raise PipelineError("--items needs exactly one --only STEP naming a map: step", notebook=pipeline.path)
        forced_items = {only[0]: items}
        force = [*force, only[0]]
    plan = plan_pipeline(
        pipeline, params, raw=raw, force=force, force_all=force_all, only=only, from_=from_, cache=cache
    )
    chosen = get_executor(executor or config.executor)
    store = RunStore(config.store_path, heartbeat_interval=config.heartbeat_interval)
    run_id = store.create_run(
        pipeline.path,
        notebook_hash=pipeline.source.content_hash,
        params=plan.params,
        executor=chosen.name,
        provenance=provenance.collect(pipeline.path, pipeline.source.content_hash),
    )
    bus = EventBus()
    bus.subscribe(store.listener, critical=True)
    for listener in listeners:
        bus.subscribe(listener)
    if widget is not None:
        widget.follow(bus)
    ctx = RunContext(
        run_id=run_id,
        pipeline=pipeline,
        plan=plan,
        params=dict(plan.params),
        given=given,
        config=config,
        cache=cache,
        bus=bus,
        cancel=threading.Event(),
        output_path=config.runs_dir / str(run_id) / "output.ipynb",
        timeout=timeout or config.timeout,
        fail_fast=fail_fast,
        items=forced_items,
    )
    copy_to = Path(output) if output is not None else None
    if copy_to is None and not plan.to_run:
        ctx.output_path = None  # nothing runs and no output asked for: no kernel, no papermill
    return Run(run_id, pipeline, plan, ctx, store, chosen, copy_to).start()


def _refuse_shared_cache(config: Any) -> None:
    """Refuse to run with a cache folder other users could plant pickles in."""
    from .errors import CacheRefused
    from .fsutil import check_private

    for folder in (config.home, config.cache_dir):
        if folder.exists():
            try:
                check_private(folder)
            except CacheRefused as e:
                raise PipelineError(str(e)) from None


def clean(config: Any, keep: int = 10, notebook: str | Path | None = None) -> dict[str, int]:
    """Delete all but the ``keep`` newest runs and every cache entry no kept run uses.

    The entry of each step's newest run stays, so the next run is still fully cached.
    """
    from .store import RunStore

    store = RunStore(config.store_path, heartbeat_interval=config.heartbeat_interval)
    runs = store.runs(notebook, limit=1_000_000)
    kept, dropped = runs[:keep], runs[keep:]
    dropped = [r for r in dropped if r["status"] not in ("pending", "running")]
    keep_entries = {(s["step"], s["key"]) for r in kept for s in store.steps(r["id"]) if s["key"]}
    if notebook is not None:  # other notebooks' entries in a shared home are not ours to judge
        others = [r for r in store.runs(None, limit=1_000_000) if r["notebook"] != str(Path(notebook).resolve())]
        keep_entries |= {(s["step"], s["key"]) for r in others for s in store.steps(r["id"]) if s["key"]}
    cache = Cache(config.cache_dir)
    for step, key in list(keep_entries):  # a map: step's entry needs its elements' entries
        with contextlib.suppress(CacheCorrupt):
            entry = cache.lookup(step, key)
            keep_entries |= {(step, item) for item in (entry.items if entry else [])}
    store.delete_runs([r["id"] for r in dropped])
    for r in dropped:
        shutil.rmtree(config.runs_dir / str(r["id"]), ignore_errors=True)
    leftovers = _sweep_temp_files([config.runs_dir / str(r["id"]) for r in kept])
    removed, freed = cache.prune(keep_entries)
    store.close()
    return {"runs": len(dropped), "entries": removed, "bytes": freed, "leftovers": leftovers}


def _sweep_temp_files(folders: list[Path], older_than: float = 3600.0) -> int:
    """Delete the temporary files of atomic writes that never reached their rename (a
    crash while writing an output notebook or a report). Nothing reads them; a recent
    one may belong to a write going on now, so only those older than ``older_than``."""
    removed = 0
    now = time.time()
    for folder in folders:
        for tmp in folder.glob(".*.tmp") if folder.is_dir() else ():
            with contextlib.suppress(OSError):
                if now - tmp.stat().st_mtime > older_than:
                    tmp.unlink()
                    removed += 1
    return removed
