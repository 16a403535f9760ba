"""The kernel executor's session: one execution of the notebook in one kernel.

``Session`` (the engine's work) reads top to bottom in execution order:

1. connect to the kernel, create the kernel-side helper (the pipeline's ``Language`` says
   how: ``in_kernel.KernelSide`` in Python, ``.nbflow`` in R; ``nbflow/languages``);
2. run the *prelude*: setup cells, the parameters cell and papermill's injected cell;
3. for each step in order: skip it if an upstream step failed; restore the values it
   reads that the kernel does not hold (the ``Ledger`` tracks whose version of each
   name the kernel holds); run its cells, the last one carrying a ``user_expression``
   that dumps the step's values into a staging folder (a kernel without user
   expressions, IRkernel, dumps them in a silent execution after the cells); write its
   outputs there and commit the cache entry. A step that raised or timed out runs again
   while ``RunContext.retry_delay`` allows (``retry:`` tags, ``--retries``), after its
   inputs are restored from the cache (``prepare_retry``);
4. wait for values still being written in the background and commit them.

Cached steps are not run: their cells get their cached outputs (a cached plot shows
again in the output notebook). A watchdog interrupts a step that passes its timeout or
is cancelled, and kills the kernel if it does not stop within the grace period.
Step status comes from nbflow's own bookkeeping, never from papermill's cell metadata
(papermill marks every cell "completed" when the kernel dies).

Beside this module: ``kernel_client`` (the kernel process, papermill glue, the nbclient
subclass), ``kernel_state`` (``Ledger``, ``Committer``; ``Stop``, ``Failure``: how a
step's run ends), ``kernel_map`` (a ``map:`` step, element by element: the kernel's
calls of ``map_loop``'s element loop) and ``outcome`` (what a step's result becomes: the
cache entry, the disk-error rule, the restore check, fan-out).

Only the papermill engine imports this module, when steps run; ``kernel.KernelExecutor``
starts and stops the kernel. This module must not talk to the run store other than
through the ``RunContext``.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import json
import queue
import threading
import time
from pathlib import Path
from typing import Any, Literal

from .base import RunContext
from .kernel_client import (
    SilentError,
    client_class,
    error_text_of,
    expression_results,
    kernel_death,
)
from .kernel_map import run_items
from .kernel_state import Committer, Failure, Interrupted, Ledger, Stop
from .outcome import (
    NotRestorable,
    clear_old_out_files,
    out_files_problem,
    restore_specs,
    stage_out_files,
)


class Session:
    """One execution of the pipeline's notebook in one kernel (see module docstring).

    Created by the papermill engine (``executors.papermill_engine.NbflowEngine``).
    """

    def __init__(self, nb_man: Any, ctx: RunContext, km: Any, verifier: threading.Thread | None) -> None:
        self.nb_man = nb_man
        self.nb = nb_man.nb
        self.ctx = ctx
        self.pipeline = ctx.pipeline
        self.km = km
        self.verifier = verifier
        self.client: Any = None
        self.language = ctx.pipeline.language
        self.ledger = Ledger(ctx.pipeline, ctx.keys.inputs)
        self.watched = ctx.watched_names()
        self.committer = Committer(ctx)
        self.watch_by_request = False  # set by connect: the kernel watches from request metadata
        self.armed: dict[str, Any] | None = None  # that metadata, for the step's first cell
        # background dumps still running in the kernel: staging -> (step, outputs, duration, out files)
        self.pending: dict[str, tuple[str, list, float, dict]] = {}
        self.pending_keys: dict[str, str] = {}  # staging -> element key, for map: elements
        # where each original cell ended up after papermill's injection
        self.position: dict[int, int] = {}
        self.injected: list[int] = []
        for index, cell in enumerate(self.nb.cells):
            marker = cell.metadata.pop("nbflow", None)
            if marker is not None:
                self.position[marker["cell"]] = index
            elif "injected-parameters" in cell.metadata.get("tags", []):
                self.injected.append(index)

    # --------------------------------------------------------------- main
    async def run(self) -> None:
        ctx = self.ctx
        if self.verifier is not None:
            await asyncio.to_thread(self.verifier.join)
        self.fill_cached_outputs()
        ctx.publish_cached_and_queued()
        if not ctx.steps_to_run():
            return
        try:
            await self.connect()
            await self.run_prelude()
            for step in self.pipeline.order:
                if ctx.actions[step] == "cached" and step not in ctx.status and ctx.plan[step].recheck:
                    self.recheck_cached(step)
                if ctx.actions[step] == "run":
                    await self.run_step(step)
        except Stop as stop:
            if stop.status != "cancelled":
                ctx.failure = str(stop)
        finally:
            waiting = time.monotonic()
            await self.collect_pending(wait=True)
            self.discard_pending()
            await asyncio.to_thread(self.committer.close)
            ctx.cache_wait = time.monotonic() - waiting
            if self.client is not None and self.client.kc is not None:
                self.client.kc.stop_channels()

    # ----------------------------------------------------------- kernel
    async def connect(self) -> None:
        from jupyter_client.asynchronous import AsyncKernelClient

        kc = AsyncKernelClient(**self.km.get_connection_info(session=True), parent=self.km)
        kc.start_channels()
        try:
            await kc.wait_for_ready(timeout=self.ctx.config.kernel_start_timeout)
        except RuntimeError as e:
            raise Stop("failed", f"the kernel did not start: {e}") from None
        self.client = client_class()(
            self.nb,
            km=self.km,
            output_limit=self.ctx.config.output_limit,
            timeout=None,
            allow_errors=False,
            record_timing=True,
            resources={"metadata": {"path": str(self.pipeline.path.parent)}},
        )
        self.client.kc = kc
        self.client.reset_execution_trackers()
        info = await self.silent_reply(kc.kernel_info())
        self.nb.metadata["language_info"] = info["content"].get("language_info", {})
        by_reference = sorted(self.pipeline.setup.writes)
        helper = self.language.helper_code(str(self.ctx.cache.root), by_reference, self.ctx.config.output_limit)
        setup = self.language.watch_setup(self.watched)
        try:
            answers = await self.silent(helper, {"watch": setup} if setup else None)
        except SilentError as e:
            raise Stop(
                "failed", f"the kernel cannot use nbflow ({e}); install nbflow in the kernel's environment"
            ) from None
        self.watch_by_request = expression_results({"content": {"user_expressions": answers}}).get("watch") is True

    async def alive(self) -> bool:
        return bool(await asyncio.to_thread(self.km.is_alive))

    async def silent_reply(self, msg_id: str) -> dict[str, Any]:
        """Wait for the shell reply to ``msg_id``, watching the kernel and the cancel flag."""
        kc = self.client.kc if self.client else None
        assert kc is not None
        while True:
            try:
                msg = await kc.get_shell_msg(timeout=0.5)
            except queue.Empty:
                if not await self.alive():
                    raise Stop("failed", kernel_death(self.km)) from None
                if self.ctx.cancel.is_set():
                    raise Stop("cancelled", "run cancelled") from None
                continue
            if msg["parent_header"].get("msg_id") == msg_id:
                return msg

    async def silent(self, code: str, expressions: dict[str, str] | None = None) -> dict[str, Any]:
        msg_id = self.client.kc.execute(code, silent=True, store_history=False, user_expressions=expressions or {})
        content = (await self.silent_reply(msg_id))["content"]
        if content["status"] != "ok":
            raise SilentError(content)
        return content.get("user_expressions", {})

    async def call(self, expression: str) -> Any:
        """Evaluate ``expression`` (returning JSON text) in the kernel; return the data."""
        result = (await self.silent("", {"r": expression}))["r"]
        if result["status"] != "ok":
            raise SilentError(result)
        return json.loads(ast.literal_eval(result["data"]["text/plain"]))

    async def execute(self, cell: Any, index: int, deadline: float | None, expressions: dict[str, str] | None) -> None:
        """Run one cell under the watchdog: timeout and cancel interrupt, then kill. A
        watch armed by ``watch_reads`` rides on the first cell's request."""
        metadata, self.armed = (self.armed, None) if cell.source.strip() else (None, self.armed)
        task = asyncio.ensure_future(self.client.execute_cell_with(cell, index, expressions, metadata))
        stopping: Literal["cancelled", "timeout"] | None = None
        while not task.done():
            wait = 0.2 if deadline is None else max(0.0, min(0.2, deadline - time.monotonic()))
            await asyncio.wait({task}, timeout=wait)
            if task.done() or stopping:
                break
            if self.ctx.cancel.is_set():
                stopping = "cancelled"
            elif deadline is not None and time.monotonic() >= deadline:
                stopping = "timeout"
            if stopping:
                await asyncio.to_thread(self.km.interrupt_kernel)
                await asyncio.wait({task}, timeout=self.ctx.config.kill_grace)
                if not task.done():
                    await asyncio.to_thread(self.km.shutdown_kernel, now=True)
                    task.cancel()
                    with contextlib.suppress(BaseException):
                        await task
                    what = "cancelled" if stopping == "cancelled" else "timed out"
                    raise Stop(stopping, f"{what}; the kernel did not stop when interrupted and was killed")
        if stopping:
            with contextlib.suppress(BaseException):
                await task
            raise Interrupted(stopping)
        await task

    # ---------------------------------------------------------- prelude
    async def run_prelude(self) -> None:
        steps_cells = {c.index for s in self.pipeline.steps.values() for c in s.cells}
        skipped = {c.index for c in self.pipeline.source.cells if "skip" in c.tags}
        prelude = [
            i
            for orig, i in sorted(self.position.items())
            if orig not in steps_cells and orig not in skipped and self.nb.cells[i].cell_type == "code"
        ]
        prelude = sorted(prelude + self.injected)
        for index in prelude:
            cell = self.nb.cells[index]
            try:
                self.nb_man.cell_start(cell, index)
                await self.execute(cell, index, None, None)
                self.nb_man.cell_complete(cell, index)
            except Interrupted as e:
                raise Stop(e.status, "run cancelled during the setup") from None
            except Exception as e:
                from nbclient.exceptions import CellExecutionError, DeadKernelError

                if isinstance(e, DeadKernelError):
                    raise Stop("failed", f"cell {self._number(index)} (setup): {kernel_death(self.km)}") from None
                if isinstance(e, CellExecutionError):
                    self.nb_man.cell_exception(cell, index)
                    raise Stop("failed", f"cell {self._number(index)} (setup) raised {e.ename}: {e.evalue}") from None
                raise

    def _number(self, index: int) -> int:
        for orig, i in self.position.items():
            if i == index:
                return orig + 1
        return index + 1

    # ------------------------------------------------------------ steps
    async def run_step(self, name: str) -> None:
        ctx = self.ctx
        if ctx.cancel.is_set():
            raise Stop("cancelled", "run cancelled")
        if ctx.failure:  # the cache could not be written (outcome.commit_entry): stop here
            raise Stop("failed", ctx.failure)
        blocked = ctx.blocked_by(name)
        if blocked:
            ctx.finish_step(name, "skipped", reasons=(blocked,))
            return
        step = self.pipeline.steps[name]
        if self.settle_if_cached(name, await asyncio.to_thread(ctx.keys.recheck, name)):
            return
        try:
            await self.restore_inputs(name)
        except SilentError as e:
            ctx.finish_step(name, "failed", error=f"could not restore its inputs: {e}", traceback=e.traceback)
            self.ledger.ran(name)
            return
        before = clear_old_out_files(ctx, name)
        ctx.start_step(name)
        started = time.monotonic()
        timeout = ctx.timeout_for(name)
        deadline = started + timeout if timeout else None
        self.ledger.ran(name)
        cells = [(self.position[c.index], c) for c in step.cells]
        for index, _ in cells:
            self.nb.cells[index].metadata["nbflow"] = {"step": name}
        if step.map_over:
            await run_items(self, name, cells, started, deadline)
            return
        staging = ctx.cache.staging_path(name)
        stored, required = ctx.stored_names(name), ctx.required_names(name)
        expression = self.language.dump_expression(str(staging), stored, required)
        expressions = {"nbflow": expression} if expression is not None else {}
        found: dict[str, str] = {}
        try:
            await self.watch_reads(name)
            result = await self.run_cells(cells, deadline, expressions)
            while isinstance(result, Failure) and (provider := await self.restore_found_read(name, result, found)):
                ctx.warn(
                    f"{result.missing} is read at run time (eval/exec); restored it from {provider} and ran again", name
                )
                result = await self.run_cells(cells, deadline, expressions)
            attempt = 1
            while isinstance(result, Failure) and (delay := ctx.retry_delay(name, attempt, result.error)) is not None:
                ctx.cache.discard(staging)
                try:
                    await self.prepare_retry(name, delay)
                except SilentError as e:
                    result = Failure(f"attempt {attempt + 1}: could not restore its inputs: {e}", e.traceback)
                    break
                attempt += 1
                deadline = time.monotonic() + timeout if timeout else None
                result = await self.run_cells(cells, deadline, expressions)
            if expression is None and not isinstance(result, Failure):
                result = await self.dump_after(staging, stored, required)
        except Stop as stop:
            ctx.cache.discard(staging)
            status = "cancelled" if stop.status == "cancelled" else "failed"
            ctx.finish_step(name, status, duration=time.monotonic() - started, error=stop.step_error or str(stop))
            raise stop.in_step(name) from None
        duration = time.monotonic() - started
        if isinstance(result, Failure):
            ctx.cache.discard(staging)
            ctx.finish_step(name, "failed", duration=duration, error=result.error, traceback=result.traceback)
            return
        missing = out_files_problem(ctx, name)
        if missing:
            ctx.cache.discard(staging)
            ctx.finish_step(name, "failed", duration=duration, error=missing)
            return
        out_files = stage_out_files(ctx, name, staging, before=before)
        outputs = [list(self.nb.cells[i].get("outputs", [])) for i, _ in cells]
        await asyncio.to_thread(ctx.keys.learn, name, result.get("learnt"), found)
        self.ledger.ran(name, ctx.keys.run_writes(name))
        if result.get("pending"):
            self.pending[str(staging)] = (name, outputs, duration, out_files)
        elif out_files is not None:  # None: not cached (warned); a full disk stops the run at the next step
            self.committer.submit(name, staging, outputs, result, duration, out_files)
        ctx.finish_step(name, "done", duration=duration)

    async def prepare_retry(self, name: str, delay: float) -> None:
        """Before attempt 2, 3...: wait ``delay`` (cancel-aware), drop what the failed
        attempt wrote, and restore every value ``name`` reads from the cache, so an
        in-place change the failed attempt made does not reach the next one."""
        if await asyncio.to_thread(self.ctx.cancel.wait, delay):
            raise Stop("cancelled", "run cancelled", step_error="cancelled")
        inputs = self.ctx.keys.inputs(name)
        dropped = self.ctx.retry_dropped(name)
        forget = self.language.forget_code(dropped) if dropped else None
        if forget is not None:
            await self.silent(forget)
        for value in inputs:  # the failed attempt may have changed them in place
            self.ledger.forget(value)
        await self.restore_inputs(name)
        self.ledger.ran(name)
        await self.watch_reads(name)

    async def watch_reads(self, name: str) -> None:
        """Let the kernel note the values ``name`` reads before it runs (changed at run time?)."""
        reads = sorted(set(self.pipeline.steps[name].reads) | set(self.ctx.keys.inputs(name)))
        if self.watch_by_request:  # rides on the step's first cell (in_kernel.watch_on_request)
            self.armed = self.language.watch_metadata(reads)
            return
        watch = self.language.watch_code(self.watched, reads)
        try:
            if watch is not None:
                await self.silent(watch)
        except SilentError as e:
            self.ctx.warn(f"values changed at run time will not be seen: {e}", name)

    async def run_cells(
        self, cells: list[tuple[int, Any]], deadline: float | None, expressions: dict[str, str]
    ) -> dict[str, Any] | Failure:
        """Run a step's cells in order, ``expressions`` riding on the last one.

        Returns the dump result (``{}`` for a step without code) or a ``Failure`` (the
        step raised or timed out but the kernel is usable); raises ``Stop`` when the
        kernel cannot go on (died, killed, cancelled).
        """
        from nbclient.exceptions import CellExecutionError, DeadKernelError

        runnable = [i for i, _ in cells if self.nb.cells[i].source.strip()]
        last = runnable[-1] if runnable else None
        result: dict[str, Any] = {}
        for index, source_cell in cells:
            cell = self.nb.cells[index]
            self.nb_man.cell_start(cell, index)
            try:
                await self.execute(cell, index, deadline, expressions if index == last else None)
            except Interrupted as e:
                self.nb_man.cell_exception(cell, index)
                if e.status == "cancelled":
                    raise Stop("cancelled", "run cancelled", step_error="cancelled") from None
                timeout = self.ctx.timeout_for(self._step_of(source_cell))
                return Failure(f"timed out after {timeout:g} s (interrupted)", error_text_of(cell))
            except Stop:
                self.nb_man.cell_exception(cell, index)
                raise
            except DeadKernelError:
                self.nb_man.cell_exception(cell, index)
                death = kernel_death(self.km)
                raise Stop(
                    "failed",
                    f'{death} in step "{self._step_of(source_cell)}"',
                    step_error=f"cell {source_cell.number}: {death}",
                ) from None
            except CellExecutionError as e:
                self.nb_man.cell_exception(cell, index)
                return Failure(
                    f"cell {source_cell.number}: {e.ename}: {e.evalue}", error_text_of(cell), e.ename, e.evalue
                )
            self.nb_man.cell_complete(cell, index)
            if index == last:
                replies = expression_results(self.client.last_reply)
                result = replies.get("nbflow", {})
                if result.get("watch_error"):
                    self.ctx.warn(
                        f"values changed at run time will not be seen: {result['watch_error']}",
                        self._step_of(source_cell),
                    )
        self.armed = None  # a step without code: its watch must not ride on another's cell
        return result

    async def dump_after(self, staging: Path, stored: list[str], required: list[str]) -> dict[str, Any]:
        """Write the step's values with a silent execution after it ran (a kernel
        without ``user_expressions``); ``Cache.dump_values``' answer or an error."""
        try:
            await self.silent(self.language.dump_code(str(staging), stored, required))
            return await asyncio.to_thread(self.language.read_dump, staging)
        except SilentError as e:
            return {"error": str(e)}
        except (OSError, ValueError) as e:
            return {"error": f"{type(e).__name__}: {e}", "errno": getattr(e, "errno", None)}

    def _step_of(self, cell: Any) -> str:
        return next(s.name for s in self.pipeline.steps.values() if cell in s.cells)

    def alias_mates(self, provider: str, names: list[str], entry: Any) -> list[str]:
        """Values of ``provider``'s entry sharing memory or an index with ``names``, that
        the kernel holds in ``provider``'s version or not at all: restored with them."""
        mates: list[str] = []
        for group in entry.manifest.get("aliases", ()):
            if set(group) & set(names):
                mates += [
                    n
                    for n in group
                    if n not in names
                    and n not in mates
                    and n in entry.names
                    and self.ledger.holder.get(n) in (None, provider)
                ]
        return mates

    # ------------------------------------------------------ early cut-off
    def settle_if_cached(self, name: str, entry: Any) -> bool:
        """Restore nothing, run nothing: ``name``'s re-computed key has an entry
        (``RunContext.settle_cached``); its cells get the entry's outputs."""
        if not self.ctx.settle_cached(name, entry):
            return False
        self.show_cached(name, entry)
        return True

    def show_cached(self, name: str, entry: Any) -> None:
        import nbformat

        outputs = self.ctx.cache.load_outputs(entry)
        for i, c in enumerate(self.pipeline.steps[name].cells):
            cell = self.nb.cells[self.position[c.index]]
            cell.metadata["nbflow"] = {"step": name, "cached": True}
            cell.outputs = [nbformat.from_dict(o) for o in outputs[i]] if i < len(outputs) else []

    def recheck_cached(self, name: str) -> None:
        """A cached step deferred until the steps that may change its inputs ran: still
        cached (``RunContext.settle_deferred``), or it runs."""
        entry = self.ctx.settle_deferred(name)
        if entry is not None:
            self.show_cached(name, entry)

    async def restore_found_read(self, name: str, failure: Failure, found: dict[str, str]) -> str | None:
        """After a ``NameError``: restore the missing value from the step that provides it.

        Returns that step, or ``None`` when no earlier step provides the name (or it was
        restored already: the step then fails as it would in a plain run).
        """
        missing = failure.missing
        if not missing or missing in found:
            return None
        position = self.pipeline.order.index(name)
        provider = next(
            (
                s
                for s in reversed(self.pipeline.order[:position])
                if missing in self.pipeline.steps[s].writes or missing in self.ctx.keys.run_writes(s)
            ),
            None,
        )
        if provider is None or self.ctx.status.get(provider) not in ("done", "cached"):
            return None
        await asyncio.to_thread(self.committer.flush)
        await self.collect_pending(wait=True)
        await asyncio.to_thread(self.committer.flush)
        entry = self.ctx.cache.lookup(provider, self.ctx.key(provider))
        if entry is None or missing not in entry.names:
            return None
        try:
            await self.silent(
                self.language.restore_code(self.ctx.cache, [[provider, self.ctx.key(provider), [missing]]])
            )
        except SilentError:
            return None
        self.ledger.restored(provider, [missing])
        found[missing] = provider
        return provider

    async def restore_inputs(self, name: str) -> None:
        needs = self.ledger.needed(name)
        if not needs:
            return
        waiting = [s for s, (step, *_) in self.pending.items() if step in needs]
        if waiting:
            await self.collect_pending(wait=True, only=waiting)
        if any(self.ctx.actions[p] == "run" for p in needs):
            await asyncio.to_thread(self.committer.flush)
        for provider in needs:
            if self.ctx.actions[provider] == "run" and self.ctx.status.get(provider) != "done":
                raise SilentError({"ename": "RuntimeError", "evalue": f'step "{provider}" did not finish'})
        try:
            specs = restore_specs(self.ctx, name, needs, self.alias_mates)
        except NotRestorable as e:
            raise SilentError(
                {
                    "ename": "LookupError",
                    "evalue": f"{e}; add the tag after:{e.provider} or keep {e.value} unchanged by later steps",
                }
            ) from None
        await self.silent(self.language.restore_code(self.ctx.cache, specs))
        for provider, names in needs.items():
            self.ledger.restored(provider, names)

    # ------------------------------------------------------------ cache
    async def collect_pending(self, wait: bool, only: list[str] | None = None) -> None:
        if not self.pending or self.client is None:
            return
        try:
            done = await self.call(f"__nbflow__.collect(wait={wait!r}, only={only!r})")
        except (Stop, SilentError) as e:
            self.ctx.warn(f"values still being written were lost: {e}")
            return
        for staging, dumped in done.items():
            name, outputs, duration, out_files = self.pending.pop(staging)
            key = self.pending_keys.pop(staging, None)
            if out_files is None:  # its out: files could not be staged (warned)
                self.ctx.cache.discard(Path(staging))
                continue
            self.committer.submit(name, Path(staging), outputs, dumped, duration, out_files, key=key)

    def discard_pending(self) -> None:
        for staging, (name, *_) in self.pending.items():
            self.ctx.cache.discard(Path(staging))
            self.ctx.warn("values not cached: the kernel stopped while writing them", name)
        self.pending.clear()

    def fill_cached_outputs(self) -> None:
        """Put cached steps' outputs in their cells, as if they had just run."""
        for name in self.pipeline.order:
            action = self.ctx.actions[name]
            step = self.pipeline.steps[name]
            if action != "cached":
                for c in step.cells:
                    self.nb.cells[self.position[c.index]].metadata["nbflow"] = {"step": name}
                continue
            entry = self.ctx.cache.lookup(name, self.ctx.key(name))
            outputs = self.ctx.cache.load_outputs(entry) if entry else []
            for i, c in enumerate(step.cells):
                cell = self.nb.cells[self.position[c.index]]
                cell.metadata["nbflow"] = {"step": name, "cached": True}
                if i < len(outputs):
                    import nbformat

                    cell.outputs = [nbformat.from_dict(o) for o in outputs[i]]
