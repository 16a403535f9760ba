"""A ``map:`` step in the kernel: ``run_items`` runs the step's cells once per element.

Elements with a cache entry are restored instead of run; each element that runs is
committed under its element key (``plan.item_key``), and the step's own entry lists the
elements' keys, its outputs being theirs in order (``outcome.element_outputs``). The
kernel side of it is ``in_kernel.KernelSide.map_*``.

This module drives a ``kernel_session.Session`` (its kernel calls, cells, pending dumps and
committer); it must not start, stop or connect to a kernel: ``kernel_session.Session`` does.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from ..events import ItemFinished
from .kernel_client import SilentError
from .kernel_state import Failure, Stop
from .outcome import element_outputs, elements_failed, map_values

if TYPE_CHECKING:
    from .kernel_session import Session


async def run_items(
    session: Session, name: str, cells: list[tuple[int, Any]], started: float, deadline: float | None
) -> None:
    """Run a ``map:`` step once per element; elements with a cache entry are restored."""
    from ..plan import item_key

    ctx = session.ctx
    step = session.pipeline.steps[name]
    names = ctx.stored_names(name)
    try:
        info = await session.call(f"__nbflow__.map_begin({step.map_over!r}, {step.map_as!r})")
    except SilentError as e:
        ctx.finish_step(
            name,
            "failed",
            duration=time.monotonic() - started,
            error=f"map:{step.map_over} cannot be iterated: {e}",
            traceback=e.traceback,
        )
        return
    count = info["count"]
    forced = set(ctx.items.get(name, ()))
    keys = [item_key(session.pipeline, name, session.ctx.keys.parts(name), f) for f in info["fingerprints"]]
    shown: list[tuple[str, list[list[Any]]]] = []  # (label, outputs per cell) of each element
    failures: dict[int, tuple[str, str]] = {}
    for i in range(count):
        label = info["labels"][i]
        item_started = time.monotonic()
        entry = None if i in forced else await asyncio.to_thread(ctx.verified_entry, name, keys[i])
        if entry is not None:
            await session.silent(f"__nbflow__.map_restore_item({i}, {name!r}, {keys[i]!r}, {names!r})")
            shown.append((label, ctx.cache.load_outputs(entry)))
            ctx.publish(ItemFinished(ctx.run_id, step=name, item=i, total=count, status="cached", label=label))
            continue
        await session.silent(f"__nbflow__.map_item({i})")
        staging = ctx.cache.staging_path(name)
        expressions = {
            "nbflow": f"__nbflow__.dump({str(staging)!r}, {names!r}, {names!r})",
            "keep": f"__nbflow__.map_keep({i}, {names!r})",
        }
        try:
            result = await session.run_cells(cells, deadline, expressions)
            attempt = 1
            while (
                isinstance(result, Failure)
                and (delay := ctx.retry_delay(name, attempt, f"element {i} ({label}): {result.error}")) is not None
            ):
                try:
                    await session.prepare_retry(name, delay)
                    await session.silent(f"__nbflow__.map_item({i})")
                except SilentError as e:
                    result = Failure(f"attempt {attempt + 1}: could not restore its inputs: {e}", e.traceback)
                    break
                attempt += 1
                result = await session.run_cells(cells, deadline, expressions)
        except Stop as stop:
            ctx.cache.discard(staging)
            status = "cancelled" if stop.status == "cancelled" else "failed"
            ctx.finish_step(
                name,
                status,
                duration=time.monotonic() - started,
                error=f"element {i} ({label}): {stop.step_error or stop}",
            )
            raise stop.in_step(name) from None
        duration = time.monotonic() - item_started
        outputs = [list(session.nb.cells[index].get("outputs", [])) for index, _ in cells]
        shown.append((label, outputs))
        if isinstance(result, Failure):
            ctx.cache.discard(staging)
            failures[i] = (label, result.error)
            ctx.publish(
                ItemFinished(
                    ctx.run_id,
                    step=name,
                    item=i,
                    total=count,
                    status="failed",
                    label=label,
                    duration=duration,
                    error=result.error,
                )
            )
            continue
        if result.get("pending"):
            session.pending[str(staging)] = (name, outputs, duration, {})
            session.pending_keys[str(staging)] = keys[i]
        else:
            session.committer.submit(name, staging, outputs, result, duration, key=keys[i])
        ctx.publish(
            ItemFinished(ctx.run_id, step=name, item=i, total=count, status="done", label=label, duration=duration)
        )
    import nbformat

    all_outputs = element_outputs(len(cells), shown)
    for j, (index, _) in enumerate(cells):
        session.nb.cells[index].outputs = [nbformat.from_dict(o) for o in all_outputs[j]]
    await session.call(f"__nbflow__.map_end({names!r})")
    duration = time.monotonic() - started
    if failures:
        ctx.finish_step(name, "failed", duration=duration, error=elements_failed(count, failures))
        return
    session.committer.submit(
        name, ctx.cache.staging_path(name), all_outputs, {**map_values(names, count), "items": keys}, duration
    )
    ctx.finish_step(name, "done", duration=duration)
