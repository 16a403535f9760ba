"""``PipelineWidget``: the pipeline as a live ipycytoscape graph inside the user's kernel.

``nbflow.show("pipeline.ipynb")`` (or ``Pipeline.widget()``) draws the steps top to
bottom (dagre), parameters as small nodes on the steps that read them, one colour and
shape per state (``view.STATES``) and a legend. Clicking a step shows its docs, code,
why it is stale, its last status and its cached outputs; the buttons run the pipeline,
only the selected step, or from it, invalidate it, cancel, and refresh.

Live updates: ``widget.run()`` calls ``run.start_run`` (a background thread of the
kernel), which subscribes the widget to the run's bus (``follow``). Events are applied
to a ``view.GraphState`` and flushed at most every ``interval`` seconds as **one**
message: ipycytoscape keeps one widget per node, so recolouring N nodes through their
data would send N messages; the widget instead sends one new stylesheet with a rule per
changed step (``view.cytoscape_style(states)``). ``benchmarks/bench_widget.py``
counts the messages.

Why ipycytoscape 1.3.3 with ipywidgets 8: its labextension asks for
``@jupyter-widgets/base`` <= 4 as a shared singleton; JupyterLab 4 logs "Unsatisfied
version 6.0.x" and uses version 6, and the widget renders, restyles and reports
clicks (checked in headless Chromium: ``tests/e2e/test_widget.py``).

This module draws and forwards clicks; planning, running and invalidating are the core
API's (``run``), and states, colours and layout are ``view``'s.
"""

from __future__ import annotations

import ast
import html
import math
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ipycytoscape
import ipywidgets as w
from traitlets import TraitError

from .errors import NbflowError
from .events import Event, RunFinished
from .view import STATES, GraphState, cytoscape_style, graph_model

if TYPE_CHECKING:
    from .events import EventBus
    from .graph import Pipeline
    from .run import Run

PARAM_PREFIX = "param:"


def show(notebook: str | Path, **options: Any) -> Any:
    """A ``PipelineWidget`` of the notebook at ``notebook`` (display it as a cell's result);
    for a folder or an ``nbflow.toml``, a ``project_widget.ProjectWidget`` of the pipeline of notebooks."""
    from .graph import load_pipeline
    from .project import is_project

    if is_project(notebook):
        from .project_widget import ProjectWidget

        return ProjectWidget(notebook, **options)

    return PipelineWidget(load_pipeline(notebook), **options)


