"""How a Dask run stops what it started: the part of ``dask.DaskSession`` that watches
running tasks and ends them.

``Watchdog.watch`` fails a step whose worker did not stop it at its timeout (the
worker's own timer interrupts it first) and a run whose cluster has had no worker for
``worker_timeout``; ``stop_all`` ends every running step when the run is cancelled or
stopped; ``kill`` cancels tasks, interrupts their code on the worker
(``on_worker.interrupt_step``) and restarts a worker whose step does not stop within
the grace period; ``release_all`` lets go of every future of the run.

This module must not decide what runs next or commit cache entries: ``dask.DaskSession``
does. It uses the session's attributes (``ctx``, ``client``, ``running``, ``fans``...)
and its ``fail`` / ``finish_once``.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from .base import RUN_STOPPED, SETUP_FAILED

if TYPE_CHECKING:
    from .base import RunContext
    from .dask_tasks import Attempt, FanOut

log = logging.getLogger("nbflow.executors.dask")


class Watchdog:
    """Time-outs, cancel and worker loss of a ``dask.DaskSession`` (see module docstring)."""

    ctx: RunContext
    client: Any
    executor: Any
    running: dict[str, Attempt]
    fans: dict[str, FanOut]
    futures: dict[str, Any]
    scattered: dict[str, Any]
    restarting: set[str]
    no_workers_since: float | None
    last_worker_check: float
    setup_failed: bool

    def watch(self) -> None:
        """Time-outs of stuck steps and a cluster left with no worker."""
        ctx = self.ctx
        now = time.monotonic()
        grace = ctx.config.kill_grace
        for token, attempt in list(self.running.items()):
            timeout = ctx.timeout_for(attempt.step)
            if timeout and attempt.started is not None and now - attempt.started > timeout + grace + 1.0:
                # The worker's own timer interrupts the step; this one did not stop.
                self.running.pop(token)
                self.kill([attempt])
                self.fail(
                    attempt,
                    f"timed out after {timeout:g} s; the step did not stop when interrupted and its worker "
                    "was restarted",
                    duration=now - attempt.started,
                )
        if now - self.last_worker_check < 2.0:
            return
        self.last_worker_check = now
        try:
            workers = len(self.client.nthreads())
        except Exception:  # noqa: BLE001 - the scheduler did not answer this time
            workers = -1
        if workers != 0:
            self.no_workers_since = None
            return
        self.no_workers_since = self.no_workers_since or now
        if now - self.no_workers_since > self.executor.worker_timeout:
            error = f"the Dask cluster has had no worker for {self.executor.worker_timeout:g} s"
            for token, attempt in list(self.running.items()):
                self.running.pop(token)
                self.kill([attempt])
                self.fail(attempt, error)
            ctx.failure = error

    def stop_all(self, why: str) -> None:
        """Cancel what was submitted; running steps end ``cancelled`` (or ``skipped``)."""
        attempts = list(self.running.values())
        self.running.clear()
        self.kill(attempts, reason="cancelled")
        now = time.monotonic()
        for attempt in attempts:
            fan = self.fans.get(attempt.step)
            started = fan.started if fan else attempt.started
            duration = now - started if started else 0.0
            if why == "cancelled":
                self.finish_once(attempt.step, "cancelled", duration=duration, error="cancelled")
            elif started is not None:
                self.finish_once(attempt.step, "interrupted", duration=duration, error=f"stopped: {self.ctx.failure}")
            else:
                self.finish_once(attempt.step, "skipped", reasons=(SETUP_FAILED if self.setup_failed else RUN_STOPPED,))

    def kill(self, attempts: list[Attempt], reason: str = "timeout") -> None:
        """Cancel ``attempts``' tasks, interrupt their code, restart workers that ignore it."""
        if not attempts:
            return
        from .on_worker import interrupt_step, running_steps

        client = self.client
        with contextlib.suppress(Exception):
            client.cancel([a.future for a in attempts], force=True)
        for attempt in attempts:
            self.discard(attempt)
        started = [a for a in attempts if a.worker]
        for attempt in started:
            with contextlib.suppress(Exception):
                client.run(interrupt_step, attempt.token, reason, workers=[attempt.worker], on_error="return")
        deadline = time.monotonic() + self.ctx.config.kill_grace
        while started and time.monotonic() < deadline:
            try:
                running = client.run(running_steps, workers=[a.worker for a in started], on_error="return")
            except Exception:  # noqa: BLE001 - ask again until the deadline
                running = {}
            started = [a for a in started if isinstance(running.get(a.worker), list) and a.token in running[a.worker]]
            if started:
                time.sleep(0.1)
        if started:
            self.restarting.update(a.worker for a in started if a.worker)
            # Restarting waits for the new worker to register: not the run's business.
            threading.Thread(target=self._restart, args=(started,), name="nbflow-dask-restart", daemon=True).start()

    def _restart(self, attempts: list[Attempt]) -> None:
        try:
            self.client.restart_workers([a.worker for a in attempts], timeout=120, raise_for_error=False)
        except Exception as e:  # noqa: BLE001 - nothing more nbflow can do from here
            log.warning("nbflow: could not restart Dask workers %s (%s)", [a.worker for a in attempts], e)

    def release_all(self) -> None:
        """Let go of every future: nothing of the run stays in the cluster's memory."""
        for attempt in self.running.values():
            with contextlib.suppress(Exception):
                attempt.future.release()
        for future in [*self.futures.values(), *self.scattered.values()]:
            with contextlib.suppress(Exception):
                future.release()
        self.futures.clear()
        self.scattered.clear()
