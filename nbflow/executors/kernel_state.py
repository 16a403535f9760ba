"""What the kernel executor keeps track of between steps: whose values the kernel holds
(``Ledger``, and ``verify_restores`` of the entries the run will load) and the entries
being committed on a thread while the next steps run (``Committer``); and how a step's
run in the kernel ends: ``Stop`` (the kernel cannot go on), ``Failure`` (the step failed,
the kernel is usable), ``Interrupted`` (the watchdog stopped a cell), ``missing_name``
(the name a ``NameError`` reports).

This module must not talk to the kernel: ``kernel_session.Session`` does.
"""

from __future__ import annotations

import queue
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ..graph import PARAMETERS, SETUP
from .outcome import commit_entry

if TYPE_CHECKING:
    from ..graph import Pipeline
    from .base import RunContext


class Ledger:
    """Whose version of each name the kernel holds, to know what to restore.

    After the prelude the kernel holds the setup's names and the parameters. Running a
    step makes it the holder of everything it writes (even if it failed halfway);
    restoring makes the provider the holder of the names restored. A step needs a
    restore of every name it reads whose holder is not the step that provides it.

    With ``key_of`` (a step's key in this run), the key the holder had is kept too
    (``keys``) and a name held under another key needs a restore as well: the user's
    own kernel (``user_kernel``) keeps ``holder`` and ``keys`` from run to run, while
    the notebook changes under it. ``holder`` and ``keys`` may be passed in to share them.
    """

    def __init__(
        self,
        pipeline: Pipeline,
        inputs: Any = None,
        key_of: Any = None,
        holder: dict[str, str] | None = None,
        keys: dict[str, str] | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.inputs = inputs or (lambda step: pipeline.steps[step].inputs)
        self.key_of = key_of
        self.keys: dict[str, str] = {} if keys is None else keys
        if holder is None:
            holder = {n: SETUP for n in pipeline.setup.writes}
            holder.update({n: PARAMETERS for n in pipeline.parameters})
        self.holder: dict[str, str] = holder

    def holds(self, name: str, provider: str) -> bool:
        """Whether the kernel holds ``provider``'s version of ``name`` (under its key in this run)."""
        if self.holder.get(name) != provider:
            return False
        return self.key_of is None or self.keys.get(name) == self.key_of(provider)

    def needed(self, step: str) -> dict[str, list[str]]:
        """``{provider: [names]}`` to restore before ``step`` runs."""
        needs: dict[str, list[str]] = {}
        for name, provider in sorted(self.inputs(step).items()):
            if not self.holds(name, provider):
                needs.setdefault(provider, []).append(name)
        return needs

    def restored(self, provider: str, names: list[str]) -> None:
        for name in names:
            self.holder[name] = provider
            self._keep_key(name, provider)

    def ran(self, step: str, also: list[str] | None = None) -> None:
        for name in [*self.pipeline.steps[step].writes, *(also or ())]:
            self.holder[name] = step
            self._keep_key(name, step)

    def forget(self, name: str) -> None:
        """The kernel's ``name`` was changed by code nbflow did not run: no step holds it."""
        self.holder.pop(name, None)
        self.keys.pop(name, None)

    def _keep_key(self, name: str, step: str) -> None:
        if self.key_of is not None:
            self.keys[name] = self.key_of(step)


def verify_restores(ctx: RunContext) -> None:
    """While the kernel starts: make the cache folders of the steps that will run
    (``Cache.prepare``) and verify every cached entry the run will load; repeat if a
    corrupt one must run."""
    ctx.cache.prepare(ctx.steps_to_run())
    while True:
        ledger = Ledger(ctx.pipeline)
        needed = set()
        for step in ctx.pipeline.order:
            if ctx.actions[step] != "run":
                continue
            for provider, names in ledger.needed(step).items():
                if ctx.actions[provider] == "cached":
                    needed.add(provider)
                ledger.restored(provider, names)
            ledger.ran(step)
        if not ctx.verify(sorted(needed)):
            return


class Committer:
    """Commits finished steps' cache entries on a thread while the next steps run.

    The entry's files were written into the staging folder by the kernel (values) and
    are completed here (outputs, fsync, manifest, rename). ``flush`` waits for every
    submitted entry: a restore that needs an entry from this run calls it first.
    """

    def __init__(self, ctx: RunContext, executor: str = "kernel") -> None:
        self.ctx = ctx
        self.executor = executor
        self.queue: queue.Queue[tuple | None] = queue.Queue()
        self.thread = threading.Thread(target=self._loop, name=f"nbflow-commit-{ctx.run_id}", daemon=True)
        self.thread.start()

    def submit(
        self,
        name: str,
        staging: Path,
        outputs: list,
        dumped: dict[str, Any],
        duration: float,
        out_files: dict[str, Any] | None = None,
        key: str | None = None,
    ) -> None:
        """Commit an entry of step ``name`` (under its run key, or ``key`` for an element)."""
        self.queue.put((name, staging, outputs, dumped, duration, out_files or {}, key or self.ctx.key(name)))

    def flush(self) -> None:
        self.queue.join()

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()

    def _loop(self) -> None:
        while True:
            item = self.queue.get()
            try:
                if item is None:
                    return
                self._commit(*item)
            except Exception as e:  # noqa: BLE001 - a failed cache write is a warning, not a failed step
                self.ctx.warn(f"cache entry not written: {type(e).__name__}: {e}", item[0] if item else None)
            finally:
                self.queue.task_done()

    def _commit(
        self,
        name: str,
        staging: Path,
        outputs: list,
        dumped: dict[str, Any],
        duration: float,
        out_files: dict[str, Any],
        key: str,
    ) -> None:
        commit_entry(
            self.ctx,
            name,
            staging,
            outputs=outputs,
            dumped=dumped,
            duration=duration,
            executor=self.executor,
            key=key,
            out_files=out_files,
        )


# ------------------------------------------------- how a step's run ends
#: Why the kernel cannot go on: it failed (died, did not start...), or the run was cancelled.
StopStatus = Literal["failed", "cancelled", "timeout"]


class Stop(Exception):
    """The kernel cannot go on (died, killed after a timeout, or the run was cancelled)."""

    def __init__(self, status: StopStatus, message: str, step_error: str = "") -> None:
        self.status = status
        self.step_error = step_error
        super().__init__(message)

    def in_step(self, name: str) -> Stop:
        """This stop, its message naming the step it happened in."""
        message = str(self)
        if f'"{name}"' not in message:
            message = f'step "{name}": {message}'
        return Stop(self.status, message, self.step_error)


class Failure:
    """A step (or element) that raised or timed out while the kernel stayed usable."""

    def __init__(self, error: str, traceback: str = "", ename: str = "", evalue: str = "") -> None:
        self.error = error
        self.traceback = traceback
        #: the name a ``NameError`` says is not defined
        self.missing = missing_name(ename, evalue)


class Interrupted(Exception):
    """A cell the watchdog interrupted (cancel or timeout) that did stop: the kernel is usable."""

    def __init__(self, status: Literal["cancelled", "timeout"]) -> None:
        self.status = status
        super().__init__(status)


_NAME_ERROR = re.compile(r"name '([A-Za-z_][A-Za-z0-9_]*)' is not defined")


def missing_name(ename: str | None, evalue: str | None) -> str | None:
    """The name a ``NameError`` says is not defined (``None`` for any other error)."""
    if ename != "NameError":
        return None
    match = _NAME_ERROR.search(evalue or "")
    return match.group(1) if match else None
