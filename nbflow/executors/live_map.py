"""A ``map:`` step in the user's own kernel: ``run_items`` runs its cells once per element.

The element loop and its decisions (restored or run, retries, events, the step's own
entry) are ``map_loop.run_elements``'s, shared with the kernel executor's ``kernel_map``
-- so the cache, the run record and the namespace are what a kernel-executor run leaves.
This module is where that loop's code runs here, in process: ``LiveWhere`` calls
``KernelSide.map_*`` on the user's namespace and runs the step's cells through
``LiveRun.run_cells`` (outputs shown where the step runs and recorded, the ``timeout:``
watched for the whole step). Its calls never suspend: ``map_loop.run_sync`` runs the loop.

Must not: run code other than through ``LiveRun``, or know who asked (the ``%nbflow``
magic or the JupyterLab driver).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .map_loop import NotIterable, Outputs, run_elements, run_sync

if TYPE_CHECKING:
    from .user_kernel import LiveRun

T = TypeVar("T")


class LiveWhere:
    """``map_loop.Where`` in the user's kernel, for step ``name`` of ``live``."""

    def __init__(self, live: LiveRun, name: str) -> None:
        self.live, self.name = live, name
        self.side = live.side
        self.names = live.ctx.stored_names(name)

    async def begin(self) -> Mapping[str, Any]:
        step = self.live.pipeline.steps[self.name]
        try:
            with self.live.state.running():
                return json.loads(self.side.map_begin(step.map_over, step.map_as))
        except Exception as e:  # noqa: BLE001 - anything the iterable raises is the step's failure
            raise NotIterable(f"{type(e).__name__}: {e}") from None

    async def blocking(self, fn: Callable[..., T], *args: Any) -> T:
        return fn(*args)

    async def restore(self, i: int, key: str) -> None:
        with self.live.state.running():
            self.side.map_restore_item(i, self.name, key, self.names)

    async def bind(self, i: int) -> None:
        self.side.map_item(i)

    async def run(self, i: int, staging: Path) -> tuple[Outputs, str, Mapping[str, Any]]:
        outputs, error = self.live.run_cells(self.name)
        if error:
            return outputs, error, {}
        with self.live.state.running():
            dumped = json.loads(self.side.dump(str(staging), self.names, self.names))
            self.side.map_keep(i, self.names)
        return outputs, "", dumped

    async def retry(self, i: int, delay: float) -> str:
        self.live.prepare_retry(self.name, delay)
        self.side.map_item(i)
        return ""

    def pending(self, staging: Path, outputs: Outputs, duration: float, key: str) -> None:
        self.live.pending[str(staging)] = (self.name, outputs, duration, {}, key)

    def commit(
        self, staging: Path, outputs: Outputs, dumped: Mapping[str, Any], duration: float, key: str | None
    ) -> None:
        if self.live.committer is not None:
            self.live.committer.submit(self.name, staging, outputs, dict(dumped), duration, key=key)

    async def end(self, outputs: Outputs | None) -> None:
        live = self.live
        if outputs is not None:
            with live.state.running():
                self.side.map_end(self.names)
            live.outputs[self.name] = outputs
        live.watchdog.stop()
        live.started.pop(self.name, None)
        live.ran(self.name)

    async def abort(self, error: BaseException, element: str, duration: float) -> None:
        self.side.map_abort()  # ``Interrupted`` (or anything else) goes on up


def run_items(live: LiveRun, name: str) -> str:
    """Run ``map:`` step ``name`` (started: ``LiveRun.start_step``) element by element;
    its final status. ``Interrupted`` when the person interrupts it."""
    return run_sync(run_elements(LiveWhere(live, name), live.ctx, name, time.monotonic()))


__all__ = ["LiveWhere", "run_items"]
