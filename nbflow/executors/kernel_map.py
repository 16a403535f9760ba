"""A ``map:`` step in the kernel: ``run_items`` runs the step's cells once per element.

The element loop and its decisions (restored or run, retries, events, the step's own
entry) are ``map_loop.run_elements``'s, shared with the live executor; this module is
where that loop's code runs here: ``KernelWhere``, the kernel calls
(``in_kernel.KernelSide.map_*``) made through a ``kernel_session.Session``.

This module drives a ``kernel_session.Session`` (its kernel calls, cells, pending dumps and
committer); it must not start, stop or connect to a kernel: ``kernel_session.Session`` does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .kernel_client import SilentError
from .kernel_state import Failure, Stop
from .map_loop import NotIterable, Outputs, run_elements

if TYPE_CHECKING:
    from .kernel_session import Session

T = TypeVar("T")


class KernelWhere:
    """``map_loop.Where`` in a kernel of nbflow's own: step ``name``'s ``cells`` (``(index
    in the notebook, source cell)``) run under ``deadline`` (the whole step's)."""

    def __init__(self, session: Session, name: str, cells: list[tuple[int, Any]], deadline: float | None) -> None:
        self.session, self.name, self.cells, self.deadline = session, name, cells, deadline
        self.names = session.ctx.stored_names(name)

    async def begin(self) -> Mapping[str, Any]:
        step = self.session.pipeline.steps[self.name]
        try:
            return await self.session.call(f"__nbflow__.map_begin({step.map_over!r}, {step.map_as!r})")
        except SilentError as e:
            raise NotIterable(str(e), e.traceback) from None

    async def blocking(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(fn, *args)

    async def restore(self, i: int, key: str) -> None:
        await self.session.silent(f"__nbflow__.map_restore_item({i}, {self.name!r}, {key!r}, {self.names!r})")

    async def bind(self, i: int) -> None:
        await self.session.silent(f"__nbflow__.map_item({i})")

    async def run(self, i: int, staging: Path) -> tuple[Outputs, str, Mapping[str, Any]]:
        names = self.names
        expressions = {  # ride on the last cell: evaluated only when it succeeded
            "nbflow": f"__nbflow__.dump({str(staging)!r}, {names!r}, {names!r})",
            "keep": f"__nbflow__.map_keep({i}, {names!r})",
        }
        result = await self.session.run_cells(self.cells, self.deadline, expressions)
        outputs = [list(self.session.nb.cells[index].get("outputs", [])) for index, _ in self.cells]
        if isinstance(result, Failure):
            return outputs, result.error, {}
        return outputs, "", result

    async def retry(self, i: int, delay: float) -> str:
        try:
            await self.session.prepare_retry(self.name, delay)
            await self.bind(i)
        except SilentError as e:
            return str(e)
        return ""

    def pending(self, staging: Path, outputs: Outputs, duration: float, key: str) -> None:
        self.session.pending[str(staging)] = (self.name, outputs, duration, {})
        self.session.pending_keys[str(staging)] = key

    def commit(
        self, staging: Path, outputs: Outputs, dumped: Mapping[str, Any], duration: float, key: str | None
    ) -> None:
        self.session.committer.submit(self.name, staging, outputs, dict(dumped), duration, key=key)

    async def end(self, outputs: Outputs | None) -> None:
        if outputs is None:
            return
        import nbformat

        for j, (index, _) in enumerate(self.cells):
            self.session.nb.cells[index].outputs = [nbformat.from_dict(o) for o in outputs[j]]
        await self.session.call(f"__nbflow__.map_end({self.names!r})")

    async def abort(self, error: BaseException, element: str, duration: float) -> None:
        if not isinstance(error, Stop):
            return
        status = "cancelled" if error.status == "cancelled" else "failed"
        self.session.ctx.finish_step(
            self.name, status, duration=duration, error=f"{element}: {error.step_error or error}"
        )
        raise error.in_step(self.name) from None


async def run_items(
    session: Session, name: str, cells: list[tuple[int, Any]], started: float, deadline: float | None
) -> None:
    """Run a ``map:`` step once per element; elements with a cache entry are restored."""
    await run_elements(KernelWhere(session, name, cells, deadline), session.ctx, name, started)


__all__ = ["KernelWhere", "run_items"]
