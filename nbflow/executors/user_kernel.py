"""The ``live`` executor: steps run in the user's own IPython kernel, in its namespace.

The kernel executor starts a kernel of its own; the Dask executor sends steps to
workers. This one runs where the person building the pipeline works: the namespace
they type in (``%nbflow run``, or JupyterLab executing the step cells through the
notebook's own session). It differs from the other two only in *where* code runs:

* the values a step needs come back through ``in_kernel.KernelSide.restore`` (checked
  entries, large arrays memory-mapped, hidden state put back) -- called in process;
* the ``Ledger`` (``kernel_state``) says whose version of each name the kernel holds,
  here *with the key* and kept from run to run (``KernelState``): the notebook changes
  under a kernel that lives for hours, so a name is current only under its step's
  current key;
* a finished step's values are dumped by ``KernelSide.dump`` from the namespace and
  committed by ``outcome.commit_entry`` (through ``kernel_state.Committer``), exactly as
  the kernel executor commits them, with the executor name ``live`` in the manifest;
* its outputs are recorded as they are produced (``live_outputs.record_outputs``) while
  still going to the cell that runs them;
* a ``map:`` step runs once per element (``live_map``: the element loop of ``map_loop``,
  the kernel executor's too); a step's ``timeout:`` interrupts its cell from inside the
  kernel (``live_watchdog``); ``retry:`` runs it again with its inputs restored; early cut-off (``cut_off``, ``settle_deferred``)
  settles a step through ``RunContext.settle_cached``/``settle_deferred`` -- the shared
  code the kernel and Dask executors use -- and restores its values instead of running it.

``LiveRun`` reads top to bottom in execution order: ``prelude`` (the setup and the
parameters, only when the kernel does not hold their current version), then per step
``restore_step`` or ``start_step`` / (cells run) / ``finish_step`` (``run_step`` does the
three for ``%nbflow run``), then ``close``. A run
that executes something is a run of the run store (``run.prepare_run`` with this
executor, ``Run.open``/``Run.close``) and publishes the same events as the kernel
executor's, so ``nbflow runs``, the widget and the server see it; a restore alone is not
a run. ``nbflow.live`` (the driver the JupyterLab extension calls and the ``%nbflow``
magics) drives it.

This module must not know about JupyterLab, magics or the hand-run ledger (``nbflow.live``
does), and runs only inside an IPython shell.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .. import hidden_state
from ..errors import NbflowError, PipelineError
from ..graph import PARAMETERS, SETUP
from ..parameters import canonical
from .base import RunContext
from .kernel_state import Committer, Ledger
from .live_outputs import record_outputs
from .live_watchdog import Watchdog
from .outcome import (
    NotRestorable,
    clear_old_out_files,
    error_text,
    out_files_problem,
    restore_specs,
    stage_out_files,
)

if TYPE_CHECKING:
    from ..graph import Pipeline
    from ..plan import Plan
    from ..run import Run
    from .in_kernel import KernelSide

#: What the live run does with a step (``begin``'s answer): ``skip`` = neither.
LiveAction = Literal["restore", "run", "skip"]
#: How the value a name holds came to be: restored from the cache, run by nbflow, run by hand.
How = Literal["restored", "run", "by hand"]


@dataclass
class Origin:
    """Where the value of one name in the kernel came from."""

    step: str
    key: str
    run_id: int | None
    how: How


@dataclass
class KernelState:
    """What nbflow knows about the user's kernel, kept from run to run (one per shell).

    ``holder``/``keys`` are the ``Ledger``'s (shared with every ``LiveRun``);
    ``origin`` says, per name, which step, key and run it came from; ``busy`` is set
    while nbflow itself executes code (the hand-run hooks then look away).
    """

    shell: Any
    baseline: hidden_state.Baseline
    holder: dict[str, str] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    origin: dict[str, Origin] = field(default_factory=dict)
    setup_token: str | None = None
    busy: int = 0
    sides: dict[str, Any] = field(default_factory=dict)
    #: the live run under way (frontend-driven runs span several requests)
    current: LiveRun | None = None
    #: the parameter values of the last prelude, and the pipeline it was for
    params: dict[str, Any] = field(default_factory=dict)
    pipeline: Any = None
    #: the notebook file's (mtime, size) when ``pipeline`` was read from disk (``None``: from an editor)
    pipeline_stamp: tuple[int, int] | None = None
    #: steps run by hand and not cached: why (``nbflow.live.ledger``)
    by_hand: dict[str, str] = field(default_factory=dict)

    @property
    def namespace(self) -> dict[str, Any]:
        return self.shell.user_ns

    def side(self, pipeline: Pipeline) -> KernelSide:
        """The kernel-side helper for ``pipeline``'s cache, working on this namespace."""
        from .in_kernel import KernelSide

        root = str(pipeline.config.cache_dir)
        side = self.sides.get(root)
        if side is None:
            side = KernelSide(root, namespace=self.namespace)
            self.sides[root] = side
        side.baseline = self.baseline
        side.by_reference = sorted(pipeline.setup.writes)
        return side

    def forget(self, name: str) -> None:
        """Code nbflow did not run changed ``name``: no step's version is held."""
        self.holder.pop(name, None)
        self.keys.pop(name, None)
        self.origin.pop(name, None)

    @contextmanager
    def running(self) -> Iterator[None]:
        self.busy += 1
        try:
            yield
        finally:
            self.busy -= 1


