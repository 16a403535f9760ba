"""The studio app: one ``Studio`` per browser session.

What a session shows, top to bottom:

* a toolbar: the pipeline notebooks of the folder, Save / Undo / Reload, Run / Cancel,
  and one line saying what just happened (or what went wrong, naming notebook, cell
  and step);
* the **Pipeline** tab: the parameters form (from the parameters cell) and a form to
  add a step, the canvas (``canvas.py``), and the editor of the selected step (code in
  Panel's CodeEditor, markdown docs, tags; rename, delete) or of the selected edge;
* the **Runs** tab: the run history of the notebook (Panel's Tabulator over the SQLite
  run store, kept current while shown), with the selected run's report opened in the
  app or downloaded;
* the **Report** tab: that report, in a sandboxed iframe loaded over HTTP from the
  studio's report handler (``serve.py``), not through the websocket.

Every edit goes through ``editing.NotebookEditor`` and is checked by building the
pipeline of the result (``graph.load_pipeline`` with ``source=``): an edit that breaks the pipeline (a
cycle, an unknown ``after:``) is undone and reported. Nothing is written until Save.

Runs are started with ``run.start_run`` like every other view; the session listens to
the run's event bus. Events arrive on the run's thread: ``GraphState`` collects them
under a lock and one callback per burst is scheduled on the session's Bokeh document
(``add_next_tick_callback``, the thread-safe way in), which pushes the changed states
to the canvas.

Runs and reports are looked up by run id in the store of the notebook's nbflow home,
never by a path from the browser; notebooks are chosen from the folder's listing.

The notebook list also offers the folder's pipelines of notebooks (a folder or an
``nbflow.toml``) and notebooks kept as text (percent ``.py``, MyST ``.md``): those open
read-only, drawn as groups, run and listed by ``projects.ProjectView``.

The session is one ``Studio``, assembled from its concerns: ``projects.ProjectView`` (the
read-only views), ``layout.StudioLayout`` (the widgets), ``edits.StepEdits`` (editing steps
and edges), ``runs.RunsView`` (runs, history, reports); this module opens notebooks, builds and plans the pipeline and keeps the
parameters. It must not edit notebook JSON itself (``editing.py``) nor draw the graph
(``canvas.py``), and it never imports ``serve`` (which imports it).
"""

from __future__ import annotations

import html
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import panel as pn

from ..config import Config
from ..errors import NbflowError, PipelineError
from ..graph import Pipeline, load_pipeline
from ..project_context import in_project
from ..view import GraphState, graph_model
from .background import in_background
from .editing import NotebookEditor
from .edits import StepEdits
from .folder import find_notebooks, find_sources, is_source_entry, notebook_label
from .layout import StudioLayout, parameter_value, parameter_widget
from .projects import ProjectView
from .runs import RunsView

__all__ = ["Studio", "find_notebooks", "notebook_label", "parameter_value", "parameter_widget", "studio_app"]


