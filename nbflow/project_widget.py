"""``ProjectWidget``: a pipeline of notebooks as a live ipycytoscape graph in the user's kernel.

``nbflow.show("folder/")`` (or an ``nbflow.toml``) draws each notebook as a group
(a cytoscape.js compound node) holding its steps, the links between notebooks as thick
edges, one colour and shape per state (``view.STATES``). **Run** runs the pipeline
(``project_run.run_project``) in a background thread of the kernel; each notebook's run
events recolour its steps, sent as one stylesheet per burst as ``PipelineWidget`` does.

This module draws and forwards; linking, planning and running are ``project`` and
``project_run``'s, the model ``project_view``'s.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import ipycytoscape
import ipywidgets as w

from .errors import NbflowError
from .events import Event, RunFinished
from .project_view import project_graph_model
from .view import GraphState, cytoscape_style, graph_model


class ProjectWidget(w.VBox):
    """The live graph of a pipeline of notebooks, with Run, Cancel and Refresh buttons."""

    def __init__(self, path: str | Path, params: dict[str, Any] | None = None, interval: float = 0.1) -> None:
        self.path = Path(path)
        self.params = dict(params or {})
        self.interval = interval
        self.result: Any = None
        self.messages = 0
        self._lock = threading.RLock()
        self._timer: threading.Timer | None = None
        self._thread: threading.Thread | None = None
        self.states: dict[str, GraphState] = {}
        self.graph = ipycytoscape.CytoscapeWidget(layout=w.Layout(height="500px", width="100%"))
        self.graph.set_layout(name="dagre", rankDir="TB", nodeSep=30, rankSep=50, animate=False)
        self.status = w.HTML()
        self.buttons = {
            "run": w.Button(description="Run pipeline", icon="play", button_style="primary"),
            "cancel": w.Button(description="Cancel", icon="stop", disabled=True),
            "refresh": w.Button(description="Refresh", icon="refresh"),
        }
        self.buttons["run"].on_click(lambda _: self._act(self.run))
        self.buttons["cancel"].on_click(lambda _: self._act(self.cancel))
        self.buttons["refresh"].on_click(lambda _: self._act(self.refresh))
        super().__init__([w.HBox(list(self.buttons.values())), self.graph, self.status])
        self.add_class("nbflow-project-widget")
        self.refresh()

    def refresh(self) -> None:
        """Re-read the notebooks and the cache: shows what is stale now."""
        from .project import load_project, plan_project

        with self._lock:
            self.project = load_project(self.path)
            self.plans = plan_project(self.project, self.params)
            self.model = project_graph_model(self.project, self.plans)
            self.states = {
                name: GraphState(graph_model(self.project.pipelines[name], self.plans[name]))
                for name in self.project.order
            }
            self._draw()
        stale = sum(len(p.stale) for p in self.plans.values())
        total = sum(len(p.entries) for p in self.plans.values())
        self._say(f"{len(self.project.order)} notebooks, {total} steps; {stale} stale")

    def _draw(self) -> None:
        nodes = [
            ipycytoscape.Node(data={"id": g["id"], "label": g["label"]}, classes="notebook")
            for g in self.model["groups"]
        ]
        nodes += [
            ipycytoscape.Node(data={"id": n["id"], "label": n["label"], "state": n["state"], "parent": n["parent"]})
            for n in self.model["nodes"]
        ]
        edges = [
            ipycytoscape.Edge(
                data={"id": e["id"], "source": e["source"], "target": e["target"]},
                classes="link" if e["link"] else ("explicit" if e["explicit"] else ""),
            )
            for e in self.model["edges"]
        ]
        self.graph.graph.clear()
        self.graph.set_style(self.stylesheet())
        self.graph.graph.add_nodes(nodes)
        self.graph.graph.add_edges(edges, directed=True)

    def stylesheet(self) -> list[dict[str, Any]]:
        """``view.cytoscape_style`` with a rule per step whose state a run changed, and the groups' rules."""
        from .project_view import group_style

        states = {f"{nb}:{step}": s for nb, g in self.states.items() for step, s in g.states.items()}
        return cytoscape_style(states) + group_style()

    # ---------------------------------------------------------------- running
    def run(self, params: dict[str, Any] | None = None, **options: Any) -> Any:
        """Run the pipeline in a background thread of this kernel; returns the thread."""
        from .project_run import ProjectRun, run_project

        if self._thread is not None and self._thread.is_alive():
            raise NbflowError("the pipeline is still running; cancel it first")
        if params is not None:
            self.params = dict(params)
        self.refresh()
        self.result = ProjectRun(self.project)

        def listeners(name: str) -> list[Any]:
            return [lambda event, name=name: self._on_event(name, event)]

        def work() -> None:
            try:
                run_project(self.project, self.params, handle=self.result, listeners=listeners, **options)
            except NbflowError as e:
                self._say(str(e), error=True)
            self.buttons["cancel"].disabled = True
            finished = self.result
            with self._lock:
                kept = {name: dict(state.states) for name, state in self.states.items()}
                self.refresh()
                for name, states in kept.items():
                    if name in self.states:
                        self.states[name].states.update(states)
                self.graph.set_style(self.stylesheet())
                self.messages += 1
            counts = ", ".join(f"{name} {run.status}" for name, run in finished.runs.items())
            skipped = "".join(f"; {name} not run: {why}" for name, why in finished.skipped.items())
            self._say(f"pipeline {finished.status} in {finished.duration:.1f} s: {counts}{skipped}")

        self.buttons["cancel"].disabled = False
        self._thread = threading.Thread(target=work, name="nbflow-project-widget", daemon=True)
        self._thread.start()
        return self._thread

    def wait(self, timeout: float | None = None) -> None:
        """Block until the run started by ``run`` has ended (and the graph shows it)."""
        if self._thread is not None:
            self._thread.join(timeout)

    def cancel(self) -> None:
        if self.result is not None:
            self.result.cancel()

    def _on_event(self, notebook: str, event: Event) -> None:
        with self._lock:
            if notebook in self.states:
                self.states[notebook].apply(event)
            if isinstance(event, RunFinished):
                self._flush()
            elif self._timer is None:
                self._timer = threading.Timer(self.interval, self._flush)
                self._timer.daemon = True
                self._timer.start()

    def _flush(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = None
            changed = [g.take_changes() for g in self.states.values()]
            if any(changed):
                self.graph.set_style(self.stylesheet())
                self.messages += 1

    def _act(self, action: Any) -> None:
        try:
            action()
        except NbflowError as e:
            self._say(str(e), error=True)

    def _say(self, text: str, error: bool = False) -> None:
        import html

        colour = "#b00" if error else "#333"
        self.status.value = f"<span style='color:{colour}'>{html.escape(text)}</span>"
