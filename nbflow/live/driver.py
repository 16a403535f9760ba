"""The kernel side of LIVE-PROTOCOL.md: what the JupyterLab extension calls in the kernel.

The frontend sends silent execute requests whose ``user_expressions`` call
``call(name, json_args)`` and reads back JSON text. A run in the kernel, driven from
JupyterLab, goes::

    begin({path, notebook, mode, step, params})  -> steps: restore / run / skip, in order
    restore({step})                              -> values of a fresh step put back
    step_started({step})                         -> inputs restored, StepStarted published
                                                    (or {status: skipped}: a step it
                                                    needs failed; the run goes on)
        (the frontend executes the step's cells through the notebook session)
    step_finished({step, outputs, error, interrupted})
                                                 -> values dumped and cached, StepFinished
                                                    (a failed attempt with retries left:
                                                    run again here, its outputs returned)
    run_step({step})                             -> a step run here, in the kernel, its
                                                    outputs returned for the cells
    finish({status})                             -> RunFinished, counts

Modes of ``begin``: ``restore`` (every fresh step's values, nothing runs), ``restore-to``
with ``step`` (the namespace a run up to and including STEP would leave: STEP and its
ancestors restored in order, STEP always -- its hidden state last -- nothing runs),
``stale`` (run the stale steps, restore the fresh ones they need), ``to`` (run up to and
including ``step``), ``only`` (run ``step``).

A step to run whose ``in_kernel`` is true (a ``map:`` step: its cells run once per
element) is not executed through the notebook session: the frontend calls
``run_step({step})``, which runs it here, and puts the ``outputs`` it returns
(``{cell_id: [outputs]}``, as the kernel executor's output notebook shows them) into the
cells. Decisions are made again at each step's turn, as the kernel executor makes them:
``step_started`` and ``run_step`` answer ``{"status": "cached", "outputs": ...}`` when the
step's key, re-computed now that the steps above it ran (early cut-off), has an entry --
its values were restored, its cells must not run; ``restore`` of a step the plan deferred
(it reads what a running step may change) runs it here when its inputs did change,
answering like ``run_step``. A step's ``timeout:`` is applied in the kernel: its cell is
interrupted, and ``step_finished`` answers ``{"status": "failed", "step_error": "timed out
after N s (interrupted)"}`` (a step's failure is ``step_error``: ``error`` is kept for the
call's own failure).

Retries (a ``retry:`` tag) go through the one loop ``%nbflow run`` uses
(``LiveRun.attempts``, ``RunContext.retry_delay``): when the cells the frontend executed
raised (not interrupted by the user: ``step_finished``'s ``interrupted``) and the step has
an attempt left, ``step_finished`` restores the step's inputs, runs it again here, in the
kernel, and answers with ``"attempts": n`` and the last attempt's ``outputs`` by cell id,
which replace the failed attempt's in the cells. Cells the user interrupted
(``interrupted``, or a ``KeyboardInterrupt`` that was not the step's timeout) end the step
``cancelled`` (``LiveRun.cancel_step``, as ``%nbflow run``'s interrupt), never retried.

``status({path, notebook})`` says, per step, whether the kernel holds its current values.
Every function returns a JSON-able dict; a problem comes back as ``{"error": "<one
line>"}``, never as an exception. The work is the ``live`` executor's
(``executors.user_kernel.LiveRun``); the ``%nbflow`` magics call the same functions
(``open_run``, ``resolve_notebook``...).

Every answer of a call made while a live run is open (``begin`` to ``finish``) carries
``events``: the run's events published since the last answer, in order, as the REST API's
event stream sends them (``Event.to_dict``) -- so the frontend's view follows a run in the
kernel with the same events, and the same transitions, as a run it follows from the
server: a ``CheckFailed`` turns the step it checks failed when the check fails, not when
the run ends.

Must not: talk to the frontend any other way than return values, or keep state
anywhere but the kernel's ``KernelState``.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from ..errors import NbflowError, PipelineError
from ..executors.user_kernel import KernelState, LiveRun, context, kernel_state
from . import warm

Modes = ("restore", "restore-to", "stale", "to", "only")
#: Modes that restore and run nothing.
RESTORE_MODES = ("restore", "restore-to")


# ------------------------------------------------------------------ plumbing


def _answer(fn: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """Any problem becomes ``{"error": one line}``."""

    @functools.wraps(fn)
    def wrapped(*args: Any, **kwargs: Any) -> dict[str, Any]:
        try:
            return fn(*args, **kwargs)
        except NbflowError as e:
            return {"error": str(e).splitlines()[0] if str(e) else type(e).__name__}
        except KeyboardInterrupt:
            return {"error": "interrupted"}
        except Exception as e:  # noqa: BLE001 - the frontend shows one line; never a traceback
            return {"error": f"{type(e).__name__}: {e}".splitlines()[0]}

    return wrapped


def call(name: str, json_args: str = "{}") -> str:
    """Call driver function ``name`` with the JSON object ``json_args``; its answer as JSON text."""
    warm.wait()  # the extension's warm-up thread imports what this will: never alongside it
    functions = {
        "begin": begin,
        "restore": restore,
        "step_started": step_started,
        "step_finished": step_finished,
        "run_step": run_step,
        "finish": finish,
        "status": status,
    }
    fn = functions.get(name)
    if fn is None:
        return json.dumps({"error": f"no driver function {name!r} (choose from {', '.join(functions)})"})
    try:
        args = json.loads(json_args or "{}")
        if not isinstance(args, dict):
            raise ValueError("the arguments must be a JSON object")
    except ValueError as e:
        return json.dumps({"error": f"{name}: bad arguments: {e}"})
    before = _open_run()
    try:
        answer = fn(**args)
    except TypeError as e:
        answer = {"error": f"{name}: {e}"}
    events = new_events(_open_run() or before)  # after finish: the run it closed
    if events:
        answer["events"] = events
    return json.dumps(answer, default=str)


def _open_run() -> LiveRun | None:
    try:
        return kernel_state().current
    except RuntimeError:  # not in an IPython kernel: no run
        return None


def new_events(live: LiveRun | None) -> list[dict[str, Any]]:
    """The events of ``live``'s run not yet handed to the frontend (``Event.to_dict``)."""
    if live is None:
        return []
    history = list(live.ctx.bus.history)
    fresh = history[live.forwarded :]
    live.forwarded = len(history)
    return [event.to_dict() for event in fresh]


