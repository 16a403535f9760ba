"""A ``map:`` step on a Dask cluster: the part of ``dask.DaskSession`` that fans it out.

One task lists the step's elements (count, fingerprints, labels); ``FanOutSteps.expanded``
then restores the elements with a cache entry and submits the others, each as its own
task; ``element_settled`` records what became of one; ``settle`` finishes the step once
every element is settled. What is decided about the elements (keys, which are restored,
events, the step's status and its own entry) is ``map_loop.Elements``', as for the
kernel and live executors.

This module must not submit anything but a step's elements, nor watch running tasks:
``dask.DaskSession`` and ``dask_watch`` do. It uses the session's attributes (``ctx``,
``pipeline``, ``fans``, ``results``) and its ``submit``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .dask_tasks import Attempt, FanOut
from .outcome import commit_entry

if TYPE_CHECKING:
    from .base import RunContext


class FanOutSteps:
    """The elements of ``map:`` steps (a mix-in of ``dask.DaskSession``; see module docstring)."""

    ctx: RunContext
    pipeline: Any
    executor: Any
    fans: dict[str, FanOut]
    results: dict[str, dict[str, Any]]

    def expanded(self, attempt: Attempt, result: Mapping[str, Any]) -> None:
        """The elements of a ``map:`` step are known: restore the cached ones, submit the rest."""
        fan = FanOut(self.ctx, attempt.step, result, attempt.started or time.monotonic())
        self.fans[attempt.step] = fan
        for i in range(fan.count):
            entry = fan.cached(i)
            if entry is None:
                fan.open.add(i)
            else:
                fan.restored(i, entry)
        for i in sorted(fan.open):
            self.submit(attempt.step, 0, i)
        self.settle(attempt.step)

    def element_settled(
        self, attempt: Attempt, outputs: list[list[dict[str, Any]]], duration: float, error: str = ""
    ) -> None:
        """Element ``attempt.item`` came back (``error``: it failed)."""
        assert attempt.item is not None
        fan = self.fans[attempt.step]
        fan.open.discard(attempt.item)
        fan.settled(attempt.item, outputs, duration, error)
        self.settle(attempt.step)

    def settle(self, step: str) -> None:
        """Finish a ``map:`` step once every element is settled (``Elements.finish``)."""
        ctx, fan = self.ctx, self.fans[step]
        if fan.open or ctx.status.get(step) not in (None, "running"):
            return
        combined = fan.outputs()
        self.results[step] = {"outputs": combined}

        def commit(staging: Path, outputs: Any, dumped: Mapping[str, Any], duration: float, key: str | None) -> None:
            commit_entry(
                ctx,
                step,
                staging,
                outputs=outputs,
                dumped=dumped,
                duration=duration,
                executor=self.executor.name,
                key=key,
            )

        fan.finish(combined, commit)