class Studio(ProjectView, StudioLayout, StepEdits, RunsView):
    """The studio of one browser session over the notebooks of ``folder``."""

    def __init__(self, folder: Path, first: str | None = None) -> None:
        self.folder = folder.resolve()
        self.doc = pn.state.curdoc
        self.editor: NotebookEditor | None = None
        self.pipeline: Pipeline | None = None
        self.config: Config | None = None
        self.model: dict[str, Any] | None = None
        self.values: dict[str, Any] = {}
        self.run: Any = None
        self._run_over = False
        self._editing: str | None = None
        self._param_widgets: dict[str, pn.widgets.Widget] = {}
        self._param_signature: tuple = ()
        self._lock = threading.Lock()
        self._graph_state: GraphState | None = None
        self._flush_pending = False
        self._unsubscribe: Callable[[], None] | None = None
        self._force_save = False
        self._report_path: Path | None = None
        self._report_run: int | None = None  # the run whose report the Report tab shows
        self._report_built = 0.0
        #: Bumped by every plan and every notebook opened: a late result of an older one is dropped.
        self._plan_token = 0
        self._clicked_run: int | None = None
        self._runs_seen: tuple | None = None  # the run store's files at the last refresh of the Runs tab

        self._build_widgets()
        self._refresh_notebook_list()
        wanted = first
        query = (pn.state.session_args or {}).get("notebook") if pn.state.session_args else None
        if query:
            wanted = query[0].decode("utf-8", "replace")
        options = list(self.notebook_select.options.values())
        if wanted in options:
            self.notebook_select.value = wanted
        elif wanted:
            self._say(f"{wanted}: not a notebook in {self.folder}", "danger")
        if self.notebook_select.value is None and options:
            # Left alone, Panel picks the first option only while the page renders, too late
            # for the box to show it: the selector stayed blank over an open notebook.
            self.notebook_select.value = options[0]
        if self.notebook_select.value:
            self._open(self.notebook_select.value)
        self.notebook_select.param.watch(lambda e: self._open(e.new), "value")
        self._watch_runs()
        if self.doc is not None and self.doc.session_context is not None:
            self.doc.on_session_destroyed(lambda context: self._stop_following())

    # ------------------------------------------------------------ notebooks
    def _refresh_notebook_list(self) -> None:
        notebooks = find_notebooks(self.folder)
        options = {notebook_label(rel, n): rel for rel, n in notebooks}
        # pipelines of notebooks and text notebooks, opened read-only (projects.py)
        options.update({label: rel for rel, label in find_sources(self.folder)})
        self.notebook_select.options = options
        if not options:
            self._say(f"no notebooks in {self.folder}", "warning")

    def _path(self, rel: str) -> Path:
        path = (self.folder / rel).resolve()
        if not path.is_relative_to(self.folder) or rel not in self.notebook_select.options.values():
            raise PipelineError(f"{rel}: not a notebook of {self.folder}")
        return path

    def _forget_open_notebook(self) -> None:
        """Before another notebook or pipeline opens: nothing followed, planned or shown stays."""
        self._stop_following()
        self._plan_token += 1
        self._clicked_run = None
        self._wait_note("")
        self.editor = self.pipeline = self.model = None
        self._editing = None
        self.values = {}
        self._param_signature = ()
        self._say("")

    def _open(self, rel: str | None) -> None:
        self.project = None
        self.add_card.visible = not (rel and is_source_entry(rel))
        if rel and is_source_entry(rel):
            self._open_project(rel)  # a pipeline of notebooks or a text notebook: read-only (projects.py)
            return
        self._forget_open_notebook()
        if not rel:
            return
        try:
            path = self._path(rel)
            self.config = Config.for_notebook(path)
            self.editor = NotebookEditor.open(path)
            self._rebuild()
        except NbflowError as e:
            self.pipeline = None
            self.canvas.show_graph({"nodes": [], "edges": [], "legend": []})
            self.title.object = f"**{html.escape(rel)}**"
            self._say(f"{e} (fix it, for example in JupyterLab, then Reload)", "danger")
        self._update_toolbar()
        self._refresh_runs()
        self._follow_active_run()

    def _reload(self) -> None:
        self._refresh_notebook_list()
        self._open(self.notebook_select.value)
        if self.pipeline is not None:
            self._say("reloaded from disk", "info")

    # ------------------------------------------------------------ the graph
    def _rebuild(self, render: bool = True) -> None:
        """Build the pipeline of the notebook as edited, plan it and (re)draw it.

        Raises ``PipelineError`` when the edited notebook is not a valid pipeline.
        """
        assert self.editor is not None and self.config is not None
        self.pipeline = load_pipeline(self.editor.path, self.config, source=self.editor.source())
        self._sync_parameters()
        self._replan(render)
        source = self.pipeline.source
        self.title.object = (
            f"**{html.escape(source.title)}** &nbsp; `{html.escape(str(self.pipeline.path.relative_to(self.folder)))}`"
            f" &nbsp; {len(self.pipeline.step_names)} steps"
        )
        self.warnings.object = "\n".join(f"- warning: {html.escape(w)}" for w in self.pipeline.warnings)
        if self._editing is not None and self._editing not in self.pipeline.steps:
            self._editing = None
        if render:
            self._show_step(self._editing)
        self._update_toolbar()

    def _replan(self, render: bool = True) -> None:
        """Plan the pipeline for the form's values off the IO loop, then draw its states.

        The graph is drawn now with the states of the last plan (steps it had not: stale);
        the plan runs on a thread (it hashes ``in:`` files, which may be huge or slow), and
        its states replace them when it is in, unless a newer plan or another notebook
        came first. A plan slower than ``background.time_limit()`` says so in the page.
        """
        assert self.pipeline is not None
        pipeline = self.pipeline
        self._plan_token += 1
        token = self._plan_token
        self.params_error.object = ""
        self.model = self._provisional_model(pipeline)
        if render:
            self._draw()
        try:
            values = self._parameter_values()
        except NbflowError as e:
            self.params_error.object = html.escape(str(e))
            return
        name = pipeline.path.name
        from ..run import plan_pipeline

        def linked_plan() -> tuple[Pipeline, Any]:
            # keyed in its pipeline of notebooks, like its badges in JupyterLab and nbflow run
            linked = in_project(pipeline)
            return linked, plan_pipeline(linked, values)

        def done(result: Any, error: BaseException | None) -> None:
            if token != self._plan_token:
                return  # a newer plan, or another notebook, came first
            self._wait_note("")
            if error is not None:
                text = str(error) if isinstance(error, NbflowError) else f"{type(error).__name__}: {error}"
                self.params_error.object = html.escape(f"cannot plan: {text}")
                return
            linked, plan = result
            if linked.warnings != pipeline.warnings:  # planned alone: another notebook of its pipeline is broken
                self.warnings.object = "\n".join(f"- warning: {html.escape(w)}" for w in linked.warnings)
            self.model = graph_model(pipeline, plan)
            # The graph is drawn already: send the states only, so a node being dragged
            # is not put back (a run's live states win over the plan's).
            states = {n["id"]: n["state"] for n in self.model["nodes"]}
            with self._lock:
                if self._graph_state is not None and self._running():
                    states.update(self._graph_state.states)
            self.canvas.states = states
            self.canvas.labels = {n["id"]: n["label"] for n in self.model["nodes"] if n["label"] != n["id"]}
            if self._editing is not None:
                self._show_step(self._editing)

        def slow(limit: float) -> None:
            if token == self._plan_token:
                self._wait_note(
                    f"still planning {name} after {limit:g} s (reading its in: files?); "
                    "the graph shows the last known states until the plan is in"
                )

        in_background(self.doc, linked_plan, done, name=f"plan {name}", on_slow=slow)

    def _provisional_model(self, pipeline: Pipeline) -> dict[str, Any]:
        """The graph of ``pipeline`` with the states and reasons of the last plan drawn."""
        model = graph_model(pipeline, None)
        known = {n["id"]: n for n in (self.model or {}).get("nodes", [])}
        for node in model["nodes"]:
            old = known.get(node["id"])
            if old is not None:
                node.update(state=old["state"], reasons=old["reasons"], key=old["key"])
        return model

    def _draw(self) -> None:
        """Send the model to the canvas, keeping the selection and the states of a run going on."""
        assert self.pipeline is not None and self.model is not None
        selected = self.canvas.selected if self.canvas.selected in self.pipeline.steps else ""
        self.canvas.show_graph(self.model)
        self.canvas.selected = selected
        with self._lock:
            live = dict(self._graph_state.states) if self._graph_state is not None and self._running() else None
        if live:
            self.canvas.states = live

    def _update_toolbar(self) -> None:
        if self.project is not None:
            self._update_project_toolbar()
            return
        dirty = self.editor is not None and self.editor.dirty
        self.save_button.label = "Save *" if dirty else "Save"
        self.save_button.disabled = self.editor is None
        self.undo_button.disabled = self.editor is None or not self.editor.can_undo
        running = self._running() or self._starting
        self.run_button.disabled = self.pipeline is None or running
        self.cancel_button.disabled = not running

    # ------------------------------------------------------------ parameters
    def _sync_parameters(self) -> None:
        assert self.pipeline is not None
        params = self.pipeline.parameters
        signature = tuple((p.name, repr(p.default)) for p in params.values())
        if signature == self._param_signature:
            return
        self._param_signature = signature
        self.values = {k: v for k, v in self.values.items() if k in params}
        self._param_widgets = {}
        for name, p in params.items():
            widget = parameter_widget(p, self.values.get(name, p.default))
            widget.param.watch(lambda e: self._parameters_changed(), "value")
            self._param_widgets[name] = widget
        self.params_box.objects = list(self._param_widgets.values()) or [
            pn.pane.Markdown("No parameters cell (tag a cell `parameters`).")
        ]

    def _parameter_values(self) -> dict[str, Any]:
        """The values typed in the form that differ from the defaults."""
        assert self.pipeline is not None
        values = {}
        for name, widget in self._param_widgets.items():
            p = self.pipeline.parameters[name]
            value = parameter_value(p, widget)
            if value != p.default or type(value) is not type(p.default):
                values[name] = value
        self.values = values
        return values

    def _parameters_changed(self) -> None:
        if self.pipeline is not None:
            self._replan()


def studio_app(folder: Path, first: str | None = None) -> pn.viewable.Viewable:
    """The app of one session (``serve`` calls this for every browser that connects)."""
    pn.extension("tabulator", "codeeditor")
    return Studio(folder, first).layout
