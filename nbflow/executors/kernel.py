"""The ``kernel`` executor: one Jupyter kernel, driven through papermill.

``KernelExecutor.execute`` starts the kernel first (it boots on the other core while
papermill is imported), checks the cache entries the run will load, then calls
``papermill.execute_notebook`` with the ``nbflow`` engine. papermill injects the
parameters, keeps its output-notebook format and its error report (the failing cell is
marked like any papermill run); the engine runs the steps. The output notebook is
written once at the end, to a temporary file renamed into place: papermill's own
engine saves the whole notebook at the start and end of every cell, which costs more
than running a small step.

The engine's work is ``kernel_session.Session``, imported only when steps run (a run
with every step cached does not import asyncio, nbclient or the session's helpers).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from typing import Any

from .base import RunContext
from .kernel_client import (
    EarlyKernel,
    execute_notebook,
    notebook_for_papermill,
    register_translator,
    shutdown_kernel,
    start_kernel,
)
from .kernel_state import verify_restores
from .outcome import OutputNotWritten


class KernelExecutor:
    """Run steps in one Jupyter kernel (see module docstring)."""

    name = "kernel"

    def prestart(self, pipeline: Any, config: Any) -> EarlyKernel:
        """Start the kernel now, before the run is recorded (``run.start_run``)."""
        return EarlyKernel(pipeline, config.runs_dir)

    def execute(self, ctx: RunContext) -> None:
        try:
            self._execute(ctx)
        finally:
            if ctx.early_kernel is not None:  # not taken: no step ran after all
                ctx.early_kernel.discard()
                ctx.early_kernel = None

    def _execute(self, ctx: RunContext) -> None:
        if not ctx.steps_to_run():
            ctx.publish_cached_and_queued()  # may turn a step with a corrupt entry into "run"
            if not ctx.steps_to_run() and ctx.output_path is None:
                return
            ctx.output_path = ctx.output_path or ctx.config.runs_dir / str(ctx.run_id) / "output.ipynb"
        km = start_kernel(ctx) if ctx.steps_to_run() else None
        verifier = threading.Thread(target=verify_restores, args=(ctx,), name="nbflow-verify", daemon=True)
        verifier.start()
        try:
            from papermill.exceptions import PapermillExecutionError

            register_translator()
            nb = notebook_for_papermill(ctx.pipeline)
            out = ctx.output_path
            assert out is not None
            out.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{out.stem}-", suffix=".tmp.ipynb", dir=out.parent)
            os.close(fd)
            try:
                try:
                    execute_notebook(
                        nb,
                        tmp,
                        out,
                        parameters=ctx.given,
                        engine_name="nbflow",
                        request_save_on_cell_execute=False,
                        progress_bar=False,
                        kernel_name=ctx.pipeline.source.kernel_name,
                        nbflow_context=ctx,
                        nbflow_kernel=km,
                        nbflow_verifier=verifier,
                    )
                except PapermillExecutionError:
                    pass  # a step failed: recorded by the session; papermill marked the cell
                try:
                    with open(tmp, "rb") as f:
                        os.fsync(f.fileno())
                    os.replace(tmp, out)
                except OSError as e:
                    raise OutputNotWritten(out, e) from None
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
        finally:
            if km is not None:
                shutdown_kernel(km)
