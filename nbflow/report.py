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

This module reads the store, notebooks and cache manifests and writes one file; it
never runs a step, changes the cache or loads a pickle.
"""

from __future__ import annotations

import copy
import json
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import CacheCorrupt, NbflowError, PipelineError, did_you_mean
from .fsutil import atomic_write_text
from .view import LAYER_GAP_Y, NODE_WIDTH, STATES, graph_model, layered_positions

if TYPE_CHECKING:
    from .cache import Cache, Entry
    from .config import Config
    from .graph import Pipeline
    from .store import RunStore

TEMPLATES = Path(__file__).with_name("report_templates")

#: Bokeh markers for the node shapes of ``view.STATES`` (grey-scale readable).
MARKERS = {"round-rectangle": "square", "round-hexagon": "hex", "octagon": "circle_x", "round-diamond": "diamond"}

#: Value of a parameter whose default is unknown (the run's notebook is gone).
UNKNOWN = object()


# ============================================================================ the data


@dataclass
class StepRecord:
    """One step of a recorded run, with what the report shows about it."""

    name: str
    status: str
    key: str | None
    reasons: list[str]
    started: float | None
    finished: float | None
    duration: float | None
    error: str
    traceback: str
    docs: str = ""
    cell_number: int | None = None
    #: nbformat code cells (source and outputs) as they ran or were restored.
    cells: list[dict[str, Any]] = field(default_factory=list)
    #: Shown when code or outputs are not the run's own (notebook changed, entry gone).
    note: str = ""
    code_shown: bool = True
    #: upstream step -> value names it passes
    deps: dict[str, list[str]] = field(default_factory=dict)
    entry: Entry | None = None
    #: For a ``map:`` step: its elements (``item``, ``label``, ``status``, ``duration``, ``error``).
    items: list[dict[str, Any]] = field(default_factory=list)

    @property
    def item_summary(self) -> str:
        """``"5 elements: 4 cached, 1 done"`` for a ``map:`` step, else ``""``."""
        if not self.items:
            return ""
        counts: dict[str, int] = {}
        for item in self.items:
            counts[item["status"]] = counts.get(item["status"], 0) + 1
        return f"{len(self.items)} elements: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))

    @property
    def values(self) -> Mapping[str, Mapping[str, Any]]:
        """The cached values' descriptions (type, summary, small scalar)."""
        return self.entry.names if self.entry is not None else {}

    @property
    def why(self) -> str:
        if self.reasons:
            return "; ".join(self.reasons)
        if self.status == "cached":
            return "fresh: restored from the cache, nothing it depends on changed"
        return ""


