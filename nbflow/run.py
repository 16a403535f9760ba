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
import dataclasses
import logging
import threading
import time
import traceback as traceback_module
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .cache import Cache
from .clean import clean, register_store  # noqa: F401 - nbflow.run.clean is public API
from .compare import save_snapshot
from .cutoff import Knowledge
from .errors import NbflowError, PipelineError
from .events import CheckFailed, Event, EventBus, RunFinished, RunStarted, StepFinished, StepStarted
from .inputs import input_file_hashes
from .parameters import resolve_parameters
from .plan import Plan, compute_plan

if TYPE_CHECKING:
    from .executors import Executor
    from .graph import Pipeline
    from .store import RunStore

log = logging.getLogger(__name__)

#: Runs started in this process that have not finished, by id (for in-process views).
ACTIVE_RUNS: dict[int, Run] = {}


def pipeline_cache(pipeline: Pipeline) -> Cache:
    return pipeline.config.cache()


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
    plan = compute_plan(
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
    # the run's keys (cutoff.RunKeys) start from what this plan read: no entry is read twice
    return dataclasses.replace(plan, knowledge=knowledge)


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
            e.step: {
                "status": "pending",
                "action": e.action,
                "reasons": list(e.reasons),
                "duration": None,
                "error": "",
                "key": e.key,  # the key the step ended with: a re-keyed step (early cut-off) changes it
            }
            for e in plan
        }
        self._ctx = ctx
        self._executor = executor
        self._copy_to = copy_to
        #: The end of the run (``run_end``): the hooks its starter gave (``None``:
        #: ``[tool.nbflow]``'s), the report maker (``run_end.report_maker``), set when that
        #: end is over, its problems, and the report it wrote.
        self.end_hooks: Any = None
        self.end_report: Any = None
        self.ended = threading.Event()
        self.end_problems: list[str] = []
        self.report_path: Path | None = None
        self._ending = False
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
            if event.key:
                self.steps[event.step]["key"] = event.key
        elif isinstance(event, CheckFailed):
            self.steps[event.step].update(status="failed", error=event.error)
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

    def wait_end(self, timeout: float | None = None) -> list[str]:
        """Block until the run's end (``run_end``: report, hooks) is over, or ``timeout``
        passes; return its problems (a hook that failed or hung), one line each."""
        self.ended.wait(timeout)
        return list(self.end_problems)

    def cancel(self) -> None:
        """Stop the run: the running step is interrupted, the rest is not started."""
        self._ctx.cancel.set()

    def _execute(self) -> None:
        status, error = "done", ""
        try:
            self.open()
            self._executor.execute(self._ctx)
        except NbflowError as e:
            status, error, self.exception = "failed", str(e), e
        except BaseException as e:  # noqa: BLE001 - reported on the run, never lost in a thread
            status, error, self.exception = "failed", f"{self.pipeline.path.name}: {type(e).__name__}: {e}", e
            self._report_unexpected("failed unexpectedly", error)
        self.close(status, error)

    def open(self) -> None:
        """Publish ``RunStarted`` and start the heartbeat: the first half of a run.

        ``start`` calls it on the run's thread; an executor driven from outside (the
        user's own kernel: ``executors.user_kernel``) calls ``open``, runs its steps
        across several calls, then ``close``.
        """
        ctx = self._ctx
        self._beat = threading.Event()
        heart = threading.Thread(
            target=self._heartbeat, args=(self._beat,), daemon=True, name=f"nbflow-heartbeat-{self.id}"
        )
        ACTIVE_RUNS[self.id] = self
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

    def close(self, status: str = "done", error: str = "") -> None:
        """Settle the steps without a final status, publish ``RunFinished`` and stop the
        heartbeat: the second half of a run (``status`` is what the executor saw)."""
        ctx = self._ctx
        if ctx.early_kernel is not None:  # the run ended before its executor took the kernel
            ctx.early_kernel.discard()
            ctx.early_kernel = None
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
                    from .executors.outcome import OutputNotWritten, save_output_notebook

                    try:
                        save_output_notebook(Path(self._copy_to), output.read_bytes())
                    except OutputNotWritten as e:
                        status, error, self.exception = "failed", str(e), e
            self.duration = time.time() - ctx.started
            self.status, self.error = status, error
            ctx.publish(
                RunFinished(self.id, status=status, duration=self.duration, error=error, cache_wait=ctx.cache_wait)
            )
        except BaseException as e:  # noqa: BLE001
            self.status, self.error, self.exception = "failed", f"{type(e).__name__}: {e}", e
            self._report_unexpected("could not be finished", self.error)
        finally:
            beat = getattr(self, "_beat", None)
            if beat is not None:
                beat.set()
            ACTIVE_RUNS.pop(self.id, None)
            self.store.close()
            self._done.set()
        if not self._ending:
            self._ending = True
            from . import run_end

            run_end.start(self, self.end_hooks, self.end_report)  # the hooks fire for every run, once

    def _report_unexpected(self, what: str, error: str) -> None:
        """One line for the person; the traceback goes to the run's record (``nbflow show``)."""
        details = traceback_module.format_exc()
        log.debug("nbflow: run %s %s:\n%s", self.id, what, details)
        try:
            self.store.add_message(self.id, f"nbflow internal error (please report it):\n{details}")
            hint = f"; details: nbflow show {self.id}"
        except Exception:  # noqa: BLE001 - the store itself may be what failed
            hint = f"\n{details}"
        log.error("nbflow: run %s %s: %s%s", self.id, what, error.splitlines()[0] if error else "", hint)

    def _heartbeat(self, stop: threading.Event) -> None:
        interval = self._ctx.config.heartbeat_interval
        while not stop.wait(interval):
            try:
                self.store.heartbeat(self.id)
            except Exception:  # noqa: BLE001 - a missed heartbeat is not worth failing a run
                log.warning("nbflow: heartbeat of run %s not recorded", self.id, exc_info=True)
        self.store.close()


