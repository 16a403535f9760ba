"""What every view of a pipeline shows, computed once: states, colours, layout, graph data.

The widget, the studio, the REST API (and so the JupyterLab extension) and the report
all draw the same graph. They get it from ``graph_model``: nodes with their state and
why, edges with the values they carry, parameters, and positions. A view adds only its
own rendering; follow a run by feeding its events to ``GraphState.apply``.

States (one colour and one shape each, so they read in grey-scale too):

==============  ==============================================================
``stale``       will run: code, parameters or inputs changed (or never ran)
``fresh``       cached result valid for the current code and parameters
``queued``      part of the running run, waiting its turn
``running``     executing now
``done``        ran in this run
``cached``      restored from the cache in this run
``failed``      raised, timed out, or its kernel died
``skipped``     not run because something upstream failed (or not selected)
``cancelled``   the run was cancelled before or while it ran
``interrupted`` the process running it stopped
==============  ==============================================================

Pure: no I/O (the plan and statuses are passed in). Standard library only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .events import (
    CheckFailed,
    Event,
    ItemFinished,
    RunFinished,
    RunStarted,
    RunWarning,
    StepFinished,
    StepQueued,
    StepStarted,
)
from .hidden_state import edge_label, hidden_only

if TYPE_CHECKING:
    from .graph import Pipeline
    from .plan import Plan


@dataclass(frozen=True)
class StateStyle:
    colour: str
    shape: str  # a cytoscape.js node shape; Bokeh views map it to a marker
    label: str


STATES: dict[str, StateStyle] = {
    "stale": StateStyle("#f0ad4e", "round-rectangle", "stale: will run"),
    "fresh": StateStyle("#9ecae1", "round-rectangle", "fresh: cached"),
    "queued": StateStyle("#c6dbef", "round-hexagon", "queued"),
    "running": StateStyle("#3182bd", "round-hexagon", "running"),
    "done": StateStyle("#31a354", "round-rectangle", "done"),
    "cached": StateStyle("#74c476", "round-rectangle", "cached (restored)"),
    "failed": StateStyle("#de2d26", "octagon", "failed"),
    "skipped": StateStyle("#bdbdbd", "round-diamond", "skipped"),
    "cancelled": StateStyle("#636363", "round-diamond", "cancelled"),
    "interrupted": StateStyle("#756bb1", "round-diamond", "interrupted"),
}
#: Order of the legend.
LEGEND = tuple(STATES)

NODE_WIDTH = 160.0
NODE_GAP_X = 40.0
LAYER_GAP_Y = 90.0


#: A step's data checks (``check:STEP`` cells), in one mark: all passed, one failed, one warned.
CHECK_MARKS = {"passed": "✓", "failed": "✗", "warned": "⚠"}


def check_mark(states: Sequence[str], warned: bool = False) -> str | None:
    """The mark of a step whose checks are in ``states`` (``None`` without checks):
    ``failed``, ``warned``, ``passed`` or ``pending`` (not run yet, or running)."""
    if not states:
        return None
    if "failed" in states:
        return "failed"
    if warned:
        return "warned"
    if all(s in ("done", "cached", "fresh") for s in states):
        return "passed"
    return "pending"


def node_label(step: str, mark: str | None = None, summary: str = "") -> str:
    """A node's text: the step, its check mark and what it produced (``load ✓\ndf: 10 rows × 2 columns``)."""
    text = step + (f" {CHECK_MARKS[mark]}" if mark in CHECK_MARKS else "")
    return f"{text}\n{summary}" if summary else text


def state_of(entry_state: str, status: str | None = None) -> str:
    """A node's state from its plan state (``fresh``/``stale``) and run status if any."""
    if status in (None, "pending"):
        return entry_state
    return status


def layered_layout(pipeline: Pipeline) -> dict[str, dict[str, float]]:
    """Top-to-bottom positions: a step sits one layer below its lowest dependency.

    Positions saved by the studio (``metadata.nbflow.layout``) win.
    """
    steps = pipeline.step_names
    deps = {s: tuple(d for d in pipeline.deps[s] if d not in pipeline.checks) for s in steps}
    return layered_positions(steps, deps, pipeline.source.layout)


