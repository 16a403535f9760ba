"""The studio app: one ``Studio`` per browser session.

What a session shows, top to bottom:

* a toolbar: the pipeline notebooks of the folder, Save / Undo / Reload, Run / Cancel,
  and one line saying what just happened (or what went wrong, naming notebook, cell
  and step);
* the **Pipeline** tab: the parameters form (from the parameters cell) and a form to
  add a step, the canvas (``canvas.py``), and the editor of the selected step (code in
  Panel's CodeEditor, markdown docs, tags; rename, delete) or of the selected edge;
* the **Runs** tab: the run history of the notebook (Panel's Tabulator over the SQLite
  run store), with the selected run's report opened in the app or downloaded;
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
This module must not edit notebook JSON itself (``editing.py``) nor draw the graph
(``canvas.py``).
"""

from __future__ import annotations

import ast
import html
import io
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import panel as pn

from ..config import Config
from ..errors import NbflowError, PipelineError
from ..events import Event
from ..graph import Pipeline, load_pipeline
from ..parameters import Parameter
from ..view import GraphState, graph_model
from .canvas import PipelineCanvas
from .editing import NotebookEditor

_MESSAGE_COLOURS = {
    "info": ("#e8f1fa", "#0b3d66"),
    "success": ("#e6f4ea", "#1e5631"),
    "warning": ("#fff4e0", "#6b4400"),
    "danger": ("#fde8e8", "#8a1111"),
}
_SKIP_DIRS = {"node_modules", "__pycache__", "site-packages"}
_MAX_NOTEBOOKS = 500


# ----------------------------------------------------------------- the folder
def find_notebooks(folder: Path) -> list[tuple[str, int | None]]:
    """``(relative path, number of steps)`` of the notebooks under ``folder``, pipelines first.

    Hidden folders (``.nbflow``, checkpoints, virtualenvs), and notebooks whose real
    path leaves ``folder`` through a symlink, are not listed. The step count is
    ``None`` for a file that is not readable notebook JSON.
    """
    import json

    root = folder.resolve()
    found: list[tuple[str, int | None]] = []
    for parent, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIP_DIRS)
        for name in sorted(files):
            if not name.endswith(".ipynb") or name.startswith("."):
                continue
            path = Path(parent) / name
            if not path.resolve().is_relative_to(root):
                continue
            try:
                cells = json.loads(path.read_bytes()).get("cells", [])
                steps = sum(
                    1
                    for c in cells
                    if isinstance(c, dict)
                    and any(str(t).strip().startswith("step:") for t in (c.get("metadata") or {}).get("tags") or [])
                )
            except (OSError, ValueError, AttributeError):
                steps = None
            found.append((path.relative_to(root).as_posix(), steps))
            if len(found) >= _MAX_NOTEBOOKS:
                break
    return sorted(found, key=lambda item: (not item[1], item[0]))


def notebook_label(rel: str, steps: int | None) -> str:
    if steps is None:
        return f"{rel} (unreadable)"
    if steps == 0:
        return f"{rel} (no steps yet)"
    return f"{rel} ({steps} step{'s' if steps != 1 else ''})"


# ----------------------------------------------------------- parameter widgets
def parameter_widget(param: Parameter, value: Any) -> pn.widgets.Widget:
    """A form field for ``param`` showing ``value``: typed for bool, int, float and str."""
    default = param.default
    label = f"{param.name} ({param.type_name})"
    if isinstance(default, bool):
        return pn.widgets.Checkbox(label=label, value=bool(value), sizing_mode="stretch_width")
    if isinstance(default, int):
        return pn.widgets.IntInput(label=label, value=int(value), sizing_mode="stretch_width")
    if isinstance(default, float):
        return pn.widgets.FloatInput(label=label, value=float(value), sizing_mode="stretch_width")
    if isinstance(default, str):
        return pn.widgets.TextInput(label=label, value=str(value), sizing_mode="stretch_width")
    return pn.widgets.TextInput(label=f"{label}, a Python literal", value=repr(value), sizing_mode="stretch_width")


