"""The report pages: the run report, the comparison of two runs and a sweep's summary, as HTML.

Templates of ``nbflow/report_templates/`` rendered with ``templating.py``'s environment
(the one the published site uses too), cells from ``cells.py`` and charts from
``figures.py``. It renders strings; it reads no store and writes no file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..view import STATES
from .cells import _ansi_html, shared_renderer, unsafe_parts
from .figures import (
    _shown_state,
    bokeh_parts,
    durations_figure,
    graph_figure,
    sweep_figure,
    timeline_figure,
)
from .records import UNKNOWN
from .templating import TEMPLATES, page_variables, render, when
from .templating import markup as _markup

if TYPE_CHECKING:
    from ..config import Config
    from .figures import BokehParts
    from .records import RunRecord

__all__ = ["ReportCells", "render_comparison", "render_report", "render_sweep", "report_cells", "reproduction"]


def _page_variables(parts: BokehParts, trusted: bool, extra_scripts: Iterable[str] = ()) -> dict[str, Any]:
    return page_variables([*parts.scripts, *extra_scripts], parts.embed, trusted=trusted)


#: The Copy button of "Reproduce this run" (the page policy allows it by its hash).
COPY_SCRIPT = TEMPLATES / "copy.js"


def reproduction(record: RunRecord) -> dict[str, Any]:
    """ "Reproduce this run": the shell lines (``provenance.reproduce_lines``), git state and what to warn about."""
    from ..provenance import reproduce_lines

    git = (record.run["provenance"] or {}).get("git") or {}
    return {
        "command": "\n".join(reproduce_lines(record.run)),
        "commit": git.get("commit"),
        "branch": git.get("branch"),
        "dirty": bool(git.get("dirty")),
        "in_git": bool(git),
        "notebook_hash": record.run["notebook_hash"] or "",
    }


def _provenance_rows(record: RunRecord) -> list[tuple[str, str]]:
    run, prov = record.run, record.run["provenance"] or {}
    git = prov.get("git") or {}
    rows = [
        ("notebook", str(record.notebook)),
        ("notebook hash", run["notebook_hash"] or prov.get("notebook_hash") or "-"),
    ]
    if git:
        state = "uncommitted changes" if git.get("dirty") else "clean"
        rows.append(
            ("git", f"{git.get('commit') or 'no commit yet'} on {git.get('branch') or 'detached HEAD'} ({state})")
        )
    else:
        rows.append(("git", "not in a git repository"))
    rows += [
        ("Python", f"{prov.get('python', '?')} ({prov.get('python_executable', '?')})"),
        ("platform", prov.get("platform", "?")),
        ("host", run["host"] or prov.get("host", "?")),
        ("user", prov.get("user", "?")),
        ("process", f"pid {run['pid']}, working folder {prov.get('cwd', '?')}"),
        ("executor", run["executor"]),
        ("started", when(run["started"] or run["created"])),
        ("ended", when(run["finished"]) or "not finished"),
    ]
    return rows


def _origin_note(record: RunRecord) -> str:
    if record.run["status"] in ("pending", "running"):
        return (
            "This run was still going when the report was written: it shows the steps finished so far, "
            "with outputs from the cache (the executed notebook is written when the run ends)."
        )
    return {
        "output notebook": "",
        "notebook": "No step ran in this run: code is from the notebook (unchanged since) and outputs from the cache.",
        "changed notebook": "The notebook has changed since this run: code is shown only for steps whose code is "
        "unchanged, outputs come from the cache.",
        "store only": "The notebook and the run's executed copy cannot be read: the report shows what the run "
        "store and the cache recorded.",
    }[record.origin]


@dataclass
class ReportCells:
    """nbconvert's half of a report: its cells, markdown and tracebacks as HTML (plain strings).

    Made by ``report_cells`` in this process or, while this one draws the charts, in a
    forked one (``overlap.py``): the same strings either way."""

    css: str
    description: str
    #: per step of ``record.steps``: its cells, its documentation, its traceback (``None``: not shown)
    sections: list[str]
    docs: list[str]
    tracebacks: list[str | None]


def report_cells(record: RunRecord, trusted: bool = False) -> ReportCells:
    """The parts of ``record``'s report that nbconvert renders (sanitized unless ``trusted``)."""
    renderer = shared_renderer(trusted)
    metadata = {}
    if record.pipeline is not None:
        metadata = {k: v for k, v in record.pipeline.source.data.get("metadata", {}).items() if k == "language_info"}
    tracebacks: list[str | None] = []
    for s in record.steps:
        error_output = any(o.get("output_type") == "error" for c in s.cells for o in c.get("outputs", []))
        tracebacks.append(_ansi_html(s.traceback) if s.traceback and not error_output else None)
    return ReportCells(
        css=renderer.css,
        description=renderer.markdown(record.description),
        sections=renderer.sections([(s.cells, not s.code_shown) for s in record.steps], metadata),
        docs=[renderer.markdown(s.docs) for s in record.steps],
        tracebacks=tracebacks,
    )


