"""What a site is made of: the pipelines with recorded runs under the given paths, and a fingerprint per page.

``collect_pipelines(paths)`` reads the run stores once: each pipeline's runs, their step
rows and sweeps, and per run a fingerprint of everything its report shows (the run's
store rows, items, messages and artifacts, its executed notebook's size and time).
(``report.fingerprints``, which also adds nbflow's version and the templates' content,
so a page is rendered again when either changes). ``step_history`` reads the scalars the steps
produced from the cache manifests (never unpickled).

Everything here is cheap (SQLite and small JSON files): a publish decides which pages
are stale from it before anything heavy (Bokeh, nbconvert) is imported. It reads run
stores and cache manifests; it never writes them, renders nothing and loads no pickle.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..report.fingerprints import run_fingerprint
from .writer import PublishError

if TYPE_CHECKING:
    from ..config import Config

#: At most this many scalars get a history chart when none is chosen.
MAX_METRICS = 8


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


def _notebooks_under(store_notebooks: Iterable[str], path: Path) -> list[Path]:
    if path.is_dir():
        return sorted({Path(n) for n in store_notebooks if Path(n).is_relative_to(path)})
    return [path] if str(path) in set(store_notebooks) else []


def collect_pipelines(paths: Sequence[str | Path]) -> list[Pipeline]:
    """The pipelines with recorded runs under ``paths`` (folders or notebooks), each with its runs."""
    from ..config import Config

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
                    pipeline.fingerprints[run["id"]] = run_fingerprint(config, store, run, steps)
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


def step_history(pipeline: Pipeline, metrics: Sequence[str] = ()) -> dict[str, Any]:
    """Per step, its duration in each run; per chosen scalar, its value in each run.

    Scalars come from the cache manifests of the runs' step entries (never unpickled):
    ``metrics`` names them (``accuracy`` or ``evaluate.accuracy``); by default every
    numeric scalar found, up to ``MAX_METRICS``.
    """
    from ..errors import CacheCorrupt

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