@dataclass
class RunRecord:
    """A recorded run and where its details came from."""

    run: dict[str, Any]
    steps: list[StepRecord]
    messages: list[dict[str, Any]]
    artifacts: dict[str, str]
    title: str
    description: str
    #: name -> default in the notebook as it ran (``UNKNOWN`` when it cannot be known)
    defaults: dict[str, Any]
    #: "output notebook", "notebook", "changed notebook" or "store only"
    origin: str
    pipeline: Pipeline | None = None
    saved_layout: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> int:
        return int(self.run["id"])

    @property
    def notebook(self) -> Path:
        return Path(self.run["notebook"])

    @property
    def duration(self) -> float | None:
        if self.run["started"] and self.run["finished"]:
            return float(self.run["finished"] - self.run["started"])
        return None

    @cached_property
    def by_name(self) -> dict[str, StepRecord]:
        return {s.name: s for s in self.steps}

    def counts(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for s in self.steps:
            found[s.status] = found.get(s.status, 0) + 1
        return found

    def changed_parameters(self) -> set[str]:
        """Parameters whose value in this run differs from the notebook's default."""
        changed = set()
        for name, value in self.run["params"].items():
            default = self.defaults.get(name, UNKNOWN)
            if default is not UNKNOWN and _as_stored(default) != value:
                changed.add(name)
        return changed


def _as_stored(value: Any) -> Any:
    # The store keeps parameters as JSON (tuples become lists): compare like with like.
    return json.loads(json.dumps(value, default=repr))


def open_store(config: Config) -> RunStore:
    from .store import RunStore

    if not config.store_path.exists():
        raise PipelineError(f"no runs recorded in {config.home} (run a notebook there first)")
    return RunStore(config.store_path, heartbeat_interval=config.heartbeat_interval)


def collect_run(config: Config, run_id: int, store: RunStore, cache: Cache) -> RunRecord:
    """Everything the report shows about run ``run_id`` (see the module docstring)."""
    run = store.run(run_id)
    if run is None:
        known = [str(r["id"]) for r in store.runs(None, limit=1_000_000)]
        raise PipelineError(f"no run {run_id} in {config.home}{did_you_mean(str(run_id), known)}")
    steps = [
        StepRecord(
            name=s["step"],
            status=s["status"],
            key=s["key"],
            reasons=list(s["reasons"]),
            started=s["started"],
            finished=s["finished"],
            duration=s["duration"],
            error=s["error"] or "",
            traceback=s["traceback"] or "",
        )
        for s in store.steps(run_id)
    ]
    for s in steps:
        s.entry = _entry(cache, s)
        s.items = store.items(run_id, s.name)
    artifacts = store.artifacts(run_id)
    record = RunRecord(
        run=run,
        steps=steps,
        messages=store.messages(run_id),
        artifacts=artifacts,
        title=Path(run["notebook"]).stem,
        description="",
        defaults={name: UNKNOWN for name in run["params"]},
        origin="store only",
    )
    output = Path(artifacts.get("output_notebook") or config.runs_dir / str(run_id) / "output.ipynb")
    if output.is_file() and _from_output_notebook(record, output):
        return record
    _from_notebook(record, config, cache)
    return record


def _entry(cache: Cache, step: StepRecord) -> Entry | None:
    if not step.key:
        return None
    try:
        return cache.lookup(step.name, step.key)
    except CacheCorrupt:
        return None


def _from_output_notebook(record: RunRecord, path: Path) -> bool:
    """Fill ``record`` from the executed notebook; False if it cannot be read."""
    from .graph import build_pipeline
    from .notebook import notebook_from_data

    try:
        data = json.loads(path.read_bytes())
        # papermill's red "an exception was raised" banners are not the author's markdown
        data["cells"] = [
            c for c in data["cells"] if "papermill-error-cell-tag" not in (c.get("metadata") or {}).get("tags", [])
        ]
        pipeline = build_pipeline(notebook_from_data(data, record.notebook))
    except (OSError, ValueError, KeyError, TypeError, NbflowError):
        return False
    injected = [
        i for i, c in enumerate(data["cells"]) if "injected-parameters" in (c.get("metadata") or {}).get("tags", [])
    ]
    _adopt_pipeline(record, pipeline, "output notebook")
    for s in record.steps:
        step = pipeline.steps.get(s.name)
        if step is None:
            continue
        s.cells = [data["cells"][c.index] for c in step.cells]
        # cell numbers as the author counts them, without papermill's injected cell
        s.cell_number = step.cell.number - sum(1 for i in injected if i < step.cell.index)
    return True


def _from_notebook(record: RunRecord, config: Config, cache: Cache) -> None:
    """Fill ``record`` from the notebook (if it is unchanged, or as far as it still matches)."""
    from .graph import load_pipeline
    from .plan import sha256_text

    try:
        pipeline = load_pipeline(record.notebook, config)
    except NbflowError as e:
        for s in record.steps:
            s.code_shown = False
            s.note = f"The notebook cannot be read any more ({e}); code is not shown."
        _deps_from_entries(record)
        return
    same = pipeline.source.content_hash == record.run["notebook_hash"]
    _adopt_pipeline(record, pipeline, "notebook" if same else "changed notebook")
    for s in record.steps:
        step = pipeline.steps.get(s.name)
        outputs = _cached_outputs(cache, s)
        if step is None:
            s.code_shown = False
            s.note = "The notebook has no step of this name any more; code is not shown."
        elif not same and (s.entry is None or s.entry.parts.get("code") != sha256_text(step.code)):
            s.code_shown = False
            s.note = (
                "The notebook has changed since this run and this step's code no longer matches; code is not shown."
            )
        elif not same:
            s.note = (
                "The notebook has changed since this run; this code is from the notebook as it is now, "
                "and is the same code (comments and layout aside) as ran."
            )
        if step is not None:
            s.cell_number = step.cell.number
            cells = pipeline.source.data["cells"]
            kept = outputs or []
            s.cells = [
                {**cells[c.index], "outputs": kept[i] if i < len(kept) else []} for i, c in enumerate(step.cells)
            ]
        elif outputs:
            s.cells = [{"cell_type": "code", "source": "", "metadata": {}, "outputs": o} for o in outputs]
        if outputs is None and s.status in ("done", "cached"):
            s.note = (s.note + " " if s.note else "") + "Its outputs are no longer in the cache."
    if not same:
        _deps_from_entries(record)


def _adopt_pipeline(record: RunRecord, pipeline: Pipeline, origin: str) -> None:
    record.pipeline = pipeline
    record.origin = origin
    record.title = pipeline.source.title
    record.description = pipeline.source.description
    record.saved_layout = pipeline.source.layout
    record.defaults = {
        name: (pipeline.parameters[name].default if name in pipeline.parameters else UNKNOWN)
        for name in {**record.run["params"], **pipeline.parameters}
    }
    for s in record.steps:
        step = pipeline.steps.get(s.name)
        if step is not None:
            s.docs = step.docs
            s.deps = {d: list(pipeline.edge_names.get((d, s.name), ())) for d in pipeline.deps[s.name]}


def _deps_from_entries(record: RunRecord) -> None:
    """Dependencies as the run had them: the upstream steps in each cache entry's key."""
    names = {s.name for s in record.steps}
    for s in record.steps:
        if s.entry is not None:
            upstream = s.entry.parts.get("upstream") or {}
            s.deps = {d: s.deps.get(d, []) for d in upstream if d in names}


def _cached_outputs(cache: Cache, step: StepRecord) -> list[list[dict[str, Any]]] | None:
    if step.entry is None:
        return None
    try:
        return cache.load_outputs(step.entry)
    except CacheCorrupt:
        return None


# ======================================================================= sanitizing


_SAFE_TAGS = (
    "a abbr acronym b blockquote br caption center cite code col colgroup dd del details div dl dt em "
    "figcaption figure h1 h2 h3 h4 h5 h6 hr i img ins kbd li mark ol p pre q s samp small span strong "
    "sub summary sup table tbody td tfoot th thead tr tt u ul var"
).split()
_SAFE_ATTRIBUTES = {"class", "title", "align", "valign", "colspan", "rowspan", "width", "height", "border", "alt"}
#: bleach's CSS allow-list minus ``cursor``, the one property in it that takes a url().
_UNSAFE_CSS = {"cursor"}
_SCRIPT = re.compile(r"<script\b", re.IGNORECASE)
_DROPPED_WITH_CONTENT = re.compile(r"<(script|style)\b[^>]*>.*?</\1\s*>", re.IGNORECASE | re.DOTALL)


def _allowed_attribute(tag: str, name: str, value: str) -> bool:
    # No id or name: an output must not be able to shadow globals (window.<id>) or our anchors.
    if name in _SAFE_ATTRIBUTES or name == "style":
        return True
    if tag == "a" and name == "href":
        return not value.strip().lower().startswith("data:")
    if tag == "img" and name == "src":
        # Only images inside the file: a remote image is a request leaving the page.
        return value.strip().lower().startswith("data:image/")
    return False


def sanitizer() -> Any:
    """nbconvert's ``SanitizeHTML`` preprocessor, configured for reports.

    It drops every output type it does not know to be safe (JavaScript, widgets) and
    cleans HTML and Markdown outputs with bleach, keeping tables, images embedded as
    data URIs and text formatting. The content of ``<script>`` and ``<style>`` is
    removed rather than shown as text (as JupyterLab's sanitizer does).
    """
    import bleach
    from bleach.css_sanitizer import ALLOWED_CSS_PROPERTIES, CSSSanitizer
    from nbconvert.preprocessors.sanitize import SanitizeHTML

    class ReportSanitizer(SanitizeHTML):
        def sanitize_code_outputs(self, outputs: Any) -> Any:
            # HTML that carries scripts (widgets, interactive plots, estimator diagrams)
            # is blank or misleading without them: show its plain-text form instead.
            for output in outputs:
                data = output.get("data") or {}
                html = data.get("text/html")
                if html is not None and "text/plain" in data and _SCRIPT.search(_text(html)):
                    del data["text/html"]
            return super().sanitize_code_outputs(outputs)

        def sanitize_html_tags(self, html_str: str) -> str:
            # The same bleach call as SanitizeHTML's, plus data: among the protocols
            # (images in outputs are data URIs; _allowed_attribute limits it to <img>).
            return bleach.clean(
                _DROPPED_WITH_CONTENT.sub("", html_str),
                tags=self.tags,
                attributes=self.attributes,
                protocols=["http", "https", "mailto", "data"],
                strip=self.strip,
                strip_comments=self.strip_comments,
                css_sanitizer=CSSSanitizer(allowed_css_properties=self.styles),
            )

    return ReportSanitizer(
        tags=_SAFE_TAGS,
        attributes=_allowed_attribute,
        styles=sorted(set(ALLOWED_CSS_PROPERTIES) - _UNSAFE_CSS),
        strip=True,
        # SVG is shown as <img src="data:image/svg+xml..."> where its scripts never run.
        safe_output_keys={
            "metadata",
            "text/plain",
            "text/latex",
            "application/json",
            "image/png",
            "image/jpeg",
            "image/svg+xml",
        },
    )


def unsafe_parts(outputs: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """What the sanitizer removes from ``outputs``: scripts and JavaScript outputs, counted."""
    found = {"script": 0, "javascript": 0}
    for output in outputs:
        data = output.get("data") or {}
        for mime, value in data.items():
            if "javascript" in mime:
                found["javascript"] += 1
            elif mime in ("text/html", "text/markdown"):
                found["script"] += len(_SCRIPT.findall(_text(value)))
    return found


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


# ======================================================================== rendering


class CellRenderer:
    """Cells and markdown to HTML with nbconvert's JupyterLab template."""

    def __init__(self, trusted: bool) -> None:
        from nbconvert import HTMLExporter

        self.trusted = trusted
        self.clean = None if trusted else sanitizer()
        # cells.html.j2 extends lab/base.html.j2, which renders cells only: the page is ours.
        self.exporter = HTMLExporter(
            template_name="lab",
            template_file="cells.html.j2",
            extra_template_paths=[str(TEMPLATES)],
            exclude_input_prompt=True,
            exclude_output_prompt=True,
        )
        _, resources = self.exporter.from_notebook_node(_notebook([]))
        self.css = "\n".join(
            [
                str(resources["include_css"]("static/index.css")),
                str(resources["include_css"]("static/theme-light.css")),
                *(f"<style>{css}</style>" for css in resources["inlining"]["css"]),
            ]
        )
        # The Pygments CSS is in hand: do not recompute it for every step.
        for pre in self.exporter._preprocessors:
            if type(pre).__name__ == "CSSHTMLHeaderPreprocessor":
                pre.enabled = False

    def cells(self, cells: list[dict[str, Any]], metadata: Mapping[str, Any], hide_code: bool = False) -> str:
        """One group of cells (code and outputs) as HTML."""
        return self.sections([(cells, hide_code)], metadata)[0]

    def sections(self, groups: Iterable[tuple[list[dict[str, Any]], bool]], metadata: Mapping[str, Any]) -> list[str]:
        """Groups of ``(cells, hide_code)`` as HTML, one string per group.

        All cells go through nbconvert in one export (one template render, one pass of
        its post-processing), cut apart again at markers no output can forge.
        """
        import secrets

        import nbformat
        from nbformat.v4 import rwbase

        marker = f"nbflow-{secrets.token_hex(8)}-"
        prepared = []
        count = 0
        for index, (cells, hide_code) in enumerate(groups):
            count += 1
            for cell in cells:
                cell = copy.deepcopy(dict(cell))
                cell.pop("id", None)  # nbformat 4.4 cells: no ids to keep unique across sections
                cell["metadata"] = {"nbflow_marker": f"{marker}{index}"}
                cell.setdefault("outputs", [])
                cell.setdefault("execution_count", None)
                if hide_code:
                    cell["metadata"]["transient"] = {"remove_source": True}
                prepared.append(cell)
        html = [""] * count
        if not prepared:
            return html
        # Notebook JSON keeps multi-line text as lists of lines; nbconvert wants strings.
        nb = rwbase.rejoin_lines(nbformat.from_dict(_notebook(prepared, metadata)))
        if self.clean is not None:
            nb, _ = self.clean.preprocess(nb, {})
        body, _ = self.exporter.from_notebook_node(nb)
        pieces = re.split(rf"<!--{re.escape(marker)}(\d+)-->", body)
        for index, piece in zip(pieces[1::2], pieces[2::2], strict=True):
            html[int(index)] += piece
        return html

    def markdown(self, text: str) -> str:
        from nbconvert.filters import markdown2html

        if not text.strip():
            return ""
        html = markdown2html(text)
        return html if self.clean is None else self.clean.sanitize_html_tags(html)


def _notebook(cells: list[dict[str, Any]], metadata: Mapping[str, Any] | None = None) -> Any:
    import nbformat

    meta = dict(metadata or {})
    meta.setdefault("language_info", {"name": "python", "pygments_lexer": "ipython3"})
    return nbformat.from_dict({"nbformat": 4, "nbformat_minor": 4, "metadata": meta, "cells": cells})


def _ansi_html(text: str) -> str:
    from nbconvert.filters import ansi2html

    return ansi2html(text)


def _seconds(value: float | None) -> str:
    if value is None:
        return ""
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.2f} s"
    return f"{int(value // 60)} min {value % 60:.0f} s"


def _when(timestamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(timestamp)) if timestamp else ""


def _anchor(step: str) -> str:
    return f"nbflow-step-{step}"


# ---------------------------------------------------------------------- the graph


def _shown_state(status: str, run_status: str) -> str:
    """The ``view.STATES`` name for a step status (a pending step is queued while the run goes on)."""
    if status == "pending":
        return "queued" if run_status in ("pending", "running") else "interrupted"
    return status


def _style(status: str) -> Any:
    return STATES.get("queued" if status == "pending" else status, STATES["stale"])


def graph_nodes_and_edges(record: RunRecord) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The run's steps as ``view.graph_model`` nodes (state = outcome) and edges."""
    statuses = {s.name: _shown_state(s.status, record.run["status"]) for s in record.steps}
    if record.pipeline is not None and record.origin in ("output notebook", "notebook"):
        model = graph_model(record.pipeline, None, statuses)
        return model["nodes"], model["edges"]
    # The notebook changed or is gone: draw the steps the run had, as it had them.
    order = [s.name for s in record.steps]
    deps = {s.name: list(s.deps) for s in record.steps}
    positions = layered_positions(order, deps, record.saved_layout)
    nodes = [{"id": s.name, "label": s.name, "state": statuses[s.name], **positions[s.name]} for s in record.steps]
    edges = [
        {"id": f"{d}->{s.name}", "source": d, "target": s.name, "names": names, "explicit": False}
        for s in record.steps
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
        data["label"].append(f"{n['id']}{count}\n{n['state']}" + (f" · {duration}" if duration else ""))
        data["duration"].append(duration or "-")
        data["why"].append("; ".join(x for x in ((s.why if s else ""), (s.item_summary if s else "")) if x) or "-")
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
    from bokeh.embed.bundle import _all_objs, bundle_for_objs_and_resources
    from bokeh.resources import INLINE

    bundle = bundle_for_objs_and_resources(figures, INLINE)
    # Bokeh lists the external files of every model class loaded in the process (in the
    # studio, Panel's widgets too); only those of models these figures use are needed.
    needed = set()
    for cls in {type(obj) for obj in _all_objs(figures)}:
        for attr in ("__javascript__", "__css__"):
            files = getattr(cls, attr, None) or []
            needed |= {str(f) for f in ([files] if isinstance(files, str) else files)}
    wanted = [str(f) for f in [*bundle.js_files, *bundle.css_files] if any(str(f).endswith(n) for n in needed)]
    if wanted:
        raise RuntimeError(f"Bokeh wants to load files a report cannot hold: {wanted}")
    embed, divs = components(figures, wrap_script=False)
    return BokehParts(
        scripts=[js.replace("</script", "<\\/script") for js in bundle.js_raw],
        styles=list(bundle.css_raw),
        divs={f.name: d for f, d in zip(figures, divs, strict=True)},
        embed=embed,
    )


def content_policy(scripts: Iterable[str]) -> str:
    """A Content-Security-Policy that lets only ``scripts`` run and nothing be fetched.

    Defence in depth for sanitized reports: even markup the sanitizer missed can
    neither run (no inline handler, no ``javascript:`` URL, no other script) nor load
    anything (images and fonts only from data: URIs, no connections).
    """
    import base64
    import hashlib

    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(js.encode('utf-8')).digest()).decode()}'" for js in scripts
    )
    return (
        f"default-src 'none'; script-src {hashes}; style-src 'unsafe-inline'; img-src data:; font-src data:; "
        "base-uri 'none'; form-action 'none'; frame-src 'none'; connect-src 'none'"
    )