def layered_positions(
    order: Sequence[str],
    deps: Mapping[str, Sequence[str]],
    saved: Mapping[str, Any] | None = None,
) -> dict[str, dict[str, float]]:
    """``layered_layout`` for steps known only by name and dependencies (``order`` is
    topological; dependencies outside ``order`` are ignored), e.g. a recorded run whose
    notebook has changed since."""
    layer: dict[str, int] = {}
    for name in order:
        layer[name] = 1 + max((layer[d] for d in deps.get(name, ()) if d in layer), default=-1)
    by_layer: dict[int, list[str]] = {}
    for name in order:
        by_layer.setdefault(layer[name], []).append(name)
    widest = max((len(v) for v in by_layer.values()), default=1)
    positions: dict[str, dict[str, float]] = {}
    for depth, names in by_layer.items():
        offset = (widest - len(names)) * (NODE_WIDTH + NODE_GAP_X) / 2
        for i, name in enumerate(names):
            positions[name] = {"x": offset + i * (NODE_WIDTH + NODE_GAP_X), "y": depth * LAYER_GAP_Y}
    for name, pos in (saved or {}).items():
        if name in positions and isinstance(pos, Mapping) and {"x", "y"} <= set(pos):
            positions[name] = {"x": float(pos["x"]), "y": float(pos["y"])}
    return positions


