"""One report for a pipeline of notebooks: a section per notebook, each its run's own report.

``build_project_report(result)`` writes one self-contained HTML file: the pipeline's
notebooks (run, status, or why a notebook was not started), the links between them (the
files and ``after:`` tags that cross), then a section per notebook holding that run's
report exactly as ``build_report`` renders it (graph, timeline, every step's docs, code
and outputs). Each section is an ``<iframe srcdoc>`` sandboxed without same-origin: its
Bokeh scripts and its own Content-Security-Policy keep working, and nothing one
notebook's outputs hold can reach another section or the page. The page itself runs no
script and fetches nothing, so it opens offline.

Never runs a step or loads a pickle (the run reports' rules apply to every section).
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..fsutil import atomic_write_text
from .pages import render_report
from .records import collect_run, open_store

if TYPE_CHECKING:
    from ..project_run import ProjectRun

_POLICY = re.compile(r'<meta http-equiv="Content-Security-Policy" content="([^"]*)"', re.IGNORECASE)
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 0 auto; max-width: 1200px; padding: 1rem 2rem; color: #222; }
table { border-collapse: collapse; margin: .5rem 0 1.5rem; }
th, td { border-bottom: 1px solid #ddd; padding: .3rem .8rem; text-align: left; }
.done, .cached { color: #1a7f37; } .failed, .cancelled, .interrupted, .skipped { color: #cf222e; }
section { margin: 2rem 0; } iframe { width: 100%; height: 85vh; border: 1px solid #ccc; border-radius: 4px; }
"""


def project_report_html(result: ProjectRun, *, trusted: bool = False) -> str:
    """The HTML of the pipeline's report (see module docstring)."""
    project = result.project
    rows, sections, scripts = [], [], set()
    for index, name in enumerate(project.order):
        run = result.runs.get(name)
        anchor = f"notebook-{index}"
        if run is None:
            why = result.skipped.get(name, "not run")
            rows.append(f"<tr><td>{_e(name)}</td><td>-</td><td class='skipped'>not run: {_e(why)}</td></tr>")
            continue
        rows.append(
            f"<tr><td><a href='#{anchor}'>{_e(name)}</a></td><td>{run.id}</td>"
            f"<td class='{_e(run.status)}'>{_e(run.status)}</td></tr>"
        )
        page = _run_report(run, trusted)
        # a srcdoc frame also obeys this page's policy: it must allow what each report allows itself
        scripts.update(_allowed_scripts(page))
        sections.append(
            f"<section id='{anchor}'><h2>{_e(name)}: run {run.id}, {_e(run.status)}</h2>"
            f"<iframe title='{_e(name)}' sandbox='allow-scripts' srcdoc=\"{_e(page)}\">"
            "</iframe></section>"
        )
    policy = ""
    if "*" not in scripts:
        allowed = " ".join(sorted(scripts)) or "'none'"
        csp = (
            f"default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:; script-src {allowed}; "
            "base-uri 'none'; form-action 'none'; connect-src 'none'"
        )
        policy = f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
    links = "".join(
        f"<tr><td>{_e(link.producer)}</td><td>{_e(link.consumer)}</td>"
        f"<td>{_e(link.file) if link.file else 'after: tag'}</td></tr>"
        for link in project.links
    )
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        + policy
        + f"<title>{_e(project.title)}: pipeline of notebooks</title><style>{_STYLE}</style></head><body>"
        f"<h1>{_e(project.title)}</h1><p>A pipeline of {len(project.order)} notebooks, "
        f"{result.status} in {result.duration:.2f} s.</p>"
        "<h2>Notebooks</h2><table><tr><th>notebook</th><th>run</th><th>status</th></tr>"
        + "".join(rows)
        + "</table><h2>Between notebooks</h2><table><tr><th>from</th><th>to</th><th>through</th></tr>"
        + (links or "<tr><td colspan='3'>no links: the notebooks are independent</td></tr>")
        + "</table>"
        + "".join(sections)
        + "</body></html>"
    )


def build_project_report(result: ProjectRun, *, output: Path | None = None, trusted: bool = False) -> Path:
    """Write the pipeline's report and return its path (default:
    ``<home>/runs/pipeline-<first run>-<last run>.html`` of the project's folder)."""
    from . import _require_extra

    _require_extra()
    page = project_report_html(result, trusted=trusted)
    ids = [r.id for r in result.runs.values()]
    name = f"pipeline-{min(ids)}-{max(ids)}.html" if ids else "pipeline.html"
    path = Path(output) if output is not None else result.project.config.runs_dir / name
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, page, perms=0o600 if output is None else 0o644)
    return path


def _run_report(run: Any, trusted: bool) -> str:
    config = run.pipeline.config
    store = open_store(config)
    try:
        return render_report(collect_run(config, run.id, store, config.cache()), trusted=trusted)
    finally:
        store.close()


def _allowed_scripts(page: str) -> list[str]:
    """The script sources a run report's own policy allows (``*`` when it has none: trusted)."""
    found = _POLICY.search(page)
    if found is None:
        return ["*"]
    for directive in html.unescape(found.group(1)).split(";"):
        name, _, sources = directive.strip().partition(" ")
        if name == "script-src":
            return sources.split()
    return ["*"]


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)
