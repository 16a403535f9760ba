"""A ``map:`` step in the user's own kernel: ``run_items`` runs its cells once per element.

The same work as the kernel executor's ``kernel_map``, in process: the elements come
from ``KernelSide.map_begin`` on the user's namespace; an element with a cache entry
under its element key (``plan.item_key``) is restored (``map_restore_item``), any other
is bound (``map_item``), the step's cells run (``LiveRun.run_cells``: outputs shown where
the step runs and recorded, the ``timeout:`` watched for the whole step, ``retry:``
applied per element), and its values are dumped and committed under its element key.
Then ``map_end`` binds each name the step writes to the list of its per-element values,
and the step's own entry lists the elements' keys, its outputs being theirs in order
(``outcome.element_outputs``) -- so the cache, the run record and the namespace are what
a kernel-executor run leaves.

Must not: run code other than through ``LiveRun``, or know who asked (the ``%nbflow``
magic or the JupyterLab driver).
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from ..events import ItemFinished
from .outcome import element_outputs, elements_failed, map_values

if TYPE_CHECKING:
    from .user_kernel import LiveRun


def run_items(live: LiveRun, name: str) -> str:
    """Run ``map:`` step ``name`` (started: ``LiveRun.start_step``) element by element;
    its final status. ``Interrupted`` when the person interrupts it."""
    from ..plan import item_key

    ctx, side = live.ctx, live.side
    step = live.pipeline.steps[name]
    names = ctx.stored_names(name)
    cells = len(step.cells)
    started = time.monotonic()
    try:
        with live.state.running():
            info = json.loads(side.map_begin(step.map_over, step.map_as))
    except Exception as e:  # noqa: BLE001 - anything the iterable raises is the step's failure
        return live.finish_step(name, [], f"map:{step.map_over} cannot be iterated: {type(e).__name__}: {e}")
    count = info["count"]
    forced = set(ctx.items.get(name, ()))
    keys = [item_key(live.pipeline, name, ctx.keys.parts(name), f) for f in info["fingerprints"]]
    shown: list[tuple[str, list[list[Any]]]] = []  # (label, outputs per cell) of each element
    failures: dict[int, tuple[str, str]] = {}
    for i in range(count):
        label = info["labels"][i]
        item_started = time.monotonic()
        entry = None if i in forced else ctx.verified_entry(name, keys[i])
        if entry is not None:
            with live.state.running():
                side.map_restore_item(i, name, keys[i], names)
            shown.append((label, ctx.cache.load_outputs(entry)))
            ctx.publish(ItemFinished(ctx.run_id, step=name, item=i, total=count, status="cached", label=label))
            continue
        staging = ctx.cache.staging_path(name)
        try:
            side.map_item(i)
            outputs, error = live.run_cells(name)
            attempt = 1
            while error and (delay := ctx.retry_delay(name, attempt, f"element {i} ({label}): {error}")) is not None:
                live.prepare_retry(name, delay)
                side.map_item(i)
                attempt += 1
                outputs, error = live.run_cells(name)
        except BaseException:  # interrupted (``Interrupted``): nothing of the element is kept
            ctx.cache.discard(staging)
            side.map_abort()
            raise
        duration = time.monotonic() - item_started
        shown.append((label, outputs))
        if error:
            failures[i] = (label, error)
            ctx.publish(
                ItemFinished(
                    ctx.run_id,
                    step=name,
                    item=i,
                    total=count,
                    status="failed",
                    label=label,
                    duration=duration,
                    error=error,
                )
            )
            continue
        with live.state.running():
            answer = json.loads(side.dump(str(staging), names, names))
            side.map_keep(i, names)
        if answer.get("pending"):
            live.pending[str(staging)] = (name, outputs, duration, {}, keys[i])
        elif live.committer is not None:
            live.committer.submit(name, staging, outputs, answer, duration, key=keys[i])
        ctx.publish(
            ItemFinished(ctx.run_id, step=name, item=i, total=count, status="done", label=label, duration=duration)
        )
    all_outputs = element_outputs(cells, shown)
    with live.state.running():
        side.map_end(names)
    live.outputs[name] = all_outputs
    duration = time.monotonic() - started
    live.watchdog.stop()
    live.started.pop(name, None)
    live.ran(name)
    if failures:
        ctx.finish_step(name, "failed", duration=duration, error=elements_failed(count, failures))
        return "failed"
    if live.committer is not None:
        live.committer.submit(
            name, ctx.cache.staging_path(name), all_outputs, {**map_values(names, count), "items": keys}, duration
        )
    ctx.finish_step(name, "done", duration=duration)
    return "done"


__all__ = ["run_items"]
