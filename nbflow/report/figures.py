"""The report's charts (Bokeh): the graph coloured by outcome, the timeline, durations, sweeps.

Each ``*_figure`` builds one Bokeh figure from a ``RunRecord`` (or sweep rows);
``bokeh_parts`` turns figures into what a page embeds, with Bokeh's JavaScript inline
(no file, no URL). It builds figures; it reads no store and writes no file.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..graph import is_check
from ..view import LAYER_GAP_Y, NODE_WIDTH, STATES, graph_model, layered_positions
from .templating import anchor as _anchor
from .templating import seconds as _seconds
from .templating import style as _style

if TYPE_CHECKING:
    from .records import RunRecord

#: Bokeh markers for the node shapes of ``view.STATES`` (grey-scale readable).
MARKERS = {"round-rectangle": "square", "round-hexagon": "hex", "octagon": "circle_x", "round-diamond": "diamond"}


# ---------------------------------------------------------------------- the graph


def _shown_state(status: str, run_status: str) -> str:
    """The ``view.STATES`` name for a step status (a pending step is queued while the run goes on)."""
    if status == "pending":
        return "queued" if run_status in ("pending", "running") else "interrupted"
    return status


def graph_nodes_and_edges(record: RunRecord) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The run's steps as ``view.graph_model`` nodes (state = outcome) and edges."""
    statuses = {s.name: _shown_state(s.status, record.run["status"]) for s in record.steps}
    if record.pipeline is not None and record.origin in ("output notebook", "notebook"):
        summaries = {s.name: s.summary for s in record.steps}
        model = graph_model(record.pipeline, None, statuses, warned=record.warned_checks, summaries=summaries)
        return model["nodes"], model["edges"]
    # The notebook changed or is gone: draw the steps the run had, as it had them.
    steps = [s for s in record.steps if not is_check(s.name)]  # a check is a mark on its step
    order = [s.name for s in steps]
    deps = {s.name: list(s.deps) for s in steps}
    positions = layered_positions(order, deps, record.saved_layout)
    nodes = [{"id": s.name, "label": s.name, "state": statuses[s.name], **positions[s.name]} for s in steps]
    edges = [
        {"id": f"{d}->{s.name}", "source": d, "target": s.name, "names": names, "explicit": False}
        for s in steps
        for d, names in s.deps.items()
        if d in positions  # a step the notebook has now but the run did not
    ]
    return nodes, edges


