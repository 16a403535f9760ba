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
run's store rows, its executed notebook's size and time, nbflow's version, the trust
mode); a page whose fingerprint and file are unchanged is not rendered again. A page
that is rendered is compared with the file on disk and written (atomically) only if it
differs, so the index pages (which hold no random ids) are rewritten only when a row in
them changed. Pages nbflow wrote before that no longer exist (runs deleted by ``nbflow
clean``) are removed; nothing nbflow did not write is touched, and a non-empty folder
that is not a site nbflow wrote is refused.

Worked example: a site of 50 runs of one notebook; one more run, then ``nbflow publish``
again: the new run's report, the comparison with the run before it, the pipeline's index
and history and the site index are written; the other 98 pages are left alone.

This module reads run stores and cache manifests and renders with ``nbflow.report``; it
never runs a step, changes a store or cache, or loads a pickle.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import NbflowError
from .fsutil import atomic_write_bytes, atomic_write_text

if TYPE_CHECKING:
    from .config import Config
    from .store import RunStore

MANIFEST = ".nbflow-site.json"
#: Bump when the pages' layout changes, so that an old site is rendered again.
SITE_FORMAT = 1
SCRIPT = Path(__file__).with_name("report_templates") / "site.js"
#: At most this many scalars get a history chart when none is chosen.
MAX_METRICS = 8


class PublishError(NbflowError):
    """The site cannot be written where asked (a folder nbflow did not create, nothing to publish)."""


# ============================================================================ the data


@dataclass
class Pipeline:
    """One notebook's recorded runs, as the site shows them."""

    notebook: Path
    config: Config
    slug: str = ""
    runs: list[dict[str, Any]] = field(default_factory=list)
    #: run id -> step rows (``RunStore.steps``)
    steps: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    #: run id -> fingerprint of everything its report shows
    fingerprints: dict[int, str] = field(default_factory=dict)
    sweeps: list[dict[str, Any]] = field(default_factory=list)


