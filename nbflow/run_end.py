"""The end of every run, whoever started it: the report when the run's starter asked for
one, then the hooks (``on-failure`` / ``on-success`` commands, the ``notify`` webhook).

``Run.close`` (``run.py``: the one place every run ends -- ``nbflow run``, ``nbflow
sweep`` (each of its runs), a pipeline of notebooks (each notebook's run), the studio,
JupyterLab's REST API, ``%nbflow run`` in the user's kernel, ``Pipeline.run``) calls
``start`` once ``RunFinished`` is published, so the run store holds the final status.
The hooks are the starter's (``nbflow run --on-failure ...``: ``hooks.Hooks``), else the
``[tool.nbflow]`` settings of the notebook's project (``hooks_of``).

The work runs on a thread of its own (``nbflow-run-end-<id>``, not a daemon: a process
that ends waits for it, each hook bounded by its timeout), so neither the run's thread,
a server's event loop nor the user's kernel waits for a hook. ``Run.wait_end`` waits for
it and returns the problems. A problem (a hook that failed, hung or could not be reached;
a report that could not be written) is recorded on the run (``nbflow show`` lists it)
and logged; it never changes the run's status.

This module must not change a run's record beyond those messages, import a view (the
report comes as a function from the starter), nor start a run.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import Config
    from .hooks import Hooks

log = logging.getLogger(__name__)

#: Makes a finished run's report (given the run's id); its path goes to the hooks, ``None`` if none was made.
ReportMaker = Callable[[int], "Path | None"]


def hooks_of(config: Config) -> Hooks:
    """The hooks ``[tool.nbflow]`` sets (``on-failure``, ``on-success``, ``notify``, ``hook-timeout``)."""
    from .hooks import Hooks

    return Hooks(
        on_failure=config.on_failure,
        on_success=config.on_success,
        notify=config.notify,
        timeout=config.hook_timeout,
    )


def start(run: Any, hooks: Hooks | None, report: ReportMaker | None) -> None:
    """Begin the end of ``run`` (finished, its status recorded): report, then hooks, on a
    thread; ``run.ended`` is set when it is over (at once when there is nothing to do)."""
    hooks = hooks if hooks is not None else hooks_of(run.pipeline.config)
    if not hooks and report is None:
        run.ended.set()
        return
    thread = threading.Thread(target=_end, args=(run, hooks, report), name=f"nbflow-run-end-{run.id}")
    try:
        thread.start()
    except RuntimeError as e:  # the interpreter is shutting down: no new threads
        run.end_problems.append(f"the run's hooks could not start: {e}")
        run.ended.set()


def _end(run: Any, hooks: Hooks, report: ReportMaker | None) -> None:
    from .hooks import outcome_of, run_hooks

    problems: list[str] = []
    try:
        path = None
        if report is not None:
            try:
                path = report(run.id)
            except Exception as e:  # noqa: BLE001 - a report is not worth the hooks
                problems.append(f"no report: {e}")
        run.report_path = path
        if hooks:
            problems += run_hooks(hooks, outcome_of(run, path), cwd=run.pipeline.path.parent)
        if problems:
            _record(run, problems)
    except Exception as e:  # noqa: BLE001 - the run is over: never an exception on a thread nobody joins
        problems.append(f"the run's hooks failed: {type(e).__name__}: {e}")
        log.exception("nbflow: the end of run %s failed", run.id)
    finally:
        run.end_problems.extend(problems)
        run.ended.set()


def _record(run: Any, problems: list[str]) -> None:
    """Each problem as a message of the run (``nbflow show``) and a log warning."""
    for problem in problems:
        log.warning("nbflow: run %s: %s (the run's status is unchanged)", run.id, problem)
    try:
        store = run.pipeline.config.open_store(reconcile=False)
        try:
            for problem in problems:
                store.add_message(run.id, problem)
        finally:
            store.close()
    except Exception:  # noqa: BLE001 - the run is over; a hook's note is not worth a traceback
        log.warning("nbflow: could not record the hook problems on run %s", run.id, exc_info=True)


__all__ = ["ReportMaker", "hooks_of", "start"]
