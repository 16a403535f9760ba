"""The pages of a published site that are not run reports: the index, a pipeline's page, its history.

``render_index`` and ``render_pipeline_page`` are tables of runs (sorted and filtered in
the browser by ``report_templates/site.js``); they need Jinja2 only, so a re-publish
that changes no report imports neither Bokeh nor nbconvert for them. ``render_history``
draws a pipeline's per-step durations and chosen scalars across runs with Bokeh.

A pipeline here is anything with ``slug``, ``notebook``, ``runs`` (run-store rows,
oldest first) and ``sweeps`` (``nbflow.publish.Pipeline``). It renders strings; it
reads no store and writes no file.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from .templating import TEMPLATES, markup, page_variables, render

#: The sorting and filtering of the runs tables (allowed by the pages' policy by its hash).
SCRIPT = TEMPLATES / "site.js"


def parameter_text(params: Mapping[str, Any]) -> str:
    """``lr=0.5, n=3``: a run's parameters on one line."""
    return ", ".join(f"{k}={json.dumps(v, default=repr)}" for k, v in params.items())


def _duration(run: Mapping[str, Any]) -> float | None:
    if run["started"] and run["finished"]:
        return float(run["finished"] - run["started"])
    return None


def run_row(pipeline: Any, run: Mapping[str, Any], previous: Mapping[str, Any] | None, prefix: str) -> dict:
    """What the runs tables show of ``run`` (links relative to a page at ``prefix``)."""
    prov = run["provenance"] or {}
    git = prov.get("git") or {}
    commit = (git.get("commit") or "")[:10]
    return {
        "pipeline": pipeline.slug,
        "pipeline_href": f"{prefix}{pipeline.slug}/index.html",
        "id": run["id"],
        "status": run["status"],
        "params": parameter_text(run["params"]),
        "duration": _duration(run),
        "who": f"{prov.get('user', '?')}@{run['host'] or prov.get('host', '?')}",
        "commit": commit + (" (dirty)" if git.get("dirty") else "") if git else "",
        "when": run["started"] or run["created"],
        "report": f"{prefix}{pipeline.slug}/runs/{run['id']}.html",
        "compare": f"{prefix}{pipeline.slug}/compare/{previous['id']}-{run['id']}.html" if previous else "",
        "previous": previous["id"] if previous else None,
    }


def rows(pipeline: Any, prefix: str) -> list[dict[str, Any]]:
    """The rows of ``pipeline``'s runs, newest first."""
    found, previous = [], None
    for run in pipeline.runs:
        found.append(run_row(pipeline, run, previous, prefix))
        previous = run
    return found[::-1]


def latest(pipelines: Iterable[Any]) -> float | None:
    """When the last of these pipelines' runs ended (or started): the time a page of them names."""
    stamps = [r["finished"] or r["started"] or r["created"] for p in pipelines for r in p.runs]
    return max(stamps) if stamps else None


def render_index(pipelines: list[Any]) -> str:
    """The site's front page: the pipelines, then every run of every pipeline."""
    every = sorted((r for p in pipelines for r in rows(p, "")), key=lambda r: (-(r["when"] or 0), r["pipeline"]))
    summaries = [
        {
            "slug": p.slug,
            "notebook": p.notebook,
            "runs": len(p.runs),
            "sweeps": len(p.sweeps),
            "last": p.runs[-1] if p.runs else None,
        }
        for p in pipelines
    ]
    return render(
        "site_index.html.j2",
        pipelines=summaries,
        rows=every,
        statuses=sorted({r["status"] for r in every}),
        **page_variables([SCRIPT.read_text(encoding="utf-8")], generated=latest(pipelines)),
    )


def render_pipeline_page(pipeline: Any) -> str:
    """One pipeline's page: its runs (sortable, filterable), sweeps and history link."""
    own = rows(pipeline, "../")
    return render(
        "site_pipeline.html.j2",
        pipeline=pipeline,
        rows=own,
        statuses=sorted({r["status"] for r in own}),
        **page_variables([SCRIPT.read_text(encoding="utf-8")], generated=latest([pipeline])),
    )


def history_figures(history: Mapping[str, Any]) -> list[Any]:
    """A Bokeh chart of step durations across runs, and one per chosen scalar."""
    from bokeh.models import BasicTicker, ColumnDataSource, HoverTool
    from bokeh.palettes import Category10_10
    from bokeh.plotting import figure

    durations = figure(
        name="durations",
        height=340,
        sizing_mode="stretch_width",
        title="Step durations (steps that ran; cached steps take no time)",
        x_axis_label="run",
        y_axis_label="seconds",
        toolbar_location="right",
        tools="pan,wheel_zoom,box_zoom,reset",
    )
    for i, (step, points) in enumerate(sorted(history["steps"].items())):
        if not points:
            continue
        runs = sorted(points)
        source = ColumnDataSource({"run": runs, "seconds": [points[r] for r in runs], "step": [step] * len(runs)})
        colour = Category10_10[i % 10]
        durations.line("run", "seconds", source=source, color=colour, legend_label=step)
        durations.scatter("run", "seconds", source=source, color=colour, size=6, legend_label=step)
    durations.add_tools(HoverTool(tooltips=[("step", "@step"), ("run", "@run"), ("seconds", "@seconds{0.000}")]))
    if durations.legend:
        durations.legend.click_policy = "hide"
        durations.add_layout(durations.legend[0], "right")
    figures = [durations]
    for n, (metric, points) in enumerate(history["metrics"].items()):
        runs = sorted(points)
        source = ColumnDataSource({"run": runs, "value": [points[r] for r in runs]})
        fig = figure(
            name=f"metric-{n}",
            height=260,
            sizing_mode="stretch_width",
            title=metric,
            x_axis_label="run",
            toolbar_location=None,
            tools="",
        )
        fig.line("run", "value", source=source, color=Category10_10[0])
        fig.scatter("run", "value", source=source, color=Category10_10[0], size=7)
        fig.add_tools(HoverTool(tooltips=[("run", "@run"), (metric, "@value")]))
        figures.append(fig)
    for fig in figures:
        fig.xaxis.ticker = BasicTicker(min_interval=1)  # runs are whole numbers
    return figures


def render_history(pipeline: Any, history: Mapping[str, Any]) -> str:
    """The page of a pipeline's per-step history (Bokeh charts and a table); ``history``: ``step_history``'s."""
    from .figures import bokeh_parts

    parts = bokeh_parts(history_figures(history))
    return render(
        "site_history.html.j2",
        pipeline=pipeline,
        runs=[r["id"] for r in pipeline.runs],
        history=history,
        durations=markup(parts.divs["durations"]),
        charts=[(m, markup(parts.divs[f"metric-{n}"])) for n, m in enumerate(history["metrics"])],
        styles=markup("".join(f"<style>{css}</style>" for css in parts.styles)),
        **page_variables(parts.scripts, parts.embed, generated=latest([pipeline])),
    )