def _page_variables(parts: BokehParts, trusted: bool) -> dict[str, Any]:
    from . import __version__

    scripts = [_markup(js) for js in parts.scripts]
    return {
        "version": __version__,
        "trusted": trusted,
        "csp": None if trusted else content_policy([*parts.scripts, parts.embed]),
        "scripts": scripts,
        "embed_script": _markup(parts.embed),
        "generated": _when(time.time()),
    }


# -------------------------------------------------------------------------- pages


def _environment() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["seconds"] = _seconds
    env.filters["when"] = _when
    env.filters["anchor"] = _anchor
    env.filters["colour"] = lambda state: _style(state).colour
    env.filters["short"] = lambda text, n=12: (text or "")[:n]
    env.filters["pretty"] = lambda value: json.dumps(value, default=repr)
    return env


def _markup(text: str) -> Any:
    import markupsafe

    return markupsafe.Markup(text)  # noqa: S704 - rendered by nbconvert (and sanitized unless trusted)


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
        ("started", _when(run["started"] or run["created"])),
        ("ended", _when(run["finished"]) or "not finished"),
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


def render_report(record: RunRecord, trusted: bool = False) -> str:
    """The HTML page of ``record``."""
    renderer = CellRenderer(trusted)
    metadata = {}
    if record.pipeline is not None:
        metadata = {k: v for k, v in record.pipeline.source.data.get("metadata", {}).items() if k == "language_info"}
    sections = []
    rendered = renderer.sections([(s.cells, not s.code_shown) for s in record.steps], metadata)
    for s, cells in zip(record.steps, rendered, strict=True):
        outputs = [o for c in s.cells for o in c.get("outputs", [])]
        removed = unsafe_parts(outputs) if not trusted else {}
        has_error_output = any(o.get("output_type") == "error" for o in outputs)
        sections.append(
            {
                "step": s,
                "docs": _markup(renderer.markdown(s.docs)),
                "cells": _markup(cells),
                "removed": removed,
                "traceback": _markup(_ansi_html(s.traceback)) if s.traceback and not has_error_output else None,
                "passed": sorted(s.values.items()),
                "missing": sorted(s.entry.missing.items()) if s.entry is not None else [],
            }
        )
    parts = bokeh_parts([graph_figure(record), timeline_figure(record)])
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
    page = (
        _environment()
        .get_template("report.html.j2")
        .render(
            record=record,
            run=record.run,
            title=record.title,
            description=_markup(renderer.markdown(record.description)),
            has_heading=record.description.lstrip().startswith("#"),
            counts=record.counts(),
            parameters=parameters,
            unknown=UNKNOWN,
            provenance=_provenance_rows(record),
            packages=sorted((record.run["provenance"] or {}).get("packages", {}).items()),
            origin_note=_origin_note(record),
            sections=sections,
            legend=[(s, STATES[s]) for s in present],
            notebook_css=_markup(renderer.css + "".join(f"<style>{css}</style>" for css in parts.styles)),
            graph=_markup(parts.divs["graph"]),
            timeline=_markup(parts.divs["timeline"]),
            **_page_variables(parts, trusted),
        )
    )
    return page