def resolve_notebook(path: str | os.PathLike[str] | None) -> Path:
    """The notebook ``path`` names, as the kernel sees it (relative to its working folder).

    JupyterLab sends the server path and the kernel runs in the notebook's folder: the
    path is tried as given, then its file name alone.
    """
    if not path:
        raise PipelineError("no notebook given: pass its path")
    candidate = Path(path)
    for option in (candidate, Path(candidate.name)):
        if option.is_file():
            return option.resolve()
    raise PipelineError(f"no such notebook (the kernel runs in {os.getcwd()})", notebook=candidate)


def load(path: str | os.PathLike[str] | None, notebook: Mapping[str, Any] | None = None) -> Any:
    """The pipeline of ``path``, read from ``notebook`` (the editor's content) when given."""
    from ..api import load_pipeline
    from ..config import Config
    from ..notebook import notebook_from_data

    resolved = resolve_notebook(path)
    config = Config.for_notebook(resolved)
    source = notebook_from_data(dict(notebook), resolved) if notebook is not None else None
    return load_pipeline(resolved, config, source=source)  # keyed in its pipeline of notebooks, if any


def plan_options(pipeline: Any, mode: str, step: str | None) -> dict[str, Any]:
    """``plan_pipeline``'s options for a live run in ``mode``."""
    if mode not in Modes:
        raise PipelineError(f"unknown mode {mode!r} (choose from {', '.join(Modes)})", notebook=pipeline.path)
    if mode in ("to", "only", "restore-to"):
        if not step:
            raise PipelineError(f"mode {mode!r} needs a step", notebook=pipeline.path)
        pipeline.check_steps([step], f"--{mode}")
    if mode in ("to", "only"):
        return {"only": [step], "force": [step] if mode == "only" else []}
    return {}


