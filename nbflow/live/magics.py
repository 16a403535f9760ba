"""The ``%nbflow`` line magic: restore, run and status in the user's own kernel.

::

    %nbflow restore [STEP] [--run N]        values STEP reads (without STEP: every value
                                            the fresh steps produce), from the cache
    %nbflow restore --to STEP [--run N]     the namespace a run up to and including STEP
                                            leaves: STEP's and its ancestors' values, and
                                            STEP's hidden state
    %nbflow run [--to STEP | --only STEP | --stale] [-p NAME VALUE]...
                                            run the plan here: stale steps execute in this
                                            namespace (outputs in this cell), fresh ones
                                            are restored; a run of the run store
    %nbflow status                          per step: current, older, none or by hand

Each takes ``--notebook PATH``; without it the notebook is the kernel's session's
(``JPY_SESSION_NAME``, set by Jupyter) or the one the last ``%nbflow`` used. Output is
plain lines: which names came from which step and run, what could not be restored and
the command that fixes it. Bad input is one line (``UsageError``), never a traceback;
the kernel's interrupt cancels a run cleanly (recorded ``cancelled``, nothing half
committed).

Must not: hold logic of its own beyond parsing and printing -- the work is the driver's
and the ``live`` executor's.
"""

from __future__ import annotations

import argparse
import os
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class

from ..errors import NbflowError
from ..executors.user_kernel import Interrupted, KernelState, LiveRun, Origin, kernel_state
from . import driver, warm

