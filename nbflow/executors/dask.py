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

1. connect (on a thread, while the cached entries the run will load are verified);
   print the dashboard link;
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
nanny recorded ("worker died (signal 9; possibly out of memory)"), or is retried
``retries`` times; cancel cancels the submitted tasks, interrupts the running ones and
restarts a worker whose step does not stop within the grace period.

The cluster itself (nbflow's own ``LocalCluster``, settings chosen by measurement,
worker deaths from the nannies' log) is set up by ``dask_cluster``.

``dask.distributed`` is imported only when a step has to run.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import re
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import NbflowError, PipelineError
from ..fsutil import atomic_write_bytes, private_dir
from .base import RunContext, element_outputs, elements_failed, map_values
from .dask_cluster import Cluster, _record_death

if TYPE_CHECKING:
    from ..notebook import Step

log = logging.getLogger(__name__)


class DaskExecutor:
    """Run steps as tasks on a Dask cluster (see module docstring).

    ``cluster``: a ``distributed.Client``, or any cluster object with a
    ``scheduler_address`` (``LocalCluster``, ``SLURMCluster``, ``KubeCluster``...);
    ``scheduler``: the address of a running scheduler; neither: a ``LocalCluster`` of
    ``workers`` processes (default: one per core). ``retries``: times a step is run
    again when its worker dies. ``shared_cache``: whether the workers see the cache
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

    def execute(self, ctx: RunContext) -> None:
        metadata = ctx.pipeline.source.data.get("metadata", {})
        language = (metadata.get("kernelspec") or {}).get("language") or (metadata.get("language_info") or {}).get(
            "name", "python"
        )
        if language.lower() != "python":
            raise PipelineError(
                f"the dask executor runs Python notebooks; this one is {language} (use --executor kernel)",
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


# ------------------------------------------------------------------ the task


def _run_task(spec: dict[str, Any], inputs: dict[str, Any], topic: str) -> dict[str, Any]:
    """The Dask task of one step (runs on a worker)."""
    from distributed import get_worker

    from .on_worker import run_step_on_worker

    worker = get_worker()

    def notify(message: dict[str, Any]) -> None:
        worker.log_event(topic, {**message, "worker": worker.address})

    return run_step_on_worker(spec, inputs, notify)


def resource_amounts(step: Step, notebook: str | Path | None = None) -> dict[str, float]:
    """The ``resources:`` tags of ``step`` as Dask resource amounts (``4GB`` -> 4e9)."""
    amounts = {}
    for name, text in step.resources.items():
        try:
            amounts[name] = float(text)
        except ValueError:
            from dask.utils import parse_bytes

            try:
                amounts[name] = float(parse_bytes(text))
            except ValueError:
                raise PipelineError(
                    f"resources:{name}={text} is not a number or a size such as 4GB",
                    notebook=notebook,
                    cell=step.cell.number,
                    step=step.name,
                ) from None
    return amounts


class _Attempt:
    """One submission of a step."""

    def __init__(self, step: str, number: int, item: int | None = None, expand: bool = False) -> None:
        self.step = step
        self.number = number
        self.item = item  # the element of a map: step this task runs
        self.expand = expand  # the task only lists a map: step's elements
        self.token = f"{step}-{uuid.uuid4().hex[:12]}"
        self.future: Any = None
        self.staging: Path | None = None
        self.started: float | None = None  # monotonic, when the worker said so
        self.worker: str | None = None
        self.pid: int | None = None
        self.stopping: float | None = None  # monotonic, when nbflow asked it to stop


class _FanOut:
    """A ``map:`` step on the cluster: its elements, their keys and what became of them."""

    def __init__(self, started: float, count: int, keys: list[str], labels: list[str], fingerprints: list[str]) -> None:
        self.started = started
        self.count = count
        self.keys = keys
        self.labels = labels
        self.fingerprints = fingerprints
        self.outputs: dict[int, list[list[dict[str, Any]]]] = {}
        self.failures: dict[int, tuple[str, str]] = {}  # index: (label, error)
        self.open: set[int] = set()


class DaskSession:
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
        self.watched = sorted(
            set(ctx.pipeline.setup.writes).union(*(s.writes for s in ctx.pipeline.steps.values()))
            - ctx.pipeline.modules
        )
        self.running: dict[str, _Attempt] = {}  # by token: a map: step has one per element
        self.fans: dict[str, _FanOut] = {}
        self.results: dict[str, dict[str, Any]] = {}
        self.futures: dict[str, Any] = {}  # finished steps' futures (values travel through Dask)
        self.scattered: dict[str, Any] = {}
        self.prelude_outputs: list[list[dict[str, Any]]] = []
        self.no_workers_since: float | None = None
        self.restarting: set[str] = set()  # workers nbflow restarted to stop a step
        self.last_worker_check = 0.0

    # --------------------------------------------------------------- main
    def run(self) -> None:
        ctx = self.ctx
        connected: dict[str, Any] = {}
        connector = threading.Thread(target=self._connect, args=(connected,), name="nbflow-dask-connect", daemon=True)
        connector.start()
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
                except Exception as e:  # noqa: BLE001 - the run's results are in the cache either way
                    ctx.warn(f"output notebook not written: {type(e).__name__}: {e}")
            self.cluster.close()

    def _connect(self, out: dict[str, Any]) -> None:
        try:
            out["cluster"] = Cluster(self.executor, self.ctx)
        except Exception as e:  # noqa: BLE001 - reported by the run thread
            out["error"] = f"{type(e).__name__}: {e}"

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
        while self.pending or self.running or self.unsettled():
            if ctx.cancel.is_set():
                self.stop_all("cancelled")
                return
            if ctx.failure:
                self.stop_all("failed")
                return
            self.submit_ready()
            if not self.running:
                if self.pending:  # nothing can start: every remaining step waits on one that will not finish
                    for step in list(self.pending):
                        ctx.finish_step(step, "skipped", reasons=("the run stopped before this step",))
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
            if any(ctx.status.get(dep) not in ("done", "cached") for dep in self.pipeline.deps[step]):
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
        reads -= self.pipeline.modules
        waited = self.waiting_for.get(step)
        for earlier in self.pipeline.order[: self.pipeline.order.index(step)]:
            if ctx.status.get(earlier) in ("done", "cached", "failed", "skipped", "cancelled", "interrupted"):
                continue
            if earlier == waited or (ctx.actions[earlier] == "run" and reads & set(self.pipeline.steps[earlier].reads)):
                return True
        return False

    def unsettled(self) -> bool:
        """Whether a cached step still waits for a re-check (``recheck_deferred``)."""
        ctx = self.ctx
        return any(
            ctx.actions[s] == "cached" and s not in ctx.status and ctx.plan[s].recheck for s in self.pipeline.order
        )

    def settle_if_cached(self, step: str, entry: Any) -> bool:
        """``step``'s key, re-computed now that its upstream steps ran, has an entry: restored, not run."""
        if entry is None:
            return False
        ctx = self.ctx
        ctx.actions[step] = "cached"
        ctx.restore_files(step)
        if ctx.actions[step] != "cached":
            return False
        self.results[step] = {"outputs": ctx.cache.load_outputs(entry), "cached": True}
        ctx.finish_step(step, "cached", reasons=())
        return True

    def recheck_deferred(self, step: str) -> None:
        """A cached step whose plan waited on running steps that read what it reads."""
        ctx = self.ctx
        if not ctx.plan[step].recheck:
            return
        if self.settle_if_cached(step, ctx.keys.recheck(step, deferred=True)):
            return
        ctx.actions[step] = "run"
        ctx.reasons[step] = ("its inputs changed at run time",)
        ctx.queue(step)
        self.pending.append(step)

    def submit(self, step: str, number: int, item: int | None = None) -> None:
        """Submit a task for ``step`` (for a ``map:`` step: list its elements, or run ``item``)."""
        ctx = self.ctx
        attempt = _Attempt(step, number, item, expand=bool(self.pipeline.steps[step].map_over) and item is None)
        try:
            restores, inputs = self.inputs_of(step)
            resources = resource_amounts(self.pipeline.steps[step], self.pipeline.path)
            self.check_resources(step, resources)
        except _CannotStart as e:
            self.fail(attempt, str(e))
            return
        if self.shared and not attempt.expand:
            attempt.staging = ctx.cache.staging_path(step)
        spec = self.spec(step, attempt, restores)
        future = self.client.submit(
            _run_task,
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

    def spec(self, step: str, attempt: _Attempt, restores: list[list[Any]]) -> dict[str, Any]:
        ctx = self.ctx
        source = self.pipeline.source
        prelude = [["setup", c.number, c.source] for c in source.setup]
        if source.parameters is not None:
            prelude.append(["parameters", source.parameters.number, source.parameters.source])
        prelude.sort(key=lambda item: item[1])
        info = self.pipeline.steps[step]
        fan: dict[str, Any] | None = None
        if info.map_over:
            fan = {"iterable": info.map_over, "element": info.map_as}
            if attempt.expand:
                fan["expand"] = True
            else:
                fan.update(index=attempt.item, fingerprint=self.fans[step].fingerprints[attempt.item])
        stored = ctx.stored_names(step)
        return {
            "token": attempt.token,
            "step": step,
            "folder": str(self.pipeline.path.resolve().parent),
            "prelude": prelude,
            "params": dict(ctx.params),
            "cells": [[c.number, c.source] for c in self.pipeline.steps[step].cells],
            "restores": restores,
            "shared": self.shared,
            "cache_root": str(ctx.cache.root),
            "staging": str(attempt.staging) if attempt.staging else None,
            "stored": stored,
            # An element's values are only ever read as the step's lists: keep them all.
            "required": stored if fan else ctx.required_names(step),
            "by_reference": sorted(self.pipeline.setup.writes),
            "output_limit": ctx.config.output_limit,
            "timeout": ctx.timeout_for(step),
            "out_files": [] if fan else list(info.out_files),
            "map": fan,
            "watched": self.watched,
            "reads": sorted(set(info.reads) | set(ctx.keys.inputs(step))),
            "providers": self.providers_before(step),
        }

    def providers_before(self, step: str) -> dict[str, list[str]]:
        """For a read found at run time: ``{value: [step, key]}`` of the finished steps before ``step``."""
        ctx = self.ctx
        found: dict[str, list[str]] = {}
        for earlier in self.pipeline.order[: self.pipeline.order.index(step)]:
            if ctx.status.get(earlier) in ("done", "cached"):
                for name in [*self.pipeline.steps[earlier].writes, *ctx.keys.run_writes(earlier)]:
                    found[name] = [earlier, ctx.key(earlier)]
        return found

    def inputs_of(self, step: str) -> tuple[list[list[Any]], dict[str, Any]]:
        """What the task restores (``[[provider, key, names]]``) and, without a shared
        cache, the providers' files (futures of this run's tasks, or scattered bytes)."""
        ctx = self.ctx
        needs: dict[str, list[str]] = {}
        reads = ctx.keys.inputs(step)
        for name, provider in sorted(reads.items()):
            needs.setdefault(provider, []).append(name)
        restores, inputs = [], {}
        for provider, names in needs.items():
            key = ctx.key(provider)
            entry = ctx.cache.lookup(provider, key)
            missing = [n for n in names if entry is None or n not in entry.names]
            if entry is not None and not missing:
                # values sharing memory or an index with those read are restored with them
                for group in entry.manifest.get("aliases", ()):
                    if set(group) & set(names):
                        names += [n for n in group if n not in names and n not in reads and n in entry.names]
            if missing:
                why = (entry.missing.get(missing[0]) if entry else None) or "it was not cached"
                raise _CannotStart(
                    f'could not restore its inputs: value {missing[0]} of step "{provider}" is needed but {why}, '
                    "so it cannot be passed to another Dask worker; make it picklable, compute it in this step, "
                    "or run with --executor kernel"
                )
            restores.append([provider, key, names])
            if not self.shared:
                inputs[provider] = self.futures.get(provider) or self.scatter_entry(entry)
        return restores, inputs

    def scatter_entry(self, entry: Any) -> Any:
        if entry.step not in self.scattered:
            if entry.items:
                payload = self.repack(entry)
            else:
                files = {
                    n: (entry.path / n).read_bytes() for n in entry.manifest.get("files", {}) if n.endswith(".pkl")
                }
                payload = {"values": dict(entry.names), "files": files}
            self.scattered[entry.step] = self.client.scatter(payload, hash=False)
        return self.scattered[entry.step]

    def repack(self, entry: Any) -> dict[str, Any]:
        """A ``map:`` step's entry as one payload: its lists are spread over the
        elements' entries, which a worker without the cache folder cannot read."""
        import shutil
        import tempfile

        from ..cache import Cache

        values = self.ctx.cache.load_values(entry, list(entry.names), mmap=False)
        folder = Path(tempfile.mkdtemp(prefix="nbflow-repack-"))
        try:
            dumped = Cache(folder).dump_values(
                folder / "entry", values, list(values), sorted(self.pipeline.setup.writes)
            )
            if "error" in dumped:
                raise _CannotStart(f'could not send the values of step "{entry.step}" to a worker: {dumped["error"]}')
            files = {n: (folder / "entry" / n).read_bytes() for n in dumped.get("files", {})}
            return {"values": dumped["values"], "files": files}
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def check_resources(self, step: str, resources: Mapping[str, float]) -> None:
        if not resources:
            return
        workers = self.client.scheduler_info().get("workers", {})
        if not workers:
            return  # an adaptive cluster may still start workers that have them
        for info in workers.values():
            offered = info.get("resources") or {}
            if all(offered.get(k, 0) >= v for k, v in resources.items()):
                return
        wanted = " ".join(f"{k}={v:g}" for k, v in resources.items())
        offered = sorted({f"{k}={v:g}" for info in workers.values() for k, v in (info.get("resources") or {}).items()})
        raise _CannotStart(
            f"needs Dask worker resources {wanted}, which no worker offers "
            f"({'workers offer ' + ', '.join(offered) if offered else 'the workers declare no resources'}); "
            f'start workers with e.g. dask worker ADDRESS --resources "{wanted}"'
        )

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
            death = self.death_of(attempt)
            where = f" (on {attempt.worker}, pid {attempt.pid})" if attempt.pid else ""
            if attempt.number < self.executor.retries:
                ctx.warn(
                    f"{death}{where}; running the step again ({attempt.number + 1} of {self.executor.retries})", step
                )
                self.submit(step, attempt.number + 1, attempt.item)
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

    def on_result(self, attempt: _Attempt, result: dict[str, Any]) -> None:
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
            self.finish_once(step, "skipped", reasons=("the setup failed",))
        elif status == "interrupted" and result.get("reason") == "timeout":
            timeout = ctx.timeout_for(step) or 0
            error = f"timed out after {timeout:g} s (interrupted)"
            self.fail(attempt, error, duration, result.get("traceback", ""), outputs)
        elif status == "interrupted":
            self.finish_once(step, "cancelled", duration=duration, error="cancelled")
        else:
            self.fail(attempt, result["error"], duration, result.get("traceback", ""), outputs)

    def retry_after_provider(self, attempt: _Attempt, result: Mapping[str, Any]) -> bool:
        """A ``NameError`` for a name a step above provides, which had not finished when
        this step started: run the step again once that step has finished."""
        from .kernel import missing_name

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
        attempt: _Attempt,
        error: str,
        duration: float = 0.0,
        traceback: str = "",
        outputs: list[list[dict[str, Any]]] | None = None,
    ) -> None:
        """The task of ``attempt`` failed: its step fails (an element: the element does)."""
        if attempt.item is None:
            self.finish_once(attempt.step, "failed", duration=duration, error=error, traceback=traceback)
            return
        fan = self.fans[attempt.step]
        fan.failures[attempt.item] = (fan.labels[attempt.item], error)
        self.element_settled(attempt, outputs or [], duration, error)

    def finish_once(self, step: str, status: str, **details: Any) -> None:
        """Finish ``step`` unless it already is (the elements of a map: step end together)."""
        if self.ctx.status.get(step) in (None, "running"):
            self.ctx.finish_step(step, status, **details)

    # ------------------------------------------------------------- fan-out
    def expanded(self, attempt: _Attempt, result: Mapping[str, Any]) -> None:
        """The elements of a ``map:`` step are known: restore the cached ones, submit the rest."""
        from ..events import ItemFinished
        from ..plan import item_key

        ctx, step = self.ctx, attempt.step
        count = int(result["count"])
        keys = [item_key(self.pipeline, step, ctx.keys.parts(step), f) for f in result["fingerprints"]]
        fan = _FanOut(attempt.started or time.monotonic(), count, keys, list(result["labels"]), result["fingerprints"])
        self.fans[step] = fan
        forced = set(ctx.items.get(step, ()))
        for i in range(count):
            entry = None if i in forced else ctx.verified_entry(step, keys[i])
            if entry is None:
                fan.open.add(i)
                continue
            fan.outputs[i] = ctx.cache.load_outputs(entry)
            ctx.publish(ItemFinished(ctx.run_id, step=step, item=i, total=count, status="cached", label=fan.labels[i]))
        for i in sorted(fan.open):
            self.submit(step, 0, i)
        self.settle(step)

    def element_settled(
        self, attempt: _Attempt, outputs: list[list[dict[str, Any]]], duration: float, error: str = ""
    ) -> None:
        from ..events import ItemFinished

        ctx, step, i = self.ctx, attempt.step, attempt.item
        assert i is not None
        fan = self.fans[step]
        fan.outputs[i] = outputs
        fan.open.discard(i)
        ctx.publish(
            ItemFinished(
                ctx.run_id,
                step=step,
                item=i,
                total=fan.count,
                status="failed" if error else "done",
                label=fan.labels[i],
                duration=duration,
                error=error,
            )
        )
        self.settle(step)

    def settle(self, step: str) -> None:
        """Finish a ``map:`` step once every element is settled: its entry lists the
        elements' keys, its outputs are theirs in order (as the kernel executor's)."""
        ctx, fan = self.ctx, self.fans[step]
        if fan.open or ctx.status.get(step) not in (None, "running"):
            return
        combined = element_outputs(
            len(self.pipeline.steps[step].cells), [(fan.labels[i], fan.outputs.get(i) or []) for i in range(fan.count)]
        )
        self.results[step] = {"outputs": combined}
        duration = time.monotonic() - fan.started
        if fan.failures:
            ctx.finish_step(step, "failed", duration=duration, error=elements_failed(fan.count, fan.failures))
            return
        staging = ctx.cache.staging_path(step)
        try:
            ctx.cache.write_outputs(staging, combined)
            ctx.cache.commit_staged(
                staging,
                step=step,
                key=ctx.key(step),
                parts=ctx.parts(step),
                dumped={**map_values(ctx.stored_names(step), fan.count), "items": fan.keys, "out_files": {}},
                meta={"run_id": ctx.run_id, "duration": duration, "executor": "dask"},
            )
        except OSError as e:
            ctx.cache.discard(staging)
            ctx.warn(f"cache entry not written ({e.strerror or e}: {e.filename or staging})", step)
        ctx.finish_step(step, "done", duration=duration)

    def place_out_files(self, attempt: _Attempt, result: Mapping[str, Any]) -> bool:
        """Put the ``out:`` files a worker without the notebook's folder sent back in place."""
        folder = self.pipeline.path.resolve().parent
        try:
            for name, data in (result.get("out_file_bytes") or {}).items():
                target = (folder / name).resolve()
                if not target.is_relative_to(folder):
                    raise OSError(f"out:{name} is outside the notebook's folder")
                target.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_bytes(target, data, perms=0o644)
        except OSError as e:
            self.discard(attempt)
            self.fail(attempt, f"could not write its out: files here: {e}")
            return False
        return True

    def commit(self, attempt: _Attempt, result: dict[str, Any], duration: float, key: str | None = None) -> None:
        """Write the step's outputs (and ``out:`` files) and make its entry visible (or warn why not)."""
        ctx, step = self.ctx, attempt.step
        dumped = result.get("dumped") or {}
        staging = attempt.staging or ctx.cache.staging_path(step)
        if "error" in dumped:
            ctx.cache.discard(staging)
            ctx.warn(f"values not cached: {dumped['error']}", step)
            return
        for value, why in dumped.get("missing", {}).items():
            ctx.warn(f"value {value} not cached: {why}", step)
        try:
            private_dir(staging)
            for name, data in (result.get("files") or {}).items():
                with open(staging / name, "wb") as f:
                    f.write(data)
            ctx.cache.write_outputs(staging, result.get("outputs", []))
            out_files = self.pipeline.steps[step].out_files if attempt.item is None else ()
            if out_files:
                # Staged now, before a later step can change them (as the kernel executor does).
                dumped = {**dumped, "out_files": ctx.cache.stage_files(staging, self.pipeline.path.parent, out_files)}
            ctx.cache.commit_staged(
                staging,
                step=step,
                key=key or ctx.key(step),
                parts=ctx.parts(step),
                dumped=dumped,
                meta={
                    "run_id": ctx.run_id,
                    "duration": duration,
                    "executor": "dask",
                    **(ctx.keys.manifest(step) if attempt.item is None else {}),
                },
            )
        except OSError as e:
            ctx.cache.discard(staging)
            ctx.warn(f"cache entry not written ({e.strerror or e}: {e.filename or staging})", step)

    def discard(self, attempt: _Attempt) -> None:
        if attempt.staging is not None:
            self.ctx.cache.discard(attempt.staging)

    def death_of(self, attempt: _Attempt, wait: float = 3.0) -> str:
        """Why the worker that ran ``attempt`` died, from its nanny's log (best effort)."""
        if attempt.pid is None:
            return "worker died (killed, or out of memory)"
        deadline = time.monotonic() + wait
        while True:
            found = self.cluster.deaths.deaths.get(attempt.pid) if self.cluster is not None else None
            found = found or self.death_from_logs(attempt.pid)
            if found:
                return found
            if time.monotonic() >= deadline:
                return "worker died (killed, or out of memory)"
            time.sleep(0.1)

    def death_from_logs(self, pid: int) -> str | None:
        deaths: dict[int, str] = {}
        try:
            logs = self.client.get_worker_logs(nanny=True)
        except Exception:  # noqa: BLE001 - no nannies, or they cannot be asked
            return None
        for lines in logs.values():
            for _level, message in lines if isinstance(lines, list) else []:
                _record_death(str(message), deaths)
        return deaths.get(pid)

    # --------------------------------------------------------------- watch
    def watch(self) -> None:
        """Time-outs of stuck steps and a cluster left with no worker."""
        ctx = self.ctx
        now = time.monotonic()
        grace = ctx.config.kill_grace
        for token, attempt in list(self.running.items()):
            timeout = ctx.timeout_for(attempt.step)
            if timeout and attempt.started is not None and now - attempt.started > timeout + grace + 1.0:
                # The worker's own timer interrupts the step; this one did not stop.
                self.running.pop(token)
                self.kill([attempt])
                self.fail(
                    attempt,
                    f"timed out after {timeout:g} s; the step did not stop when interrupted and its worker "
                    "was restarted",
                    duration=now - attempt.started,
                )
        if now - self.last_worker_check < 2.0:
            return
        self.last_worker_check = now
        try:
            workers = len(self.client.nthreads())
        except Exception:  # noqa: BLE001 - the scheduler did not answer this time
            workers = -1
        if workers != 0:
            self.no_workers_since = None
            return
        self.no_workers_since = self.no_workers_since or now
        if now - self.no_workers_since > self.executor.worker_timeout:
            error = f"the Dask cluster has had no worker for {self.executor.worker_timeout:g} s"
            for token, attempt in list(self.running.items()):
                self.running.pop(token)
                self.kill([attempt])
                self.fail(attempt, error)
            ctx.failure = error

    def stop_all(self, why: str) -> None:
        """Cancel what was submitted; running steps end ``cancelled`` (or ``skipped``)."""
        attempts = list(self.running.values())
        self.running.clear()
        self.kill(attempts, reason="cancelled")
        now = time.monotonic()
        for attempt in attempts:
            fan = self.fans.get(attempt.step)
            started = fan.started if fan else attempt.started
            duration = now - started if started else 0.0
            if why == "cancelled":
                self.finish_once(attempt.step, "cancelled", duration=duration, error="cancelled")
            elif started is not None:
                self.finish_once(
                    attempt.step, "interrupted", duration=duration, error="stopped: the setup failed on another worker"
                )
            else:
                self.finish_once(attempt.step, "skipped", reasons=("the setup failed",))

    def kill(self, attempts: list[_Attempt], reason: str = "timeout") -> None:
        """Cancel ``attempts``' tasks, interrupt their code, restart workers that ignore it."""
        if not attempts:
            return
        from .on_worker import interrupt_step, running_steps

        client = self.client
        with contextlib.suppress(Exception):
            client.cancel([a.future for a in attempts], force=True)
        for attempt in attempts:
            self.discard(attempt)
        started = [a for a in attempts if a.worker]
        for attempt in started:
            with contextlib.suppress(Exception):
                client.run(interrupt_step, attempt.token, reason, workers=[attempt.worker], on_error="return")
        deadline = time.monotonic() + self.ctx.config.kill_grace
        while started and time.monotonic() < deadline:
            try:
                running = client.run(running_steps, workers=[a.worker for a in started], on_error="return")
            except Exception:  # noqa: BLE001 - ask again until the deadline
                running = {}
            started = [a for a in started if isinstance(running.get(a.worker), list) and a.token in running[a.worker]]
            if started:
                time.sleep(0.1)
        if started:
            self.restarting.update(a.worker for a in started if a.worker)
            # Restarting waits for the new worker to register: not the run's business.
            threading.Thread(target=self._restart, args=(started,), name="nbflow-dask-restart", daemon=True).start()

    def _restart(self, attempts: list[_Attempt]) -> None:
        try:
            self.client.restart_workers([a.worker for a in attempts], timeout=120, raise_for_error=False)
        except Exception as e:  # noqa: BLE001 - nothing more nbflow can do from here
            log.warning("nbflow: could not restart Dask workers %s (%s)", [a.worker for a in attempts], e)

    def release_all(self) -> None:
        """Let go of every future: nothing of the run stays in the cluster's memory."""
        for attempt in self.running.values():
            with contextlib.suppress(Exception):
                attempt.future.release()
        for future in [*self.futures.values(), *self.scattered.values()]:
            with contextlib.suppress(Exception):
                future.release()
        self.futures.clear()
        self.scattered.clear()


class _CannotStart(Exception):
    """A step cannot be submitted (its inputs are not cached, no worker can take it)."""


# ------------------------------------------------------------ output notebook


def write_output_notebook(
    ctx: RunContext, results: Mapping[str, Mapping[str, Any]], prelude_outputs: list[list[dict[str, Any]]]
) -> None:
    """The executed notebook, as the kernel executor would leave it: each step cell with
    its outputs (captured now, or the cached ones), the parameters injected after the
    parameters cell. Standard library only (no nbformat import on the client)."""
    pipeline = ctx.pipeline
    assert ctx.output_path is not None
    data = json.loads(json.dumps(pipeline.source.data))
    cells = data["cells"]
    prelude = sorted(
        [*pipeline.source.setup, *([pipeline.source.parameters] if pipeline.source.parameters else [])],
        key=lambda c: c.index,
    )
    for cell, outputs in zip(prelude, prelude_outputs, strict=False):
        cells[cell.index]["outputs"] = outputs
    for name in pipeline.order:
        step = pipeline.steps[name]
        cached = ctx.status.get(name) == "cached"
        outputs: list[list[dict[str, Any]]] = []
        if cached:
            with contextlib.suppress(Exception):
                entry = ctx.cache.lookup(name, ctx.key(name))
                outputs = ctx.cache.load_outputs(entry) if entry else []
        elif name in results:
            outputs = list(results[name].get("outputs") or [])
        for i, cell in enumerate(step.cells):
            target = cells[cell.index]
            target.setdefault("metadata", {})["nbflow"] = {"step": name, **({"cached": True} if cached else {})}
            if target.get("cell_type") == "code":
                target["outputs"] = outputs[i] if i < len(outputs) else []
    for cell in cells:
        if cell.get("cell_type") == "code":
            cell.setdefault("outputs", [])
            cell["execution_count"] = None
    if ctx.given and pipeline.source.parameters is not None:
        source = "# Parameters\n" + "".join(f"{k} = {v!r}\n" for k, v in ctx.given.items())
        injected = {
            "cell_type": "code",
            "id": uuid.uuid4().hex[:8],
            "metadata": {"tags": ["injected-parameters"]},
            "execution_count": None,
            "outputs": [],
            "source": source,
        }
        cells.insert(pipeline.source.parameters.index + 1, injected)
    data.setdefault("metadata", {})["nbflow"] = {
        **(data["metadata"].get("nbflow") or {}),
        "run": ctx.run_id,
        "executor": "dask",
        "parameters": ctx.params,
    }
    ctx.output_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(
        ctx.output_path, json.dumps(data, indent=1, ensure_ascii=False, default=repr).encode("utf-8"), perms=0o644
    )


__all__ = [
    "DaskExecutor",
    "resource_amounts",
    "write_output_notebook",
]
