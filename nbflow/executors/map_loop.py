"""A ``map:`` step's elements, decided once for every executor.

``Elements`` holds one map step's state in a run and makes its decisions: each
element's key (``plan.item_key``), which elements are restored (a verified entry under
their key, and not forced by ``--items``), what is shown (``outcome.element_outputs``),
which failed, the ``ItemFinished`` events, and at the end the step's status and its
own entry (listing the elements' keys, ``outcome.map_values``). The Dask executor's
fan-out (``dask_fanout``) settles its elements through it as their tasks come back.

``run_elements`` is the element loop of the two executors that run a map step element
after element in one kernel -- nbflow's own (``kernel_map``, async, remote) and the
user's (``live_map``, synchronous, in process): restore or bind each element, run the
step's cells, retry per ``RunContext.retry_delay``, keep or commit its values, then end
the map. It is written once, as a coroutine over a ``Where`` (where code runs: the
kernel calls); the live executor's ``Where`` never suspends, and ``run_sync`` runs the
loop to its end in the calling thread.

This module must not run code, talk to a kernel or know which executor calls it: a
``Where`` does the first two, and the executor's name goes into the manifest through
its ``commit``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from .outcome import element_outputs, elements_failed, map_values

if TYPE_CHECKING:
    from .base import RunContext

T = TypeVar("T")
#: outputs per cell, each a list of nbformat outputs
Outputs = list[list[Any]]
#: ``commit(staging, outputs, dumped, duration, key)``: an entry (``key``: an element's; ``None``: the step's own)
Commit = Callable[[Path, Outputs, Mapping[str, Any], float, "str | None"], None]


class NotIterable(Exception):
    """The ``map:`` iterable could not be listed (``Where.begin``)."""

    def __init__(self, error: str, traceback: str = "") -> None:
        super().__init__(error)
        self.traceback = traceback


class Elements:
    """One ``map:`` step's elements in a run (see module docstring)."""

    def __init__(self, ctx: RunContext, name: str, info: Mapping[str, Any], started: float) -> None:
        from ..plan import item_key

        self.ctx, self.name, self.started = ctx, name, started
        self.count = int(info["count"])
        self.labels: list[str] = list(info["labels"])
        self.fingerprints: list[str] = list(info["fingerprints"])
        self.keys = [item_key(ctx.pipeline, name, ctx.keys.parts(name), f) for f in self.fingerprints]
        self.forced = set(ctx.items.get(name, ()))
        self.shown: dict[int, Outputs] = {}  # what each settled element showed
        self.failures: dict[int, tuple[str, str]] = {}  # index: (label, error)

    def cached(self, i: int) -> Any:
        """The verified entry element ``i`` is restored from, or ``None``: it runs."""
        return None if i in self.forced else self.ctx.verified_entry(self.name, self.keys[i])

    def restored(self, i: int, entry: Any) -> None:
        """Element ``i`` came from ``entry``: its outputs shown, ``cached`` published."""
        from ..events import ItemFinished

        ctx = self.ctx
        self.shown[i] = ctx.cache.load_outputs(entry)
        ctx.publish(
            ItemFinished(ctx.run_id, step=self.name, item=i, total=self.count, status="cached", label=self.labels[i])
        )

    def settled(self, i: int, outputs: Outputs, duration: float, error: str = "") -> None:
        """Element ``i`` ran (``error``: it failed): its outputs shown, ``done``/``failed`` published."""
        from ..events import ItemFinished

        ctx, label = self.ctx, self.labels[i]
        self.shown[i] = outputs
        if error:
            self.failures[i] = (label, error)
        ctx.publish(
            ItemFinished(
                ctx.run_id,
                step=self.name,
                item=i,
                total=self.count,
                status="failed" if error else "done",
                label=label,
                duration=duration,
                error=error,
            )
        )

    def outputs(self) -> Outputs:
        """The step's outputs: each element's after a line naming it, in element order."""
        cells = len(self.ctx.pipeline.steps[self.name].cells)
        return element_outputs(cells, [(self.labels[i], self.shown.get(i) or []) for i in range(self.count)])

    def finish(self, outputs: Outputs, commit: Commit) -> str:
        """Every element settled: the step fails (naming its first failed element) or its own
        entry, listing the elements' keys, is committed and it is done. Its status."""
        ctx, name = self.ctx, self.name
        duration = time.monotonic() - self.started
        if self.failures:
            ctx.finish_step(name, "failed", duration=duration, error=elements_failed(self.count, self.failures))
            return "failed"
        dumped = {**map_values(ctx.stored_names(name), self.count), "items": self.keys}
        commit(ctx.cache.staging_path(name), outputs, dumped, duration, None)
        ctx.finish_step(name, "done", duration=duration)
        return "done"


