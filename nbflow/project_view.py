"""What every view of a pipeline of notebooks draws: notebooks as groups (compound nodes),
their steps inside, and the links between notebooks as edges between steps.

``project_graph_model(project, plans)`` extends ``view.graph_model`` (one per notebook) to
the whole pipeline: a step's id is ``notebook:step`` and its ``parent`` the notebook's
group node (``group:notebook``), which is what cytoscape.js draws as a compound node; an
edge between notebooks carries ``link: true`` and the file it stands for. Positions are
``view.layered_positions`` over every step of every notebook (links included), so a
consumer sits below its producer.

Pure: no I/O; the plans are passed in. Standard library only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .view import LEGEND, STATES, graph_model, layered_positions

if TYPE_CHECKING:
    from .plan import Plan
    from .project import Project

GROUP_PREFIX = "group:"
GROUP_SPACING = 1.6


def node_id(notebook: str, step: str) -> str:
    return f"{notebook}:{step}"


def project_graph_model(
    project: Project,
    plans: Mapping[str, Plan] | None = None,
    statuses: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The pipeline of notebooks as groups, nodes and edges (``statuses`` by ``notebook:step``).

    ``groups``: ``{"id", "label", "notebook"}``; ``nodes``: ``view.graph_model``'s, with ids
    ``notebook:step``, ``label`` the step and ``parent`` the group; ``edges``: within a
    notebook as ``view.graph_model``'s, plus ``{"link": true, "file"}`` between notebooks.
    """
    plans = plans or {}
    statuses = statuses or {}
    groups, nodes, edges = [], [], []
    deps: dict[str, list[str]] = {}
    order: list[str] = []
    for name in project.order:
        pipeline = project.pipelines[name]
        own = {s: statuses[node_id(name, s)] for s in pipeline.order if node_id(name, s) in statuses}
        model = graph_model(pipeline, plans.get(name), own)
        group = GROUP_PREFIX + name
        groups.append({"id": group, "label": name, "notebook": str(pipeline.path)})
        for node in model["nodes"]:
            nodes.append({**node, "id": node_id(name, node["id"]), "step": node["id"], "parent": group})
        for edge in model["edges"]:
            a, b = node_id(name, edge["source"]), node_id(name, edge["target"])
            edges.append({**edge, "id": f"{a}->{b}", "source": a, "target": b, "link": False, "file": None})
        for step in pipeline.order:
            order.append(node_id(name, step))
            deps[node_id(name, step)] = [node_id(name, d) for d in pipeline.deps[step]]
    for link in project.links:
        deps[link.consumer].append(link.producer)
        edges.append(
            {
                "id": f"{link.producer}->{link.consumer}",
                "source": link.producer,
                "target": link.consumer,
                "names": [f"file:{link.file}"] if link.file else [],
                "explicit": link.file is None,
                "state": "",
                "hidden": False,
                "link": True,
                "file": link.file,
            }
        )
    positions = layered_positions(_topological(order, deps), deps)
    for node in nodes:
        # layers further apart than in one notebook: room for a group's padding and label between them
        node.update({"x": positions[node["id"]]["x"], "y": positions[node["id"]]["y"] * GROUP_SPACING})
    return {
        "title": project.title,
        "groups": groups,
        "nodes": nodes,
        "edges": edges,
        "legend": [
            {"state": s, "colour": STATES[s].colour, "shape": STATES[s].shape, "label": STATES[s].label} for s in LEGEND
        ],
    }


def group_style() -> list[dict[str, Any]]:
    """cytoscape.js rules for notebook groups (compound nodes) and the edges between them."""
    return [
        {
            "selector": "node.notebook",
            "style": {
                "label": "data(label)",
                "text-valign": "top",
                "text-halign": "center",
                "font-size": 14,
                "font-weight": "bold",
                "shape": "round-rectangle",
                "background-color": "#f4f6f8",
                "background-opacity": 0.6,
                "border-style": "dashed",
                "border-width": 1,
                "border-color": "#8a94a0",
                "padding": 14,
            },
        },
        {"selector": "edge.link", "style": {"width": 3, "line-color": "#6a51a3", "target-arrow-color": "#6a51a3"}},
    ]


def _topological(order: list[str], deps: Mapping[str, list[str]]) -> list[str]:
    """``order`` rearranged so every node follows its dependencies (a project has no cycle)."""
    placed: list[str] = []
    seen: set[str] = set()

    def visit(node: str) -> None:
        if node in seen:
            return
        seen.add(node)
        for parent in deps.get(node, ()):
            visit(parent)
        placed.append(node)

    for node in order:
        visit(node)
    return placed