def kernel_state(shell: Any = None) -> KernelState:
    """The ``KernelState`` of ``shell`` (default: the running IPython), created on first use."""
    if shell is None:
        from IPython import get_ipython

        shell = get_ipython()
        if shell is None:
            raise RuntimeError("nbflow's live executor needs an IPython kernel")
    state = getattr(shell, "_nbflow_kernel_state", None)
    if state is None:
        state = KernelState(shell, hidden_state.Baseline.capture())
        shell._nbflow_kernel_state = state
    return state


def parameter_token(value: Any) -> str:
    """What identifies a parameter's value in the ledger's ``keys``."""
    try:
        text = json.dumps(canonical(value), sort_keys=True, default=repr)
    except Exception:  # noqa: BLE001 - any value: its repr then
        text = repr(value)
    return hashlib.sha256(text.encode()).hexdigest()


def setup_token(pipeline: Pipeline, params: Mapping[str, Any]) -> str:
    """What identifies the setup the kernel ran: its code and the parameters it reads."""
    data = [
        [c.source for c in pipeline.source.setup],
        {p: parameter_token(params.get(p)) for p in pipeline.setup_params},
    ]
    return hashlib.sha256(json.dumps(data).encode()).hexdigest()


def context(pipeline: Pipeline, plan: Plan, run_id: int = 0) -> RunContext:
    """A ``RunContext`` for work that is not a recorded run (a restore): events go nowhere."""
    from ..events import EventBus

    return RunContext(
        run_id=run_id,
        pipeline=pipeline,
        plan=plan,
        params=dict(plan.params),
        given={},
        config=pipeline.config,
        cache=pipeline.config.cache(),
        bus=EventBus(),
        cancel=threading.Event(),
        output_path=None,
    )


class Interrupted(Exception):
    """The user interrupted the kernel (``KeyboardInterrupt``) while a step ran."""


