"""The studio's read-only views: a pipeline of notebooks, and a notebook kept as text.

``ProjectView`` (the first base of ``app.Studio``) takes over when the notebook list's
entry is one of ``folder.find_sources``' (``Studio._open`` hands it ``_open_project``): a folder or ``nbflow.toml`` (a pipeline of
notebooks) or a percent ``.py`` / MyST ``.md`` notebook (read by ``sources.py``, drawn as a
pipeline of one notebook, so both go through one path). The canvas draws each notebook
as a group around its steps, with the file edges between them (``project_view``); Run
runs it with ``project_run.run_project`` (one record per notebook in the run store, as
``nbflow run FOLDER``), each notebook's events recolouring its steps through
``GraphState`` and one flush per burst on the session's document; the Runs tab lists every
notebook's runs.

Read-only: editing stays per notebook. The canvas does not move nodes nor draw edges
(``readonly``), Save and Undo are off, and selecting a step says which notebook to open
to edit it (a text notebook is edited in its text file). Everything else (an ``.ipynb``
opened for editing) falls through to the other bases.

Must not: edit notebooks (``editing.py``), link or plan them (``project.py``).
"""

from __future__ import annotations

import html
import threading
from pathlib import Path
from typing import Any

import panel as pn

from ..errors import NbflowError, PipelineError
from ..view import GraphState, graph_model
from .background import in_background

READ_ONLY = "read-only here: open one of its notebooks (the list above) to edit it"


def load_entry(folder: Path, rel: str) -> Any:
    """The ``Project`` of a listing entry: a folder (``sub/``), an ``nbflow.toml``, or a text
    notebook as a pipeline of one notebook. ``PipelineError`` for an entry outside ``folder``."""
    from ..config import Config
    from ..graph import load_pipeline
    from ..project import Project, load_project

    path = (folder / rel).resolve()
    if not path.is_relative_to(folder):
        raise PipelineError(f"{rel}: not in {folder}")
    if path.is_dir() or path.suffix.lower() == ".toml":
        return load_project(path)
    pipeline = load_pipeline(path)
    return Project(
        root=path.parent,
        order=(path.name,),
        pipelines={path.name: pipeline},
        links=(),
        shared={},
        config=Config.for_notebook(path),
        source=path,
    )


