"""The command line's end of a run: ``--report``, ``--on-failure``, ``--on-success``, ``--notify``.

``nbflow run`` calls ``end_of_run`` once its run has finished: the report (when asked
for, by ``--report`` or ``report = true``), then the hooks (``nbflow.hooks``) with the
report's path. The options win over ``[tool.nbflow]``'s ``on-failure``, ``on-success``
and ``notify``. A hook's problem is printed and recorded on the run (``nbflow show``
lists it); neither a report nor a hook changes the exit status.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .errors import NbflowError


def add_hook_options(p: argparse.ArgumentParser) -> None:
    """``--on-failure``, ``--on-success``, ``--notify``, ``--hook-timeout`` on ``nbflow run``."""
    p.add_argument(
        "--on-failure",
        metavar="CMD",
        help="run this shell command if the run fails, with NBFLOW_RUN_ID, NBFLOW_STATUS, NBFLOW_FAILED_STEP, "
        "NBFLOW_NOTEBOOK, NBFLOW_REPORT, NBFLOW_ERROR set (also: on-failure in [tool.nbflow])",
    )
    p.add_argument("--on-success", metavar="CMD", help="run this shell command if the run succeeds (same variables)")
    p.add_argument("--notify", metavar="URL", help="POST the run's outcome as JSON to this URL when the run ends")
    p.add_argument("--hook-timeout", type=float, metavar="SECONDS", help="stop a hook that takes longer (default 30)")


def hooks_from_args(args: argparse.Namespace, config: Any) -> Any:
    """The run's ``hooks.Hooks``: the options, else ``[tool.nbflow]``."""
    from .errors import PipelineError
    from .hooks import Hooks

    timeout = args.hook_timeout if args.hook_timeout is not None else config.hook_timeout
    if timeout <= 0:
        raise PipelineError(f"--hook-timeout {timeout:g}: must be more than 0 seconds")
    return Hooks(
        on_failure=args.on_failure or config.on_failure,
        on_success=args.on_success or config.on_success,
        notify=args.notify or config.notify,
        timeout=timeout,
    )


def end_of_run(args: argparse.Namespace, pipeline: Any, run: Any) -> None:
    """The report (if asked for), then the hooks; problems are printed, never raised."""
    report = None
    if args.report or pipeline.config.report:
        report = end_of_run_report(pipeline.config, run.id)
    hooks = hooks_from_args(args, pipeline.config)
    if not hooks:
        return
    from .hooks import outcome_of, run_hooks

    problems = run_hooks(hooks, outcome_of(run, report), cwd=pipeline.path.parent)
    if not problems:
        return
    try:
        store = pipeline.config.open_store(reconcile=False)
        try:
            for problem in problems:
                store.add_message(run.id, problem)
        finally:
            store.close()
    except Exception as e:  # noqa: BLE001 - the run is over; a hook's note is not worth a traceback
        print(f"nbflow: could not record the hook problem on run {run.id}: {e}", file=sys.stderr)
    for problem in problems:
        print(f"nbflow: warning: {problem} (the run's status is unchanged)", file=sys.stderr)


def end_of_run_report(config: Any, run_id: int) -> Path | None:
    """``run --report``: the run's report, whatever its outcome (a report failure does not change the exit status)."""
    from .report import build_report

    try:
        path = build_report(config, run_id)
    except NbflowError as e:
        print(f"nbflow: no report for run {run_id}: {e}", file=sys.stderr)
        return None
    print(f"report: {path}", file=sys.stderr)
    return path