class PipelineWidget(w.HBox):
    """The live graph of a pipeline with a details panel, run buttons and a parameters form."""

    def __init__(self, pipeline: Pipeline, params: dict[str, Any] | None = None, interval: float = 0.1) -> None:
        self.pipeline = pipeline
        self.interval = interval
        self.selected: str | None = None
        self.last_run: Run | None = None
        self._lock = threading.RLock()
        self._flush_timer: threading.Timer | None = None
        self.messages = 0  # graph updates sent (the benchmark reads it)

        self.graph = ipycytoscape.CytoscapeWidget(layout=w.Layout(height="400px", width="100%"))
        self.graph.set_layout(name="dagre", rankDir="TB", nodeSep=30, rankSep=50, animate=False)
        self.graph.on("node", "click", self._on_click)
        self.params_form = _ParametersForm(pipeline, params or {})
        self.status = w.HTML()
        self.legend = w.HTML(_legend_html())
        self.buttons = {
            "run": w.Button(description="Run pipeline", icon="play", button_style="primary"),
            "only": w.Button(description="Run only this", icon="step-forward", disabled=True),
            "from": w.Button(description="Run from this", icon="forward", disabled=True),
            "invalidate": w.Button(description="Invalidate", icon="eraser", disabled=True),
            "cancel": w.Button(description="Cancel", icon="stop", disabled=True),
            "refresh": w.Button(description="Refresh", icon="refresh"),
        }
        self.buttons["run"].on_click(lambda _: self._act(self.run))
        self.buttons["only"].on_click(lambda _: self._act(lambda: self.run(only=[self.selected])))
        self.buttons["from"].on_click(lambda _: self._act(lambda: self.run(from_=[self.selected])))
        self.buttons["invalidate"].on_click(lambda _: self._act(self._invalidate_selected))
        self.buttons["cancel"].on_click(lambda _: self._act(self.cancel))
        self.buttons["refresh"].on_click(lambda _: self._act(self.refresh))
        self.details = _Details()

        left = w.VBox(
            [
                w.HBox(list(self.buttons.values()), layout=w.Layout(flex_flow="row wrap")),
                self.params_form,
                self.graph,
                self.legend,
                self.status,
            ],
            layout=w.Layout(width="62%"),
        )
        super().__init__([left, self.details], layout=w.Layout(width="100%"))
        self.add_class("nbflow-widget")
        self.refresh()

    # ---------------------------------------------------------------- reading
    def refresh(self) -> None:
        """Re-read the notebook and the cache: picks up edits and shows what became stale."""
        from .graph import load_pipeline
        from .project_context import in_project

        with self._lock:
            self.pipeline = in_project(load_pipeline(self.pipeline.path, self.pipeline.config))
            self.params_form.update_pipeline(self.pipeline)
            try:
                from .run import plan_pipeline

                self.plan = plan_pipeline(self.pipeline, self.params_form.values(), raw=self.params_form.raw())
            except NbflowError as e:
                self.plan = None
                self._say(str(e), error=True)
            self.model = graph_model(self.pipeline, self.plan)
            self.state = GraphState(self.model)
            self._draw()
        if self.selected is not None:
            self.select(self.selected if self.selected in self.pipeline.steps else None)
        if self.plan is not None:
            stale = [e.step for e in self.plan if e.state == "stale"]
            self._say(
                f"{len(self.pipeline.step_names)} steps; {len(stale)} stale"
                + (f": {', '.join(stale)}" if stale else "")
            )

    def _draw(self) -> None:
        nodes, edges = [], []
        for n in self.model["nodes"]:
            nodes.append(ipycytoscape.Node(data={"id": n["id"], "label": n["label"], "state": n["state"]}))
        for e in self.model["edges"]:
            edges.append(
                ipycytoscape.Edge(
                    data={"id": e["id"], "source": e["source"], "target": e["target"]},
                    classes="explicit" if e["explicit"] else "",
                )
            )
        for name, p in self.model["parameters"].items():
            readers = [r for r in p["readers"] if r in self.pipeline.steps]
            if not readers:
                continue
            pid = PARAM_PREFIX + name
            nodes.append(ipycytoscape.Node(data={"id": pid, "label": f"{name}={p['value']!r}"}, classes="parameter"))
            edges.extend(
                ipycytoscape.Edge(data={"id": f"{pid}->{r}", "source": pid, "target": r}, classes="parameter")
                for r in readers
            )
        self.graph.graph.clear()
        self.graph.set_style(cytoscape_style())
        self.graph.graph.add_nodes(nodes)
        self.graph.graph.add_edges(edges, directed=True)

    # ---------------------------------------------------------------- live
    def follow(self, bus: EventBus) -> None:
        """Follow a run: ``run.start_run(..., widget=self)`` calls this."""
        bus.subscribe(self._on_event)

    def _on_event(self, event: Event) -> None:
        with self._lock:
            self.state.apply(event)
            if isinstance(event, RunFinished):
                if self._flush_timer is not None:
                    self._flush_timer.cancel()
                    self._flush_timer = None
                self._flush()
                self._finished(event)
            elif self._flush_timer is None:
                # Events come in bursts (every cached step at once, queued steps at once):
                # wait a moment and send the whole burst as one stylesheet.
                self._flush_timer = threading.Timer(self.interval, self._flush)
                self._flush_timer.daemon = True
                self._flush_timer.start()

    def _flush(self) -> None:
        with self._lock:
            self._flush_timer = None
            if not self.state.take_changes():
                return
            self.graph.set_style(cytoscape_style(self.state.states, self.state.labels()))
            self.messages += 1
            counts: dict[str, int] = {}
            for s in self.state.states.values():
                counts[s] = counts.get(s, 0) + 1
            self._say(
                f"run {self.last_run.id if self.last_run else ''}: "
                + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
            )
        if self.selected is not None and self.selected in self.state.details:
            self.details.show_status(self.state.details[self.selected])

    def _finished(self, event: RunFinished) -> None:
        self.buttons["cancel"].disabled = True
        message = f"run {event.run_id} {event.status} in {event.duration:.1f} s" + (
            f": {event.error}" if event.error else ""
        )
        final = dict(self.state.states)
        details = dict(self.state.details)
        # Re-read after the run so the graph shows what is fresh now; keep this run's
        # outcome on the nodes until the next refresh.
        threading.Thread(target=self._after_run, args=(message, final, details, event), daemon=True).start()

    def _after_run(self, message: str, final: dict[str, str], details: dict[str, Any], event: RunFinished) -> None:
        with self._lock:
            items, totals = self.state.items, self.state.totals
            self.refresh()
            self.state.states.update({k: v for k, v in final.items() if k in self.state.states})
            self.state.details.update(details)
            self.state.items.update({k: v for k, v in items.items() if k in self.state.states})
            self.state.totals.update({k: v for k, v in totals.items() if k in self.state.states})
            self.graph.set_style(cytoscape_style(self.state.states, self.state.labels()))
            self.messages += 1
        self._say(message, error=event.status != "done")
        if self.selected is not None:
            self.select(self.selected)

    # ---------------------------------------------------------------- actions
    def run(self, params: dict[str, Any] | None = None, **options: Any) -> Run:
        """Start a run in a background thread of this kernel and follow it; returns the ``Run``."""
        from .run import start_run

        if self.last_run is not None and not self.last_run.done:
            raise NbflowError(f"run {self.last_run.id} is still going; cancel it first")
        if params is not None:
            # The form shows what this run uses (and the plans after it are made for it).
            self.params_form.show(params)
        self.refresh()
        values = self.params_form.values() if params is None else params
        raw = self.params_form.raw() if params is None else None
        run = start_run(self.pipeline, values, raw=raw, widget=self, **options)
        self.last_run = run
        self.buttons["cancel"].disabled = False
        return run

    def cancel(self) -> None:
        if self.last_run is not None and not self.last_run.done:
            self.last_run.cancel()
            self._say(f"cancelling run {self.last_run.id}...")

    def _invalidate_selected(self) -> None:
        if self.selected is None:
            return
        from .run import invalidate

        forgotten = invalidate(self.pipeline, [self.selected], self.params_form.values())
        self.refresh()
        self._say(f"invalidated {self.selected}" if forgotten else f"{self.selected} had no cached result")

    def _act(self, action: Any) -> None:
        try:
            action()
        except NbflowError as e:
            self._say(str(e), error=True)

    def _say(self, text: str, error: bool = False) -> None:
        colour = STATES["failed"].colour if error else "#333"
        self.status.value = f'<span class="nbflow-status" style="color:{colour}">{html.escape(text)}</span>'

    # ---------------------------------------------------------------- selection
    def _on_click(self, node: dict[str, Any]) -> None:
        name = node.get("data", {}).get("id")
        if name in self.pipeline.steps:
            self.select(name)

    def select(self, name: str | None) -> None:
        """Show the details of step ``name`` beside the graph (``None`` clears them)."""
        self.selected = name
        for key in ("only", "from", "invalidate"):
            self.buttons[key].disabled = name is None
        if name is None:
            self.details.clear()
            return
        node = next(n for n in self.model["nodes"] if n["id"] == name)
        step = self.pipeline.steps[name]
        self.details.show_step(
            name,
            state=self.state.states.get(name, node["state"]),
            docs=step.docs,
            code=step.source,
            reasons=self.state.reasons.get(name, node["reasons"]),
            params=node["params"],
        )
        self.details.show_status(self.state.details.get(name) or _last_status(self.pipeline, name))
        self.details.show_outputs(*_cached_outputs(self.pipeline, self.plan, name))


