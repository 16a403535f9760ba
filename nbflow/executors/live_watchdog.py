"""``timeout:`` in the user's own kernel: interrupt the step's cell when its time is up.

The kernel executor's watchdog interrupts the kernel it started from outside
(``KernelManager.interrupt_kernel``) and kills it when it does not stop. In the user's
kernel nbflow *is* inside the process: ``Watchdog`` is a thread that, once the step's
deadline has passed and while one of the step's cells runs (``cell()``, entered around
each cell -- by ``LiveRun.execute`` for ``%nbflow run``, by the run-cell hooks for cells
JupyterLab executes), sends SIGINT to the kernel's main thread, exactly what the kernel's
interrupt button does. The cell raises ``KeyboardInterrupt``; ``fired`` tells the live
executor it was the timeout, not the person, so the step fails with the kernel executor's
one line (``timed out after 2 s (interrupted)``) instead of cancelling the run.

Worked example: ``timeout:2`` on a step whose cell sleeps 60 s: at 2 s the cell raises
``KeyboardInterrupt``; the step is recorded failed "timed out after 2 s (interrupted)";
its dependants are skipped; the kernel goes on.

The signal is sent only while a cell of the step runs and SIGINT's handler is Python's
``default_int_handler`` (ipykernel installs it for the time of an execute request): never
into nbflow's own bookkeeping between cells, never into an idle kernel. Code that swallows
``KeyboardInterrupt`` is interrupted again every ``grace`` seconds. nbflow does not kill the
user's kernel (the kernel executor kills its own): such a step stops when its code lets it.

Must not: run code in the namespace, publish events or touch the cache (the live
executor does); it only interrupts.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


class Watchdog:
    """Interrupts the main thread when the step's deadline passes while its cell runs."""

    def __init__(self, grace: float = 5.0) -> None:
        self.grace = grace
        #: seconds of the step under watch (``None``: no timeout), and when they run out
        self.timeout: float | None = None
        self.deadline: float | None = None
        #: the step's time ran out and its cell was interrupted
        self.fired = False
        self._armed = False
        self._fired_at: float | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._main = threading.main_thread().ident

    def start(self, timeout: float | None) -> None:
        """A step (or an attempt of it) starts: its time runs from now (``None``: no limit)."""
        with self._lock:
            self.timeout = timeout
            self.deadline = time.monotonic() + timeout if timeout else None
            self.fired = False
            self._fired_at = None
        if timeout and self._thread is None and not self._closed:
            self._thread = threading.Thread(target=self._loop, name="nbflow-live-timeout", daemon=True)
            self._thread.start()
        self._wake.set()

    def stop(self) -> None:
        """The step ended: no more interrupts for it (``fired`` stays readable)."""
        with self._lock:
            self.deadline = None
            self._armed = False

    def close(self) -> None:
        """The run ended: the thread exits."""
        self.stop()
        self._closed = True
        self._wake.set()

    @contextmanager
    def cell(self) -> Iterator[None]:
        """Around one cell of the step: the only time the interrupt may be sent."""
        self.arm()
        try:
            yield
        finally:
            self.disarm()

    def arm(self) -> None:
        self._fired_at = None  # a new cell past the deadline is interrupted at once
        self._armed = True
        self._wake.set()

    def disarm(self) -> None:
        # no lock: the main thread must never wait here while the signal is being sent
        self._armed = False

    def _loop(self) -> None:
        while not self._closed:
            with self._lock:
                deadline, armed = self.deadline, self._armed
            now = time.monotonic()
            if deadline is None or not armed:
                self._wake.wait(0.5)
                self._wake.clear()
                continue
            if now < deadline:
                self._wake.wait(min(0.5, deadline - now))
                self._wake.clear()
                continue
            with self._lock:
                due = (
                    self._armed
                    and self.deadline is not None
                    and (self._fired_at is None or now - self._fired_at >= self.grace)
                )
                if due and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
                    self.fired = True
                    self._fired_at = now
                    signal.pthread_kill(self._main, signal.SIGINT)
            self._wake.wait(0.05)
            self._wake.clear()

    def message(self) -> str:
        """The step's error, as the kernel executor words it."""
        return f"timed out after {self.timeout or 0:g} s (interrupted)"


__all__ = ["Watchdog"]
