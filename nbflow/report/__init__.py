"""Run reports: one self-contained HTML file per run, and a comparison of two runs.

``build_report(config, run_id)`` writes ``<runs>/<id>/report.html``: the pipeline's title
and description, the run's status, parameters (marking those that differ from the
notebook's defaults), provenance, the graph coloured by outcome and a timeline (Bokeh),
then one section per step with its documentation, code, why it ran or was cached, its
duration, its outputs as they appeared, and its error. ``build_comparison`` writes what
differs between two runs. Both open with the network cut: Bokeh's JavaScript, the
notebook CSS and every image are inside the file, nothing refers to a URL.

Where the data comes from (a run is reported as it was, not as the notebook is now):

* the run store: parameters, provenance, status and times of the run and each step;
* the run's executed notebook (``<runs>/<id>/output.ipynb``), when some step ran: the
  pipeline as it was, code and outputs (cached steps' outputs were filled in);
* otherwise the notebook, if its content hash is the run's, with outputs from the cache;
  if it changed since, a step's code is shown only when its normalised code hash is the
  one in the step's cache entry, and the report says so;
* the cache entries' manifests: value types and small scalars (never unpickled).

Safety: cell outputs (and markdown) may carry HTML and JavaScript. By default they go
through nbconvert's ``SanitizeHTML`` preprocessor, the one nbconvert offers for
untrusted notebooks, configured here to keep tables, images and text formatting but no
script, style, event handler, ``javascript:`` link or external resource; JavaScript
outputs are dropped. ``trusted=True`` keeps outputs as they are (nbconvert's own
rendering, scripts included).

Rendering: cells with nbconvert's JupyterLab template (Pygments highlighting, ANSI
colours, images as data URIs), charts with Bokeh (``INLINE`` resources), the page with
Jinja2 templates in ``nbflow/report_templates/``. Panel is not used: its saved pages still
load stylesheets from a CDN, and its shadow-DOM panes break in-page links and the
``document.getElementById`` lookups of trusted outputs.

The package, by concern: ``records.py`` (the data of a run), ``cells.py`` (cells and
markdown as HTML, the sanitizer), ``figures.py`` (Bokeh charts), ``templating.py`` (the
one Jinja2 environment and page policy of every nbflow page), ``pages.py`` (the report
pages), ``overlap.py`` (their nbconvert half in a forked process while this one draws
the charts), ``site.py`` (the pages of a published site: index, pipeline, history); this
module writes the files and is the API.

This package reads the store, notebooks and cache manifests and writes one file; it
never runs a step, changes the cache or loads a pickle.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import NbflowError, PipelineError
from ..fsutil import atomic_write_text
from .cells import CellRenderer, sanitizer, unsafe_parts
from .figures import (
    MARKERS,
    BokehParts,
    bokeh_parts,
    durations_figure,
    graph_figure,
    graph_nodes_and_edges,
    sweep_figure,
    timeline_figure,
)
from .fingerprints import report_inputs, run_fingerprint
from .overlap import CellsElsewhere
from .pages import ReportCells, render_comparison, render_report, render_sweep, report_cells
from .records import UNKNOWN, RunRecord, StepRecord, collect_run, open_store
from .templating import TEMPLATES, content_policy, use_template_cache

if TYPE_CHECKING:
    from ..config import Config
    from ..store import RunStore

__all__ = [
    "MARKERS",
    "TEMPLATES",
    "UNKNOWN",
    "BokehParts",
    "CellRenderer",
    "CellsElsewhere",
    "ReportCells",
    "RunRecord",
    "StepRecord",
    "bokeh_parts",
    "build_comparison",
    "build_report",
    "build_sweep_report",
    "collect_run",
    "content_policy",
    "durations_figure",
    "graph_figure",
    "graph_nodes_and_edges",
    "open_store",
    "recorded_report",
    "render_comparison",
    "render_report",
    "render_sweep",
    "report_cells",
    "sanitizer",
    "sweep_figure",
    "timeline_figure",
    "unsafe_parts",
]


def _require_extra() -> None:
    import importlib.util

    missing = [
        m
        for m in ("bokeh", "nbconvert", "bleach", "tinycss2", "jinja2", "html5lib")
        if importlib.util.find_spec(m) is None
    ]
    if missing:
        raise NbflowError(f"nbflow report needs {', '.join(missing)}: install them with pip install 'nbflow[report]'")


def _write(path: Path, html: str, private: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # The default place is inside .nbflow (private, like the executed notebook); a file
    # the user names is meant to be shared.
    atomic_write_text(path, html, perms=0o600 if private else 0o644)


def build_report(
    config: Config, run_id: int, *, output: Path | None = None, trusted: bool = False, jobs: int = 1
) -> Path:
    """Write the self-contained HTML report of run ``run_id``; return its path.

    The default path is ``<runs>/<run_id>/report.html`` (recorded in the run store as
    the run's ``report`` artifact). Outputs are sanitized unless ``trusted``. The page
    names the fingerprint of what it was made from (``fingerprints.py``), so ``nbflow
    publish`` takes it as it is while the run has not changed since. ``jobs=2``: the
    cells are rendered by a forked process while this one draws the charts
    (``overlap.py``; the command line's choice, never a server's).
    """
    _require_extra()
    use_template_cache(config.home)
    store = open_store(config)
    try:
        made_from = _report_inputs(config, store, int(run_id), trusted)
        record = collect_run(config, int(run_id), store, config.cache())
        if made_from != _report_inputs(config, store, int(run_id), trusted):
            made_from = ""  # the run moved on while it was read: the page is of no one state
        with CellsElsewhere({run_id: (record, trusted)} if jobs != 1 else {}) as elsewhere:
            html = render_report(record, trusted=trusted, made_from=made_from, cells=lambda: elsewhere.get(run_id))
        path = Path(output) if output is not None else config.runs_dir / str(run_id) / "report.html"
        _write(path, html, private=output is None)
        store.add_artifact(int(run_id), "report", path.resolve())
    finally:
        store.close()
    return path


def _report_inputs(config: Config, store: RunStore, run_id: int, trusted: bool) -> str:
    run = store.run(run_id)
    return report_inputs(run_fingerprint(config, store, run), trusted) if run is not None else ""


def recorded_report(notebook: str | Path, run_id: int) -> Path | None:
    """The report file recorded for run ``run_id`` of ``notebook``, or ``None``.

    ``None`` unless the run is in the run store of ``notebook``'s nbflow home, belongs
    to that notebook, has a ``report`` artifact, and that file exists. The one lookup
    every view that serves reports uses: a report is found by run id, never by a path
    from the request. Read-only: it neither reconciles nor writes the store.
    """
    from ..config import Config

    if not 0 <= int(run_id) < 2**63:  # not an id any run store holds
        return None
    notebook = Path(notebook).resolve()
    config = Config.for_notebook(notebook)
    if not config.store_path.is_file():
        return None
    store = config.open_store(reconcile=False)
    try:
        record = store.run(int(run_id))
        if record is None or Path(record["notebook"]).resolve() != notebook:
            return None
        recorded = store.artifacts(int(run_id)).get("report")
    finally:
        store.close()
    if not recorded:
        return None
    path = Path(recorded)
    return path if path.is_file() else None


def build_comparison(
    config: Config, run_a: int, run_b: int, *, output: Path | None = None, trusted: bool = False
) -> Path:
    """Write an HTML page of what differs between runs ``run_a`` and ``run_b``; return its path.

    The default path is ``<runs>/<run_b>/compare-<run_a>.html``. The comparison shows no
    cell outputs, so ``trusted`` changes nothing; it is accepted for symmetry.
    """
    _require_extra()
    store = open_store(config)
    cache = config.cache()
    try:
        a = collect_run(config, int(run_a), store, cache)
        b = collect_run(config, int(run_b), store, cache)
    finally:
        store.close()
    html = render_comparison(config, a, b)
    path = Path(output) if output is not None else config.runs_dir / str(run_b) / f"compare-{run_a}.html"
    _write(path, html, private=output is None)
    return path


# ====================================================================== sweeps


def build_sweep_report(
    config: Config, sweep_id: int, *, output: Path | None = None, names: Iterable[str] | None = None
) -> Path:
    """Write the summary of sweep ``sweep_id``: parameters -> chosen outputs, one chart per output.

    Default path: ``<runs>/sweep-<id>.html``. Each row links to its run's report when it
    has been written.
    """
    from ..sweep import summary_rows

    _require_extra()
    rows = summary_rows(config, sweep_id, names)
    store = open_store(config)
    try:
        sweep = store.sweep(sweep_id)
        if sweep is None:
            raise PipelineError(f"no sweep {sweep_id} in {config.home}")
    finally:
        store.close()
    html = render_sweep(sweep, rows)
    path = Path(output) if output is not None else config.runs_dir / f"sweep-{sweep_id}.html"
    _write(path, html, private=output is None)
    return path
