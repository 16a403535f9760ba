"""The data of a run report: what happened in a recorded run, and where each part comes from.

``collect_run(config, run_id, store, cache)`` returns a ``RunRecord``: the run's row,
its steps (``StepRecord``) with code, outputs, reasons and cache-entry descriptions,
taken from the run's executed notebook, else from the notebook when it still matches
(see the package docstring for the order). It reads the store, notebooks and cache
manifests; it never writes, runs a step or loads a pickle, and renders nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import CacheCorrupt, NbflowError, PipelineError, did_you_mean

if TYPE_CHECKING:
    from ..cache import Cache, Entry
    from ..config import Config
    from ..graph import Pipeline
    from ..store import RunStore

#: Value of a parameter whose default is unknown (the run's notebook is gone).
UNKNOWN = object()


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
    def summary(self) -> str:
        """What the step's entry holds, in a few words (``cache.output_summary``)."""
        return str(self.entry.manifest.get("summary") or "") if self.entry is not None else ""

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
    def warned_checks(self) -> set[str]:
        """The ``check-warn:`` checks that warned in this run."""
        from ..graph import is_check

        return {m["step"] for m in self.messages if m.get("step") and is_check(m["step"])}

    def checks_of(self, step: str) -> list[StepRecord]:
        """The recorded checks of ``step`` (``load.check1``...), in order."""
        return [s for s in self.steps if s.name.startswith(step + ".check") and s.name[len(step) + 6 :].isdigit()]

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

    if not config.store_path.exists():
        raise PipelineError(f"no runs recorded in {config.home} (run a notebook there first)")
    return config.open_store()


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
    from ..config import Config
    from ..graph import load_pipeline
    from ..notebook import notebook_from_data

    try:
        data = json.loads(path.read_bytes())
        # papermill's red "an exception was raised" banners are not the author's markdown
        data["cells"] = [
            c for c in data["cells"] if "papermill-error-cell-tag" not in (c.get("metadata") or {}).get("tags", [])
        ]
        source = notebook_from_data(data, record.notebook)
        pipeline = load_pipeline(record.notebook, Config.for_notebook(record.notebook), source=source)
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
    from ..graph import load_pipeline
    from ..plan import sha256_text

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