def start_run(pipeline: Pipeline, params: Mapping[str, Any] | None = None, **options: Any) -> Run:
    """Plan ``pipeline`` and start running it in a background thread (``prepare_run``'s
    options; the run's events come on ``Run.bus``)."""
    return prepare_run(pipeline, params, **options).start()


def prepare_run(
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
    retries: int = 0,
    listeners: Iterable[Callable[[Event], None]] = (),
    widget: Any = None,
    items: Iterable[int] = (),
    run_class: type[Run] | None = None,
    hooks: Any = None,
    report: Callable[[int], Path | None] | bool | None = None,
) -> Run:
    """Plan ``pipeline`` and record a new run; ``Run.start`` runs it in a background thread.

    Parameters are checked before anything starts (``ParameterError``). ``output``
    also writes the executed notebook there; every run with executed steps keeps it
    in ``<home>/runs/<id>/output.ipynb``. ``timeout`` applies to steps without a
    ``timeout:`` tag. ``retries``: times a step that raised runs again (its ``retry:`` tag
    wins). ``listeners`` (and ``widget``) receive the run's events.
    ``items`` recomputes those elements of the one ``map:`` step named by ``only``.
    ``run_class``: the ``Run`` subclass to return (``api.Run`` adds ``report``).
    ``hooks`` (``hooks.Hooks``): what runs once the run has ended, instead of the
    ``[tool.nbflow]`` hooks (``run_end``). ``report``: the run's report, made before the
    hooks (its path goes to them) -- a maker ``report(run_id)``, ``True``, ``False``, or
    ``None``: as ``[tool.nbflow] report`` says (``run_end.report_maker``).
    """
    from .executors import get_executor
    from .run_end import report_maker

    config = pipeline.config
    if not pipeline.steps:
        raise PipelineError(
            "has no steps to run: tag a code cell step:<name> (JupyterLab: the property inspector's cell tags)",
            notebook=pipeline.path,
        )
    _refuse_shared_cache(config)
    if retries < 0:
        raise PipelineError(f"--retries {retries}: must be 0 or more", notebook=pipeline.path)
    _refuse_output_over_source(pipeline, output)
    given = resolve_parameters(pipeline.parameters, params, raw, pipeline.path)
    given = {k: v for k, v in given.items() if k in (params or {}) or k in pipeline.shared_params}
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
    if pipeline.foreign_stale:  # never cache a result computed from a file its key does not describe
        from .foreign import refuse_unready_upstream

        refuse_unready_upstream(pipeline, plan)
    chosen = get_executor(executor or config.executor)
    prestart = getattr(chosen, "prestart", None)
    early = prestart(pipeline, config) if plan.to_run and prestart is not None else None
    try:
        run = _record_and_start(
            pipeline,
            plan,
            chosen,
            config,
            cache,
            given,
            output,
            timeout,
            fail_fast,
            retries,
            forced_items,
            listeners,
            widget,
            run_class,
            early,
        )
    except BaseException:
        if early is not None:
            early.discard()
        raise
    run.end_hooks, run.end_report = hooks, report_maker(config, pipeline.path, report)
    return run


def _record_and_start(
    pipeline: Pipeline,
    plan: Plan,
    chosen: Executor,
    config: Any,
    cache: Cache,
    given: dict[str, Any],
    output: str | Path | None,
    timeout: float | None,
    fail_fast: bool,
    retries: int,
    forced_items: dict[str, list[int]],
    listeners: Iterable[Callable[[Event], None]],
    widget: Any,
    run_class: type[Run] | None,
    early: Any,
) -> Run:
    """Record the run, then start its thread (``early``: the kernel already starting)."""
    from . import provenance
    from .executors import RunContext

    store = config.open_store()
    register_store(config.cache_dir, config.store_path)  # a shared cache-dir's clean keeps our entries
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
        retries=retries,
        items=forced_items,
        early_kernel=early,
    )
    copy_to = Path(output) if output is not None else None
    if copy_to is None and not plan.to_run:
        ctx.output_path = None  # nothing runs and no output asked for: no kernel, no papermill
    return (run_class or Run)(run_id, pipeline, plan, ctx, store, chosen, copy_to)


def _refuse_output_over_source(pipeline: Pipeline, output: str | Path | None) -> None:
    """The executed copy replaces ``output`` at the end: never the notebook being run
    (edits saved while it runs would be lost)."""
    if output is None:
        return
    target = Path(output)
    same = target.resolve() == pipeline.path.resolve()
    with contextlib.suppress(OSError):
        same = same or target.samefile(pipeline.path)
    if same:
        raise PipelineError(
            f"--output {output} is the notebook being run; the executed copy would replace it "
            "(write it elsewhere: --output executed.ipynb)",
            notebook=pipeline.path,
        )


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