def _legend_html() -> str:
    items = "".join(
        f'<span style="display:inline-flex;align-items:center;margin:0 10px 2px 0">'
        f'<span style="width:14px;height:14px;background:{s.colour};border:1px solid #555;'
        f'border-radius:{"50%" if "diamond" in s.shape or "hexagon" in s.shape else "3px"};margin-right:4px"></span>'
        f"{html.escape(s.label)}</span>"
        for s in STATES.values()
    )
    return f'<div class="nbflow-legend" style="font-size:12px;display:flex;flex-wrap:wrap">{items}</div>'


def _last_status(pipeline: Pipeline, name: str) -> dict[str, Any] | None:
    """The step's outcome in the newest recorded run where it did something."""

    if not pipeline.config.store_path.exists():
        return None
    store = pipeline.config.open_store()
    try:
        for run in store.runs(pipeline.path, limit=20):
            for s in store.steps(run["id"]):
                if s["step"] == name and s["status"] not in ("pending",):
                    return {**s, "run": run["id"]}
    finally:
        store.close()
    return None


def _cached_outputs(pipeline: Pipeline, plan: Any, name: str) -> tuple[list[list[dict[str, Any]]], str]:
    """The step's captured outputs: of the current key when fresh, else of its newest entry."""
    from .run import pipeline_cache

    cache = pipeline_cache(pipeline)
    entry = None
    note = ""
    if plan is not None:
        try:
            entry = cache.lookup(name, plan[name].key)
        except NbflowError:
            entry = None
    if entry is None:
        entry = cache.latest(name)
        note = "outputs of an older version of this step" if entry is not None else "no cached outputs"
    if entry is None:
        return [], note
    try:
        return cache.load_outputs(entry), note
    except (OSError, NbflowError) as e:
        return [], f"outputs unreadable: {e}"


