"""The command line's end of a run: ``--report``, ``--on-failure``, ``--on-success``, ``--notify``.

Every run fires its hooks and writes its report where it ends (``run_end``, from
``Run.close``); ``nbflow run`` only gives them: ``hooks_from_args`` (the options win over
``[tool.nbflow]``'s ``on-failure``, ``on-success`` and ``notify``) and ``--report`` /
``--no-report`` (passed to ``run.start_run``; without either, ``report = true`` decides,
as for every starter), then waits for that end (``end_of_run``) and prints the report's
path and the problems. A problem is recorded on the run (``nbflow show`` lists it);
neither a report nor a hook changes the exit status.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


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


def end_of_run(run: Any) -> None:
    """Wait for the run's end (its report, its hooks: ``run_end``); print the report's path
    and the problems, never raise."""
    problems = run.wait_end()
    if run.report_path is not None:
        print(f"report: {run.report_path}", file=sys.stderr)
    for problem in problems:
        print(f"nbflow: warning: {problem} (the run's status is unchanged)", file=sys.stderr)