def graph_figure(record: RunRecord) -> Any:
    """The pipeline graph, nodes coloured and shaped by outcome; click a node for its section."""
    from bokeh.models import Arrow, ColumnDataSource, HoverTool, OpenURL, Range1d, TapTool, VeeHead
    from bokeh.plotting import figure

    nodes, edges = graph_nodes_and_edges(record)
    node_height = 44.0
    where = {n["id"]: (n["x"], -n["y"]) for n in nodes}
    data: dict[str, list[Any]] = {
        k: [] for k in ("x", "y", "mx", "step", "colour", "marker", "status", "label", "duration", "why", "anchor")
    }
    for n in nodes:
        s = record.by_name.get(n["id"])
        style = STATES.get(n["state"], STATES["stale"])
        x, y = where[n["id"]]
        data["x"].append(x)
        data["y"].append(y)
        data["mx"].append(x - NODE_WIDTH / 2 + 14)
        data["step"].append(n["id"])
        data["colour"].append(style.colour)
        data["marker"].append(MARKERS.get(style.shape, "square"))
        data["status"].append(n["state"])
        duration = _seconds(s.duration) if s is not None and s.status in ("done", "failed") else ""
        count = f" ×{len(s.items)}" if s is not None and s.items else ""  # a fan-out: one node, its count
        name = n.get("label", n["id"]).split("\n")[0]  # the step and its check mark
        data["label"].append(f"{name}{count}\n{n['state']}" + (f" · {duration}" if duration else ""))
        data["duration"].append(duration or "-")
        data["why"].append(
            "; ".join(x for x in ((s.why if s else ""), (s.item_summary if s else ""), n.get("summary", "")) if x)
            or "-"
        )
        data["anchor"].append(_anchor(n["id"]))
    source = ColumnDataSource(data)
    arrows = ColumnDataSource(
        {
            "x_start": [where[e["source"]][0] for e in edges],
            "y_start": [where[e["source"]][1] - node_height / 2 for e in edges],
            "x_end": [where[e["target"]][0] for e in edges],
            "y_end": [where[e["target"]][1] + node_height / 2 for e in edges],
        }
    )
    xs = data["x"] or [0.0]
    ys = data["y"] or [0.0]
    # Show at most 8 layers at first (pan or zoom for the rest): labels stay readable.
    top = max(ys) + node_height
    bottom = max(min(ys), top - 8 * LAYER_GAP_Y) - node_height
    height = int(min(max((top - bottom) * 1.1 + 60, 220), 760))
    # at least five node widths across, so a single column of steps is not drawn huge
    centre = (min(xs) + max(xs)) / 2
    half_width = max((max(xs) - min(xs)) / 2 + NODE_WIDTH * 0.75, NODE_WIDTH * 2.5)
    p = figure(
        name="graph",
        height=height,
        sizing_mode="stretch_width",
        x_range=Range1d(centre - half_width, centre + half_width),
        y_range=Range1d(bottom, top),
        tools="pan,wheel_zoom,box_zoom,reset,save",
        toolbar_location="above",
        title="Pipeline graph (click a step to open its section)",
    )
    p.toolbar.logo = None
    p.axis.visible = False
    p.grid.visible = False
    p.outline_line_color = None
    p.add_layout(Arrow(source=arrows, end=VeeHead(size=9, fill_color="#555", line_color="#555"), line_color="#777"))
    boxes = p.rect(
        "x",
        "y",
        width=NODE_WIDTH,
        height=node_height,
        source=source,
        fill_color="colour",
        line_color="#333",
        line_width=1,
    )
    p.scatter("mx", "y", marker="marker", size=11, source=source, fill_color="white", line_color="#222")
    p.text(
        "x",
        "y",
        text="label",
        source=source,
        text_align="center",
        text_baseline="middle",
        text_font_size="11px",
        x_offset=8,
    )
    p.add_tools(
        HoverTool(
            renderers=[boxes],
            tooltips=[("step", "@step"), ("outcome", "@status"), ("duration", "@duration"), ("why", "@why")],
        ),
        # OpenURL, not CustomJS: no code compiled at run time, so the page policy can forbid eval.
        TapTool(renderers=[boxes], callback=OpenURL(url="#@anchor", same_tab=True)),
    )
    return p