class LiveRun:
    """One restore or run in the user's kernel (see module docstring)."""

    def __init__(self, state: KernelState, ctx: RunContext, run: Run | None = None) -> None:
        self.state = state
        self.ctx = ctx
        self.run = run
        self.pipeline = ctx.pipeline
        self.ledger = Ledger(ctx.pipeline, ctx.keys.inputs, ctx.key, state.holder, state.keys)
        self.side = state.side(ctx.pipeline)
        self.committer = Committer(ctx, "live") if run is not None else None
        #: background dumps: staging -> (step, outputs, duration, out files, element key or None)
        self.pending: dict[str, tuple[str, list, float, dict | None, str | None]] = {}
        #: what each step's cells showed, for steps run here on the frontend's behalf (``driver.run_step``)
        self.outputs: dict[str, list[list[dict[str, Any]]]] = {}
        #: attempts made of each step (``attempts``: more than one when it was retried)
        self.tries: dict[str, int] = {}
        #: interrupts a step's cell when its ``timeout:`` passes (``live_watchdog``)
        self.watchdog = Watchdog(ctx.config.kill_grace)
        self.started: dict[str, float] = {}
        #: files already under a step's out: folders and globs before it ran (``clear_old_out_files``)
        self.before: dict[str, dict[str, tuple[int, int]]] = {}
        #: what the driver decided (``begin``): mode, target step, action per step
        self.mode = "stale"
        self.target: str | None = None
        self.decided: dict[str, str] = {}
        #: the step whose cells the frontend is executing, and the cells seen meanwhile
        self.active: str | None = None
        self.seen: list[tuple[str | None, str]] = []
        #: how many of the run's events the driver has handed to the frontend (``driver.call``)
        self.forwarded = 0
        self.warnings: list[str] = []
        self.watched = ctx.watched_names()
        self.state.baseline.cwd = str(ctx.pipeline.path.parent)
        from ..events import RunWarning

        ctx.bus.subscribe(
            lambda e: (
                self.warnings.append(f"{e.step}: {e.message}" if e.step else e.message)
                if isinstance(e, RunWarning)
                else None
            )
        )

    @property
    def run_id(self) -> int | None:
        return self.run.id if self.run is not None else None

    # ------------------------------------------------------------ prelude
    def prelude(self) -> None:
        """Run the setup cells (when the kernel does not hold their current version) and
        set the parameters, as a plain run starts."""
        ctx, ns = self.ctx, self.state.namespace
        token = setup_token(self.pipeline, ctx.params)
        if self.state.setup_token != token:
            self.state.setup_token = None
            for cell in self.pipeline.source.setup:
                with self.state.running():
                    result = self.state.shell.run_cell(cell.source, store_history=False, silent=True)
                error = result.error_before_exec or result.error_in_exec
                if isinstance(error, KeyboardInterrupt):
                    raise Interrupted("interrupted during the setup")
                if error is not None:
                    raise PipelineError(
                        f"the setup raised {type(error).__name__}: {error}",
                        notebook=self.pipeline.path,
                        cell=cell.number,
                    )
            self.state.setup_token = token
            for name in self.pipeline.setup.writes:
                self.state.holder[name], self.state.keys[name] = SETUP, token
                self.state.origin.pop(name, None)
        for name, value in ctx.params.items():
            token = parameter_token(value)
            if self.state.holder.get(name) != PARAMETERS or self.state.keys.get(name) != token or name not in ns:
                ns[name] = value
                self.state.holder[name], self.state.keys[name] = PARAMETERS, token
                self.state.origin.pop(name, None)

    # ----------------------------------------------------------- restores
    def holds_current(self, step: str) -> bool:
        """Whether the kernel holds every value ``step`` writes, under its current key."""
        names = [n for n in self.ctx.stored_names(step) if not hidden_state.is_pseudo(n)]
        return bool(names) and all(self.ledger.holds(n, step) and n in self.state.namespace for n in names)

    def restore_step(
        self, step: str, key: str | None = None, names: list[str] | None = None
    ) -> tuple[dict[str, Origin], dict[str, str]]:
        """Put the values of ``step``'s entry (its current key's, or ``key``'s) into the
        namespace -- ``names`` of them, default all, with the hidden state it recorded.

        Returns ``(restored, missing)``: ``{name: Origin}`` and ``{name: why}``.
        """
        ctx = self.ctx
        self.flush()
        key = key or ctx.key(step)
        entry = ctx.verified_entry(step, key)
        if entry is None:
            return {}, {n: "its cache entry is missing or corrupt" for n in (names or ctx.stored_names(step))}
        states = [n for n in entry.names if hidden_state.is_pseudo(n) and _restorable_state(self.pipeline, n, step)]
        wanted = [n for n in entry.names if not hidden_state.is_pseudo(n) and (names is None or n in names)]
        with self.state.running():
            self.side.restore([[step, entry.key, [*states, *wanted]]])
        if key == ctx.key(step):
            ctx.restore_files(step)  # its out: files too, if missing or changed
        missing = {n: why for n, why in entry.missing.items() if names is None or n in names}
        return self._restored(step, entry, [*states, *wanted]), missing

    def restore_inputs(self, step: str) -> dict[str, Origin]:
        """Restore the values ``step`` reads that the kernel does not hold in their current
        version (``NotRestorable`` when one is not cached)."""
        needs = self.ledger.needed(step)
        if not needs:
            return {}
        self.flush()
        specs = restore_specs(self.ctx, step, needs)
        restored: dict[str, Origin] = {}
        for provider, key, names in specs:
            entry = self.ctx.verified_entry(provider, key)
            if entry is None:
                raise NotRestorable(names[0], provider, step, "its cache entry is corrupt")
            with self.state.running():
                self.side.restore([[provider, key, names]])
            restored.update(self._restored(provider, entry, names))
        return restored

    def _restored(self, step: str, entry: Any, names: list[str]) -> dict[str, Origin]:
        """Record that ``names`` (values and hidden state) are ``entry``'s now."""
        self.ledger.restored(step, names)
        for name in names:
            self.state.keys[name] = entry.key  # an older run's entry (--run N) keeps its own key
        run_id = entry.manifest.get("run_id")
        origins = {}
        for name in names:
            if hidden_state.is_pseudo(name):
                continue
            origins[name] = self.state.origin[name] = Origin(step, entry.key, run_id, "restored")
        return origins

    # -------------------------------------------------------------- steps
    def start_step(self, step: str) -> None:
        """Before ``step``'s cells run: its inputs restored, its start published, its
        ``timeout:`` watched."""
        self.restore_inputs(step)
        self.ctx.start_step(step)
        self.before[step] = clear_old_out_files(self.ctx, step)
        self.started[step] = time.monotonic()
        self.watchdog.start(self.ctx.timeout_for(step))
        if self.pipeline.steps[step].map_over:
            return  # per element, as the kernel executor's (``live_map``): no run-time watch
        reads = sorted(set(self.pipeline.steps[step].reads) | set(self.ctx.keys.inputs(step)))
        try:
            self.side.watch(self.watched, reads)
        except Exception as e:  # noqa: BLE001 - only early cut-off loses
            self.ctx.warn(f"values changed at run time will not be seen: {type(e).__name__}: {e}", step)

    def finish_step(
        self, step: str, outputs: list[list[dict[str, Any]]], error: str | None, cache: str | None = None
    ) -> str:
        """After ``step``'s cells ran: cache its values (dumped from the namespace) and
        outputs, unless ``error``; ``cache`` says why it must not be cached. Returns the status."""
        ctx = self.ctx
        duration = time.monotonic() - self.started.pop(step, time.monotonic())
        self.watchdog.stop()
        if error and self.watchdog.fired:  # the frontend saw a KeyboardInterrupt: it was the timeout
            error = self.watchdog.message()
        self.ran(step)
        if error:
            ctx.finish_step(step, "failed", duration=duration, error=error, traceback=_traceback_of(outputs))
            return "failed"
        before = self.before.pop(step, None)
        missing = out_files_problem(ctx, step)
        if missing:
            ctx.finish_step(step, "failed", duration=duration, error=missing)
            return "failed"
        if cache is not None:
            ctx.warn(f"not cached: {cache}", step)
            ctx.finish_step(step, "done", duration=duration)
            return "done"
        staging = ctx.cache.staging_path(step)
        with self.state.running():
            answer = json.loads(self.side.dump(str(staging), ctx.stored_names(step), ctx.required_names(step)))
        out_files = stage_out_files(ctx, step, staging, before=before)
        ctx.keys.learn(step, answer.get("learnt"), {})
        self.ran(step, ctx.keys.run_writes(step))
        if answer.get("pending"):
            self.pending[str(staging)] = (step, outputs, duration, out_files, None)
        elif out_files is not None and self.committer is not None:
            self.committer.submit(step, staging, outputs, answer, duration, out_files)
        ctx.finish_step(step, "done", duration=duration)
        return "done"

    def ran(self, step: str, run_writes: list[str] | None = None) -> None:
        """``step`` ran here: the names it writes are its version now (``Ledger.ran``)."""
        self.ledger.ran(step, run_writes)
        for name in self.pipeline.steps[step].writes:
            self.state.origin[name] = Origin(step, self.ctx.key(step), self.run_id, "run")

    def run_step(self, step: str) -> str:
        """Run ``step``'s cells here (``%nbflow run``, or ``driver.run_step``), outputs shown
        in the calling cell and recorded; its final status. A ``map:`` step runs element by
        element (``live_map``); a step whose re-computed key has an entry is restored instead
        (``cut_off``). ``Interrupted`` when the user interrupts it."""
        ctx = self.ctx
        blocked = ctx.blocked_by(step)
        if blocked:
            ctx.finish_step(step, "skipped", reasons=(blocked,))
            return "skipped"
        if self.cut_off(step):
            return "cached"
        try:
            self.start_step(step)
        except NotRestorable as e:
            ctx.finish_step(step, "failed", error=f"could not restore its inputs: {e}")
            return "failed"
        except NbflowError as e:
            ctx.finish_step(step, "failed", error=str(e))
            return "failed"
        if self.pipeline.steps[step].map_over:
            from .live_map import run_items

            return run_items(self, step)
        return self.attempts(step)

    def attempts(
        self, step: str, ran: tuple[list[list[dict[str, Any]]], str | None] | None = None, cache: str | None = None
    ) -> str:
        """Run ``step``'s cells until an attempt succeeds or its retries (``retry:``,
        ``--retries``: ``RunContext.retry_delay``) are spent, then ``finish_step``; the
        final status. ``ran``: the first attempt's ``(outputs, error)`` when it already ran
        elsewhere (the frontend executed the cells: ``driver.step_finished``); ``cache``:
        why that attempt must not be cached. ``Interrupted`` when the user interrupts it."""
        ctx = self.ctx
        attempt = self.tries[step] = 1
        outputs, error = ran if ran is not None else self.run_cells(step)
        while True:
            delay = ctx.retry_delay(step, attempt, error) if error else None
            if delay is None:
                self.outputs[step] = outputs
                return self.finish_step(step, outputs, error, cache=cache if attempt == 1 else None)
            self.prepare_retry(step, delay)
            self.watchdog.start(ctx.timeout_for(step))  # each attempt has its full time, as in the kernel executor
            attempt = self.tries[step] = attempt + 1
            outputs, error = self.run_cells(step)

    def cut_off(self, step: str) -> bool:
        """Early cut-off (``cutoff.py``): ``step``'s key, re-computed now that the steps
        above it ran, has an entry -- they left the values its previous run read. Then it is
        cached (``RunContext.settle_cached``) and its values are restored, not run. Only in a
        run that caches (a restore runs nothing)."""
        if self.committer is None or not self.ctx.settle_cached(step, self.ctx.keys.recheck(step)):
            return False
        self.restore_step(step)
        self.outputs[step] = self.cached_outputs(step)
        return True

    def settle_deferred(self, step: str) -> bool:
        """A cached step the plan deferred until the running steps that read what it reads
        ran (``PlanEntry.recheck``), at its turn: ``True`` when it must run after all
        (``RunContext.settle_deferred``), ``False`` when it is cached (or not deferred)."""
        ctx = self.ctx
        if self.committer is None or ctx.actions[step] != "cached" or step in ctx.status or not ctx.plan[step].recheck:
            return False
        return ctx.settle_deferred(step) is None

    def cached_outputs(self, step: str) -> list[list[dict[str, Any]]]:
        """The outputs of ``step``'s entry under its current key (``[]`` if none)."""
        entry = self.ctx.cache.lookup(step, self.ctx.key(step))
        return self.ctx.cache.load_outputs(entry) if entry is not None else []

    def run_cells(self, step: str) -> tuple[list[list[dict[str, Any]]], str | None]:
        """Run ``step``'s cells in order: their outputs, and the error that stopped them."""
        outputs: list[list[dict[str, Any]]] = []
        for cell in self.pipeline.steps[step].cells:
            recorded, exc = self.execute(cell.source, cell.id)
            outputs.append(recorded)
            if isinstance(exc, KeyboardInterrupt) and self.watchdog.fired:
                return outputs, self.watchdog.message()
            if isinstance(exc, KeyboardInterrupt):
                self.cancel_step(step)
                raise Interrupted(f'interrupted in step "{step}"')
            if exc is not None:
                return outputs, f"cell {cell.number}: {type(exc).__name__}: {exc}"
        return outputs, None

    def prepare_retry(self, step: str, delay: float) -> None:
        """Before attempt 2, 3... (``retry:``, ``--retries``): wait ``delay`` (the kernel's
        interrupt cancels), drop what the failed attempt assigned and restore what the step
        reads from the cache, as the kernel executor does: in-place changes do not leak."""
        try:
            if self.ctx.cancel.wait(delay):
                raise Interrupted(f'cancelled before retrying step "{step}"')
        except KeyboardInterrupt:
            self.cancel_step(step)
            raise Interrupted(f'interrupted before retrying step "{step}"') from None
        inputs = self.ctx.keys.inputs(step)
        for name in self.ctx.retry_dropped(step):
            self.state.namespace.pop(name, None)
        for name in inputs:  # the failed attempt may have changed them in place
            self.ledger.forget(name)
            self.state.forget(name)
        self.restore_inputs(step)
        self.ledger.ran(step)
        if self.pipeline.steps[step].map_over:
            return
        reads = sorted(set(self.pipeline.steps[step].reads) | set(inputs))
        try:
            self.side.watch(self.watched, reads)
        except Exception as e:  # noqa: BLE001 - only early cut-off loses
            self.ctx.warn(f"values changed at run time will not be seen: {type(e).__name__}: {e}", step)

    def execute(self, source: str, cell_id: str | None = None) -> tuple[list[dict[str, Any]], BaseException | None]:
        """Run ``source`` in the user's shell, its outputs going where they normally go and
        recorded as nbformat outputs; ``(outputs, the exception it raised or None)``."""
        shell = self.state.shell
        with self.state.running(), record_outputs(shell, self.ctx.config.output_limit) as recorded:
            with self.watchdog.cell():
                result = shell.run_cell(source, store_history=False, silent=False)
        return recorded.finish(), result.error_before_exec or result.error_in_exec

    def cancel_step(self, step: str) -> None:
        """The user interrupted ``step``: nothing of it is cached."""
        duration = time.monotonic() - self.started.pop(step, time.monotonic())
        self.watchdog.stop()
        self.ledger.ran(step)
        for name in self.pipeline.steps[step].writes:
            self.state.forget(name)
        self.ctx.cancel.set()
        self.ctx.finish_step(step, "cancelled", duration=duration, error="interrupted (KeyboardInterrupt)")

    # ------------------------------------------------------------- ending
    def flush(self) -> None:
        """Commit what was dumped in the background, and wait for the commits."""
        if self.pending:
            done = json.loads(self.side.collect(wait=True, only=list(self.pending)))
            for staging, dumped in done.items():
                step, outputs, duration, out_files, key = self.pending.pop(staging)
                if out_files is None or self.committer is None:
                    self.ctx.cache.discard(Path(staging))
                    continue
                self.committer.submit(step, Path(staging), outputs, dumped, duration, out_files, key=key)
        if self.committer is not None:
            self.committer.flush()

    def close(self, status: str = "done", error: str = "") -> dict[str, Any]:
        """End the run: commits finished, ``RunFinished`` published; the counts per status."""
        ctx = self.ctx
        self.watchdog.close()
        try:
            self.flush()
        finally:
            if self.committer is not None:
                self.committer.close()
        if status == "cancelled":
            ctx.cancel.set()
        for step, state in list(ctx.status.items()):
            if state == "running":
                self.cancel_step(step) if status == "cancelled" else None
        if self.run is not None:
            self.run.close("failed" if status == "failed" else "done", error)
        if self.state.current is self:
            self.state.current = None
        counts: dict[str, int] = {}
        for step in self.pipeline.order:
            final = ctx.final_status(step)
            if final is not None:
                counts[final] = counts.get(final, 0) + 1
        return {
            "run_id": self.run_id,
            "status": self.run.status if self.run is not None else status,
            "counts": counts,
        }


