"""The event stream of a run: what every view listens to.

An executor publishes, in this order::

    RunStarted
      StepFinished(status="cached")   for fresh steps, at once
      StepQueued                      for each step that will run
      StepStarted / StepFinished      as each step runs (done, failed, skipped, cancelled)
      ItemFinished                    for each element of a ``map:`` step
      RunWarning                      a problem that does not fail the run
      StepRetried                     an attempt of a step failed; it runs again (a RunWarning)
      CheckFailed                     a ``check:`` of a finished step failed: that step is failed
    RunFinished

The run store, the CLI progress display, the widget, the studio and the REST API are
listeners on the same ``EventBus``; none of them polls an executor. The bus keeps the
history of a run so a view that subscribes late (a browser that reconnects) replays
it first, and a listener that raises is reported and dropped, never allowed to break
the run.

Standard library only.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

log = logging.getLogger(__name__)

StepStatus = Literal["done", "cached", "failed", "cancelled", "skipped", "interrupted"]
RunStatus = Literal["done", "failed", "cancelled", "interrupted"]


@dataclass(frozen=True)
class Event:
    run_id: int
    time: float = field(default_factory=time.time, kw_only=True)

    @property
    def type(self) -> str:
        return type(self).__name__

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form with a ``type`` field (the REST API streams these)."""
        return {"type": self.type, **dataclasses.asdict(self)}


@dataclass(frozen=True)
class RunStarted(Event):
    notebook: str
    params: Mapping[str, Any]
    #: ``[{"step", "key", "state", "action", "reasons"}]`` in execution order.
    steps: tuple[Mapping[str, Any], ...]
    executor: str


@dataclass(frozen=True)
class StepQueued(Event):
    step: str
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class StepStarted(Event):
    step: str


@dataclass(frozen=True)
class StepFinished(Event):
    step: str
    status: StepStatus
    duration: float = 0.0
    error: str = ""
    traceback: str = ""
    reasons: tuple[str, ...] = ()
    #: The key the step ended with, when the run re-keyed it (early cut-off, a read found at run time).
    key: str = ""


@dataclass(frozen=True)
class ItemFinished(Event):
    """One element of a ``map:`` step finished (``done``, ``cached`` or ``failed``)."""

    step: str
    item: int
    total: int
    status: StepStatus
    label: str = ""
    duration: float = 0.0
    error: str = ""


@dataclass(frozen=True)
class RunWarning(Event):
    message: str
    step: str | None = None


@dataclass(frozen=True)
class StepRetried(RunWarning):
    """An attempt of ``step`` failed and it runs again (after ``delay`` seconds).

    A ``RunWarning``: every view that shows warnings (``nbflow show``, the report, the
    progress line) shows each attempt; ``attempt`` counts from 1.
    """

    attempt: int = 1
    attempts: int = 1
    error: str = ""
    delay: float = 0.0


@dataclass(frozen=True)
class CheckFailed(Event):
    """The data check ``check`` (a ``check:STEP`` cell, itself a step) failed on the values
    of ``step``, which had finished ``done`` or ``cached``: ``step`` is now ``failed``.

    The one event that moves a finished step back (the run store allows ``done``/``cached``
    -> ``failed`` for it alone); ``error`` names the notebook, the check's cell and the step.
    A ``check-warn:`` never publishes it (it warns, the step stays done).
    """

    step: str
    check: str
    error: str = ""


@dataclass(frozen=True)
class RunFinished(Event):
    status: RunStatus
    duration: float = 0.0
    error: str = ""
    #: Of ``duration``: seconds the run's end waited for cache entries still being written.
    cache_wait: float = 0.0


Listener = Callable[[Event], None]


class EventBus:
    """Delivers each event to every listener, in order, on the publisher's thread.

    A *critical* listener (the run store) propagates its exceptions to the publisher:
    a run that cannot be recorded stops. Any other listener that raises is logged and
    removed.
    """

    def __init__(self) -> None:
        self._listeners: list[tuple[Listener, bool]] = []
        self._lock = threading.RLock()
        self.history: list[Event] = []

    def subscribe(self, listener: Listener, replay: bool = True, critical: bool = False) -> Callable[[], None]:
        """Add ``listener`` (first replaying past events); return a function to remove it."""
        with self._lock:
            if replay:
                for event in self.history:
                    if not self._deliver(listener, event, critical):
                        return lambda: None
            self._listeners.append((listener, critical))

        def unsubscribe() -> None:
            with self._lock:
                self._listeners = [item for item in self._listeners if item[0] is not listener]

        return unsubscribe

    def publish(self, event: Event) -> None:
        with self._lock:
            self.history.append(event)
            for item in list(self._listeners):
                if not self._deliver(item[0], event, item[1]):
                    self._listeners.remove(item)

    @staticmethod
    def _deliver(listener: Listener, event: Event, critical: bool) -> bool:
        try:
            listener(event)
            return True
        except Exception:
            if critical:
                raise
            log.exception("nbflow: event listener %r failed on %s and was removed", listener, event.type)
            return False