def timeline_figure(record: RunRecord) -> Any:
    """A Gantt chart of step durations; cached steps hatched, skipped ones marked."""
    from bokeh.models import ColumnDataSource, FactorRange, HoverTool, Range1d
    from bokeh.plotting import figure

    starts = [s.started for s in record.steps if s.started] + [record.run["started"] or 0.0]
    origin = min(t for t in starts if t) if any(starts) else 0.0
    ends = [s.finished - origin for s in record.steps if s.finished] + [record.duration or 0.0]
    span = max(max(ends), 1e-3)
    groups: dict[str, dict[str, list[Any]]] = {}
    for s in record.steps:
        if s.status in ("done", "failed") or (s.started and s.finished):
            kind = "failed" if s.status == "failed" else "ran"
            left = (s.started or s.finished or origin) - origin
            right = left + (s.duration if s.duration is not None else (s.finished or origin) - (s.started or origin))
        elif s.status == "running" and s.started:
            kind = "running"
            left = s.started - origin
            right = max(time.time() - origin, left)
        elif s.status == "cached":
            kind = "cached"
            left = (s.finished or origin) - origin
            right = left + span * 0.006
        else:
            kind = "not run"
            left = (s.finished or origin) - origin
            right = left + span * 0.006
        g = groups.setdefault(kind, {k: [] for k in ("step", "left", "right", "colour", "status", "duration", "at")})
        g["step"].append(s.name)
        g["left"].append(max(left, 0.0))
        g["right"].append(max(right, left))
        g["colour"].append(_style(s.status).colour)
        g["status"].append(s.status)
        g["duration"].append(_seconds(s.duration) if kind in ("ran", "failed") else "-")
        g["at"].append(f"{max(left, 0.0):.3f} s")
    names = [s.name for s in record.steps]
    p = figure(
        name="timeline",
        x_range=Range1d(0, span * 1.02, bounds=(0, None)),
        y_range=FactorRange(factors=list(reversed(names)) or ["-"]),
        height=int(70 + 22 * max(len(names), 1)),
        sizing_mode="stretch_width",
        tools="xpan,xwheel_zoom,reset,save",
        toolbar_location="above",
        title="Timeline (seconds since the run started)",
        x_axis_label="seconds",
    )
    p.toolbar.logo = None
    p.ygrid.visible = False
    labels = {
        "ran": "ran",
        "failed": "failed",
        "running": "running (so far)",
        "cached": "cached (restored, no run time)",
        "not run": "not run",
    }
    hatches = {"cached": "/", "not run": "x"}
    renderers = []
    for kind, g in groups.items():
        renderers.append(
            p.hbar(
                y="step",
                left="left",
                right="right",
                height=0.7,
                source=ColumnDataSource(g),
                fill_color="colour",
                line_color="#333",
                hatch_pattern=hatches.get(kind, " "),
                hatch_color="#222",
                hatch_alpha=0.5,
                legend_label=labels[kind],
            )
        )
    p.add_tools(
        HoverTool(
            renderers=renderers,
            tooltips=[("step", "@step"), ("outcome", "@status"), ("duration", "@duration"), ("at", "@at")],
        )
    )
    if renderers:
        p.legend.click_policy = "hide"
        p.add_layout(p.legend[0], "right")  # beside the bars, never over them
    return p


def durations_figure(a: RunRecord, b: RunRecord) -> Any:
    """Step durations of two runs side by side."""
    from bokeh.models import ColumnDataSource, FactorRange, HoverTool
    from bokeh.plotting import figure
    from bokeh.transform import dodge

    names = list(dict.fromkeys([s.name for s in a.steps] + [s.name for s in b.steps]))
    data = {"step": names}
    for label, record in (("a", a), ("b", b)):
        data[label] = [(record.by_name[n].duration or 0.0) if n in record.by_name else 0.0 for n in names]
        data[f"{label}_status"] = [record.by_name[n].status if n in record.by_name else "-" for n in names]
    source = ColumnDataSource(data)
    p = figure(
        name="durations",
        y_range=FactorRange(factors=list(reversed(names)) or ["-"]),
        height=int(80 + 26 * max(len(names), 1)),
        sizing_mode="stretch_width",
        tools="xpan,xwheel_zoom,reset,save",
        toolbar_location="above",
        title="Step durations (seconds; cached and skipped steps take none)",
    )
    p.toolbar.logo = None
    bars = [
        p.hbar(
            y=dodge("step", 0.18, range=p.y_range),
            right="a",
            height=0.34,
            source=source,
            fill_color="#9ecae1",
            line_color="#333",
            legend_label=f"run {a.id}",
        ),
        p.hbar(
            y=dodge("step", -0.18, range=p.y_range),
            right="b",
            height=0.34,
            source=source,
            fill_color="#3182bd",
            line_color="#333",
            legend_label=f"run {b.id}",
        ),
    ]
    p.add_tools(
        HoverTool(
            renderers=bars,
            tooltips=[
                ("step", "@step"),
                (f"run {a.id}", "@a{0.000} s (@a_status)"),
                (f"run {b.id}", "@b{0.000} s (@b_status)"),
            ],
        )
    )
    p.add_layout(p.legend[0], "right")
    return p