def render_comparison(config: Config, a: RunRecord, b: RunRecord) -> str:
    """The HTML page comparing runs ``a`` and ``b`` (the data: ``compare.compare_runs``)."""
    from .compare import ABSENT, compare_runs

    diff = compare_runs(config, a.id, b.id)
    parts = bokeh_parts([durations_figure(a, b)])
    return (
        _environment()
        .get_template("comparison.html.j2")
        .render(
            a=a,
            b=b,
            diff=diff,
            absent=ABSENT,
            durations=_markup(parts.divs["durations"]),
            **_page_variables(parts, trusted=False),
        )
    )


# ======================================================================== the API


def _require_extra() -> None:
    import importlib.util

    missing = [m for m in ("bokeh", "nbconvert", "bleach", "tinycss2", "jinja2") if importlib.util.find_spec(m) is None]
    if missing:
        raise NbflowError(f"nbflow report needs {', '.join(missing)}: install them with pip install 'nbflow[report]'")


def _write(path: Path, html: str, private: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # The default place is inside .nbflow (private, like the executed notebook); a file
    # the user names is meant to be shared.
    atomic_write_text(path, html, perms=0o600 if private else 0o644)


def build_report(config: Config, run_id: int, *, output: Path | None = None, trusted: bool = False) -> Path:
    """Write the self-contained HTML report of run ``run_id``; return its path.

    The default path is ``<runs>/<run_id>/report.html`` (recorded in the run store as
    the run's ``report`` artifact). Outputs are sanitized unless ``trusted``.
    """
    from .cache import Cache

    _require_extra()
    store = open_store(config)
    try:
        record = collect_run(config, int(run_id), store, Cache(config.cache_dir))
        html = render_report(record, trusted=trusted)
        path = Path(output) if output is not None else config.runs_dir / str(run_id) / "report.html"
        _write(path, html, private=output is None)
        store.add_artifact(int(run_id), "report", path.resolve())
    finally:
        store.close()
    return path


def recorded_report(notebook: str | Path, run_id: int) -> Path | None:
    """The report file recorded for run ``run_id`` of ``notebook``, or ``None``.

    ``None`` unless the run is in the run store of ``notebook``'s nbflow home, belongs
    to that notebook, has a ``report`` artifact, and that file exists. The one lookup
    every view that serves reports uses: a report is found by run id, never by a path
    from the request. Read-only: it neither reconciles nor writes the store.
    """
    from .config import Config
    from .store import RunStore

    notebook = Path(notebook).resolve()
    config = Config.for_notebook(notebook)
    if not config.store_path.is_file():
        return None
    store = RunStore(config.store_path, heartbeat_interval=config.heartbeat_interval, reconcile=False)
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
    from .cache import Cache

    _require_extra()
    store = open_store(config)
    cache = Cache(config.cache_dir)
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


def build_sweep_report(
    config: Config, sweep_id: int, *, output: Path | None = None, names: Iterable[str] | None = None
) -> Path:
    """Write the summary of sweep ``sweep_id``: parameters -> chosen outputs, one chart per output.

    Default path: ``<runs>/sweep-<id>.html``. Each row links to its run's report when it
    has been written.
    """
    from .sweep import summary_rows

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
    return (
        _environment()
        .get_template("sweep.html.j2")
        .render(
            sweep=sweep,
            rows=rows,
            params=list(sweep["grid"]),
            outputs=outputs,
            charts=[_markup(parts.divs[f"sweep-{name}"]) for name in numeric],
            notebook=Path(sweep["notebook"]),
            **_page_variables(parts, trusted=False),
        )
    )