class ProjectView:
    """The read-only mode of a studio session (see the module docstring)."""

    project: Any = None
    _project_run: Any = None

    # ------------------------------------------------------------ opening
    def _open_project(self, rel: str) -> None:
        self._forget_open_notebook()
        self.step_form.visible = False
        try:
            self.project = load_entry(self.folder, rel)
        except NbflowError as e:
            self.project = None
            self.canvas.show_graph({"nodes": [], "edges": [], "legend": []})
            self.title.object = f"**{html.escape(rel)}**"
            self._say(f"{e} (fix it, then Reload)", "danger")
            self._update_toolbar()
            return
        project = self.project
        self.config = project.config
        several = len(project.order) > 1
        what = f"pipeline of {len(project.order)} notebooks" if several else "notebook kept as text"
        steps = sum(len(p.steps) for p in project.pipelines.values())
        self.title.object = f"**{html.escape(project.title)}** &nbsp; {what}, {steps} steps &nbsp; ({READ_ONLY})"
        self.warnings.object = ""
        self.params_box.objects = [
            pn.pane.Markdown(
                "Parameters are each notebook's: set shared ones in `nbflow.toml` ([parameters]), "
                "or give them with `nbflow run FOLDER -p NAME VALUE`."
            )
        ]
        self.step_title.object = f"A {what} is {READ_ONLY}."
        self.step_info.object = ""
        self._draw_project(None)
        self._replan_project()
        self._update_toolbar()
        self._refresh_runs()

    def _draw_project(self, plans: Any, statuses: dict[str, str] | None = None) -> None:
        from ..project_view import project_graph_model

        model = project_graph_model(self.project, plans, statuses)
        model["readonly"] = True
        self.canvas.show_graph(model)

    def _replan_project(self) -> None:
        from ..project import plan_project

        project, token = self.project, self._plan_token

        def done(plans: Any, error: BaseException | None) -> None:
            if token != self._plan_token or project is not self.project:
                return
            if error is not None:
                self._say(f"cannot plan: {error}", "danger")
                return
            from ..project_view import project_graph_model

            model = project_graph_model(project, plans)
            self.canvas.states = {n["id"]: n["state"] for n in model["nodes"]}

        in_background(self.doc, lambda: plan_project(project), done, name=f"plan {project.title}")

    # ------------------------------------------------------------ editing is per notebook
    def _select(self, name: str) -> None:
        if self.project is None:
            super()._select(name)  # type: ignore[misc]
            return
        if name:
            notebook, _, step = name.rpartition(":")
            self.step_title.object = (
                f"Step `{html.escape(step)}` of `{html.escape(notebook)}`: a pipeline of notebooks is {READ_ONLY}."
            )

    def _update_project_toolbar(self) -> None:
        running = self._project_running()
        self.save_button.label = "Save"
        self.save_button.disabled = self.undo_button.disabled = True
        self.run_button.disabled = running
        self.cancel_button.disabled = not running

    # ------------------------------------------------------------ running
    def _project_running(self) -> bool:
        thread = getattr(self, "_project_thread", None)
        return thread is not None and thread.is_alive()

    def _running(self) -> bool:
        return self._project_running() or super()._running()  # type: ignore[misc]

    def _start_run(self) -> None:
        if self.project is None:
            super()._start_run()  # type: ignore[misc]
            return
        if self._project_running():
            self._say("a run is going on; cancel it first", "warning")
            return
        from ..project import plan_project
        from ..project_run import ProjectRun, run_project

        project = self.project
        try:
            plans = plan_project(project)
        except NbflowError as e:
            self._say(f"cannot run: {e}", "danger")
            return
        base = {name: graph_model(project.pipelines[name], plans[name]) for name in project.order}
        states = {name: GraphState(model) for name, model in base.items()}
        handle = ProjectRun(project)
        self._project_run = handle
        lock = threading.Lock()
        pending = {"flush": False}
        failure = {"text": ""}

        def flush() -> None:
            with lock:
                pending["flush"] = False
                now = {f"{nb}:{s}": v for nb, g in states.items() for s, v in g.states.items()}
            if self.project is project:
                self.canvas.states = now
                running = ", ".join(f"{name} {run.status}" for name, run in list(handle.runs.items()))
                self.run_status.object = f"pipeline: {running or 'starting'}"

        def on_event(name: str, event: Any) -> None:  # on a run's thread
            with lock:
                states[name].apply(event)
                if pending["flush"]:
                    return
                pending["flush"] = True
            self._on_doc(flush)

        def finished() -> None:
            self._update_toolbar()
            if self.project is not project:
                return
            each = ", ".join(f"{name} run {run.id} {run.status}" for name, run in handle.runs.items())
            skipped = "".join(f"; {name} not run: {why}" for name, why in handle.skipped.items())
            self._say(
                f"pipeline {handle.status} in {handle.duration:.1f} s: {each}{skipped}{failure['text']}",
                "success" if handle.status == "done" else "danger",
            )
            self.run_status.object = f"pipeline {handle.status}"
            self._refresh_runs()

        def work() -> None:
            try:
                run_project(project, handle=handle, listeners=lambda name: [lambda e, name=name: on_event(name, e)])
            except NbflowError as e:
                failure["text"] = f"; {e}"
            self._on_doc(flush)
            self._on_doc(finished)

        self._project_thread = threading.Thread(target=work, name="nbflow-studio-project-run", daemon=True)
        self._project_thread.start()
        self._say(f"running {project.title}", "info")
        self._update_toolbar()

    def _on_doc(self, callback: Any) -> None:
        if self.doc is not None:
            self.doc.add_next_tick_callback(callback)
        else:
            callback()

    def _cancel_run(self) -> None:
        if self.project is not None and self._project_running():
            self._project_run.cancel()
            self._say("cancelling the pipeline's runs", "warning")
        else:
            super()._cancel_run()  # type: ignore[misc]

    # ------------------------------------------------------------ history
    def _refresh_runs(self) -> None:
        if self.project is None:
            super()._refresh_runs()  # type: ignore[misc]
            return
        import pandas as pd

        from .runs import _when

        columns = ["run", "notebook", "status", "started", "duration", "steps"]
        if self.tabs.active != 1:
            self._runs_hidden_change = True
            return
        project = self.project
        rows = []
        if project.config.store_path.exists():
            store = project.config.open_store()
            try:
                runs = [
                    (name, r) for name in project.order for r in store.runs(project.pipelines[name].path, limit=200)
                ]
                counts = store.step_counts([r["id"] for _, r in runs])
            finally:
                store.close()
            for name, r in sorted(runs, key=lambda item: -item[1]["id"]):
                duration = r["finished"] - r["started"] if r["finished"] and r["started"] else None
                rows.append(
                    {
                        "run": r["id"],
                        "notebook": name,
                        "status": r["status"],
                        "started": _when(r["started"] or r["created"]),
                        "duration": f"{duration:.2f} s" if duration is not None else "",
                        "steps": ", ".join(f"{n} {s}" for s, n in sorted(counts[r["id"]].items())),
                    }
                )
        frame = pd.DataFrame(rows, columns=columns)
        old = self.runs_table.value
        if self._runs_hidden_change or old is None or not frame.equals(old):
            self._runs_hidden_change = False
            self.runs_table.value = frame
        self._select_run()

    def _open_report(self, run_id: int | None = None, show: bool = True) -> None:
        if self.project is None:
            super()._open_report(run_id, show)  # type: ignore[misc]
            return
        if show:
            self._say(
                "a pipeline's report: nbflow run FOLDER --report; here, open one of its notebooks for its runs' reports",
                "info",
            )