class _ParametersForm(w.VBox):
    """Typed inputs built from the parameters cell; ``values()``/``raw()`` feed a run."""

    def __init__(self, pipeline: Pipeline, initial: dict[str, Any]) -> None:
        super().__init__(layout=w.Layout(flex_flow="row wrap"))
        self.add_class("nbflow-parameters")
        self.inputs: dict[str, w.Widget] = {}
        self.initial = dict(initial)
        self.update_pipeline(pipeline)

    def update_pipeline(self, pipeline: Pipeline) -> None:
        current = {name: self._value(name) for name in self.inputs}
        inputs = {}
        for name, p in pipeline.parameters.items():
            value = current.get(name, self.initial.get(name, p.default))
            old = self.inputs.get(name)
            if old is not None and getattr(old, "_nbflow_type", None) == p.type_name:
                inputs[name] = old
                continue
            inputs[name] = _input_for(name, p.type_name, value)
        self.inputs = inputs
        self.children = list(inputs.values())

    def show(self, values: Mapping[str, Any]) -> None:
        """Put ``values`` in the inputs (a run started from code, ``w.run({"n": 5})``).

        A value an input cannot hold (a non-finite float, a string in a number field)
        leaves that input as it was; the run still uses the value given.
        """
        for name, value in values.items():
            self.initial[name] = value
            widget = self.inputs.get(name)
            if widget is None:
                continue
            kind = getattr(widget, "_nbflow_type", None)
            try:
                if kind == "float" and isinstance(value, (int, float)) and math.isfinite(value):
                    widget.value = float(value)
                elif kind == "int" and isinstance(value, int) and not isinstance(value, bool):
                    widget.value = value
                elif kind in ("bool", "str") and isinstance(value, {"bool": bool, "str": str}[kind]):
                    widget.value = value
                elif kind not in ("int", "float", "bool", "str"):
                    widget.value = repr(value)
            except (TraitError, ValueError, TypeError):
                continue

    def _value(self, name: str) -> Any:
        widget = self.inputs[name]
        if getattr(widget, "_nbflow_type", None) in ("int", "float", "bool", "str"):
            return widget.value
        try:
            return ast.literal_eval(widget.value)
        except (ValueError, SyntaxError):
            return widget.value

    def values(self) -> dict[str, Any]:
        return {
            n: i.value
            for n, i in self.inputs.items()
            if getattr(i, "_nbflow_type", None) in ("int", "float", "bool", "str")
        }

    def raw(self) -> dict[str, str]:
        """Other types as typed (parsed like ``-p`` values and checked by the core)."""
        return {
            n: i.value
            for n, i in self.inputs.items()
            if getattr(i, "_nbflow_type", None) not in ("int", "float", "bool", "str")
        }


