"""``nbflow publish``: a static site of a project's runs, offline and self-contained.

``publish_site(paths, site)`` writes, for every pipeline (notebook) with recorded runs
under ``paths`` (folders or notebooks)::

    SITE/index.html                    every pipeline and every run, sortable and filterable
    SITE/<pipeline>/index.html         that pipeline's runs, sweeps and history link
    SITE/<pipeline>/runs/<id>.html     each run's report (the same page as ``nbflow report``)
    SITE/<pipeline>/compare/<a>-<b>.html   what changed between consecutive runs
    SITE/<pipeline>/sweeps/<id>.html   each sweep's summary
    SITE/<pipeline>/history.html       per-step durations and chosen scalars across runs (Bokeh)
    SITE/.nbflow-site.json             what nbflow wrote here, and from which inputs

Every page is a single file that fetches nothing (Bokeh and the small sort/filter script
are inline, a Content-Security-Policy allows only those scripts); links between pages
are relative, so the folder works from ``file://`` and on any static host. Cell outputs
are sanitized as in the reports unless ``trusted``.

Re-publishing is incremental. Each page has a fingerprint of what it is made of (the
run's store rows, its executed notebook's size and time, nbflow's version and templates,
the trust mode); a page whose fingerprint and file are unchanged is not rendered again,
and the fingerprints are computed from the run stores before anything heavy is imported:
Bokeh and nbconvert are imported only when a page that needs them must be rendered. A page
that is rendered is compared with the file on disk and written (atomically) only if it
differs, so the index pages (which hold no random ids) are rewritten only when a row in
them changed. Pages nbflow wrote before that no longer exist (runs deleted by ``nbflow
clean``) are removed; nothing nbflow did not write is touched, and a non-empty folder
that is not a site nbflow wrote is refused.

Worked example: a site of 50 runs of one notebook; one more run, then ``nbflow publish``
again: the new run's report, the comparison with the run before it, the pipeline's index
and history and the site index are written; the other 98 pages are left alone.

The package, by concern: ``collect.py`` (the pipelines, runs and fingerprints),
``writer.py`` (the site folder and its manifest), ``render.py`` (reports, comparisons and
sweeps, in a pool of processes when there are many); the pages themselves are
``nbflow.report``'s (``report/site.py`` for the index, pipeline and history pages).
This module is the API. The package reads run stores and cache manifests and renders
with ``nbflow.report``; it never runs a step, changes a store or cache, or loads a pickle.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..report.fingerprints import current_report, fingerprint, report_inputs
from ..report.site import parameter_text, render_history, render_index, render_pipeline_page, rows
from ..report.templating import use_template_cache
from .collect import Pipeline, collect_pipelines, step_history
from .render import render_pages, render_task
from .writer import MANIFEST, SITE_FORMAT, PublishError, PublishResult, SiteWriter

__all__ = [
    "MANIFEST",
    "SITE_FORMAT",
    "Pipeline",
    "PublishError",
    "PublishResult",
    "SiteWriter",
    "collect_pipelines",
    "parameter_text",
    "publish_site",
    "render_task",
    "step_history",
]


def publish_site(
    paths: Sequence[str | Path],
    site: str | Path,
    *,
    trusted: bool = False,
    metrics: Sequence[str] = (),
    jobs: int | None = None,
) -> PublishResult:
    """Write (or bring up to date) the static site of the runs under ``paths`` in ``site``.

    Reports, comparisons and sweep pages that must be rendered are rendered by ``jobs``
    processes (default: one per core, at most four; 1 renders in this thread).
    """
    from ..report import _require_extra

    _require_extra()
    site = Path(site).resolve()
    if site.exists() and not site.is_dir():
        raise PublishError(f"nbflow publish: {site} is a file; give a folder for the site")
    pipelines = collect_pipelines(paths)
    for p in pipelines:
        if site == p.config.home or site.is_relative_to(p.config.home):
            raise PublishError(f"nbflow publish: {site} is inside nbflow's own folder {p.config.home}")
    if pipelines:
        use_template_cache(pipelines[0].config.home)
    writer = SiteWriter(site)
    pages: list[tuple[str, str, tuple]] = []
    for p in pipelines:
        pages += _stale_run_pages(writer, p, trusted)

    def other_pages() -> None:  # rendered while workers render the stale reports' cells
        for p in pipelines:
            history = step_history(p, metrics)
            writer.page(
                f"{p.slug}/history.html",
                fingerprint("history", list(metrics), history, [r["id"] for r in p.runs]),
                lambda p=p, history=history: render_history(p, history),
            )
            writer.page(
                f"{p.slug}/index.html",
                fingerprint("pipeline", str(p.notebook), rows(p, "../"), p.sweeps),
                lambda p=p: render_pipeline_page(p),
            )
        index_rows = [(rows(p, ""), str(p.notebook), len(p.sweeps)) for p in pipelines]
        writer.page("index.html", fingerprint("index", index_rows), lambda: render_index(pipelines))

    render_pages(writer, pages, jobs, then=other_pages)
    return writer.finish()


def _stale_run_pages(writer: SiteWriter, p: Pipeline, trusted: bool) -> list[tuple[str, str, tuple]]:
    """``(page, inputs, task)`` of the pipeline's reports, comparisons and sweep pages that must be rendered.

    A report already written at the run's default place from the same inputs is put in the
    site as it is, not rendered again."""
    wanted = []
    previous = None
    for run in p.runs:
        rid = run["id"]
        wanted.append(
            (
                f"{p.slug}/runs/{rid}.html",
                report_inputs(p.fingerprints[rid], trusted),
                ("report", rid, trusted),
            )
        )
        if previous is not None:
            pid = previous["id"]
            inputs = fingerprint("compare", p.fingerprints[pid], p.fingerprints[rid])
            wanted.append((f"{p.slug}/compare/{pid}-{rid}.html", inputs, ("compare", pid, rid)))
        previous = run
    for sweep in p.sweeps:
        inputs = fingerprint("sweep", dict(sweep), [p.fingerprints.get(r) for r in sorted(sweep["runs"])])
        wanted.append((f"{p.slug}/sweeps/{sweep['id']}.html", inputs, ("sweep", dict(sweep))))
    stale = []
    for rel, inputs, task in wanted:
        if writer.fresh(rel, inputs):
            continue
        # a report `nbflow run --report` (or `nbflow report`) wrote from the same inputs is that page already
        recorded = current_report(p.config, task[1], inputs) if task[0] == "report" else None
        if recorded is not None:
            writer.put(rel, inputs, recorded)
        else:
            stale.append((rel, inputs, (p.config, *task)))
    return stale