USAGE = (
    "usage: %nbflow restore [STEP | --to STEP] [--run N] | %nbflow run [--to STEP | --only STEP | --stale] "
    "[-p NAME VALUE]... | %nbflow status  (each: [--notebook PATH])"
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # type: ignore[override]
        raise UsageError(f"%nbflow {self.prog}: {message}")


def _parser(command: str) -> argparse.ArgumentParser:
    parser = _Parser(prog=command, add_help=False)
    parser.add_argument("--notebook")
    if command == "restore":
        parser.add_argument("step", nargs="?")
        parser.add_argument("--to")
        parser.add_argument("--run", type=int)
    elif command == "run":
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--to")
        group.add_argument("--only")
        group.add_argument("--stale", action="store_true")
        parser.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    return parser


def notebook_path(state: KernelState, given: str | None) -> Path:
    """The notebook a magic works on (see module docstring)."""
    if given:
        return driver.resolve_notebook(given)
    session = os.environ.get("JPY_SESSION_NAME")
    if session and session.endswith(".ipynb"):
        return driver.resolve_notebook(session)
    if state.pipeline is not None:
        return Path(state.pipeline.path)
    raise UsageError("%nbflow: cannot tell which notebook this kernel runs; add --notebook PATH")


@magics_class
class NbflowMagics(Magics):
    """``%nbflow`` (see module docstring)."""

    @line_magic
    def nbflow(self, line: str) -> None:
        warm.wait(self.shell)  # never import alongside the warm-up thread
        words = shlex.split(line)
        if not words or words[0] not in ("restore", "run", "status"):
            raise UsageError(USAGE)
        args = _parser(words[0]).parse_args(words[1:])
        state = kernel_state(self.shell)
        try:
            pipeline = driver.load(notebook_path(state, args.notebook))
            if state.current is None:
                driver.follow(state, pipeline)  # the notebook later magics and the hand-run hooks use
            if words[0] == "restore":
                if args.step and args.to:
                    raise UsageError("%nbflow restore: give STEP (what it reads) or --to STEP, not both")
                print_lines(restore_magic(state, pipeline, args.step, args.run, to=args.to))
            elif words[0] == "run":
                print_lines(run_magic(state, pipeline, args))
            else:
                print_lines(status_magic(state, pipeline))
        except NbflowError as e:
            raise UsageError(str(e).splitlines()[0]) from None


def print_lines(lines: list[str]) -> None:
    for line in lines:
        print(line)


# ------------------------------------------------------------------- restore


def restore_magic(
    state: KernelState, pipeline: Any, step: str | None, run_id: int | None, to: str | None = None
) -> list[str]:
    """``%nbflow restore``: the lines it prints."""
    if step is not None:
        pipeline.check_steps([step], "restore")
    live = driver.open_run(state, pipeline, "restore-to" if to else "restore", to)
    restored: dict[str, Origin] = {}
    missing: dict[str, str] = {}
    try:
        keys = run_keys(pipeline, run_id) if run_id is not None else {}
        for name, provider_names in wanted(live, step, to).items():
            key = keys.get(name)
            if run_id is not None and key is None:
                for n in provider_names:
                    missing[n] = f"run {run_id} has no result of step {name}"
                continue
            if key is None and live.ctx.plan[name].state != "fresh":
                why = "; ".join(live.ctx.plan[name].reasons) or "stale"
                fix = f"%nbflow run --to {to or step or name}"
                for n in provider_names:
                    missing[n] = f"step {name} is stale ({why}); {fix}"
                continue
            got, lost = live.restore_step(name, key=key, names=provider_names if step else None)
            restored.update(got)
            for n, why in lost.items():
                missing[n] = f"{why}; %nbflow run --only {name} recomputes it here"
            for n in provider_names:
                if n not in got and n not in missing:
                    missing[n] = f"not in step {name}'s cache entry; %nbflow run --only {name}"
    finally:
        live.close("done")
    return restored_lines(restored, missing, live.warnings)


def wanted(live: LiveRun, step: str | None, to: str | None = None) -> dict[str, list[str]]:
    """``{provider: names}``: what ``%nbflow restore [STEP | --to STEP]`` restores, in order."""
    from ..hidden_state import is_pseudo

    pipeline = live.pipeline
    if to is not None:  # as the driver's restore-to mode: STEP always, so its hidden state is the last put back
        upto = pipeline.ancestors([to]) | {to}
        return {
            s: [n for n in live.ctx.stored_names(s) if not is_pseudo(n)]
            for s in pipeline.order
            if s in upto and (s == to or not live.holds_current(s) or live.ctx.plan[s].state != "fresh")
        }
    if step is None:
        return {
            s: [n for n in live.ctx.stored_names(s) if not is_pseudo(n)]
            for s in pipeline.order
            if not live.holds_current(s) or live.ctx.plan[s].state != "fresh"
        }
    needs: dict[str, list[str]] = {}
    for name, provider in sorted(live.ctx.keys.inputs(step).items()):
        if not is_pseudo(name):  # hidden state comes back with its step's values
            needs.setdefault(provider, []).append(name)
    return needs


def run_keys(pipeline: Any, run_id: int) -> dict[str, str]:
    """The key each step ended with in run ``run_id`` (done or cached)."""
    store = pipeline.config.open_store()
    try:
        if store.run(run_id) is None:
            raise UsageError(f"%nbflow restore: no run {run_id} (nbflow runs lists them)")
        return {s["step"]: s["key"] for s in store.steps(run_id) if s.get("status") in ("done", "cached") and s["key"]}
    finally:
        store.close()


def restored_lines(restored: Mapping[str, Origin], missing: Mapping[str, str], warnings: list[str]) -> list[str]:
    by_step: dict[tuple[str, Any], list[str]] = {}
    for name, origin in restored.items():
        by_step.setdefault((origin.step, origin.run_id), []).append(name)
    lines = []
    for (step, run_id), names in by_step.items():
        source = f"run {run_id}" if run_id is not None else "cache"
        lines.append(f"restored from {step} ({source}): {', '.join(sorted(names))}")
    if not restored:
        lines.append("nothing restored")
    for name, why in sorted(missing.items()):
        lines.append(f"not restored: {name}: {why}")
    lines += [f"warning: {w}" for w in warnings]
    return lines


# ------------------------------------------------------------------------ run


def run_magic(state: KernelState, pipeline: Any, args: argparse.Namespace) -> list[str]:
    """``%nbflow run``: run the plan in this kernel; the summary lines."""
    mode, step = ("to", args.to) if args.to else ("only", args.only) if args.only else ("stale", None)
    from ..parameters import parse_cli_value

    raw = {name: text for name, text in args.param}
    values = {name: parse_cli_value(text) for name, text in args.param}  # as the CLI's -p
    live = driver.open_run(state, pipeline, mode, step, values, raw=raw)
    status, error = "done", ""
    restored: dict[str, Origin] = {}
    try:
        for decision in driver.decisions(live):
            name, action, reason = decision["name"], decision["action"], decision["reason"]
            if action == "restore" and live.settle_deferred(name):  # a running step changed what it reads
                action, reason = "run", "; ".join(live.ctx.reasons[name])
            if action == "restore":
                restored.update(live.restore_step(name)[0])
            elif action == "run":
                if not live.ctx.blocked_by(name) and live.cut_off(name):
                    print(f"[nbflow] {name}: cached (the steps above it left the values it read before)")
                    continue
                print(f"[nbflow] {name}: running ({reason})")
                final = live.run_step(name)
                if final != "done":
                    print(f"[nbflow] {name}: {final}")
    except (Interrupted, KeyboardInterrupt):
        status, error = "cancelled", "interrupted"
    except BaseException as e:
        live.close("failed", f"{type(e).__name__}: {e}")
        raise
    result = live.close(status, error)
    return run_lines(live, result, restored)


def run_lines(live: LiveRun, result: Mapping[str, Any], restored: Mapping[str, Origin]) -> list[str]:
    if result["run_id"] is None:
        lines = ["nothing to run: the steps asked for are fresh"]
        lines += [line for line in restored_lines(restored, {}, []) if line != "nothing restored"]
        return lines + [f"warning: {w}" for w in live.warnings]
    counts = ", ".join(f"{n} {status}" for status, n in sorted(result["counts"].items()))
    lines = [f"run {result['run_id']}: {result['status']} ({counts})"]
    for step in live.pipeline.order:
        if live.ctx.status.get(step) == "failed" and live.run is not None:
            lines.append(f"failed: {step}: {live.run.steps[step]['error']}")
    lines += [f"warning: {w}" for w in live.warnings]
    return lines


# --------------------------------------------------------------------- status


def status_magic(state: KernelState, pipeline: Any) -> list[str]:
    from ..run import plan_pipeline

    params = {k: v for k, v in state.params.items() if k in pipeline.parameters}
    plan = plan_pipeline(pipeline, params)
    answer = driver.step_states(state, pipeline, plan)
    width = max(len(s) for s in pipeline.order)
    texts = {
        "current": "current values",
        "older": "older values (stale: %nbflow run --stale)",
        "none": "not in this kernel",
        "by-hand": "ran by hand, not cached",
    }
    lines = []
    for step in pipeline.order:
        what = answer["steps"][step]
        origin = next((state.origin[n] for n in sorted(pipeline.steps[step].writes) if n in state.origin), None)
        where = ""
        if what in ("current", "older") and origin is not None:
            where = f" ({origin.how}" + (f", run {origin.run_id})" if origin.run_id is not None else ")")
        text = texts[what] + where
        if what == "by-hand":
            text += f": {answer['why'][step]}"
        lines.append(f"{step.ljust(width)}  {text}")
    return lines