def open_run(
    state: KernelState,
    pipeline: Any,
    mode: str,
    step: str | None = None,
    params: Mapping[str, Any] | None = None,
    raw: Mapping[str, str] | None = None,
    from_editor: bool = False,
) -> LiveRun:
    """Plan, and when something runs, record a new run (``executor: "live"``) and open it;
    then run the prelude. A run still open in this kernel is closed as cancelled first."""
    from ..executors.user_kernel import UserKernelExecutor
    from ..run import plan_pipeline, prepare_run

    if state.current is not None:
        state.current.close("cancelled", "a new run started in this kernel")
    options = plan_options(pipeline, mode, step)
    plan = plan_pipeline(pipeline, params, raw=raw, **options)
    if mode in RESTORE_MODES or not plan.to_run:
        live = LiveRun(state, context(pipeline, plan))
    else:
        run = prepare_run(pipeline, params, raw=raw, executor=UserKernelExecutor(), **options)
        run._ctx.output_path = None
        run.open()
        live = LiveRun(state, run._ctx, run)
    live.mode, live.target = mode, step
    state.current = live
    state.params = dict(live.ctx.params)
    follow(state, pipeline, from_editor)
    try:
        live.prelude()
        if live.run is not None:
            live.ctx.publish_cached_and_queued()
    except BaseException as e:
        live.close("failed", str(e) or type(e).__name__)
        raise
    return live


def follow(state: KernelState, pipeline: Any, from_editor: bool = False) -> None:
    """Make ``pipeline`` the notebook the run-cell hooks match cells against (read again
    when its file changes, unless it came from the editor)."""
    state.pipeline = pipeline
    state.pipeline_stamp = None
    if not from_editor:
        try:
            st = pipeline.path.stat()
            state.pipeline_stamp = (st.st_mtime_ns, st.st_size)
        except OSError:
            pass


def decisions(live: LiveRun) -> list[dict[str, Any]]:
    """What the live run does with each step, in execution order (``begin``'s ``steps``)."""
    ctx, pipeline = live.ctx, live.pipeline
    mode, target = live.mode, live.target
    running = [s for s in pipeline.order if ctx.actions[s] == "run" and mode not in RESTORE_MODES]
    if mode in ("restore", "stale"):
        wanted = set(pipeline.order)
    elif mode in ("to", "restore-to"):
        wanted = pipeline.ancestors([target]) | {target}
    else:
        wanted = {p for s in running for p in ctx.keys.inputs(s).values()}
    needed = {p for s in running for p in ctx.keys.inputs(s).values()}
    steps = []
    for name in pipeline.order:
        reason = ""
        if name in running:
            action = "run"
            reason = "; ".join(ctx.reasons.get(name, ())) or "stale"
        elif ctx.plan[name].state == "fresh" and name in wanted:
            action = "restore"
            reason = "fresh"
            deferred = live.run is not None and bool(ctx.plan[name].recheck)  # decided at its turn
            last = mode == "restore-to" and name == target  # its hidden state is the one a run leaves
            if live.holds_current(name) and name not in needed and not deferred and not last:
                action, reason = "skip", "this kernel holds its current values"
        else:
            action = "skip"
            reason = "; ".join(ctx.reasons.get(name, ())) if ctx.plan[name].state == "stale" else "not needed"
        steps.append(
            {
                "name": name,
                "action": action,
                "reason": reason,
                "cell_ids": [c.id for c in pipeline.steps[name].cells],
                "cell_indexes": [c.index for c in pipeline.steps[name].cells],
                "in_kernel": action == "run" and bool(pipeline.steps[name].map_over),
                "outputs": _cached_outputs(live, name) if action == "restore" else {},
            }
        )
    live.decided = {s["name"]: s["action"] for s in steps}
    return steps


def _cached_outputs(live: LiveRun, step: str) -> dict[str, list[dict[str, Any]]]:
    from ..errors import CacheCorrupt

    try:
        outputs = live.cached_outputs(step)
    except CacheCorrupt:
        return {}
    return per_cell(live, step, outputs)