def _input_for(name: str, type_name: str, value: Any) -> w.Widget:
    style = {"description_width": "initial"}
    layout = w.Layout(width="auto", margin="2px 12px 2px 0")
    if type_name == "bool":
        widget: w.Widget = w.Checkbox(value=bool(value), description=name, style=style, layout=layout, indent=False)
    elif type_name == "int":
        widget = w.IntText(value=int(value), description=name, style=style, layout=w.Layout(width="160px"))
    elif type_name == "float":
        widget = w.FloatText(value=float(value), description=name, style=style, layout=w.Layout(width="160px"))
    elif type_name == "str":
        widget = w.Text(value=str(value), description=name, style=style, layout=w.Layout(width="220px"))
    else:
        widget = w.Text(value=repr(value), description=name, style=style, layout=w.Layout(width="220px"))
    widget._nbflow_type = type_name
    widget.add_class(f"nbflow-param-{name}")
    return widget


class _Details(w.VBox):
    """The selected step: docs, highlighted code, why stale, last status, cached outputs."""

    def __init__(self) -> None:
        self.header = w.HTML()
        self.code = w.HTML()
        self.status = w.HTML()
        self.outputs_note = w.HTML()
        self.outputs = w.Output(layout=w.Layout(max_height="420px", overflow="auto"))
        super().__init__(
            [self.header, self.status, self.code, self.outputs_note, self.outputs],
            layout=w.Layout(width="38%", padding="0 0 0 12px"),
        )
        self.add_class("nbflow-details")
        self.clear()

    def clear(self) -> None:
        self.header.value = "<p><i>Click a step to see its code, state and outputs.</i></p>"
        self.code.value = self.status.value = self.outputs_note.value = ""
        self.outputs.outputs = ()

    def show_step(self, name: str, *, state: str, docs: str, code: str, reasons: list[str], params: list[str]) -> None:
        colour = STATES.get(state, STATES["stale"]).colour
        why = "".join(f"<li>{html.escape(r)}</li>" for r in reasons)
        self.header.value = (
            f'<h3 class="nbflow-step-name" style="margin:4px 0">{html.escape(name)} '
            f'<span style="background:{colour};padding:1px 6px;border-radius:3px;font-size:12px">{html.escape(state)}</span></h3>'
            + (f'<div class="nbflow-docs">{_markdown(docs)}</div>' if docs else "")
            + (f"<div>parameters: {html.escape(', '.join(params))}</div>" if params else "")
            + (f'<div class="nbflow-why">why stale:<ul style="margin:2px 0">{why}</ul></div>' if why else "")
        )
        self.code.value = _highlight(code)

    def show_status(self, status: dict[str, Any] | None) -> None:
        if not status:
            self.status.value = "<div>not run yet</div>"
            return
        duration = status.get("duration")
        text = f"last status: <b>{html.escape(str(status.get('status')))}</b>"
        if duration is not None:
            text += f" in {float(duration):.2f} s"
        if status.get("run"):
            text += f" (run {status['run']})"
        if status.get("items"):
            text += f'<div class="nbflow-items">{html.escape(status["items"])}</div>'
        error = status.get("error") or ""
        if error:
            text += f'<pre style="color:{STATES["failed"].colour};white-space:pre-wrap">{html.escape(error)}</pre>'
        self.status.value = f'<div class="nbflow-last-status">{text}</div>'

    def show_outputs(self, cells: list[list[dict[str, Any]]], note: str) -> None:
        # Set the Output widget's outputs directly: ``with output:`` captures only on the
        # kernel's main thread, and runs report from a background thread.
        self.outputs_note.value = f"<div><i>{html.escape(note)}</i></div>" if note else ""
        outputs = []
        for cell in cells:
            for out in cell:
                out = dict(out)
                if isinstance(out.get("text"), list):
                    out["text"] = "".join(out["text"])
                outputs.append(out)
        self.outputs.outputs = tuple(outputs)


def _markdown(text: str) -> str:
    from markdown_it import MarkdownIt  # installed with rich; raw HTML in docs stays text

    return MarkdownIt("commonmark", {"html": False}).render(text)


def _highlight(code: str) -> str:
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import PythonLexer

    formatter = HtmlFormatter(noclasses=True, style="default")
    return f'<div class="nbflow-code" style="font-size:12px;overflow:auto;max-height:260px">{highlight(code, PythonLexer(), formatter)}</div>'