class UserKernelExecutor:
    """The ``live`` executor (see module docstring): ``Pipeline.run(executor="live")`` in a
    kernel runs the steps in its namespace, in the calling thread."""

    name = "live"

    def execute(self, ctx: RunContext) -> None:
        if threading.current_thread() is not threading.main_thread():
            raise PipelineError(
                "the live executor runs steps in the kernel's own thread: use %nbflow run in the notebook",
                notebook=ctx.pipeline.path,
            )
        live = LiveRun(kernel_state(), ctx)
        live.committer = Committer(ctx, "live")
        ctx.publish_cached_and_queued()
        live.prelude()
        try:
            for step in ctx.pipeline.order:
                if ctx.actions[step] == "run" or live.settle_deferred(step):
                    live.run_step(step)
        except Interrupted:
            ctx.cancel.set()
        finally:
            live.watchdog.close()
            live.flush()
            live.committer.close()


def _restorable_state(pipeline: Pipeline, name: str, step: str) -> bool:
    from ..plan import restorable

    return restorable(pipeline, name, step)


def _traceback_of(outputs: list[list[dict[str, Any]]]) -> str:
    for cell in outputs:
        text = error_text(cell)
        if text:
            return text
    return ""


__all__ = [
    "How",
    "Interrupted",
    "KernelState",
    "LiveAction",
    "LiveRun",
    "Origin",
    "UserKernelExecutor",
    "context",
    "kernel_state",
    "parameter_token",
    "record_outputs",
    "setup_token",
]
