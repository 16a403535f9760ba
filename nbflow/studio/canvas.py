"""The studio's canvas: the pipeline graph as a Panel component on cytoscape.js.

``PipelineCanvas`` is a ``panel.custom.JSComponent`` whose JavaScript is the bundle
built from ``extension/canvas/`` (cytoscape.js and cytoscape-edgehandles from
the npm registry, bundled with esbuild when nbflow is installed; see ``hatch_build.py``).
The Panel server serves that file itself: nothing is fetched from a CDN, so the studio
works offline.

The canvas only draws and reports gestures: a dropped node (``on_move``) and a drawn
edge (``on_connect``). What they mean for the notebook is decided by the app
(``studio/app.py``) through the editing model (``studio/editing.py``). It must not
read or write notebooks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import param
from panel.custom import JSComponent

STATIC = Path(__file__).resolve().parent / "static"
BUNDLE = STATIC / "canvas.bundle.js"


class CanvasNotBuilt(RuntimeError):
    """The JavaScript bundle of the canvas is missing (node/npm were absent at install)."""


def check_bundle() -> Path:
    """The bundle's path; ``CanvasNotBuilt`` with what to do when it is missing."""
    if not BUNDLE.is_file():
        raise CanvasNotBuilt(
            f"the studio's canvas is not built ({BUNDLE} is missing). It is bundled from the npm "
            "registry when nbflow is installed, which needs node and npm: install them "
            "(Debian: apt-get install nodejs npm) and reinstall nbflow (pip install -e .), or build "
            "it by hand: npm --prefix extension/canvas ci && npm --prefix extension/canvas run build"
        )
    return BUNDLE


class PipelineCanvas(JSComponent):
    """The pipeline as a graph: drag nodes, draw edges, select a step or an edge."""

    graph = param.Dict(default={"nodes": [], "edges": [], "legend": []}, doc="nodes, edges and legend to draw")
    states = param.Dict(default={}, doc="live states during a run, {step: state}")
    labels = param.Dict(default={}, doc="node labels changed since the graph was sent (check marks, summaries)")
    selected = param.String(default="", doc="the selected step")
    selected_edge = param.String(default="", doc='the selected edge, "source->target"')
    mode = param.Selector(default="move", objects=["move", "connect"], doc="what dragging from a node does")

    _bundle = BUNDLE

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._move_handlers: list[Callable[[dict[str, dict[str, float]]], None]] = []
        self._connect_handlers: list[Callable[[str, str], None]] = []

    def on_move(self, handler: Callable[[dict[str, dict[str, float]]], None]) -> None:
        """Call ``handler({step: {"x", "y"}})`` when nodes are dropped somewhere new."""
        self._move_handlers.append(handler)

    def on_connect(self, handler: Callable[[str, str], None]) -> None:
        """Call ``handler(source, target)`` when an edge is drawn from source to target."""
        self._connect_handlers.append(handler)

    def show_graph(self, model: Mapping[str, Any]) -> None:
        """Draw ``model`` (from ``view.graph_model``, or ``project_view.project_graph_model``:
        its groups are drawn around their steps; ``readonly`` freezes the nodes); the run
        states are reset."""
        self.param.update(
            graph={
                "nodes": [_node(n) for n in model["nodes"]],
                "edges": [dict(e) for e in model["edges"]],
                "legend": list(model["legend"]),
                "groups": [{k: g[k] for k in ("id", "label") if k in g} for g in model.get("groups", [])],
                "readonly": bool(model.get("readonly", False)),
            },
            states={},
            labels={},
        )

    def _handle_msg(self, data: Any) -> None:
        if not isinstance(data, dict):
            return
        if data.get("type") == "moved" and isinstance(data.get("positions"), dict):
            positions = {
                str(name): {"x": float(pos["x"]), "y": float(pos["y"])}
                for name, pos in data["positions"].items()
                if isinstance(pos, dict) and {"x", "y"} <= set(pos)
            }
            for handler in self._move_handlers:
                handler(positions)
        elif data.get("type") == "connect":
            source, target = str(data.get("source", "")), str(data.get("target", ""))
            if source and target:
                for handler in self._connect_handlers:
                    handler(source, target)


def _node(node: Mapping[str, Any]) -> dict[str, Any]:
    # Only what the browser draws: keys and parameters stay on the server.
    return {k: node[k] for k in ("id", "label", "state", "x", "y", "parent") if k in node}