def warm_bokeh() -> None:
    """Import what the figures and ``bokeh_parts`` use (a process about to fork workers does it once for them)."""
    import bokeh.embed
    import bokeh.models
    import bokeh.plotting
    import bokeh.resources
    import bokeh.transform  # noqa: F401


@dataclass
class BokehParts:
    """Bokeh figures ready for a page: library code, one div per figure, the embed script."""

    scripts: list[str]
    styles: list[str]
    divs: dict[str, str]
    embed: str


def bokeh_parts(figures: list[Any]) -> BokehParts:
    """The figures' parts with Bokeh's JavaScript inline (no file, no URL)."""
    from bokeh.embed import components
    from bokeh.embed.bundle import _all_objs, _use_gl, _use_mathjax, _use_tables, _use_widgets

    objs = _all_objs(figures)
    # What Bokeh bundles depends only on these: the same for every page of a kind (a publish renders hundreds).
    key = (
        frozenset(type(obj) for obj in objs),
        _use_widgets(objs),
        _use_tables(objs),
        _use_gl(objs),
        _use_mathjax(objs),
    )
    scripts, styles = _inline_bundle(key, figures)
    embed, divs = components(figures, wrap_script=False)
    return BokehParts(
        scripts=list(scripts),
        styles=list(styles),
        divs={f.name: d for f, d in zip(figures, divs, strict=True)},
        embed=embed,
    )


_BUNDLES: dict[tuple, tuple[tuple[str, ...], tuple[str, ...]]] = {}


def _inline_bundle(key: tuple, figures: list[Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Bokeh's JavaScript and CSS for figures whose models are ``key[0]`` (cached by ``key``), all inline."""
    if key in _BUNDLES:
        return _BUNDLES[key]
    from bokeh.embed.bundle import bundle_for_objs_and_resources
    from bokeh.resources import INLINE

    bundle = bundle_for_objs_and_resources(figures, INLINE)
    # Bokeh lists the external files of every model class loaded in the process (in the
    # studio, Panel's widgets too); only those of models these figures use are needed.
    needed = set()
    for cls in key[0]:
        for attr in ("__javascript__", "__css__"):
            files = getattr(cls, attr, None) or []
            needed |= {str(f) for f in ([files] if isinstance(files, str) else files)}
    wanted = [str(f) for f in [*bundle.js_files, *bundle.css_files] if any(str(f).endswith(n) for n in needed)]
    if wanted:
        raise RuntimeError(f"Bokeh wants to load files a report cannot hold: {wanted}")
    found = _BUNDLES[key] = (
        tuple(js.replace("</script", "<\\/script") for js in bundle.js_raw),
        tuple(bundle.css_raw),
    )
    return found


def sweep_figure(rows: list[dict[str, Any]], output: str) -> Any:
    """One output across the runs of a sweep: a bar per parameter set."""
    from bokeh.models import ColumnDataSource, HoverTool
    from bokeh.plotting import figure

    labels = [", ".join(f"{k}={v}" for k, v in r["params"].items()) or f"run {r['run']}" for r in rows]
    values = []
    for r in rows:
        try:
            values.append(float(r["outputs"].get(output, "nan")))
        except ValueError:
            values.append(float("nan"))
    source = ColumnDataSource({"label": labels, "value": values, "run": [r["run"] for r in rows]})
    fig = figure(
        name=f"sweep-{output}",
        x_range=labels,
        height=300,
        sizing_mode="stretch_width",
        title=output,
        toolbar_location=None,
        tools="",
    )
    fig.vbar(x="label", top="value", width=0.7, source=source, color=STATES["done"].colour)
    fig.add_tools(HoverTool(tooltips=[("run", "@run"), ("parameters", "@label"), (output, "@value")]))
    fig.xaxis.major_label_orientation = 0.8
    return fig