class Where(Protocol):
    """Where a map step's code runs (a kernel of nbflow's own, or the user's): the calls
    ``run_elements`` makes. ``i`` is an element's index."""

    async def begin(self) -> Mapping[str, Any]:
        """List the elements (``count``, ``fingerprints``, ``labels``); ``NotIterable`` if the iterable raised."""

    async def blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)``, a blocking look at the disk, called as this executor must."""

    async def restore(self, i: int, key: str) -> None:
        """Bind element ``i``'s values from its entry under ``key``."""

    async def bind(self, i: int) -> None:
        """Bind element ``i`` to the step's element name, before its cells run."""

    async def run(self, i: int, staging: Path) -> tuple[Outputs, str, Mapping[str, Any]]:
        """Run the step's cells: ``(outputs, error, dumped)``; without ``error``, element ``i``'s
        values were dumped into ``staging`` (``dumped``: ``Cache.dump_values``' answer) and kept."""

    async def retry(self, i: int, delay: float) -> str:
        """Before attempt 2, 3...: wait ``delay``, restore the step's inputs, bind element ``i``
        again; why its inputs could not be restored (``""``: they were)."""

    def pending(self, staging: Path, outputs: Outputs, duration: float, key: str) -> None:
        """The element's values are still being written: commit them under ``key`` once written."""

    def commit(
        self, staging: Path, outputs: Outputs, dumped: Mapping[str, Any], duration: float, key: str | None
    ) -> None:
        """Commit ``staging`` as an entry (see ``Commit``)."""

    async def end(self, outputs: Outputs | None) -> None:
        """The elements are over: bind each name the step writes to the list of its
        per-element values and show ``outputs``; ``None``: they were never listed."""

    async def abort(self, error: BaseException, element: str, duration: float) -> None:
        """``error`` stopped ``element`` (``"element 2 ('x')"``) while it ran: raise what the
        executor raises, or return to have ``error`` raised."""


async def run_elements(where: Where, ctx: RunContext, name: str, started: float) -> str:
    """Run ``map:`` step ``name`` (started at ``started``) element by element; its status."""
    step = ctx.pipeline.steps[name]
    try:
        info = await where.begin()
    except NotIterable as e:
        await where.end(None)
        error = f"map:{step.map_over} cannot be iterated: {e}"
        ctx.finish_step(name, "failed", duration=time.monotonic() - started, error=error, traceback=e.traceback)
        return "failed"
    elements = Elements(ctx, name, info, started)
    for i in range(elements.count):
        label, key = elements.labels[i], elements.keys[i]
        item_started = time.monotonic()
        entry = await where.blocking(elements.cached, i)
        if entry is not None:
            await where.restore(i, key)
            elements.restored(i, entry)
            continue
        staging = ctx.cache.staging_path(name)
        try:
            await where.bind(i)
            outputs, error, dumped = await where.run(i, staging)
            attempt = 1
            while error and (delay := ctx.retry_delay(name, attempt, f"element {i} ({label}): {error}")) is not None:
                problem = await where.retry(i, delay)
                if problem:
                    error = f"attempt {attempt + 1}: could not restore its inputs: {problem}"
                    break
                attempt += 1
                outputs, error, dumped = await where.run(i, staging)
        except BaseException as e:  # Stop, Interrupted: nothing of the element is kept
            ctx.cache.discard(staging)
            await where.abort(e, f"element {i} ({label})", time.monotonic() - started)
            raise
        duration = time.monotonic() - item_started
        if error:
            ctx.cache.discard(staging)
        elif dumped.get("pending"):
            where.pending(staging, outputs, duration, key)
        else:
            where.commit(staging, outputs, dumped, duration, key)
        elements.settled(i, outputs, duration, error)
    outputs = elements.outputs()
    await where.end(outputs)
    return elements.finish(outputs, where.commit)


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to its end in the calling thread; it must never suspend (a
    ``Where`` whose calls are all synchronous)."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    raise RuntimeError("a synchronous map loop suspended")


__all__ = ["Elements", "NotIterable", "Where", "run_elements", "run_sync"]