def graph_model(
    pipeline: Pipeline,
    plan: Plan | None = None,
    statuses: Mapping[str, str] | None = None,
    warned: Iterable[str] = (),
    summaries: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The pipeline as nodes and edges for drawing.

    ``nodes``: ``{"id", "label", "state", "reasons", "key", "cell", "cell_id", "params",
    "docs", "x", "y", "summary", "check", "checks"}`` (``summary``: what the step's entry
    holds, or ``summaries``'; ``check``: its data checks' mark, ``check_mark``; ``checks``: each check's
    name, cell, state and whether it only warns; ``warned``: checks that warned; the
    label carries the mark and the summary); ``edges``: ``{"id", "source", "target", "names", "explicit", "state", "hidden"}``
    (``state``: the hidden state an edge passes, for its label; ``hidden``: it passes
    nothing else, draw it dotted);
    ``parameters``: ``{name: {"default", "type", "value", "readers"}}``; and ``legend``.
    """
    statuses = statuses or {}
    positions = layered_layout(pipeline)
    warned = set(warned)
    nodes = []

    def state(name: str) -> str:
        return state_of(plan[name].state if plan is not None else "stale", statuses.get(name))

    for name in pipeline.step_names:
        step = pipeline.steps[name]
        entry = plan[name] if plan is not None else None
        checks = pipeline.checks_of(name)
        mark = check_mark([state(c) for c in checks], warned=bool(warned & set(checks)))
        summary = (summaries or {}).get(name) or (entry.summary if entry is not None else "")
        nodes.append(
            {
                "id": name,
                "label": node_label(name, mark, summary),
                "summary": summary,
                "check": mark,
                "checks": [
                    {
                        "name": c,
                        "cell": pipeline.checks[c].cell.number,
                        "warn": pipeline.checks[c].warn,
                        "state": state(c),
                    }
                    for c in checks
                ],
                "state": state(name),
                "reasons": list(entry.reasons) if entry is not None else [],
                "key": entry.key if entry is not None else None,
                "cell": step.cell.number,
                "cell_id": step.cell.id,
                "params": list(step.params),
                "docs": step.docs,
                **positions[name],
            }
        )
    edges = [
        {
            "id": f"{a}->{b}",
            "source": a,
            "target": b,
            "names": list(names),
            "explicit": a in pipeline.steps[b].after,
            # hidden state passed (the random generator, the working folder...): drawn dotted
            "state": edge_label(names),
            "hidden": hidden_only(names),
        }
        for (a, b), names in pipeline.edge_names.items()
    ]
    values = dict(plan.params) if plan is not None else {}
    parameters = {
        name: {
            "default": p.default,
            "type": p.type_name,
            "value": values.get(name, p.default),
            "readers": [s for s in pipeline.step_names if name in pipeline.steps[s].params]
            + ([] if name not in pipeline.setup_params else ["<setup>"]),
        }
        for name, p in pipeline.parameters.items()
    }
    return {
        "notebook": str(pipeline.path),
        "title": pipeline.source.title,
        "nodes": nodes,
        "edges": edges,
        "parameters": parameters,
        "legend": [
            {"state": s, "colour": STATES[s].colour, "shape": STATES[s].shape, "label": STATES[s].label} for s in LEGEND
        ],
    }


class GraphState:
    """Node states that follow a run's events: subscribe ``apply`` to the bus.

    ``changed`` collects the nodes updated since the last ``take_changes`` so a view can
    send one batched update per burst of events instead of one per node.
    """

    def __init__(self, model: Mapping[str, Any]) -> None:
        self.states: dict[str, str] = {n["id"]: n["state"] for n in model["nodes"]}
        self.reasons: dict[str, list[str]] = {n["id"]: list(n["reasons"]) for n in model["nodes"]}
        self.details: dict[str, dict[str, Any]] = {}
        self.run_status: str | None = None
        self.changed: set[str] = set()
        #: ``map:`` steps: element index -> status, and the number of elements.
        self.items: dict[str, dict[int, str]] = {}
        self.totals: dict[str, int] = {}
        #: data checks: check -> the step it checks, its state; steps' marks and summaries
        self.check_of: dict[str, str] = {c["name"]: n["id"] for n in model["nodes"] for c in n.get("checks", ())}
        self.check_states: dict[str, str] = {c["name"]: c["state"] for n in model["nodes"] for c in n.get("checks", ())}
        self.warned: set[str] = set()
        self.marks: dict[str, str | None] = {n["id"]: n.get("check") for n in model["nodes"]}
        self.summaries: dict[str, str] = {n["id"]: n.get("summary") or "" for n in model["nodes"]}

    def item_summary(self, step: str) -> str:
        """``"12 items: 9 done, 2 cached, 1 failed"`` for a ``map:`` step ("" otherwise)."""
        if step not in self.totals:
            return ""
        counts: dict[str, int] = {}
        for status in self.items.get(step, {}).values():
            counts[status] = counts.get(status, 0) + 1
        pending = self.totals[step] - sum(counts.values())
        if pending:
            counts["pending"] = pending
        return f"{self.totals[step]} items: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))

    def item_labels(self) -> dict[str, str]:
        """Node labels of the ``map:`` steps seen in the run: the name, the element count
        and how many elements ended in each state (``"measure ×4\n3 done, 1 failed"``)."""
        labels = {}
        for step, total in self.totals.items():
            counts: dict[str, int] = {}
            for status in self.items.get(step, {}).values():
                counts[status] = counts.get(status, 0) + 1
            labels[step] = f"{step} ×{total}\n" + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        return labels

    def labels(self) -> dict[str, str]:
        """Node labels that differ from the plain step name: a ``map:`` step's element
        counts (``item_labels``), a step's check mark and what it produced (``node_label``)."""
        labels = {
            s: node_label(s, self.marks.get(s), self.summaries.get(s, ""))
            for s in self.states
            if self.marks.get(s) or self.summaries.get(s)
        }
        labels.update(self.item_labels())
        return labels

    def _check_event(self, check: str, state: str | None = None) -> None:
        if state is not None:
            self.check_states[check] = state
        else:
            self.warned.add(check)
        step = self.check_of[check]
        checks = [c for c, s in self.check_of.items() if s == step]
        self.marks[step] = check_mark([self.check_states[c] for c in checks], bool(self.warned & set(checks)))
        self.changed.add(step)

    def apply(self, event: Event) -> None:
        if isinstance(event, RunWarning) and event.step in self.check_of:
            self._check_event(event.step)
        elif isinstance(event, (StepQueued, StepStarted, StepFinished)) and event.step in self.check_of:
            state = event.status if isinstance(event, StepFinished) else "running"
            self._check_event(event.step, state)
            if isinstance(event, StepFinished):
                self.details[event.step] = {"status": event.status, "error": event.error}
        elif isinstance(event, RunStarted):
            self.run_status = "running"
        elif isinstance(event, StepQueued):
            self._set(event.step, "queued", list(event.reasons))
        elif isinstance(event, StepStarted):
            self._set(event.step, "running")
        elif isinstance(event, StepFinished):
            self._set(event.step, event.status, list(event.reasons) or None)
            self.details[event.step] = {
                "status": event.status,
                "duration": event.duration,
                "error": event.error,
                "traceback": event.traceback,
                "items": self.item_summary(event.step),
            }
        elif isinstance(event, CheckFailed):  # a check failed on the step's values: the step failed
            self._set(event.step, "failed")
            self.details.setdefault(event.step, {}).update(status="failed", error=event.error)
        elif isinstance(event, ItemFinished):
            items = self.items.setdefault(event.step, {})
            items[event.item] = event.status
            self.totals[event.step] = event.total
            self.changed.add(event.step)
        elif isinstance(event, RunFinished):
            self.run_status = event.status
            # What the run store records at the end (store.py): a step the run left queued
            # or running did not finish, whatever the executor said or did not say about it.
            unfinished = "cancelled" if event.status == "cancelled" else "interrupted"
            for step, state in self.states.items():
                if state in ("queued", "running"):
                    self._set(step, unfinished)

    def _set(self, step: str, state: str, reasons: list[str] | None = None) -> None:
        if step not in self.states:
            return
        self.states[step] = state
        if reasons is not None:
            self.reasons[step] = reasons
        self.changed.add(step)

    def take_changes(self) -> dict[str, str]:
        """The states changed since the last call."""
        changed = {s: self.states[s] for s in sorted(self.changed)}
        self.changed.clear()
        return changed


def cytoscape_style(
    states: Mapping[str, str] | None = None, labels: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """A cytoscape.js stylesheet: one colour and shape per state, parameters as small ellipses.

    Nodes carry their state in ``data.state``, so the stylesheet is the same for every
    graph (the JupyterLab side panel uses it as served by the REST API). ``states``
    adds one rule per step (``node[id = "step"]``): a view whose node data cannot be
    updated in bulk (ipycytoscape keeps one widget per node) recolours a whole burst of
    nodes by sending only a new stylesheet. ``labels`` replaces steps' labels the same
    way (a ``map:`` step's element counts, from ``GraphState.item_labels``).
    """
    style: list[dict[str, Any]] = [
        {
            "selector": "node",
            "style": {
                "label": "data(label)",
                "text-wrap": "wrap",
                "text-valign": "center",
                "text-halign": "center",
                "font-size": 13,
                "width": 120,
                "height": 36,
                "border-width": 1,
                "border-color": "#555",
                "color": "#111",
            },
        },
        {
            "selector": "node.parameter",
            "style": {
                "shape": "ellipse",
                "width": "label",
                "height": 18,
                "padding": 4,
                "font-size": 10,
                "background-color": "#f7f7f7",
                "border-style": "dashed",
                "color": "#444",
            },
        },
        {
            "selector": "edge",
            "style": {
                "curve-style": "bezier",
                "target-arrow-shape": "triangle",
                "width": 2,
                "line-color": "#999",
                "target-arrow-color": "#999",
            },
        },
        {"selector": "edge.explicit", "style": {"line-style": "dashed"}},
        {"selector": "edge.parameter", "style": {"line-style": "dotted", "width": 1, "target-arrow-shape": "none"}},
        {"selector": "node:selected", "style": {"border-width": 4, "border-color": "#000"}},
    ]
    for name, s in STATES.items():
        style.append({"selector": f'node[state = "{name}"]', "style": _state_style(name, s)})
    for step, state in (states or {}).items():
        s = STATES.get(state)
        if s is not None:
            selector = 'node[id = "' + step.replace("\\", "\\\\").replace('"', '\\"') + '"]'
            style.append({"selector": selector, "style": _state_style(state, s)})
    for step, label in (labels or {}).items():
        selector = 'node[id = "' + step.replace("\\", "\\\\").replace('"', '\\"') + '"]'
        style.append({"selector": selector, "style": {"label": label, "text-wrap": "wrap", "height": 48}})
    return style


def _state_style(name: str, s: StateStyle) -> dict[str, Any]:
    style: dict[str, Any] = {"background-color": s.colour, "shape": s.shape}
    if name == "running":
        # No animation in a static stylesheet: a thick dashed border marks the running step.
        style.update({"border-width": 4, "border-style": "dashed", "border-color": "#08306b", "color": "#fff"})
    elif name in ("failed", "cancelled", "done"):
        style["color"] = "#fff"
    return style
