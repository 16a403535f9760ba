"""Following what the person runs by hand, so the cache never holds what a plain run
would not produce.

IPython's ``pre_run_cell``/``post_run_cell`` events see every cell the kernel executes
(not nbflow's own: ``KernelState.busy``). For each one:

* while the frontend executes a step's cells for a live run (``driver.step_started``),
  the cell is only noted (``LiveRun.seen``): ``step_finished`` checks they were the
  step's cells with the step's code;
* a cell of a step (found by the cell id JupyterLab sends -- IPython >= 8 passes it in
  ``ExecutionInfo`` -- else by its code) run by hand is cached only when its key is
  *proven*: the code is the notebook's, the setup and parameters the kernel holds are the
  current ones, every value it reads is held in the version of its provider's current key
  (restored, run by nbflow, or a proven hand run), and the step's cells ran in order with
  nothing in between. Then it is committed as a one-step live run (a run of the run
  store, like any other). Otherwise it is ``by hand`` with the reason
  (``KernelState.by_hand``), and the values it wrote belong to no key;
* any other cell that writes a name the ledger knows (static analysis: assignments,
  mutation, ``del``) makes that name unknown.

Worked example: ``%nbflow restore`` then Shift-Enter on ``train``: ``X_train`` and
``y_train`` are held under ``features``' current key, so ``train`` is cached. Then
``X_train = X_train[:10]`` in a scratch cell, and Shift-Enter on ``train`` again: not
cached, "X_train was changed by a cell that is not step features".

Must not: run code in the namespace other than through the ``live`` executor, or make a
cell fail (a problem here is a warning on stderr).
"""

from __future__ import annotations

import sys
from typing import Any

from ..errors import NbflowError
from ..executors.user_kernel import KernelState, LiveRun, kernel_state, record_outputs, setup_token


def install(ip: Any) -> None:
    """Register the hooks on shell ``ip`` (once)."""
    hooks = getattr(ip, "_nbflow_hooks", None)
    if hooks is not None:
        return
    hooks = Hooks(kernel_state(ip))
    ip._nbflow_hooks = hooks
    ip.events.register("pre_run_cell", hooks.pre)
    ip.events.register("post_run_cell", hooks.post)


def uninstall(ip: Any) -> None:
    hooks = getattr(ip, "_nbflow_hooks", None)
    if hooks is None:
        return
    ip.events.unregister("pre_run_cell", hooks.pre)
    ip.events.unregister("post_run_cell", hooks.post)
    ip._nbflow_hooks = None


