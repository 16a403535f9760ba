"""The ``dask`` executor: steps as tasks on a ``dask.distributed`` cluster.

``DaskExecutor.execute`` connects to a cluster (its own ``LocalCluster``, a scheduler
address, a cluster object such as dask-jobqueue's ``SLURMCluster``, or a ``Client``),
then submits each step as one task when the steps it depends on have finished, so
independent steps run at the same time. The task (``on_worker.run_step_on_worker``) runs
the step in an IPython shell on the worker and dumps its values; this module, on the
client, writes the captured outputs, commits the cache entry and publishes every
event. The cache entries are the kernel executor's (same key from the plan, same
``Cache.dump_values`` files, outputs in the same nbformat shapes), so a run with one
executor followed by the other is fully cached.

``DaskSession`` reads top to bottom in the order of a run:

1. connect (on a thread started by ``DaskExecutor.prestart`` while the run is recorded,
   or now; meanwhile the cached entries the run will load are verified); print the
   dashboard link;
2. decide how values travel: through the cache folder when every worker sees it (a
   probe file written by the client, read by every worker), else through Dask (the
   entry's files as bytes, worker to worker; the client writes the cache);
3. loop: submit the steps whose upstream steps are done; handle "started" notices
   (sent by the task through the scheduler's event topics) and finished tasks;
   watch timeouts, cancel, and a cluster left without workers, so a run never hangs.

Worked example, ``load -> (a, b) -> report`` on two workers::

    submit load                       (a, b, report wait for it)
    load done      -> commit entry    -> submit a, submit b    (both run at once)
    a done         -> commit entry    (report still waits for b)
    b failed       -> report skipped ("upstream b failed"); the run ends failed

A ``map:`` step fans out across the cluster: one task lists its elements (count,
fingerprints, labels), then each element without a cache entry runs as its own task
(at the same time as the others) and is committed under its element key; when all are
settled the step's entry lists the elements' keys, exactly as the kernel executor
writes it. A ``timeout:`` applies to each element. ``out:`` files are checked on the
worker and staged into the entry by the client (sent back as bytes when the workers do
not share the client's disk).

A task whose worker dies (killed, out of memory) fails its step with the reason the
nanny recorded ("worker died (signal 9; possibly out of memory)"); a task that raised,
timed out or lost its worker runs again as a new task (inputs restored afresh) after its
backoff, as ``RunContext.retry_delay`` decides; cancel cancels the submitted tasks, interrupts the running ones and
restarts a worker whose step does not stop within the grace period.

Beside this module: ``dask_tasks`` (a step's task, its inputs, the output notebook),
``dask_fanout`` (a ``map:`` step's elements), ``dask_watch`` (timeouts, cancel, a
cluster without workers: ending tasks, restarting workers) and ``dask_cluster`` (the
cluster itself: nbflow's own ``LocalCluster``, settings chosen by measurement, worker
deaths from the nannies' log). ``DaskSession`` mixes in the first three's classes.

``dask.distributed`` is imported only when a step has to run.
"""

from __future__ import annotations

import contextlib
import queue
import re
import sys
import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..analysis_setup import DYNAMIC_NAMES, constant_names
from ..errors import NbflowError, PipelineError
from ..fsutil import atomic_write_bytes, private_dir
from ..hidden_state import is_pseudo
from .base import RUN_STOPPED, SETUP_FAILED, RunContext
from .dask_cluster import Cluster, EarlyCluster, connect_in_background
from .dask_fanout import FanOutSteps
from .dask_tasks import Attempt, CannotStart, FanOut, TaskInputs, resource_amounts, run_task, write_output_notebook
from .dask_watch import Watchdog
from .outcome import (
    OutputNotWritten,
    clear_old_out_files,
    commit_entry,
    stage_out_files,
)

if TYPE_CHECKING:
    from ..events import StepStatus