def render_report(
    record: RunRecord,
    trusted: bool = False,
    made_from: str = "",
    cells: Callable[[], ReportCells | None] | None = None,
) -> str:
    """The HTML page of ``record``; ``made_from``: the fingerprint of its inputs, kept in the page (see
    ``fingerprints.py``). ``cells``: where nbconvert's half comes from (``overlap.py``), asked for
    once the charts are drawn; by default (or when it gives ``None``) it is rendered here."""
    parts = bokeh_parts([graph_figure(record), timeline_figure(record)])
    rendered = (cells() if cells is not None else None) or report_cells(record, trusted)
    sections = []
    for s, html, docs, traceback in zip(
        record.steps, rendered.sections, rendered.docs, rendered.tracebacks, strict=True
    ):
        outputs = [o for c in s.cells for o in c.get("outputs", [])]
        sections.append(
            {
                "step": s,
                "docs": _markup(docs),
                "cells": _markup(html),
                "removed": unsafe_parts(outputs) if not trusted else {},
                "traceback": None if traceback is None else _markup(traceback),
                "passed": sorted(s.values.items()),
                "missing": sorted(s.entry.missing.items()) if s.entry is not None else [],
                "checks": _checks(record, s.name),
            }
        )
    changed = record.changed_parameters()
    parameters = [
        {
            "name": name,
            "value": value,
            "default": record.defaults.get(name, UNKNOWN),
            "changed": name in changed,
        }
        for name, value in record.run["params"].items()
    ]
    shown = {_shown_state(s.status, record.run["status"]) for s in record.steps}
    present = [s for s in STATES if s in shown]
    return render(
        "report.html.j2",
        record=record,
        run=record.run,
        title=record.title,
        description=_markup(rendered.description),
        has_heading=record.description.lstrip().startswith("#"),
        counts=record.counts(),
        parameters=parameters,
        unknown=UNKNOWN,
        provenance=_provenance_rows(record),
        reproduce=reproduction(record),
        packages=sorted((record.run["provenance"] or {}).get("packages", {}).items()),
        origin_note=_origin_note(record),
        sections=sections,
        legend=[(s, STATES[s]) for s in present],
        notebook_css=_markup(rendered.css + "".join(f"<style>{css}</style>" for css in parts.styles)),
        graph=_markup(parts.divs["graph"]),
        timeline=_markup(parts.divs["timeline"]),
        made_from=made_from,
        **_page_variables(parts, trusted, [COPY_SCRIPT.read_text(encoding="utf-8")]),
    )


def _checks(record: RunRecord, step: str) -> list[dict[str, str]]:
    """The data checks of ``step`` as the report lists them: name, mark, outcome."""
    from ..view import CHECK_MARKS

    warned = record.warned_checks
    rows = []
    for check in record.checks_of(step):
        mark = "failed" if check.status == "failed" else "warned" if check.name in warned else None
        if mark is None and check.status in ("done", "cached"):
            mark = "passed"
        rows.append({"name": check.name, "mark": CHECK_MARKS.get(mark or "", "·"), "outcome": mark or check.status})
    return rows


def render_comparison(config: Config, a: RunRecord, b: RunRecord) -> str:
    """The HTML page comparing runs ``a`` and ``b`` (the data: ``compare.compare_runs``)."""
    from ..compare import ABSENT, compare_runs

    diff = compare_runs(config, a.id, b.id)
    parts = bokeh_parts([durations_figure(a, b)])
    return render(
        "comparison.html.j2",
        a=a,
        b=b,
        diff=diff,
        absent=ABSENT,
        durations=_markup(parts.divs["durations"]),
        **_page_variables(parts, trusted=False),
    )


# ======================================================================== the API


def render_sweep(sweep: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """The HTML page summarising a sweep: parameters -> outputs, one chart per numeric output."""
    outputs = sorted({k for r in rows for k in r["outputs"]})
    numeric = []
    for name in outputs:
        try:
            [float(r["outputs"][name]) for r in rows if name in r["outputs"]]
            numeric.append(name)
        except ValueError:
            continue
    parts = bokeh_parts([sweep_figure(rows, name) for name in numeric])
    return render(
        "sweep.html.j2",
        sweep=sweep,
        rows=rows,
        params=list(sweep["grid"]),
        outputs=outputs,
        charts=[_markup(parts.divs[f"sweep-{name}"]) for name in numeric],
        notebook=Path(sweep["notebook"]),
        **_page_variables(parts, trusted=False),
    )
