"""The widgets of a studio session and where they sit on the page.

``StudioLayout._build_widgets`` creates the toolbar, the Pipeline tab (parameters, add a
step, canvas, step editor), the Runs tab and the Report tab, and wires each widget to
the ``Studio`` method that handles it (defined in ``app``, ``edits`` and ``runs``);
``_say`` writes the one message line. ``parameter_widget``/``parameter_value`` are the
typed form fields of the parameters. It holds no pipeline logic.
"""

from __future__ import annotations

import ast
import html
from typing import Any

import panel as pn

from ..errors import PipelineError
from ..parameters import Parameter
from .canvas import PipelineCanvas

_MESSAGE_COLOURS = {
    "info": ("#e8f1fa", "#0b3d66"),
    "success": ("#e6f4ea", "#1e5631"),
    "warning": ("#fff4e0", "#6b4400"),
    "danger": ("#fde8e8", "#8a1111"),
}


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


class StudioLayout:
    """The widgets of one session (a base of ``app.Studio``)."""

    # -------------------------------------------------------------- widgets
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
        # What the session is waiting for (a slow plan), apart from the message line of the user's actions.
        self.waiting = pn.pane.HTML("", margin=(0, 10), sizing_mode="stretch_width", css_classes=["nbflow-waiting"])

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
        self.add_card = add_card = pn.Card(
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
            pn.Column(self.title, self.waiting, self.canvas, self.warnings, sizing_mode="stretch_width"),
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
        self.runs_table.on_click(lambda e: self._row_clicked(e.row))
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
        self.publish_button = w.Button(
            label="Publish", width=100, description="nbflow publish: a static site of the folder's runs"
        )
        self.publish_button.on_click(lambda e: self._publish())
        runs_tab = pn.Column(
            pn.Row(self.refresh_runs_button, self.report_button, self.publish_button),
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

    def _wait_note(self, text: str) -> None:
        """Say above the canvas what the session is waiting for ("" when nothing)."""
        colour = _MESSAGE_COLOURS["warning"]
        self.waiting.object = (
            f'<div style="padding:4px 10px;border-radius:3px;background:{colour[0]};color:{colour[1]};'
            f'font-size:13px">{html.escape(text)}</div>'
            if text
            else ""
        )

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