@functools.cache
def _templates_digest() -> str:
    # Pages change with their templates and script, not only with nbflow's version.
    digest = hashlib.sha256()
    for path in sorted(SCRIPT.parent.iterdir()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _fingerprint(*parts: Any) -> str:
    from . import __version__

    text = json.dumps([SITE_FORMAT, __version__, _templates_digest(), *parts], sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _file_state(path: str | None) -> list[Any] | None:
    if not path:
        return None
    try:
        st = Path(path).stat()
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


def _run_fingerprint(config: Config, store: RunStore, run: Mapping[str, Any], steps: list[dict[str, Any]]) -> str:
    run_id = int(run["id"])
    artifacts = {k: v for k, v in store.artifacts(run_id).items() if k != "report"}
    output = artifacts.get("output_notebook") or str(config.runs_dir / str(run_id) / "output.ipynb")
    items = {s["step"]: store.items(run_id, s["step"]) for s in steps}
    notebook = _file_state(run["notebook"]) if not _file_state(output) else None
    return _fingerprint(
        dict(run, heartbeat=None), steps, items, store.messages(run_id), artifacts, _file_state(output), notebook
    )


def _notebooks_under(store_notebooks: Iterable[str], path: Path) -> list[Path]:
    if path.is_dir():
        return sorted({Path(n) for n in store_notebooks if Path(n).is_relative_to(path)})
    return [path] if str(path) in set(store_notebooks) else []


def collect_pipelines(paths: Sequence[str | Path]) -> list[Pipeline]:
    """The pipelines with recorded runs under ``paths`` (folders or notebooks), each with its runs."""
    from .config import Config

    found: dict[Path, Pipeline] = {}
    for given in paths or ["."]:
        path = Path(given).resolve()
        if not path.exists():
            raise PublishError(f"nbflow publish: {given} does not exist")
        config = Config.for_path(path)
        if not config.store_path.is_file():
            raise PublishError(f"nbflow publish: no runs recorded for {given} (run a notebook there first)")
        store = config.open_store(reconcile=False)
        try:
            every = store.runs(None, limit=1_000_000)
            notebooks = _notebooks_under({r["notebook"] for r in every}, path)
            if not notebooks:
                raise PublishError(f"nbflow publish: no runs recorded for {given} (run a notebook there first)")
            for notebook in notebooks:
                if notebook in found:
                    continue
                pipeline = found[notebook] = Pipeline(notebook=notebook, config=config)
                pipeline.runs = sorted((r for r in every if Path(r["notebook"]) == notebook), key=lambda r: r["id"])
                for run in pipeline.runs:
                    steps = pipeline.steps[run["id"]] = store.steps(run["id"])
                    pipeline.fingerprints[run["id"]] = _run_fingerprint(config, store, run, steps)
                pipeline.sweeps = store.sweeps(notebook)
        finally:
            store.close()
    pipelines = sorted(found.values(), key=lambda p: (p.notebook.stem.lower(), str(p.notebook)))
    used: set[str] = set()
    for p in pipelines:
        base = re.sub(r"[^A-Za-z0-9_.-]+", "-", p.notebook.stem).strip("-.") or "pipeline"
        slug, n = base, 1
        while slug.lower() in used:
            n += 1
            slug = f"{base}-{n}"
        used.add(slug.lower())
        p.slug = slug
    return pipelines


# ======================================================================= the writer


@dataclass
class PublishResult:
    """What a publish did, page by page (paths relative to the site)."""

    site: Path
    written: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    #: page -> why it could not be rendered
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def index(self) -> Path:
        return self.site / "index.html"

    def summary(self) -> str:
        text = (
            f"{len(self.written)} new, {len(self.updated)} updated, {len(self.unchanged)} unchanged"
            f"{f', {len(self.removed)} removed' if self.removed else ''} pages"
        )
        return text + (f"; {len(self.failed)} could not be written" if self.failed else "")


class SiteWriter:
    """Writes pages into a site folder only when they changed, and keeps its manifest."""

    def __init__(self, site: Path) -> None:
        self.site = site
        self.result = PublishResult(site)
        manifest = site / MANIFEST
        self.previous: dict[str, dict[str, Any]] = {}
        if manifest.is_file():
            try:
                self.previous = dict(json.loads(manifest.read_text(encoding="utf-8"))["pages"])
            except (ValueError, KeyError, TypeError, OSError):
                raise PublishError(f"nbflow publish: {manifest} is damaged; publish into a new folder") from None
        elif site.is_dir() and any(site.iterdir()):
            raise PublishError(
                f"nbflow publish: {site} is not empty and is not a site nbflow published (no {MANIFEST}); "
                "choose a new or empty folder"
            )
        self.pages: dict[str, dict[str, Any]] = {}

    def fresh(self, rel: str, inputs: str) -> bool:
        """Whether ``rel`` already holds the page made from ``inputs`` (then it is kept as it is)."""
        before = self.previous.get(rel)
        if before and before.get("inputs") == inputs and _size(self.site / rel) == before.get("size"):
            self.pages[rel] = before
            self.result.unchanged.append(rel)
            return True
        return False

    def put(self, rel: str, inputs: str, html: str | None, error: str = "") -> None:
        """Write ``html`` as ``rel`` unless the file holds it already; ``None``: it could not be made (``error``)."""
        path = self.site / rel
        if html is None:
            self.result.failed[rel] = error
            if rel in self.previous:  # keep the page it had rather than lose it
                self.pages[rel] = self.previous[rel]
            return
        data = html.encode("utf-8")
        digest = hashlib.sha256(data).hexdigest()
        self.pages[rel] = {"inputs": inputs, "size": len(data), "sha256": digest}
        if _size(path) == len(data) and hashlib.sha256(path.read_bytes()).hexdigest() == digest:
            self.result.unchanged.append(rel)
            return
        (self.result.updated if path.exists() else self.result.written).append(rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, data, perms=0o644)

    def page(self, rel: str, inputs: str, render: Callable[[], str]) -> None:
        """Make ``rel`` hold what ``render()`` returns for ``inputs`` (not rendered if it already does)."""
        if self.fresh(rel, inputs):
            return
        try:
            html = render()
        except NbflowError as e:
            self.put(rel, inputs, None, str(e))
            return
        self.put(rel, inputs, html)

    def finish(self) -> PublishResult:
        """Remove the pages nbflow wrote before that are gone now; write the manifest."""
        for rel in sorted(set(self.previous) - set(self.pages)):
            path = self.site / rel
            if path.is_file():
                path.unlink()
                self.result.removed.append(rel)
        manifest = json.dumps({"format": SITE_FORMAT, "pages": self.pages}, indent=1, sort_keys=True)
        target = self.site / MANIFEST
        if not target.is_file() or target.read_text(encoding="utf-8") != manifest:
            self.site.mkdir(parents=True, exist_ok=True)
            atomic_write_text(target, manifest, perms=0o644)
        return self.result


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


# ========================================================================= the pages


@functools.cache
def _environment() -> Any:
    import jinja2

    from .report import TEMPLATES
    from .view import STATES

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["when"] = _when
    env.filters["seconds"] = _seconds
    env.filters["colour"] = lambda state: (STATES.get(state) or STATES["pending"]).colour
    return env


def _when(timestamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp)) if timestamp else ""


def _seconds(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.2f} s" if value < 60 else f"{int(value // 60)} min {value % 60:.0f} s"


def _markup(text: str) -> Any:
    import markupsafe

    return markupsafe.Markup(text)  # noqa: S704 - Bokeh's own output and nbflow's script


def _page_variables(scripts: list[str], embed: str, generated: float | None) -> dict[str, Any]:
    from . import __version__
    from .report import content_policy

    return {
        "version": __version__,
        "trusted": False,
        "csp": content_policy([*scripts, embed]),
        "scripts": [_markup(js.replace("</script", "<\\/script")) for js in scripts],
        "embed_script": _markup(embed),
        "generated": _when(generated),
    }


def _duration(run: Mapping[str, Any]) -> float | None:
    if run["started"] and run["finished"]:
        return float(run["finished"] - run["started"])
    return None


def parameter_text(params: Mapping[str, Any]) -> str:
    """``lr=0.5, n=3``: a run's parameters on one line."""
    return ", ".join(f"{k}={json.dumps(v, default=repr)}" for k, v in params.items())


def run_row(pipeline: Pipeline, run: Mapping[str, Any], previous: Mapping[str, Any] | None, prefix: str) -> dict:
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


def _rows(pipeline: Pipeline, prefix: str) -> list[dict[str, Any]]:
    rows, previous = [], None
    for run in pipeline.runs:
        rows.append(run_row(pipeline, run, previous, prefix))
        previous = run
    return rows[::-1]  # newest first


def _latest(pipelines: Iterable[Pipeline]) -> float | None:
    stamps = [r["finished"] or r["started"] or r["created"] for p in pipelines for r in p.runs]
    return max(stamps) if stamps else None


def render_index(pipelines: list[Pipeline]) -> str:
    """The site's front page: the pipelines, then every run of every pipeline."""
    script = SCRIPT.read_text(encoding="utf-8")
    rows = sorted((r for p in pipelines for r in _rows(p, "")), key=lambda r: (-(r["when"] or 0), r["pipeline"]))
    summaries = []
    for p in pipelines:
        last = p.runs[-1] if p.runs else None
        summaries.append(
            {
                "slug": p.slug,
                "notebook": p.notebook,
                "runs": len(p.runs),
                "sweeps": len(p.sweeps),
                "last": last,
            }
        )
    return (
        _environment()
        .get_template("site_index.html.j2")
        .render(
            pipelines=summaries,
            rows=rows,
            statuses=sorted({r["status"] for r in rows}),
            **_page_variables([script], "", _latest(pipelines)),
        )
    )


def render_pipeline_page(pipeline: Pipeline) -> str:
    """One pipeline's page: its runs (sortable, filterable), sweeps and history link."""
    script = SCRIPT.read_text(encoding="utf-8")
    rows = _rows(pipeline, "../")
    return (
        _environment()
        .get_template("site_pipeline.html.j2")
        .render(
            pipeline=pipeline,
            rows=rows,
            statuses=sorted({r["status"] for r in rows}),
            **_page_variables([script], "", _latest([pipeline])),
        )
    )


def step_history(pipeline: Pipeline, metrics: Sequence[str] = ()) -> dict[str, Any]:
    """Per step, its duration in each run; per chosen scalar, its value in each run.

    Scalars come from the cache manifests of the runs' step entries (never unpickled):
    ``metrics`` names them (``accuracy`` or ``evaluate.accuracy``); by default every
    numeric scalar found, up to ``MAX_METRICS``.
    """
    from .errors import CacheCorrupt

    cache = pipeline.config.cache()
    steps: dict[str, dict[int, float]] = {}
    values: dict[str, dict[int, float]] = {}
    manifests: dict[tuple[str, str], Mapping[str, Any]] = {}
    for run in pipeline.runs:
        for row in pipeline.steps[run["id"]]:
            durations = steps.setdefault(row["step"], {})
            if row["status"] == "done" and row["duration"] is not None:
                durations[run["id"]] = float(row["duration"])
            if not row["key"] or row["status"] not in ("done", "cached"):
                continue
            names = manifests.get((row["step"], row["key"]))
            if names is None:
                try:
                    entry = cache.lookup(row["step"], row["key"])
                except CacheCorrupt:
                    entry = None
                names = manifests[(row["step"], row["key"])] = dict(entry.names) if entry is not None else {}
            for name, info in names.items():
                label = f"{row['step']}.{name}"
                if "scalar" not in info or (metrics and name not in metrics and label not in metrics):
                    continue
                try:
                    number = float(info["scalar"])
                except (TypeError, ValueError):
                    continue
                values.setdefault(label, {})[run["id"]] = number
    chosen = sorted(values) if metrics else sorted(values)[:MAX_METRICS]
    return {"steps": steps, "metrics": {m: values[m] for m in chosen}, "more": max(0, len(values) - len(chosen))}


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


def render_history(pipeline: Pipeline, history: Mapping[str, Any]) -> str:
    """The page of a pipeline's per-step history (Bokeh charts and a table)."""
    from .report import bokeh_parts

    figures = history_figures(history)
    parts = bokeh_parts(figures)
    runs = [r["id"] for r in pipeline.runs]
    page = _page_variables(parts.scripts, parts.embed, _latest([pipeline]))
    return (
        _environment()
        .get_template("site_history.html.j2")
        .render(
            pipeline=pipeline,
            runs=runs,
            history=history,
            durations=_markup(parts.divs["durations"]),
            charts=[(m, _markup(parts.divs[f"metric-{n}"])) for n, m in enumerate(history["metrics"])],
            styles=_markup("".join(f"<style>{css}</style>" for css in parts.styles)),
            **page,
        )
    )


# ========================================================================= the API


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
    from .report import _require_extra

    _require_extra()
    site = Path(site).resolve()
    if site.exists() and not site.is_dir():
        raise PublishError(f"nbflow publish: {site} is a file; give a folder for the site")
    pipelines = collect_pipelines(paths)
    for p in pipelines:
        if site == p.config.home or site.is_relative_to(p.config.home):
            raise PublishError(f"nbflow publish: {site} is inside nbflow's own folder {p.config.home}")
    writer = SiteWriter(site)
    tasks: list[tuple[str, str, tuple]] = []
    for p in pipelines:
        tasks += _stale_run_pages(writer, p, trusted)
    _render_tasks(writer, tasks, jobs)
    for p in pipelines:
        history = step_history(p, metrics)
        writer.page(
            f"{p.slug}/history.html",
            _fingerprint("history", list(metrics), history, [r["id"] for r in p.runs]),
            lambda p=p, history=history: render_history(p, history),
        )
        writer.page(
            f"{p.slug}/index.html",
            _fingerprint("pipeline", str(p.notebook), _rows(p, "../"), p.sweeps),
            lambda p=p: render_pipeline_page(p),
        )
    index_rows = [(_rows(p, ""), str(p.notebook), len(p.sweeps)) for p in pipelines]
    writer.page("index.html", _fingerprint("index", index_rows), lambda: render_index(pipelines))
    return writer.finish()


def _stale_run_pages(writer: SiteWriter, p: Pipeline, trusted: bool) -> list[tuple[str, str, tuple]]:
    """``(page, inputs, task)`` of the pipeline's reports, comparisons and sweep pages that must be rendered."""
    wanted = []
    previous = None
    for run in p.runs:
        rid = run["id"]
        wanted.append(
            (
                f"{p.slug}/runs/{rid}.html",
                _fingerprint("report", p.fingerprints[rid], trusted),
                ("report", rid, trusted),
            )
        )
        if previous is not None:
            pid = previous["id"]
            inputs = _fingerprint("compare", p.fingerprints[pid], p.fingerprints[rid])
            wanted.append((f"{p.slug}/compare/{pid}-{rid}.html", inputs, ("compare", pid, rid)))
        previous = run
    for sweep in p.sweeps:
        inputs = _fingerprint("sweep", dict(sweep), [p.fingerprints.get(r) for r in sorted(sweep["runs"])])
        wanted.append((f"{p.slug}/sweeps/{sweep['id']}.html", inputs, ("sweep", dict(sweep))))
    return [(rel, inputs, (p.config, *task)) for rel, inputs, task in wanted if not writer.fresh(rel, inputs)]


def _render_tasks(writer: SiteWriter, tasks: list[tuple[str, str, tuple]], jobs: int | None) -> None:
    import multiprocessing
    import os
    import threading
    from concurrent.futures import ProcessPoolExecutor

    jobs = min(os.cpu_count() or 1, 4) if jobs is None else max(1, jobs)
    if jobs == 1 or len(tasks) < 4:
        try:
            for rel, inputs, task in tasks:
                writer.put(rel, inputs, *render_task(task))
        finally:
            _close_stores()
        return
    # fork is cheap (nothing to import again) and safe while this process has one thread
    method = "fork" if threading.active_count() == 1 and os.name == "posix" else "spawn"
    chunk = max(1, len(tasks) // (jobs * 4))  # neighbours share a worker: a report, then its comparison
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context(method)) as pool:
        for (rel, inputs, _), (html, error) in zip(
            tasks, pool.map(render_task, [t for _, _, t in tasks], chunksize=chunk), strict=True
        ):
            writer.put(rel, inputs, html, error)


#: Per process: open run stores, and the last few collected runs (a report, then its comparison).
_STORES: dict[Path, Any] = {}
_RECORDS: dict[tuple[Path, int], Any] = {}


def _record(config: Config, run_id: int) -> Any:
    from .report import collect_run

    key = (config.store_path, run_id)
    if key not in _RECORDS:
        if config.store_path not in _STORES:
            _STORES[config.store_path] = config.open_store(reconcile=False)
        _RECORDS[key] = collect_run(config, run_id, _STORES[config.store_path], config.cache())
        while len(_RECORDS) > 4:
            _RECORDS.pop(next(iter(_RECORDS)))
    return _RECORDS[key]


def _close_stores() -> None:
    for store in _STORES.values():
        store.close()
    _STORES.clear()
    _RECORDS.clear()


def render_task(task: tuple) -> tuple[str | None, str]:
    """One page made from the run store -- ``(config, "report", run, trusted)``, ``(config,
    "compare", a, b)`` or ``(config, "sweep", sweep)`` -- as ``(html, "")``, or ``(None, why)``."""
    from .report import render_comparison, render_report, render_sweep
    from .sweep import summary_rows

    config, kind, *args = task
    try:
        if kind == "report":
            return render_report(_record(config, args[0]), trusted=args[1]), ""
        if kind == "compare":
            return render_comparison(config, _record(config, args[0]), _record(config, args[1])), ""
        return render_sweep(args[0], summary_rows(config, args[0]["id"])), ""
    except NbflowError as e:
        return None, str(e)


__all__ = [
    "PublishError",
    "PublishResult",
    "collect_pipelines",
    "publish_site",
    "step_history",
]
