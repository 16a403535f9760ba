"""What every executor shares: the run context, step bookkeeping and entry checks.

An executor receives a ``RunContext`` and must end with a final ``StepFinished`` for
every step of the pipeline (``run.py`` publishes ``RunStarted``/``RunFinished``). The
context holds the plan's decisions (``actions``: run, cached, excluded), which an
executor may only change in one way: a cached step whose entry fails verification
becomes ``run`` with the reason ``cache entry corrupt``.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from ..errors import CacheCorrupt, CacheRefused
from ..events import CheckFailed, Event, RunWarning, StepFinished, StepQueued, StepRetried, StepStarted, StepStatus
from ..plan import Action, Reason, has_reason

if TYPE_CHECKING:
    from ..cache import Cache
    from ..config import Config
    from ..events import EventBus
    from ..graph import Pipeline
    from ..plan import Plan

FAILED: tuple[StepStatus, ...] = ("failed", "skipped", "cancelled", "interrupted")
#: Why a step did not run, as the executors say it.
NOT_SELECTED = Reason("not selected", "not selected (--only)")
RUN_STOPPED = Reason("run stopped", "the run stopped before this step")
SETUP_FAILED = Reason("setup failed", "the setup failed")
#: Seconds before the first retry of a step when neither its tag nor the run says (doubling after).
DEFAULT_BACKOFF = 1.0
#: A step's status during a run: running, then its final ``StepStatus``.
Status = StepStatus | Literal["running"]


@dataclass
class RunContext:
    """Everything an executor needs for one run, and the state it updates."""

    run_id: int
    pipeline: Pipeline
    plan: Plan
    params: dict[str, Any]
    given: dict[str, Any]
    config: Config
    cache: Cache
    bus: EventBus
    cancel: threading.Event
    output_path: Path | None = None
    timeout: float | None = None
    fail_fast: bool = False
    #: Times a step that raised (or whose worker died) runs again, unless its ``retry:`` tag says.
    retries: int = 0
    #: ``map:`` steps: element indexes to recompute even if cached (``--items``).
    items: dict[str, list[int]] = field(default_factory=dict)
    actions: dict[str, Action] = field(default_factory=dict)
    #: ``plan.Reason`` values (text for the views, ``kind`` for decisions).
    reasons: dict[str, tuple[str, ...]] = field(default_factory=dict)
    status: dict[str, Status] = field(default_factory=dict)
    verified: set[str] = field(default_factory=set)
    queued: set[str] = field(default_factory=set)
    #: Why the run as a whole failed (the kernel did not start, the setup raised...).
    failure: str = ""
    started: float = field(default_factory=time.time)
    #: Early cut-off: keys recomputed as the run learns values' digests (``cutoff.RunKeys``).
    keys: Any = None
    #: Seconds the run's end waited for cache entries still being written (reported apart).
    cache_wait: float = 0.0
    #: A kernel already starting (``kernel_client.EarlyKernel``), for executors that use one.
    early_kernel: Any = None
    #: Steps a ``check:`` failed on, with the check's one-line error (``CheckFailed``). Their
    #: ``status`` stays what the executor saw (the scheduling needs it); ``final_status`` says failed.
    failed_by_check: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for entry in self.plan:
            self.actions.setdefault(entry.step, entry.action)
            self.reasons.setdefault(entry.step, entry.reasons)
        from ..cutoff import RunKeys

        self.keys = RunKeys(self)

    def set_aside_corrupt_entries(self) -> None:
        """Report the entries the plan found corrupt and move them out of the way.

        The recomputed entry takes their place; a broken one must never be read back.
        """
        for entry in self.plan:
            if has_reason(entry.reasons, "cache entry corrupt"):
                self.cache.quarantine(entry.step, entry.key)
                self.warn(
                    f"cache entry corrupt (key {entry.key[:12]}, {self.cache.entry_dir(entry.step, entry.key)});"
                    " recomputing",
                    entry.step,
                )

    # ------------------------------------------------------------- events
    def publish(self, event: Event) -> None:
        self.bus.publish(event)

    def warn(self, message: str, step: str | None = None) -> None:
        self.publish(RunWarning(self.run_id, message=message, step=step))

    def queue(self, step: str) -> None:
        self.publish(StepQueued(self.run_id, step=step, reasons=self.reasons.get(step, ())))

    def start_step(self, step: str) -> None:
        self.status[step] = "running"
        self.publish(StepStarted(self.run_id, step=step))

    def finish_step(
        self,
        step: str,
        status: StepStatus,
        duration: float = 0.0,
        error: str = "",
        traceback: str = "",
        reasons: tuple[str, ...] | None = None,
    ) -> None:
        check = self.pipeline.checks.get(step)
        if check is not None and status == "failed" and error:
            error = self.check_failure(step, error)
            if check.warn:  # check-warn: the run goes on, the step is marked "warned"
                self.warn(error, step)
                status, error, traceback = "done", "", ""
        self.status[step] = status
        self.publish(
            StepFinished(
                self.run_id,
                step=step,
                status=status,
                duration=duration,
                error=error,
                traceback=traceback,
                reasons=self.reasons.get(step, ()) if reasons is None else reasons,
                key=self.key(step) if self.key(step) != self.plan[step].key else "",
            )
        )
        if (
            check is not None
            and status == "failed"
            and error
            and self.status.get(check.step) in ("done", "cached")
            and check.step not in self.failed_by_check  # its first failed check says why
        ):
            # a failed check fails the step it checks (its record; the scheduling already
            # skips the dependants, which wait for the check)
            self.failed_by_check[check.step] = error
            self.publish(CheckFailed(self.run_id, step=check.step, check=step, error=error))

    def final_status(self, step: str) -> Status | None:
        """``step``'s status as the run store records it: ``failed`` once a check of it failed."""
        return "failed" if step in self.failed_by_check else self.status.get(step)

    def check_failure(self, check: str, error: str) -> str:
        """A failed data check in one line: notebook, cell, step and the assertion."""
        from ..errors import where

        info = self.pipeline.checks[check]
        kind = "check-warn" if info.warn else "check"
        lines = [line for line in error.strip().splitlines() if line.strip()]
        assertion = re.sub(r"^cell \d+( \([^)]*\))?: ", "", lines[-1]) if lines else "failed"
        return f"{where(self.pipeline.path, info.cell.number, info.step)}: {kind} failed: {assertion}"

    def finish_unrun(self) -> None:
        """Give every step without a final status one: cached, skipped or cancelled."""
        for step in self.pipeline.order:
            if step in self.status and self.status[step] != "running":
                continue
            action = self.actions[step]
            if self.status.get(step) == "running":
                self.finish_step(step, "interrupted", error="the run stopped while this step ran")
            elif self.cancel.is_set():
                self.finish_step(step, "cancelled", reasons=(Reason("run cancelled"),))
            elif action == "cached":
                self.finish_step(step, "cached", reasons=())
            elif action == "excluded":
                self.finish_step(step, "skipped", reasons=(NOT_SELECTED,))
            else:
                self.finish_step(step, "skipped", reasons=(RUN_STOPPED,))

    # -------------------------------------------------------------- steps
    def steps_to_run(self) -> list[str]:
        return [s for s in self.pipeline.order if self.actions[s] == "run"]

    def blocked_by(self, step: str) -> Reason | None:
        """Why ``step`` cannot run because of what happened upstream, if it cannot."""
        for dep in self.pipeline.deps[step]:
            status = self.status.get(dep)
            if status in FAILED:
                return Reason("upstream failed", f"upstream {dep} {status}", subject=dep)
        if self.fail_fast and any(s == "failed" for s in self.status.values()):
            return Reason("fail fast", "an earlier step failed (--fail-fast)")
        return None

    def watched_names(self) -> list[str]:
        """Every value the pipeline writes (setup and steps), modules aside: where each
        executor looks for what a step changed at run time."""
        pipeline = self.pipeline
        return sorted(set(pipeline.setup.writes).union(*(s.writes for s in pipeline.steps.values())) - pipeline.modules)

    def retry_dropped(self, step: str) -> list[str]:
        """What a failed attempt of ``step`` assigned that the next attempt must not find:
        its writes, less the values it reads (restored instead) and the setup's."""
        info = self.pipeline.steps[step]
        return sorted(set(info.writes) - set(self.keys.inputs(step)) - set(self.pipeline.setup.writes))

    def retry_policy(self, step: str) -> tuple[int, float]:
        """(retries, seconds before the first retry) of ``step``: its ``retry:`` tag, else the run's."""
        tagged = self.pipeline.steps[step].retry
        if tagged is not None:
            return tagged[0], DEFAULT_BACKOFF if tagged[1] is None else tagged[1]
        return self.retries, DEFAULT_BACKOFF

    def retry_delay(self, step: str, attempt: int, error: str) -> float | None:
        """Attempt ``attempt`` (from 1) of ``step`` failed with ``error``: the seconds to wait
        before running it again, or ``None`` when it has no attempt left (or the run was
        cancelled). Each retry is a ``StepRetried`` event, shown wherever warnings are.

        Every executor calls this, and restores the step's inputs from the cache before the
        next attempt: what the failed attempt changed in place must not leak into it.
        """
        retries, backoff = self.retry_policy(step)
        if attempt > retries or self.cancel.is_set():
            return None
        delay = backoff * 2 ** (attempt - 1)
        first = (error.strip().splitlines() or ["it failed"])[0]
        self.publish(
            StepRetried(
                self.run_id,
                message=f"attempt {attempt} of {retries + 1} failed ({first}); running it again in {delay:g} s",
                step=step,
                attempt=attempt,
                attempts=retries + 1,
                error=error,
                delay=delay,
            )
        )
        return delay

    def timeout_for(self, step: str) -> float | None:
        return self.pipeline.steps[step].timeout or self.timeout

    def key(self, step: str) -> str:
        return self.keys.key(step)

    def parts(self, step: str) -> dict[str, Any]:
        parts = self.keys.parts(step)
        return parts.to_dict() if parts is not None else {}

    def required_names(self, step: str) -> list[str]:
        """Values of ``step`` that later steps read, plus those tagged ``keep:``."""
        if not hasattr(self, "_read_downstream"):
            read: dict[str, set[str]] = {name: set() for name in self.pipeline.steps}
            for other in self.pipeline.steps.values():
                for value, provider in other.inputs.items():
                    read[provider].add(value)
            self._read_downstream = read
        return sorted(self._read_downstream[step] | set(self.pipeline.steps[step].keep))

    def stored_names(self, step: str) -> list[str]:
        """Every value ``step`` writes (cached when it can be pickled)."""
        info = self.pipeline.steps[step]
        return sorted((set(info.writes) | set(info.keep)) - {info.map_as})

    def restore_files(self, step: str) -> None:
        """Put a cached step's ``out:`` files back if they are missing or were changed.

        A corrupt entry makes the step run instead.
        """
        if not self.pipeline.steps[step].out_files:
            return
        try:
            entry = self.cache.lookup(step, self.key(step))
            if entry is None:
                raise CacheCorrupt(step, self.key(step), self.cache.entry_dir(step, self.key(step)), "disappeared")
            self.cache.verify(entry)
            for name in self.cache.restore_files(entry, self.pipeline.path.parent):
                if name.startswith("-"):
                    self.warn(f"{name[1:]}: removed, the cached version of the step did not write it", step)
                else:
                    self.warn(f"out:{name} was missing or changed on disk; restored the cached version", step)
        except (CacheCorrupt, CacheRefused) as e:
            self.warn(f"{e}; recomputing", step)
            self.actions[step] = "run"
            self.reasons[step] = (Reason("cache entry corrupt"),)

    def publish_cached_and_queued(self) -> None:
        """Settle cached and excluded steps (events, ``out:`` files) and queue the rest.

        Idempotent: a step is settled or queued once, however often this is called.
        """
        for step in self.pipeline.order:
            if self.actions[step] == "cached" and step not in self.status and not self.keys.deferred(step):
                self.restore_files(step)
        for step in self.pipeline.order:
            if step in self.status or self.keys.deferred(step):
                continue
            if self.actions[step] == "cached":
                self.finish_step(step, "cached", reasons=())
            elif self.actions[step] == "excluded":
                self.finish_step(step, "skipped", reasons=(NOT_SELECTED,))
        for step in self.steps_to_run():
            if step not in self.queued:
                self.queued.add(step)
                self.queue(step)

    # ------------------------------------------------------ early cut-off
    def settle_cached(self, step: str, entry: Any) -> bool:
        """Early cut-off: ``step``'s key, re-computed now that its upstream steps ran
        (``cutoff.RunKeys.recheck``), has the verified ``entry``: the step is cached, its
        ``out:`` files put back, and not run. ``False`` when there is no entry or it turned
        out corrupt (the step runs). Every executor settles such a step here, then shows its
        cached outputs (and the live executor restores its values) its own way."""
        if entry is None:
            return False
        self.actions[step] = "cached"
        self.restore_files(step)
        if self.actions[step] != "cached":
            return False  # its entry turned out corrupt: it runs
        self.finish_step(step, "cached", reasons=())
        return True

    def settle_deferred(self, step: str) -> Any:
        """A cached step whose plan waited on running steps that read what it reads
        (``PlanEntry.recheck``), once they ran: its entry if it is still cached (settled by
        ``settle_cached``), else ``None`` -- it is then set to run, with the reason, and queued."""
        planned = self.key(step)
        entry = self.keys.recheck(step, deferred=True)
        if self.settle_cached(step, entry):
            return entry
        changed = sorted(set(self.keys.inputs(step).values()) - set(self.pipeline.deps[step]))
        self.actions[step] = "run"
        self.reasons[step] = (
            f"upstream {', '.join(changed)} changed its inputs at run time"
            if changed and self.key(step) != planned
            else "its inputs changed at run time",
        )
        self.queue(step)
        return None

    # ------------------------------------------------------------ entries
    def verified_entry(self, step: str, key: str) -> Any:
        """The entry of ``key`` (a ``map:`` element's) if it exists and passes its
        checksums, else ``None`` (a corrupt one is set aside with a warning)."""
        try:
            entry = self.cache.lookup(step, key)
            if entry is not None:
                self.cache.verify(entry)
            return entry
        except (CacheCorrupt, CacheRefused) as e:
            self.cache.quarantine(step, key)
            self.warn(f"{e}; recomputing", step)
            return None

    def verify(self, steps: Iterable[str]) -> list[str]:
        """Verify the cache entries of cached ``steps``; corrupt ones are set to run.

        Returns the steps that changed from cached to run.
        """
        changed = []
        for step in steps:
            if step in self.verified or self.actions[step] != "cached":
                continue
            try:
                entry = self.cache.lookup(step, self.key(step))
                if entry is None:
                    raise CacheCorrupt(step, self.key(step), self.cache.entry_dir(step, self.key(step)), "disappeared")
                self.cache.verify(entry)
            except (CacheCorrupt, CacheRefused) as e:
                self.cache.quarantine(step, self.key(step)) if isinstance(e, CacheCorrupt) else None
                self.warn(f"{e}; recomputing", step)
                self.actions[step] = "run"
                self.reasons[step] = (Reason("cache entry corrupt"),)
                changed.append(step)
                continue
            self.verified.add(step)
        return changed


class Executor(Protocol):
    """Runs the steps of a ``RunContext`` and publishes their events."""

    name: str

    def execute(self, ctx: RunContext) -> None: ...