class DaskExecutor:
    """Run steps as tasks on a Dask cluster (see module docstring).

    ``cluster``: a ``distributed.Client``, or any cluster object with a
    ``scheduler_address`` (``LocalCluster``, ``SLURMCluster``, ``KubeCluster``...);
    ``scheduler``: the address of a running scheduler; neither: a ``LocalCluster`` of
    ``workers`` processes (default: one per core). ``retries``: times a step is run
    again when it raises or its worker dies (as ``start_run(retries=...)``, the larger wins). ``shared_cache``: whether the workers see the cache
    folder (``None``: find out). ``worker_timeout``: seconds a run waits with no worker
    in the cluster before its remaining steps fail. ``start_method``: how nbflow's own
    workers start (``forkserver``, the default where there is one, or ``spawn``).
    """

    name = "dask"

    def __init__(
        self,
        cluster: Any = None,
        *,
        workers: int | None = None,
        scheduler: str | None = None,
        retries: int = 0,
        shared_cache: bool | None = None,
        security: Any = None,
        worker_timeout: float = 120.0,
        announce: bool = True,
        start_method: str | None = None,
    ) -> None:
        if cluster is not None and scheduler is not None:
            raise PipelineError("give the Dask executor a cluster or a scheduler address, not both")
        if workers is not None and (cluster is not None or scheduler is not None):
            raise PipelineError("--workers sizes nbflow's own LocalCluster; it cannot resize a given cluster")
        if workers is not None and workers < 1:
            raise PipelineError(f"--workers {workers}: need at least one worker")
        if retries < 0:
            raise PipelineError(f"--retries {retries}: must be 0 or more")
        self.cluster = cluster
        self.workers = workers
        self.scheduler = scheduler
        self.retries = retries
        self.shared_cache = shared_cache
        self.security = security
        self.worker_timeout = worker_timeout
        self.announce = announce
        self.start_method = start_method

    def prestart(self, pipeline: Any, config: Any) -> EarlyCluster | None:
        """Start nbflow's own cluster now, while the run is recorded (``run.prepare_run``;
        a given cluster or scheduler is connected to when the run starts)."""
        if self.cluster is not None or self.scheduler is not None or not pipeline.language.distributed:
            return None
        return EarlyCluster(self)

    def execute(self, ctx: RunContext) -> None:
        language = ctx.pipeline.language
        if not language.distributed:
            raise PipelineError(
                f"the dask executor runs Python notebooks; this one is {language.name} (use --executor kernel)",
                notebook=ctx.pipeline.path,
            )
        for step in ctx.steps_to_run():  # bad resources: tags fail the run before anything starts
            resource_amounts(ctx.pipeline.steps[step], ctx.pipeline.path)
        if not ctx.steps_to_run():
            ctx.publish_cached_and_queued()
            if ctx.output_path is not None:
                write_output_notebook(ctx, {}, [])
            return
        DaskSession(ctx, self).run()


