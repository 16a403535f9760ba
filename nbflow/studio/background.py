"""Blocking work of a studio session, off the Bokeh server's IO loop.

The studio is one process and one IO loop for every browser: a plan that reads a huge
``in:`` file, a report of a long run, or a read that hangs would stop every session and
every plain ``GET /`` while it lasts. ``in_background`` runs such work on a daemon thread
(the server can still stop while it hangs) and hands the result back to the session on
its document (``add_next_tick_callback``, Bokeh's thread-safe way in). When the work
takes longer than its time limit, ``on_slow`` is called on the document too, so the
page can say what it is waiting for; the result is still used when it comes.

``TIME_LIMIT`` is the default limit in seconds (``NBFLOW_STUDIO_TIME_LIMIT`` overrides
it). This module knows nothing about pipelines; it must not touch widgets itself.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

#: Seconds after which a session says it is still waiting (``NBFLOW_STUDIO_TIME_LIMIT``).
TIME_LIMIT = 20.0


def time_limit() -> float:
    """The time limit in seconds: ``NBFLOW_STUDIO_TIME_LIMIT`` if it is a positive number."""
    try:
        value = float(os.environ.get("NBFLOW_STUDIO_TIME_LIMIT", TIME_LIMIT))
    except ValueError:
        return TIME_LIMIT
    return value if value > 0 else TIME_LIMIT


def on_document(doc: Any, callback: Callable[[], None]) -> None:
    """Call ``callback`` on the session's document (now when there is no server document)."""
    if doc is None or doc.session_context is None:
        callback()
        return
    try:
        doc.add_next_tick_callback(callback)
    except Exception:  # noqa: BLE001 - the session is gone (its browser left): nothing to show
        log.debug("nbflow studio: session gone, result dropped", exc_info=True)


def in_background(
    doc: Any,
    work: Callable[[], Any],
    done: Callable[[Any, BaseException | None], None],
    *,
    name: str,
    on_slow: Callable[[float], None] | None = None,
    limit: float | None = None,
) -> threading.Thread | None:
    """Run ``work()`` off the IO loop; then ``done(result, error)`` on ``doc``.

    Without a server document (a session built outside a server), everything runs now,
    in order. ``on_slow(limit)`` is called on ``doc`` if ``work`` is still going after
    ``limit`` seconds.
    """
    if doc is None or doc.session_context is None:
        try:
            result, error = work(), None
        except Exception as e:  # noqa: BLE001 - handed to done, which reports it
            result, error = None, e
        done(result, error)
        return None
    limit = time_limit() if limit is None else limit
    finished = threading.Event()

    def target() -> None:
        try:
            result, error = work(), None
        except BaseException as e:  # noqa: BLE001 - handed to done on the session
            result, error = None, e
        finished.set()
        on_document(doc, lambda: done(result, error))

    def check() -> None:
        if not finished.is_set() and on_slow is not None:
            on_slow(limit)

    thread = threading.Thread(target=target, name=f"nbflow-studio {name}", daemon=True)
    thread.start()
    if on_slow is not None:
        try:
            doc.add_timeout_callback(check, int(limit * 1000))
        except Exception:  # noqa: BLE001 - the session is gone
            log.debug("nbflow studio: session gone before the time limit", exc_info=True)
    return thread