def per_cell(live: LiveRun, step: str, outputs: list[list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """A step's outputs (one list per cell) by cell id, as the frontend puts them in."""
    cells = live.pipeline.steps[step].cells
    return {c.id or str(c.index): outputs[i] for i, c in enumerate(cells) if i < len(outputs)}


def _current(state: KernelState) -> LiveRun:
    if state.current is None:
        raise PipelineError("no live run in this kernel: call begin first")
    return state.current


def describe_restored(restored: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: {"step": o.step, "run_id": o.run_id} for name, o in sorted(restored.items())}


# ---------------------------------------------------------------- the calls


@_answer
def begin(
    path: str | None = None,
    notebook: Mapping[str, Any] | None = None,
    mode: str = "stale",
    step: str | None = None,
    params: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Plan a live run of the notebook (the editor's ``notebook`` content when given)."""
    state = kernel_state()
    live = open_run(state, load(path, notebook), mode, step, params, from_editor=notebook is not None)
    return {"run_id": live.run_id, "steps": decisions(live)}


@_answer
def restore(step: str) -> dict[str, Any]:
    """Put the values ``step`` produces (and its hidden state) into the namespace, verified."""
    live = _current(kernel_state())
    live.pipeline.check_steps([step], "restore")
    if live.settle_deferred(step):  # a running step changed what it reads: it runs after all
        return {"restored": {}, "missing": {}, **_run_here(live, step)}
    if live.ctx.plan[step].state != "fresh":
        why = "; ".join(live.ctx.plan[step].reasons) or "stale"
        return {"restored": {}, "missing": {n: f"step {step} is stale ({why})" for n in live.ctx.stored_names(step)}}
    restored, missing = live.restore_step(step)
    return {"restored": describe_restored(restored), "missing": dict(missing)}


@_answer
def step_started(step: str) -> dict[str, Any]:
    """The frontend is about to execute ``step``'s cells through the notebook session."""
    state = kernel_state()
    live = _current(state)
    live.pipeline.check_steps([step], "step_started")
    blocked = live.ctx.blocked_by(step) if live.run is not None else None
    if blocked:  # a step it needs failed: skipped, as every executor skips it; the run goes on
        live.ctx.finish_step(step, "skipped", reasons=(blocked,))
        return {"status": "skipped"}
    if live.cut_off(step):
        return {"status": "cached", "outputs": per_cell(live, step, live.outputs.pop(step, []))}
    live.start_step(step)
    live.active = step
    live.seen = []
    return {}


@_answer
def run_step(step: str) -> dict[str, Any]:
    """Run ``step`` here, in the kernel (a ``map:`` step: once per element); its status,
    error and outputs by cell id (see module docstring)."""
    live = _current(kernel_state())
    live.pipeline.check_steps([step], "run_step")
    if live.run is None:
        raise PipelineError("this live run restores only: begin a run first", notebook=live.pipeline.path)
    return _run_here(live, step)


def _run_here(live: LiveRun, step: str) -> dict[str, Any]:
    from ..executors.user_kernel import Interrupted

    try:
        status = live.run_step(step)
    except Interrupted:
        status = "cancelled"
    error = live.run.steps[step].get("error", "") if live.run is not None and step in live.run.steps else ""
    return {"status": status, "step_error": error or "", "outputs": per_cell(live, step, live.outputs.pop(step, []))}


@_answer
def step_finished(
    step: str, outputs: Mapping[str, Any] | None = None, error: str | None = None, interrupted: bool = False
) -> dict[str, Any]:
    """``step``'s cells ran: cache it (``outputs`` per cell id, from the cell models). When
    they raised and the step has retries, the next attempts run here (see module docstring);
    ``interrupted``: the user stopped them (the step is cancelled, never retried)."""
    state = kernel_state()
    live = _current(state)
    cells = live.pipeline.steps[step].cells
    by_cell = [list((outputs or {}).get(c.id or str(c.index), [])) for c in cells]
    seen = getattr(live, "seen", [])
    live.active = None
    why_not = unproven_cells(cells, seen)
    if error and live.watchdog.fired:  # the frontend saw a KeyboardInterrupt: it was the step's timeout:
        error = live.watchdog.message()
    elif error and (interrupted or error.startswith("KeyboardInterrupt")):  # the user stopped it: never retried
        live.cancel_step(step)  # as %nbflow run's interrupt: cancelled, nothing of it cached
        return _finished(live, step, "cancelled")
    from ..executors.user_kernel import Interrupted

    try:
        # the first attempt ran in the cells; retries (retry:) run here, as %nbflow run's do
        result = live.attempts(step, (by_cell, error or None), cache=why_not)
    except Interrupted:
        result = "cancelled"
    outputs_here = live.outputs.pop(step, [])
    answer = _finished(live, step, result)
    if live.tries.get(step, 1) > 1:  # the cells show the first attempt: the last one's outputs replace them
        answer["attempts"] = live.tries[step]
        answer["outputs"] = per_cell(live, step, outputs_here)
    return answer


def _finished(live: LiveRun, step: str, result: str) -> dict[str, Any]:
    """``step_finished``'s answer for ``step`` ended ``result``."""
    answer: dict[str, Any] = {"status": result, "key": live.ctx.key(step)}
    if result in ("failed", "cancelled") and live.run is not None and step in live.run.steps:
        answer["step_error"] = live.run.steps[step].get("error", "")
    return answer


def unproven_cells(cells: Iterable[Any], seen: list[tuple[str | None, str]]) -> str | None:
    """Why the cells executed between ``step_started`` and ``step_finished`` (``seen``:
    ``(cell id, code)``) are not exactly the step's cells with its code; ``None`` if they are."""
    cells = list(cells)
    if not seen:
        return None  # the hooks saw nothing (a kernel without cell ids): trust the frontend
    expected = [(c.id, c.source) for c in cells if c.source.strip()]
    ran = [(i, s) for i, s in seen if s.strip()]
    if [s for _, s in ran] != [s for _, s in expected]:
        return "the code executed is not the step's code in the notebook nbflow was given"
    return None


@_answer
def finish(status: str = "done") -> dict[str, Any]:
    """End the live run (``done``, ``failed`` or ``cancelled``)."""
    if status not in ("done", "failed", "cancelled"):
        raise PipelineError(f"unknown status {status!r} (done, failed or cancelled)")
    return _current(kernel_state()).close(status)


@_answer
def status(path: str | None = None, notebook: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Per step: ``current`` (this kernel holds its current values), ``older``, ``none`` or
    ``by-hand`` (with ``why``)."""
    from ..run import plan_pipeline

    state = kernel_state()
    pipeline = load(path, notebook)
    params = {k: v for k, v in (getattr(state, "params", None) or {}).items() if k in pipeline.parameters}
    plan = plan_pipeline(pipeline, params)
    if state.current is None:
        follow(state, pipeline, from_editor=notebook is not None)
    return step_states(state, pipeline, plan)


def step_states(state: KernelState, pipeline: Any, plan: Any) -> dict[str, Any]:
    """``status``'s answer for ``pipeline`` planned as ``plan``."""
    from ..hidden_state import is_pseudo

    steps: dict[str, str] = {}
    why: dict[str, str] = {}
    ns = state.namespace
    by_hand = getattr(state, "by_hand", {})
    for name in pipeline.order:
        written = sorted(n for n in pipeline.steps[name].writes if not is_pseudo(n))
        held = [n for n in written if state.holder.get(n) == name and n in ns]
        older = [n for n in held if state.keys.get(n) != plan[name].key]
        if name in by_hand and any(state.origin.get(n) and state.origin[n].how == "by hand" for n in written):
            steps[name], why[name] = "by-hand", by_hand[name]
        elif written and len(held) == len(written) and not older:
            steps[name] = "current"
        elif older:
            steps[name] = "older"
        else:
            steps[name] = "none"  # not there, or some of its values were changed by other code
    return {"steps": steps, "why": why}


__all__ = [
    "begin",
    "call",
    "decisions",
    "finish",
    "load",
    "new_events",
    "open_run",
    "resolve_notebook",
    "restore",
    "run_step",
    "status",
    "step_finished",
    "step_started",
    "step_states",
]
