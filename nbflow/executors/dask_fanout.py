"""A ``map:`` step on a Dask cluster: the part of ``dask.DaskSession`` that fans it out.

One task lists the step's elements (count, fingerprints, labels); ``FanOutSteps.expanded``
then restores the elements with a cache entry and submits the others, each as its own
task; ``element_settled`` records what became of one; ``settle`` finishes the step once
every element is settled: its entry lists the elements' keys and its outputs are
theirs in order, exactly as the kernel executor writes them.

This module must not submit anything but a step's elements, nor watch running tasks:
``dask.DaskSession`` and ``dask_watch`` do. It uses the session's attributes (``ctx``,
``pipeline``, ``fans``, ``results``) and its ``submit``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .dask_tasks import Attempt, FanOut
from .outcome import commit_entry, element_outputs, elements_failed, map_values

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
        from ..events import ItemFinished
        from ..plan import item_key

        ctx, step = self.ctx, attempt.step
        count = int(result["count"])
        keys = [item_key(self.pipeline, step, ctx.keys.parts(step), f) for f in result["fingerprints"]]
        fan = FanOut(attempt.started or time.monotonic(), count, keys, list(result["labels"]), result["fingerprints"])
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
        self, attempt: Attempt, outputs: list[list[dict[str, Any]]], duration: float, error: str = ""
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
        commit_entry(
            ctx,
            step,
            ctx.cache.staging_path(step),
            outputs=combined,
            dumped={**map_values(ctx.stored_names(step), fan.count), "items": fan.keys},
            duration=duration,
            executor=self.executor.name,
        )
        ctx.finish_step(step, "done", duration=duration)