def parameter_value(param: Parameter, widget: pn.widgets.Widget) -> Any:
    """The value typed in ``widget`` (literals parsed for non-scalar defaults)."""
    if isinstance(param.default, (bool, int, float, str)):
        return widget.value
    text = str(widget.value).strip()
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise PipelineError(f"parameter {param.name}: {text!r} is not a Python literal") from None


def _when(timestamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp)) if timestamp else ""


class Studio:
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
        if self.notebook_select.value:
            self._open(self.notebook_select.value)
        self.notebook_select.param.watch(lambda e: self._open(e.new), "value")
        if self.doc is not None and self.doc.session_context is not None:
            self.doc.on_session_destroyed(lambda context: self._stop_following())

    # ------------------------------------------------------------- widgets
    def _build_widgets(self) -> None:
        w = pn.widgets
        self.notebook_select = w.Select(label="", options={}, width=300, margin=(10, 5))
        self.save_button = w.Button(label="Save", button_type="primary", width=110, margin=(10, 5))
        self.undo_button = w.Button(label="Undo", width=70, disabled=True, margin=(10, 5))
        self.reload_button = w.Button(label="Reload", width=80, margin=(10, 5))
        self.run_button = w.Button(label="Run", button_type="success", width=80, margin=(10, 5))
        self.cancel_button = w.Button(label="Cancel", button_type="danger", width=80, disabled=True, margin=(10, 5))
        self.run_status = pn.pane.Markdown("", margin=(14, 10), css_classes=["nbflow-run-status"])
        # A fixed-height line, so messages never move the canvas under the mouse.
        self.message = pn.pane.HTML("", height=44, margin=(0, 10), sizing_mode="stretch_width")
        self.save_button.on_click(lambda e: self._save())
        self.undo_button.on_click(lambda e: self._undo())
        self.reload_button.on_click(lambda e: self._reload())
        self.run_button.on_click(lambda e: self._start_run())
        self.cancel_button.on_click(lambda e: self._cancel_run())

        self.title = pn.pane.Markdown("", margin=(0, 10), sizing_mode="stretch_width")
        self.canvas = PipelineCanvas(height=620, sizing_mode="stretch_width", min_width=400)
        self.canvas.on_move(self._moved)
        self.canvas.on_connect(self._connected)
        self.canvas.param.watch(lambda e: self._select(e.new), "selected")
        self.canvas.param.watch(lambda e: self._select_edge(e.new), "selected_edge")
        self.warnings = pn.pane.Markdown("", margin=(0, 10), sizing_mode="stretch_width")

        self.params_box = pn.Column(sizing_mode="stretch_width")
        self.params_error = pn.pane.Markdown("", styles={"color": "#b00"})
        params_card = pn.Card(
            self.params_box, self.params_error, title="Parameters", sizing_mode="stretch_width", collapsible=False
        )

        self.new_name = w.TextInput(label="Name", placeholder="new step name", sizing_mode="stretch_width")
        self.new_docs = w.TextAreaInput(
            label="Docs (markdown)", placeholder="## What it does", height=70, sizing_mode="stretch_width"
        )
        self.new_code = w.CodeEditor(
            value="", language="python", soft_tabs=True, height=130, sizing_mode="stretch_width"
        )
        self.add_button = w.Button(label="Add step", button_type="primary")
        self.add_button.on_click(lambda e: self._add_step())
        add_card = pn.Card(
            self.new_name,
            self.new_docs,
            pn.pane.Markdown("Code", margin=(0, 10)),
            self.new_code,
            self.add_button,
            title="Add a step",
            sizing_mode="stretch_width",
            collapsible=False,
        )

        self.step_title = pn.pane.Markdown("Select a step or an edge on the canvas.", sizing_mode="stretch_width")
        self.step_info = pn.pane.Markdown("", sizing_mode="stretch_width")
        self.rename_input = w.TextInput(label="Name", sizing_mode="stretch_width")
        self.rename_button = w.Button(label="Rename", width=90, align="end")
        self.rename_button.on_click(lambda e: self._rename())
        self.docs_input = w.TextAreaInput(
            label="Docs (markdown above the step)", height=90, sizing_mode="stretch_width"
        )
        self.tags_input = w.TextInput(
            label="Tags (comma-separated: after:NAME, timeout:SECONDS, keep:NAME, in:PATH ...)",
            sizing_mode="stretch_width",
        )
        self.code_box = pn.Column(sizing_mode="stretch_width")
        self.apply_button = w.Button(label="Apply", button_type="primary", width=90)
        self.apply_button.on_click(lambda e: self._apply_step_edits())
        self.delete_button = w.Button(label="Delete step", button_type="danger", width=110)
        self.delete_button.on_click(lambda e: self._delete_step())
        self.step_form = pn.Column(
            pn.Row(self.rename_input, self.rename_button, sizing_mode="stretch_width"),
            self.docs_input,
            self.tags_input,
            pn.pane.Markdown("Code", margin=(0, 10)),
            self.code_box,
            pn.Row(self.apply_button, self.delete_button),
            visible=False,
            sizing_mode="stretch_width",
        )
        self.remove_edge_button = w.Button(label="Remove after: tag", button_type="warning", visible=False)
        self.remove_edge_button.on_click(lambda e: self._remove_edge())
        editor_card = pn.Card(
            self.step_title,
            self.step_info,
            self.step_form,
            self.remove_edge_button,
            title="Step",
            sizing_mode="stretch_width",
            collapsible=False,
        )

        pipeline_tab = pn.Row(
            pn.Column(params_card, add_card, width=290),
            pn.Column(self.title, self.canvas, self.warnings, sizing_mode="stretch_width"),
            pn.Column(editor_card, width=440),
            sizing_mode="stretch_width",
        )

        self.runs_table = w.Tabulator(
            None,
            disabled=True,
            selectable=1,
            show_index=False,
            pagination="local",
            page_size=15,
            sizing_mode="stretch_width",
            height=300,
        )
        self.runs_table.param.watch(lambda e: self._select_run(), "selection")
        self.refresh_runs_button = w.Button(label="Refresh", width=90)
        self.refresh_runs_button.on_click(lambda e: self._refresh_runs())
        self.report_button = w.Button(label="Open report", button_type="primary", disabled=True, width=120)
        self.report_button.on_click(lambda e: self._open_report())
        self.download = w.FileDownload(
            callback=self._report_file,
            filename="report.html",
            label="Download report",
            button_type="default",
            disabled=True,
            width=160,
        )
        self.run_details = pn.pane.Markdown("", sizing_mode="stretch_width")
        runs_tab = pn.Column(
            pn.Row(self.refresh_runs_button, self.report_button),
            self.runs_table,
            self.run_details,
            sizing_mode="stretch_width",
        )
        self.report_pane = pn.pane.HTML(
            "<p>Select a run in the Runs tab and open its report.</p>", sizing_mode="stretch_width", height=760
        )
        self.report_title = pn.pane.Markdown("", margin=(12, 10))
        report_tab = pn.Column(pn.Row(self.report_title, self.download), self.report_pane, sizing_mode="stretch_width")
        self._runs_hidden_change = True
        self.tabs = pn.Tabs(
            ("Pipeline", pipeline_tab),
            ("Runs", runs_tab),
            ("Report", report_tab),
            dynamic=False,
            sizing_mode="stretch_width",
        )
        # Fresh history whenever the tab is shown (and Tabulator lays its rows out visible).
        self.tabs.param.watch(lambda e: self._refresh_runs() if e.new == 1 else None, "active")
        toolbar = pn.Row(
            pn.pane.Markdown("### nbflow studio", margin=(4, 10)),
            self.notebook_select,
            self.save_button,
            self.undo_button,
            self.reload_button,
            self.run_button,
            self.cancel_button,
            self.run_status,
            sizing_mode="stretch_width",
        )
        self.layout = pn.Column(toolbar, self.message, self.tabs, sizing_mode="stretch_width")

    def _say(self, text: str, kind: str = "info") -> None:
        """One line about what just happened (``kind``: info, success, warning, danger)."""
        colour = _MESSAGE_COLOURS.get(kind, _MESSAGE_COLOURS["info"])
        self.message.object = (
            f'<div class="nbflow-message nbflow-{kind}" style="padding:4px 10px;border-radius:3px;'
            f'background:{colour[0]};color:{colour[1]};max-height:34px;overflow:auto;font-size:13px" '
            f'title="{html.escape(text)}">{html.escape(text)}</div>'
            if text
            else ""
        )

    # ------------------------------------------------------------ notebooks
    def _refresh_notebook_list(self) -> None:
        notebooks = find_notebooks(self.folder)
        self.notebook_select.options = {notebook_label(rel, n): rel for rel, n in notebooks}
        if not notebooks:
            self._say(f"no notebooks in {self.folder}", "warning")

    def _path(self, rel: str) -> Path:
        path = (self.folder / rel).resolve()
        if not path.is_relative_to(self.folder) or rel not in self.notebook_select.options.values():
            raise PipelineError(f"{rel}: not a notebook of {self.folder}")
        return path

    def _open(self, rel: str | None) -> None:
        self._stop_following()
        self.editor = self.pipeline = self.model = None
        self._editing = None
        self.values = {}
        self._param_signature = ()
        self._say("")
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
            f" &nbsp; {len(self.pipeline.steps)} steps"
        )
        self.warnings.object = "\n".join(f"- warning: {html.escape(w)}" for w in self.pipeline.warnings)
        if self._editing is not None and self._editing not in self.pipeline.steps:
            self._editing = None
        if render:
            self._show_step(self._editing)
        self._update_toolbar()

    def _replan(self, render: bool = True) -> None:
        assert self.pipeline is not None
        plan = None
        self.params_error.object = ""
        try:
            values = self._parameter_values()
            from ..run import plan_pipeline

            plan = plan_pipeline(self.pipeline, values)
        except NbflowError as e:
            self.params_error.object = html.escape(str(e))
        self.model = graph_model(self.pipeline, plan)
        if render:
            selected = self.canvas.selected if self.canvas.selected in self.pipeline.steps else ""
            self.canvas.show_graph(self.model)
            self.canvas.selected = selected

    def _update_toolbar(self) -> None:
        dirty = self.editor is not None and self.editor.dirty
        self.save_button.label = "Save *" if dirty else "Save"
        self.save_button.disabled = self.editor is None
        self.undo_button.disabled = self.editor is None or not self.editor.can_undo
        running = self._running()
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

    # ----------------------------------------------------------------- edits
    def _edit(self, done: str, change: Callable[[], Any]) -> bool:
        """Apply ``change`` to the notebook; undo it when the pipeline it makes is invalid."""
        if self.editor is None:
            return False
        self.editor.checkpoint()
        try:
            changed = change()
            if changed is False:
                self.editor.undo()
                return False
            self._rebuild()
        except PipelineError as e:
            self.editor.undo()
            self._rebuild()
            self._say(f"not changed: {e}", "danger")
            return False
        self._force_save = False
        self._say(f"{done} (not saved yet)", "success")
        return True

    def _moved(self, positions: dict[str, dict[str, float]]) -> None:
        if self.editor is None or self.pipeline is None:
            return
        positions = {k: v for k, v in positions.items() if k in self.pipeline.steps}
        if not positions:
            return
        self.editor.checkpoint()
        self.editor.set_layout(positions)
        # The browser already shows the node where it was dropped: rebuild, do not redraw.
        self._rebuild(render=False)
        self._say(f"moved {', '.join(positions)} (not saved yet)", "success")

    def _connected(self, source: str, target: str) -> None:
        if self.pipeline is None or source not in self.pipeline.steps or target not in self.pipeline.steps:
            return
        if source in self.pipeline.deps[target]:
            names = self.pipeline.edge_names.get((source, target), ())
            why = f"it reads {', '.join(names)} from it" if names else "it is already tagged after:" + source
            self._say(f"{target} already depends on {source}: {why}", "info")
            return
        if self._edit(
            f"{target} now runs after {source} (tag after:{source})", lambda: self.editor.add_after(target, source)
        ):
            self.canvas.selected_edge = f"{source}->{target}"

    def _remove_edge(self) -> None:
        edge = self.canvas.selected_edge
        if self.pipeline is None or "->" not in edge:
            return
        source, target = edge.split("->", 1)
        if self._edit(f"removed after:{source} from {target}", lambda: self.editor.remove_after(target, source)):
            self.canvas.selected_edge = ""

    def _add_step(self) -> None:
        name = self.new_name.value_input.strip() if self.new_name.value_input else self.new_name.value.strip()
        code, docs = self.new_code.value, self.new_docs.value_input or self.new_docs.value
        if not name:
            self._say("give the new step a name", "warning")
            return
        if self._edit(f"added step {name}", lambda: self.editor.add_step(name, code, docs=docs)):
            self.new_name.value = self.new_name.value_input = ""
            self.new_docs.value = self.new_docs.value_input = ""
            self.new_code.value = ""
            self.canvas.selected = name

    def _delete_step(self) -> None:
        name = self._editing
        if name is None:
            return
        if self._edit(f"deleted step {name} (Undo brings it back)", lambda: self.editor.delete_step(name)):
            self.canvas.selected = ""

    def _rename(self) -> None:
        old, new = self._editing, (self.rename_input.value_input or self.rename_input.value).strip()
        if old is None or not new or new == old:
            return
        self._apply_step_edits(quiet=True)
        if self._edit(f"renamed {old} to {new}", lambda: self.editor.rename_step(old, new)):
            self.canvas.selected = new  # opens the renamed step in the editor

    def _pending_step_edits(self) -> dict[str, Any] | None:
        name = self._editing
        if self.editor is None or name is None or self.pipeline is None or name not in self.pipeline.steps:
            return None
        return {
            "codes": [editor.value for editor in self.code_box.objects],
            "docs": self.docs_input.value_input if self.docs_input.value_input is not None else self.docs_input.value,
            "tags": [t for t in (self.tags_input.value_input or self.tags_input.value or "").split(",") if t.strip()],
        }

    def _apply_step_edits(self, quiet: bool = False) -> bool:
        """Write the step editor's code, docs and tags into the notebook (not to disk)."""
        edits = self._pending_step_edits()
        if edits is None:
            return False
        name = self._editing
        editor = self.editor
        assert name is not None and editor is not None

        def change() -> bool:
            changed = False
            for i, code in enumerate(edits["codes"]):
                changed = editor.set_code(name, code, i) or changed
            changed = editor.set_docs(name, edits["docs"]) or changed
            changed = editor.set_tags(name, edits["tags"]) or changed
            return changed

        changed = self._edit(f"updated step {name}", change)
        if not changed and not quiet:
            self._say(f"step {name}: nothing changed", "info")
        return changed

    def _undo(self) -> None:
        if self.editor is not None and self.editor.undo():
            try:
                self._rebuild()
                self._say("undone", "info")
            except PipelineError as e:
                self._say(str(e), "danger")
        self._update_toolbar()

    def _save(self) -> bool:
        if self.editor is None:
            return False
        self._apply_step_edits(quiet=True)
        try:
            saved = self.editor.save(force=self._force_save)
        except PipelineError as e:
            if "changed on disk" in str(e):
                self._force_save = True
            self._say(str(e), "danger")
            return False
        self._force_save = False
        self._refresh_notebook_list()
        self._update_toolbar()
        self._say(f"saved {self.editor.path.name}" if saved else "nothing to save", "success")
        return True

    # ---------------------------------------------------------- step editor
    def _select(self, name: str) -> None:
        if name == self._editing:
            return
        if self._editing is not None:
            self._apply_step_edits(quiet=True)  # leaving a step keeps what was typed
        self._show_step(name or None)

    def _show_step(self, name: str | None) -> None:
        self._editing = name if self.pipeline is not None and name in self.pipeline.steps else None
        if self._editing is None:
            self.step_form.visible = False
            if not self.canvas.selected_edge:
                self.step_title.object = "Select a step or an edge on the canvas."
                self.step_info.object = ""
            return
        assert self.pipeline is not None and self.editor is not None and self.model is not None
        name = self._editing
        step = self.pipeline.steps[name]
        node = next(n for n in self.model["nodes"] if n["id"] == name)
        state = self.canvas.states.get(name, node["state"])
        deps = ", ".join(
            f"{d} ({', '.join(self.pipeline.edge_names.get((d, name), ())) or 'after'})"
            for d in self.pipeline.deps[name]
        )
        reasons = html.escape("; ".join(node["reasons"]))
        if reasons and state == "stale":
            state_line = f"**state:** stale: {reasons}"
        elif reasons and state != "fresh":
            state_line = f"**state:** {state} (it ran because: {reasons})"
        else:
            state_line = f"**state:** {state}"
        lines = [
            state_line,
            f"**cell:** {step.cell.number} &nbsp; **after:** {html.escape(deps) or '(nothing)'}",
            f"**reads:** {html.escape(', '.join(sorted(step.reads))) or '-'} &nbsp; "
            f"**writes:** {html.escape(', '.join(sorted(step.writes))) or '-'}",
        ]
        if step.params:
            lines.append(f"**parameters:** {', '.join(step.params)}")
        details = self._graph_state.details.get(name) if self._graph_state is not None else None
        if details and details.get("error"):
            lines.append(f"**error:** {html.escape(details['error'])}")
        self.step_title.object = f"### {html.escape(name)}"
        self.step_info.object = "\n\n".join(lines)
        self.rename_input.param.update(value=name, value_input=name)
        docs = self.editor.step_docs(name)
        self.docs_input.param.update(value=docs, value_input=docs)
        tags = ", ".join(self.editor.step_tags(name))
        self.tags_input.param.update(value=tags, value_input=tags)
        codes = self.editor.step_code(name)
        editors = list(self.code_box.objects)
        if len(editors) != len(codes):
            editors = [
                pn.widgets.CodeEditor(
                    language="python",
                    soft_tabs=True,
                    height=220 if len(codes) == 1 else 140,
                    sizing_mode="stretch_width",
                )
                for _ in codes
            ]
        for editor, code in zip(editors, codes, strict=True):
            editor.value = code
        self.code_box.objects = editors
        self.step_form.visible = True
        self.remove_edge_button.visible = False

    def _select_edge(self, edge: str) -> None:
        if not edge or self.pipeline is None or "->" not in edge:
            self.remove_edge_button.visible = False
            if not edge and not self.canvas.selected:
                self._show_step(None)
            return
        self._apply_step_edits(quiet=True)
        source, target = edge.split("->", 1)
        if target not in self.pipeline.steps:
            return
        self._editing = None
        self.step_form.visible = False
        names = self.pipeline.edge_names.get((source, target), ())
        explicit = source in self.pipeline.steps[target].after
        self.step_title.object = f"### {html.escape(source)} → {html.escape(target)}"
        why = []
        if names:
            why.append(
                f"inferred: {html.escape(target)} reads {html.escape(', '.join(names))}, written by {html.escape(source)}"
            )
        if explicit:
            why.append(f"explicit: {html.escape(target)} is tagged `after:{html.escape(source)}`")
        if names and not explicit:
            why.append("An inferred edge goes away only when the code stops reading those names.")
        self.step_info.object = "\n\n".join(why)
        self.remove_edge_button.visible = explicit

    # ------------------------------------------------------------------ runs
    def _running(self) -> bool:
        # RunFinished reaches us before Run.done is set: trust the event stream first.
        return self.run is not None and not self._run_over and not self.run.done

    def _start_run(self) -> None:
        if self.pipeline is None or self.editor is None:
            return
        if self._running():
            self._say("a run is going on; cancel it first", "warning")
            return
        self._apply_step_edits(quiet=True)
        if self.editor.dirty and not self._save():
            return
        from ..run import start_run

        try:
            # The saved file, as every other view would run it (and its hash is recorded).
            pipeline = load_pipeline(self.editor.path, config=self.config)
            values = self._parameter_values()
            self.pipeline = pipeline
            self._replan()
            run = start_run(pipeline, values)
        except NbflowError as e:
            self._say(f"cannot run: {e}", "danger")
            return
        self._follow(run)
        self._say(f"run {run.id} started", "info")

    def _follow_active_run(self) -> None:
        """Show a run of this notebook another session (or the CLI in this process) started."""
        from ..run import ACTIVE_RUNS

        if self.pipeline is None:
            return
        for run in list(ACTIVE_RUNS.values()):
            if Path(run.pipeline.path).resolve() == self.pipeline.path.resolve() and not run.done:
                self._follow(run)
                return

    def _follow(self, run: Any) -> None:
        self._stop_following()
        assert self.model is not None
        with self._lock:
            self.run = run
            self._run_over = False
            self._graph_state = GraphState(self.model)
            self._flush_pending = False
        self._unsubscribe = run.bus.subscribe(self._on_event)
        self.run_status.object = f"run {run.id}: running"
        self._update_toolbar()

    def _stop_following(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def _on_event(self, event: Event) -> None:
        # On the run's thread: collect, and schedule one flush per burst on the session.
        with self._lock:
            if self._graph_state is None:
                return
            self._graph_state.apply(event)
            if self._flush_pending:
                return
            self._flush_pending = True
        if self.doc is not None:
            self.doc.add_next_tick_callback(self._flush)

    def _flush(self) -> None:
        with self._lock:
            self._flush_pending = False
            state = self._graph_state
            if state is None:
                return
            changes = state.take_changes()
            states = dict(state.states)
            run_status = state.run_status
        if changes:
            self.canvas.states = states
        run = self.run
        if run is None:
            return
        counts: dict[str, int] = {}
        for s in states.values():
            counts[s] = counts.get(s, 0) + 1
        summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        self.run_status.object = f"run {run.id}: {run_status or 'starting'} ({summary})"
        if self._editing in changes:
            self._show_step(self._editing)
        if run_status not in (None, "running"):
            self._run_finished(run, run_status)

    def _run_finished(self, run: Any, status: str) -> None:
        self._run_over = True
        self._stop_following()
        error = f": {run.error}" if run.error else ""
        self._say(f"run {run.id} {status}{error}", "success" if status == "done" else "danger")
        self._update_toolbar()
        self._refresh_runs()

    def _cancel_run(self) -> None:
        if self._running():
            self.run.cancel()
            self._say(f"cancelling run {self.run.id}", "warning")

    # --------------------------------------------------------------- history
    def _store(self) -> Any:

        if self.config is None or not self.config.store_path.exists():
            return None
        return self.config.open_store()

    def _refresh_runs(self) -> None:
        """Show the notebook's run history in the Runs tab.

        Tabulator lays rows out only while it is visible, so a refresh asked while the
        tab is hidden waits for the tab to be shown. Shown, the table is replaced only
        when a run changed, keeping the selected run: a click on a row right after the
        tab switch must not be undone by the refresh that the switch asked for.
        """
        import pandas as pd

        if self.tabs.active != 1:
            self._runs_hidden_change = True
            return
        store = self._store()
        if store is None or self.editor is None:
            self.runs_table.value = pd.DataFrame(
                columns=["run", "status", "started", "duration", "steps", "parameters"]
            )
            return
        try:
            runs = store.runs(self.editor.path, limit=200)
            counts = store.step_counts([r["id"] for r in runs])
        finally:
            store.close()
        rows = []
        for r in runs:
            duration = r["finished"] - r["started"] if r["finished"] and r["started"] else None
            rows.append(
                {
                    "run": r["id"],
                    "status": r["status"],
                    "started": _when(r["started"] or r["created"]),
                    "duration": f"{duration:.2f} s" if duration is not None else "",
                    "steps": ", ".join(f"{n} {s}" for s, n in sorted(counts[r["id"]].items())),
                    "parameters": ", ".join(f"{k}={v!r}" for k, v in r["params"].items()),
                }
            )
        frame = pd.DataFrame(rows, columns=["run", "status", "started", "duration", "steps", "parameters"])
        # A refresh keeps the user's selection: the tab switch that asks for it races
        # with the click on a row, and the table is only replaced when a run changed.
        selected = self._selected_run()
        old = self.runs_table.value
        if self._runs_hidden_change or old is None or not frame.equals(old):
            self._runs_hidden_change = False
            self.runs_table.value = frame
            ids = frame["run"].tolist()
            self.runs_table.selection = [ids.index(selected)] if selected in ids else []
        self._select_run()

    def _selected_run(self) -> int | None:
        frame = self.runs_table.value
        if frame is None or not self.runs_table.selection:
            return None
        index = self.runs_table.selection[0]
        if index >= len(frame):
            return None
        return int(frame.iloc[index]["run"])

    def _select_run(self) -> None:
        run_id = self._selected_run()
        self.report_button.disabled = run_id is None
        if run_id is None:
            self.run_details.object = ""
            return
        store = self._store()
        if store is None:
            return
        try:
            steps = store.steps(run_id)
            run = store.run(run_id)
        finally:
            store.close()
        if run is None:
            return
        lines = [f"**run {run_id}**: {run['status']}" + (f" — {html.escape(run['error'])}" if run["error"] else "")]
        for s in steps:
            duration = f"{s['duration']:.2f} s" if s["duration"] else ""
            why = f"(why: {html.escape('; '.join(s['reasons']))})" if s["reasons"] else ""
            lines.append(f"- `{s['step']}` {s['status']} {duration} {why}".rstrip())
        self.run_details.object = "\n".join(lines)

    def _build_report(self, run_id: int) -> Path:
        try:
            from ..report import build_report
        except ImportError:
            raise PipelineError("reports are not available in this nbflow (nbflow.report is missing)") from None
        assert self.config is not None
        # Untrusted: outputs' scripts are not run (the user did not choose to trust them).
        return build_report(self.config, run_id)

    def _open_report(self) -> None:
        from .links import report_url

        run_id = self._selected_run()
        if run_id is None or self.pipeline is None:
            return
        try:
            path = self._build_report(run_id)
            modified = path.stat().st_mtime_ns
        except (NbflowError, OSError) as e:
            self._say(f"run {run_id}: no report ({e})", "danger")
            return
        self._report_path = path
        self.report_title.object = f"**Report of run {run_id}** &nbsp; `{html.escape(path.name)}`"
        self.download.param.update(filename=f"nbflow-run-{run_id}-report.html", disabled=False)
        # The page comes over HTTP from serve.py's handler (found by run id in the store),
        # not through the websocket. A sandboxed frame: its scripts (the plots) run, but
        # cannot reach the studio.
        src = report_url(run_id, self.pipeline.path.relative_to(self.folder).as_posix(), modified)
        self.report_pane.object = (
            f'<iframe title="report of run {run_id}" sandbox="allow-scripts" '
            f'style="width:100%;height:740px;border:1px solid #ddd" src="{html.escape(src, quote=True)}"></iframe>'
        )
        self.tabs.active = 2
        self._say(f"report of run {run_id}", "info")

    def _report_file(self) -> io.BytesIO:
        """The report shown in the Report tab, for the download button."""
        if self._report_path is None:
            raise PipelineError("open a run's report first")
        try:
            return io.BytesIO(self._report_path.read_bytes())
        except OSError as e:
            self._say(f"{self._report_path}: {e.strerror}", "danger")
            raise


def studio_app(folder: Path, first: str | None = None) -> pn.viewable.Viewable:
    """The app of one session (``serve`` calls this for every browser that connects)."""
    pn.extension("tabulator", "codeeditor")
    return Studio(folder, first).layout