class Hooks:
    """The run-cell hooks of one kernel (see module docstring)."""

    def __init__(self, state: KernelState) -> None:
        self.state = state
        self.cell: tuple[str | None, str] | None = None
        self.recording: Any = None
        self.recorded: Any = None
        #: a multi-cell step run by hand: (step, cells run so far, outputs so far)
        self.progress: tuple[str, int, list[list[dict[str, Any]]]] | None = None
        self.setup_seen: set[int] = set()

    # ------------------------------------------------------------- events
    def pre(self, info: Any) -> None:
        if self.state.busy:  # nbflow's own execution inside a cell (a magic): the cell is followed as a whole
            return
        self.cell = (getattr(info, "cell_id", None), getattr(info, "raw_cell", "") or "")
        live = self.state.current
        if live is not None and live.active:
            live.watchdog.arm()  # the step's timeout: applies while JupyterLab executes its cells
            return
        try:
            match = self.match(*self.cell)
            if match is not None and match[1] == 0:
                self.watch(match[0])
            if match is not None:
                self.recording = record_outputs(self.state.shell)
                self.recorded = self.recording.__enter__()
        except Exception as e:  # noqa: BLE001 - never make the user's cell fail
            self.warn(e)

    def post(self, result: Any) -> None:
        if self.state.busy or self.cell is None:
            return
        cell_id, code = self.cell
        self.cell = None
        outputs = self.stop_recording()
        live = self.state.current
        if live is not None and live.active:
            live.watchdog.disarm()
            live.seen.append((cell_id, code))
            return
        try:
            error = getattr(result, "error_before_exec", None) or getattr(result, "error_in_exec", None)
            self.after(cell_id, code, outputs, error)
        except Exception as e:  # noqa: BLE001
            self.warn(e)

    def stop_recording(self) -> list[dict[str, Any]]:
        if self.recording is None:
            return []
        try:
            self.recording.__exit__(None, None, None)
            return self.recorded.finish()
        finally:
            self.recording = self.recorded = None

    @staticmethod
    def warn(e: BaseException) -> None:
        print(f"nbflow: could not follow this cell ({type(e).__name__}: {e})", file=sys.stderr)

    # ----------------------------------------------------------- matching
    def pipeline(self) -> Any:
        """The notebook as nbflow last saw it (read again if its file changed since)."""
        state = self.state
        if state.pipeline is not None and state.pipeline_stamp is not None:
            try:
                st = state.pipeline.path.stat()
                if (st.st_mtime_ns, st.st_size) != state.pipeline_stamp:
                    from .driver import follow, load

                    follow(state, load(state.pipeline.path))
            except (OSError, NbflowError):
                pass  # a notebook being saved or broken: keep the last good one
        return state.pipeline

    def match(self, cell_id: str | None, code: str) -> tuple[str, int, bool] | None:
        """``(step, position of the cell in the step, same code as the notebook)`` of a step cell."""
        pipeline = self.pipeline()
        if pipeline is None:
            return None
        for name in pipeline.order:
            for i, cell in enumerate(pipeline.steps[name].cells):
                if cell_id and cell.id == cell_id:
                    return name, i, cell.source == code
        if not code.strip():
            return None
        for name in pipeline.order:
            for i, cell in enumerate(pipeline.steps[name].cells):
                if cell.source == code:
                    return name, i, True
        return None

    def watch(self, step: str) -> None:
        pipeline = self.pipeline()
        side = self.state.side(pipeline)
        watched = sorted(set(pipeline.setup.writes).union(*(s.writes for s in pipeline.steps.values())))
        side.watch(watched, sorted(pipeline.steps[step].reads))

    # ------------------------------------------------------------ a cell ran
    def after(self, cell_id: str | None, code: str, outputs: list[dict[str, Any]], error: Any) -> None:
        pipeline = self.pipeline()
        match = self.match(cell_id, code)
        if match is None:
            self.progress = None
            self.other_cell(code)
            return
        step, position, same = match
        if position == 0:
            self.progress = (step, 0, [])
        if self.progress is None or self.progress[0] != step or self.progress[1] != position:
            self.by_hand(step, "its cells did not run in order, from its first cell")
            self.progress = None
            return
        done = [*self.progress[2], outputs]
        self.progress = (step, position + 1, done)
        if not same:
            self.by_hand(step, "the code run is not the notebook's (save the notebook, or use Run in this kernel)")
            self.progress = None
            return
        if error is not None:
            self.by_hand(step, f"it raised {type(error).__name__}")
            self.progress = None
            return
        if position + 1 < len(pipeline.steps[step].cells):
            return
        self.progress = None
        why = self.unproven(step)
        if why:
            self.by_hand(step, why)
        else:
            self.commit(step, done)

    def other_cell(self, code: str) -> None:
        """A cell that is no step's: the names it writes are no step's any more."""
        from ..analysis import analyse_cells
        from ..graph import SETUP

        pipeline = self.pipeline()
        try:
            names = analyse_cells([code])
        except Exception:  # noqa: BLE001 - code that does not parse changed nothing
            return
        written = set(names.writes) | set(names.mutated)
        setup_cells = {c.index: c.source for c in pipeline.source.setup} if pipeline is not None else {}
        index = next((i for i, source in setup_cells.items() if source == code), None)
        if index is not None:
            self.setup_seen.add(index)
            if self.setup_seen >= set(setup_cells):
                self.state.setup_token = setup_token(pipeline, self.state.params)
                for name in pipeline.setup.writes:
                    self.state.holder[name], self.state.keys[name] = SETUP, self.state.setup_token
            return
        for name in written:
            if name in self.state.holder:
                if self.state.holder[name] == SETUP:
                    self.state.setup_token = None
                    self.setup_seen.clear()
                self.state.forget(name)

    def by_hand(self, step: str, why: str) -> None:
        from ..executors.user_kernel import Origin

        self.state.by_hand[step] = why
        for name in self.pipeline().steps[step].writes:
            self.state.forget(name)
            self.state.origin[name] = Origin(step, "", None, "by hand")

    def unproven(self, step: str) -> str | None:
        """Why ``step``'s key cannot be proven now (``None``: it can)."""
        from ..graph import PARAMETERS
        from ..run import plan_pipeline

        state, pipeline = self.state, self.pipeline()
        params = {k: v for k, v in state.params.items() if k in pipeline.parameters}
        if state.setup_token != setup_token(pipeline, params):
            return "the setup this kernel ran is not the notebook's current setup (%nbflow restore runs it)"
        info = pipeline.steps[step]
        plan = plan_pipeline(pipeline, params)
        from ..executors.user_kernel import parameter_token

        for name in info.params:
            if state.holder.get(name) != PARAMETERS or state.keys.get(name) != parameter_token(plan.params[name]):
                return f"parameter {name} was changed by hand (%nbflow restore sets it)"
        for name, provider in sorted(info.inputs.items()):
            if state.holder.get(name) != provider and name.startswith("<"):
                return f"{name} (hidden state) is not what step {provider} left (%nbflow restore {step} puts it back)"
            if state.holder.get(name) != provider:
                origin = state.origin.get(name)
                if origin is not None and origin.how == "by hand":
                    return f"{name} comes from step {provider} run by hand, not cached ({state.by_hand.get(provider)})"
                return f"{name} was changed by a cell that is not step {provider} (%nbflow restore {step} fixes it)"
            if state.keys.get(name) != plan[provider].key:
                return f"{name} is step {provider}'s older version ({provider} is stale: %nbflow run --to {step})"
        return None

    def commit(self, step: str, outputs: list[list[dict[str, Any]]]) -> None:
        """Cache a proven hand run of ``step`` as a one-step live run."""
        from ..executors.user_kernel import UserKernelExecutor
        from ..run import prepare_run

        pipeline = self.pipeline()
        params = {k: v for k, v in self.state.params.items() if k in pipeline.parameters}
        from ..hooks import Hooks

        # a cell run by hand is the user's own editing, not a pipeline run: no hooks fire for
        # it and it leaves no report
        run = prepare_run(
            pipeline, params, only=[step], force=[step], executor=UserKernelExecutor(), hooks=Hooks(), report=False
        )
        ctx = run._ctx
        ctx.output_path = None
        if ctx.steps_to_run() != [step]:
            run.open()
            run.close("failed", f"step {step} was run by hand but upstream steps are stale")
            self.by_hand(step, "upstream steps are stale")
            return
        run.open()
        live = LiveRun(self.state, ctx, run)
        ctx.publish_cached_and_queued()
        ctx.start_step(step)
        live.finish_step(step, outputs, None)
        live.close("done")
        self.state.by_hand.pop(step, None)
        for origin in self.state.origin.values():
            if origin.step == step:
                origin.how = "by hand"
                origin.run_id = run.id