class DaskSession(TaskInputs, FanOutSteps, Watchdog):
    """One run on a Dask cluster (see module docstring)."""

    def __init__(self, ctx: RunContext, executor: DaskExecutor) -> None:
        self.ctx = ctx
        self.executor = executor
        self.pipeline = ctx.pipeline
        self.cluster: Cluster | None = None
        self.client: Any = None
        self.shared = True
        self.topic = f"nbflow-{uuid.uuid4().hex}"
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.pending = list(ctx.steps_to_run())
        self.waiting_for: dict[str, str] = {}  # step -> the step above it it waits for (a name found at run time)
        self.watched = ctx.watched_names()
        self.changeable = changeable_names(ctx.pipeline, self.watched)
        self.running: dict[str, Attempt] = {}  # by token: a map: step has one per element
        self.fans: dict[str, FanOut] = {}
        self.results: dict[str, dict[str, Any]] = {}
        self.futures: dict[str, Any] = {}  # finished steps' futures (values travel through Dask)
        self.scattered: dict[str, Any] = {}
        self.prelude_outputs: list[list[dict[str, Any]]] = []
        self.no_workers_since: float | None = None
        self.restarting: set[str] = set()  # workers nbflow restarted to stop a step
        self.last_worker_check = 0.0
        self.setup_failed = False
        #: Retries waiting for their backoff: (when, step, attempt number, element).
        self.later: list[tuple[float, str, int, int | None]] = []
        ctx.retries = max(ctx.retries, executor.retries)

    # --------------------------------------------------------------- main
    def run(self) -> None:
        ctx = self.ctx
        if isinstance(ctx.early_kernel, EarlyCluster):  # started by ``prestart``
            connector, connected = ctx.early_kernel.thread, ctx.early_kernel.outcome
            ctx.early_kernel = None
        else:
            connector, connected = connect_in_background(self.executor, ctx)
        self.verify_restores()
        ctx.publish_cached_and_queued()
        connector.join()
        if "error" in connected:
            raise NbflowError(f"cannot start or reach the Dask cluster: {connected['error']}")
        self.cluster = connected["cluster"]
        self.client = self.cluster.client
        try:
            self.announce()
            self.shared = self.decide_sharing()
            self.client.subscribe_topic(self.topic, lambda event: self.events.put(("notice", event[1])))
            self.loop()
        finally:
            with contextlib.suppress(Exception):
                self.client.unsubscribe_topic(self.topic)
            self.release_all()
            if ctx.output_path is not None:
                try:
                    write_output_notebook(ctx, self.results, self.prelude_outputs)
                except OutputNotWritten:
                    raise  # the run fails with one line naming the path
                except Exception as e:  # noqa: BLE001 - the run's results are in the cache either way
                    ctx.warn(f"output notebook not written: {type(e).__name__}: {e}")
            self.cluster.close()

    def announce(self) -> None:
        link = self.client.dashboard_link
        if link and self.executor.announce:
            print(f"nbflow: Dask dashboard: {link}", file=sys.stderr, flush=True)

    def verify_restores(self) -> None:
        """Verify the cached entries the run's steps will load (corrupt ones then run)."""
        ctx = self.ctx
        while True:
            needed = {
                provider
                for step in ctx.steps_to_run()
                for provider in self.pipeline.steps[step].inputs.values()
                if ctx.actions[provider] == "cached"
            }
            changed = ctx.verify(sorted(needed))
            if not changed:
                break
            self.pending = list(ctx.steps_to_run())

    def decide_sharing(self) -> bool:
        """Whether every worker sees the cache folder (asked, or found out with a probe)."""
        if self.executor.shared_cache is not None:
            return self.executor.shared_cache
        if self.cluster is not None and self.cluster.owned is not None:
            return True
        from .on_worker import sees_cache

        root = self.ctx.cache.root
        private_dir(root)
        token = uuid.uuid4().hex
        probe = f".probe-{token}"
        atomic_write_bytes(root / probe, token.encode())
        try:
            self.client.wait_for_workers(1, timeout=self.executor.worker_timeout)
            seen = self.client.run(sees_cache, str(root), probe, token, on_error="return")
        except Exception as e:  # noqa: BLE001 - no answer: do not rely on a shared folder
            self.ctx.warn(
                f"could not ask the workers whether they see the cache folder ({e}); sending values through Dask"
            )
            return False
        finally:
            with contextlib.suppress(OSError):
                (root / probe).unlink()
        shared = bool(seen) and all(v is True for v in seen.values())
        if not shared:
            self.ctx.warn("the Dask workers do not see the cache folder: values travel through Dask")
        return shared

    # --------------------------------------------------------------- loop
    def loop(self) -> None:
        ctx = self.ctx
        while self.pending or self.running or self.unsettled() or self.later:
            if ctx.cancel.is_set():
                self.drop_retries("cancelled")
                self.stop_all("cancelled")
                return
            if ctx.failure:
                self.drop_retries("skipped")
                self.stop_all("failed")
                return
            self.submit_ready()
            self.submit_retries()
            if self.later and not self.running:
                time.sleep(min(0.2, max(0.0, min(t for t, *_ in self.later) - time.monotonic())))
                continue
            if not self.running:
                if self.pending:  # nothing can start: every remaining step waits on one that will not finish
                    for step in list(self.pending):
                        ctx.finish_step(step, "skipped", reasons=(RUN_STOPPED,))
                    self.pending.clear()
                return
            try:
                kind, item = self.events.get(timeout=0.2)
            except queue.Empty:
                self.watch()
                continue
            if kind == "notice":
                self.on_notice(item)
            elif kind == "done":
                self.on_done(item)
            self.watch()

    def submit_ready(self) -> None:
        ctx = self.ctx
        for step in self.pipeline.order:
            if ctx.actions[step] == "cached" and step not in ctx.status and not ctx.keys.deferred(step):
                self.recheck_deferred(step)
        for step in list(self.pending):
            blocked = ctx.blocked_by(step)
            if blocked:
                self.pending.remove(step)
                ctx.finish_step(step, "skipped", reasons=(blocked,))
                continue
            providers = set(self.pipeline.deps[step]) | set(ctx.keys.inputs(step).values())
            if any(ctx.status.get(dep) not in ("done", "cached") for dep in providers):
                continue
            if self.waits_for_earlier(step):
                continue
            self.pending.remove(step)
            if not self.pipeline.steps[step].map_over and self.settle_if_cached(step, ctx.keys.recheck(step)):
                continue
            self.submit(step, 0)

    def waits_for_earlier(self, step: str) -> bool:
        """Whether ``step`` must wait for a step above it that has not finished: one that
        reads what it reads (it may change it at run time: an alias, an unclassified
        call) or provides a name it was found reading at run time. A plain run would
        have run that step first."""
        ctx = self.ctx
        reads = set(ctx.keys.inputs(step)) | set(self.pipeline.steps[step].reads)
        for provider in set(ctx.keys.inputs(step).values()):
            entry = ctx.keys.knowledge.known(provider, ctx.key(provider))
            for group in getattr(entry, "aliases", ()) or ():
                if reads & set(group):
                    reads |= set(group)
        # Modules and hidden state are not values a step changes unseen: waiting on their
        # readers would serialise every pair of steps that call into one module.
        reads = {name for name in reads - self.pipeline.modules if not is_pseudo(name)}
        # Nor are builtins (``range``), names no cell defines, and the setup's immutable
        # constants (``ROUNDS = 40``): no step changes them in place. A step reaching for
        # names dynamically (``exec``, ``globals()``) may rebind any, so it is waited for on all.
        changeable = reads & self.changeable
        waited = self.waiting_for.get(step)
        for earlier in self.pipeline.order[: self.pipeline.order.index(step)]:
            if ctx.status.get(earlier) in ("done", "cached", "failed", "skipped", "cancelled", "interrupted"):
                continue
            if earlier == waited:
                return True
            if ctx.actions[earlier] != "run":
                continue
            earlier_reads = set(self.pipeline.steps[earlier].reads)
            if (changeable if earlier_reads.isdisjoint(DYNAMIC_NAMES) else reads) & earlier_reads:
                return True
        return False

    def unsettled(self) -> bool:
        """Whether a cached step still waits for a re-check (``recheck_deferred``)."""
        ctx = self.ctx
        return any(
            ctx.actions[s] == "cached" and s not in ctx.status and ctx.plan[s].recheck for s in self.pipeline.order
        )

    def settle_if_cached(self, step: str, entry: Any) -> bool:
        """``step``'s key, re-computed now that its upstream steps ran, has an entry:
        restored, not run (``RunContext.settle_cached``)."""
        if not self.ctx.settle_cached(step, entry):
            return False
        self.results[step] = {"outputs": self.ctx.cache.load_outputs(entry), "cached": True}
        return True

    def recheck_deferred(self, step: str) -> None:
        """A cached step whose plan waited on running steps that read what it reads."""
        ctx = self.ctx
        if not ctx.plan[step].recheck:
            return
        entry = ctx.settle_deferred(step)
        if entry is not None:
            self.results[step] = {"outputs": ctx.cache.load_outputs(entry), "cached": True}
            return
        self.pending.append(step)

    def submit(self, step: str, number: int, item: int | None = None) -> None:
        """Submit a task for ``step`` (for a ``map:`` step: list its elements, or run ``item``)."""
        ctx = self.ctx
        attempt = Attempt(step, number, item, expand=bool(self.pipeline.steps[step].map_over) and item is None)
        try:
            restores, inputs = self.inputs_of(step)
            resources = resource_amounts(self.pipeline.steps[step], self.pipeline.path)
            self.check_resources(step, resources)
        except CannotStart as e:
            self.fail(attempt, str(e))
            return
        if self.shared and not attempt.expand:
            attempt.staging = ctx.cache.staging_path(step)
        if item is None and not attempt.expand:
            attempt.before = clear_old_out_files(ctx, step)
        spec = self.spec(step, attempt, restores)
        future = self.client.submit(
            run_task,
            spec,
            inputs,
            self.topic,
            key=f"nbflow-{attempt.token}",
            pure=False,
            resources=resources or None,
        )
        attempt.future = future
        self.running[attempt.token] = attempt
        future.add_done_callback(lambda f, token=attempt.token: self.events.put(("done", token)))

    # ------------------------------------------------------------- events
    def on_notice(self, message: Mapping[str, Any]) -> None:
        if not isinstance(message, Mapping) or message.get("event") != "started":
            return
        attempt = self.running.get(message.get("token", ""))
        if attempt is None:
            return
        attempt.worker = message.get("worker")
        attempt.pid = message.get("pid")
        if attempt.started is None:
            attempt.started = time.monotonic()
            if self.ctx.status.get(attempt.step) != "running":
                self.ctx.start_step(attempt.step)

    def on_done(self, token: str) -> None:
        if token not in self.running:
            return
        # Drain "started" notices first: the finish may overtake them.
        self.drain_notices()
        attempt = self.running.pop(token)
        ctx, step, future = self.ctx, attempt.step, attempt.future
        if future.status == "finished":
            try:
                result = future.result()
            except Exception as e:  # noqa: BLE001 - the result could not be fetched
                self.discard(attempt)
                self.fail(attempt, f"the Dask task's result was lost: {type(e).__name__}: {e}")
                return
            if result.get("started") and ctx.status.get(step) != "running":
                ctx.start_step(step)
            self.on_result(attempt, result)
            if self.futures.get(step) is not future:
                future.release()  # the worker may forget the result now
            return
        if future.status == "cancelled":
            self.discard(attempt)
            self.fail(attempt, "the Dask task was cancelled by the cluster (scheduler lost?)")
            return
        error = future.exception()
        self.discard(attempt)
        from distributed.scheduler import KilledWorker

        if isinstance(error, KilledWorker):
            last = getattr(error, "last_worker", None)
            attempt.pid = getattr(last, "pid", None) or attempt.pid
            attempt.worker = getattr(last, "address", None) or attempt.worker
            if attempt.worker in self.restarting and attempt.started is None and attempt.number < 3:
                # Queued on a worker nbflow was restarting (to stop another step): not its fault.
                self.submit(step, attempt.number + 1, attempt.item)
                return
            death = (
                self.cluster.death(attempt.pid)
                if self.cluster is not None
                else "worker died (killed, or out of memory)"
            )
            where = f" (on {attempt.worker}, pid {attempt.pid})" if attempt.pid else ""
            if self.retry(attempt, f"{death}{where}"):
                return
            tried = f" after {attempt.number + 1} attempts" if attempt.number else ""
            self.fail(attempt, f"{death}{where}{tried}")
            return
        hint = ""
        if isinstance(error, ModuleNotFoundError) and "nbflow" in str(error):
            hint = "; install nbflow (and the notebook's libraries) where the Dask workers run"
        self.fail(attempt, f"the Dask task failed: {type(error).__name__}: {error}{hint}")

    def drain_notices(self) -> None:
        later = []
        while True:
            try:
                kind, item = self.events.get_nowait()
            except queue.Empty:
                break
            if kind == "notice":
                self.on_notice(item)
            else:
                later.append((kind, item))
        for item in later:
            self.events.put(item)

    def on_result(self, attempt: Attempt, result: dict[str, Any]) -> None:
        ctx, step = self.ctx, attempt.step
        if attempt.item is None and not attempt.expand:
            self.results[step] = result
        if result.get("prelude_outputs") and not self.prelude_outputs:
            self.prelude_outputs = result["prelude_outputs"]
        status = result["status"]
        duration = float(result.get("duration") or 0.0)
        if status == "expanded":
            self.expanded(attempt, result)
            return
        if status == "done" and attempt.item is not None:
            self.commit(attempt, result, duration, key=self.fans[step].keys[attempt.item])
            self.element_settled(attempt, result.get("outputs") or [], duration)
            return
        if status == "done":
            if not self.place_out_files(attempt, result):
                return
            ctx.keys.learn(step, result.get("learnt"), result.get("found_reads"))
            for name, provider in (result.get("found_reads") or {}).items():
                ctx.warn(f"{name} is read at run time (eval/exec); restored it from {provider} and ran again", step)
            self.commit(attempt, result, duration)
            if not self.shared and self.pipeline.dependants(step):
                self.futures[step] = attempt.future
            ctx.finish_step(step, "done", duration=duration)
            return
        self.discard(attempt)
        outputs = result.get("outputs") or []
        if status == "failed" and attempt.item is None and self.retry_after_provider(attempt, result):
            return
        if status == "setup-failed":
            ctx.failure = result["error"]
            self.setup_failed = True
            self.finish_once(step, "skipped", reasons=(SETUP_FAILED,))
        elif status == "interrupted" and result.get("reason") == "timeout":
            timeout = ctx.timeout_for(step) or 0
            error = f"timed out after {timeout:g} s (interrupted)"
            if not self.retry(attempt, error):
                self.fail(attempt, error, duration, result.get("traceback", ""), outputs)
        elif status == "interrupted":
            self.finish_once(step, "cancelled", duration=duration, error="cancelled")
        elif not (status == "failed" and self.retry(attempt, result["error"])):
            self.fail(attempt, result["error"], duration, result.get("traceback", ""), outputs)

    def retry(self, attempt: Attempt, error: str) -> bool:
        """Run ``attempt``'s step (or element) again after its backoff, if it has attempts
        left (``RunContext.retry_delay``): a new task, whose inputs are restored afresh."""
        label = f"element {attempt.item}: {error}" if attempt.item is not None else error
        delay = self.ctx.retry_delay(attempt.step, attempt.number + 1, label)
        if delay is None:
            return False
        self.later.append((time.monotonic() + delay, attempt.step, attempt.number + 1, attempt.item))
        return True

    def submit_retries(self) -> None:
        now = time.monotonic()
        due = [r for r in self.later if r[0] <= now]
        self.later = [r for r in self.later if r[0] > now]
        for _, step, number, item in due:
            self.submit(step, number, item)

    def drop_retries(self, status: StepStatus) -> None:
        for _, step, _, item in self.later:
            if item is None:
                self.finish_once(step, status, error="" if status == "skipped" else "cancelled")
        self.later.clear()

    def retry_after_provider(self, attempt: Attempt, result: Mapping[str, Any]) -> bool:
        """A ``NameError`` for a name a step above provides, which had not finished when
        this step started: run the step again once that step has finished."""
        from .kernel_state import missing_name

        step = attempt.step
        match = re.search(r": NameError: (.*)$", result.get("error") or "")
        name = missing_name("NameError", match.group(1)) if match else None
        if name is None or step in self.waiting_for:
            return False
        above = self.pipeline.order[: self.pipeline.order.index(step)]
        provider = next((s for s in reversed(above) if name in self.pipeline.steps[s].writes), None)
        if provider is None or self.ctx.status.get(provider) in ("failed", "skipped", "cancelled", "interrupted"):
            return False
        if name in (result.get("found_reads") or {}):
            return False
        self.waiting_for[step] = provider
        self.pending.append(step)
        return True

    def fail(
        self,
        attempt: Attempt,
        error: str,
        duration: float = 0.0,
        traceback: str = "",
        outputs: list[list[dict[str, Any]]] | None = None,
    ) -> None:
        """The task of ``attempt`` failed: its step fails (an element: the element does)."""
        if attempt.item is None:
            self.finish_once(attempt.step, "failed", duration=duration, error=error, traceback=traceback)
            return
        self.element_settled(attempt, outputs or [], duration, error)

    def finish_once(self, step: str, status: StepStatus, **details: Any) -> None:
        """Finish ``step`` unless it already is (the elements of a map: step end together)."""
        if self.ctx.status.get(step) in (None, "running"):
            self.ctx.finish_step(step, status, **details)

    def place_out_files(self, attempt: Attempt, result: Mapping[str, Any]) -> bool:
        """Put the ``out:`` files a worker without the notebook's folder sent back in place
        (never over the notebook itself nor into nbflow's home)."""
        folder = self.pipeline.path.resolve().parent
        home = self.ctx.config.home.resolve()
        sent = result.get("out_file_bytes")
        if sent is None:
            return True
        patterns = result.get("out_file_patterns") or {}
        attempt.found = {}
        try:
            for name, data in sent.items():
                target = (folder / name).resolve()
                if not target.is_relative_to(folder):
                    raise OSError(f"out:{name} is outside the notebook's folder")
                if target == self.pipeline.path.resolve() or target.is_relative_to(home):
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_bytes(target, data, perms=0o644)
                attempt.found[name] = patterns.get(name, name)
        except OSError as e:
            self.discard(attempt)
            self.fail(attempt, f"could not write its out: files here: {e}")
            return False
        return True

    def commit(self, attempt: Attempt, result: dict[str, Any], duration: float, key: str | None = None) -> None:
        """Write the step's outputs (and ``out:`` files) and make its entry visible (or warn why not)."""
        ctx, step = self.ctx, attempt.step
        staging = attempt.staging or ctx.cache.staging_path(step)
        out_files = stage_out_files(ctx, step, staging, attempt.found, attempt.before) if attempt.item is None else {}
        if out_files is None:
            return
        commit_entry(
            ctx,
            step,
            staging,
            outputs=result.get("outputs", []),
            dumped=result.get("dumped") or {},
            duration=duration,
            executor=DaskExecutor.name,
            key=key,
            files=result.get("files"),
            out_files=out_files,
        )

    def discard(self, attempt: Attempt) -> None:
        if attempt.staging is not None:
            self.ctx.cache.discard(attempt.staging)


def changeable_names(pipeline: Any, watched: list[str]) -> frozenset[str]:
    """The values a running step may change in place unseen, which a later step reading
    them must wait for: every value the pipeline writes (``watched``: its changes are
    found at run time and passed on) but the setup's immutable constants no step rebinds."""
    written = set().union(*(s.writes for s in pipeline.steps.values()))
    return frozenset(set(watched) - (constant_names(pipeline.setup_statements) - written))


__all__ = ["DaskExecutor", "DaskSession", "changeable_names", "resource_amounts", "write_output_notebook"]
