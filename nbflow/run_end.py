"""The end of every run, whoever started it: the run's report when it has one, then the
hooks (``on-failure`` / ``on-success`` commands, the ``notify`` webhook).

``Run.close`` (``run.py``: the one place every run ends -- ``nbflow run``, ``nbflow
sweep`` (each of its runs), a pipeline of notebooks (each notebook's run), the studio,
JupyterLab's REST API, ``%nbflow run`` in the user's kernel, ``Pipeline.run``) calls
``start`` once ``RunFinished`` is published, so the run store holds the final status.
The hooks are the starter's (``nbflow run --on-failure ...``: ``hooks.Hooks``), else the
``[tool.nbflow]`` settings of the notebook's project (``hooks_of``). The report is the
starter's choice when it made one (``nbflow run --report`` / ``--no-report``, a maker of
its own), else ``[tool.nbflow] report``'s (``report_maker``): so every run of a notebook
whose project sets ``report = true`` leaves its report, whoever started it.

The default report is written by a child process (``nbflow report RUN``, the run's nbflow
home and cache passed as ``NBFLOW_HOME`` / ``NBFLOW_CACHE``): it reads the run store, the
executed notebook and the cache entries' manifests, never the starter's live values, and
its imports (nbconvert, Bokeh) and its CPU time stay out of the starter's process -- the
user's kernel, a Jupyter server, the studio -- and off its GIL.

The work runs on a thread of its own (``nbflow-run-end-<id>``, not a daemon: a process
that ends waits for it, each hook bounded by its timeout), so neither the run's thread,
a server's event loop nor the user's kernel waits for a hook. ``Run.wait_end`` waits for
it and returns the problems. A problem (a hook that failed, hung or could not be reached;
a report that could not be written) is recorded on the run (``nbflow show`` lists it)
and logged; it never changes the run's status.

This module must not change a run's record beyond those messages, import a view (the
default report is a separate process), nor start a run.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
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

#: Seconds the child writing a run's report may take before it is stopped (a problem on the run).
REPORT_TIMEOUT = 600.0


def report_maker(config: Config, notebook: Path, report: ReportMaker | bool | None) -> ReportMaker | None:
    """What makes the report of a run of ``notebook`` at its end.

    ``report`` is the starter's word: a maker of its own, ``True`` (the default report),
    ``False`` (none), or ``None`` -- then ``[tool.nbflow] report`` decides. The one place
    that setting is read: every starter passes what it was given through ``run.prepare_run``.
    """
    if callable(report):
        return report
    wanted = config.report if report is None else bool(report)
    if not wanted:
        return None
    return lambda run_id: write_report(config, notebook, run_id)


def write_report(config: Config, notebook: Path, run_id: int) -> Path:
    """Write run ``run_id``'s report (``<runs>/<id>/report.html``, recorded as its ``report``
    artifact by ``nbflow report``) in a child process; its path. ``RuntimeError`` with the
    child's one line when it could not."""
    env = {**os.environ, "NBFLOW_HOME": str(config.home), "NBFLOW_CACHE": str(config.cache_dir)}
    command = [sys.executable, "-m", "nbflow", "report", str(run_id), "-C", str(notebook)]
    try:
        done = subprocess.run(
            command,
            env=env,
            cwd=notebook.parent,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=REPORT_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"the report took more than {REPORT_TIMEOUT:g} s and was stopped") from None
    except OSError as e:
        raise RuntimeError(f"could not start {sys.executable}: {e.strerror or e}") from None
    lines = [line for line in (done.stdout or "").splitlines() if line.strip()]
    if done.returncode != 0 or not lines:
        said = [line for line in (done.stderr or "").splitlines() if line.strip()]
        why = said[-1] if said else f"nbflow report exited with status {done.returncode}"
        raise RuntimeError(why.removeprefix("nbflow: error: "))
    return Path(lines[-1])


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


__all__ = ["REPORT_TIMEOUT", "ReportMaker", "hooks_of", "report_maker", "start", "write_report"]
