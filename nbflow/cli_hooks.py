"""The command line's end of a run: ``--report``, ``--on-failure``, ``--on-success``, ``--notify``.

Every run fires its hooks where it ends (``run_end``, from ``Run.close``); ``nbflow run``
only gives them: ``hooks_from_args`` (the options win over ``[tool.nbflow]``'s
``on-failure``, ``on-success`` and ``notify``) and ``report_maker`` (``--report`` or
``report = true``: the report is made before the hooks, which get its path), then waits
for that end (``end_of_run``) and prints its problems. A hook's problem is recorded on
the run (``nbflow show`` lists it); neither a report nor a hook changes the exit status.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
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


def report_maker(args: argparse.Namespace, config: Any) -> Callable[[int], Path | None] | None:
    """What makes the run's report at its end, when ``--report`` or ``report = true`` asks for one."""
    if not (args.report or config.report):
        return None
    return lambda run_id: end_of_run_report(config, run_id)


def end_of_run(run: Any) -> None:
    """Wait for the run's end (its report, its hooks: ``run_end``); print its problems, never raise."""
    for problem in run.wait_end():
        print(f"nbflow: warning: {problem} (the run's status is unchanged)", file=sys.stderr)


def end_of_run_report(config: Any, run_id: int) -> Path | None:
    """``run --report``: the run's report, whatever its outcome (a report failure does not change the exit status)."""
    from .report import build_report

    try:
        # cells in a forked worker only if this process has one thread (not from the run's end-of-run thread)
        path = build_report(config, run_id, jobs=2)
    except NbflowError as e:
        print(f"nbflow: no report for run {run_id}: {e}", file=sys.stderr)
        return None
    print(f"report: {path}", file=sys.stderr)
    return path
