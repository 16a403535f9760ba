"""Parameter sweeps: one ordinary run per combination of parameter values.

``nbflow sweep nb.ipynb -p lr 0.01 0.1 -p depth 3 5`` runs the 2 x 2 grid (``--zip``
pairs the lists instead). Nothing special is needed to share work: a step that does
not read a swept parameter has the same key in every combination, so it runs in the
first and is cached in the others — the upstream of a sweep runs once.

With a parallel executor (Dask) the first combination runs alone, to fill the cache
with the shared steps, and the others run at the same time on the same cluster.

The summary (``summary_rows``) reads the scalar values recorded in each run's cache
manifests (``{"scalar": repr}``, written when the values were cached), so it needs no
unpickling: a table of parameters -> chosen outputs per run.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import ParameterError

if TYPE_CHECKING:
    from .executors import Executor
    from .graph import Pipeline
    from .run import Run


def combinations(grid: Mapping[str, Sequence[Any]], zip_: bool = False) -> list[dict[str, Any]]:
    """The parameter sets of a sweep: the grid's product, or its lists zipped."""
    names = list(grid)
    if not names:
        return [{}]
    lists = [list(grid[n]) for n in names]
    if any(not values for values in lists):
        raise ParameterError("every swept parameter needs at least one value")
    if zip_:
        lengths = {len(v) for v in lists}
        if len(lengths) != 1:
            raise ParameterError(
                f"--zip pairs the lists, which must have the same length (got {', '.join(map(str, map(len, lists)))})"
            )
        rows = zip(*lists, strict=True)
    else:
        rows = itertools.product(*lists)
    return [dict(zip(names, row, strict=True)) for row in rows]


@dataclass
class Sweep:
    """A sweep in progress or finished: its id, parameter sets and runs."""

    id: int
    pipeline: Pipeline
    params: list[dict[str, Any]]
    runs: list[Run] = field(default_factory=list)

    @property
    def status(self) -> str:
        statuses = {r.status for r in self.runs}
        if not self.runs or statuses & {"pending", "running"}:
            return "running"
        for status in ("cancelled", "failed", "interrupted"):
            if status in statuses:
                return status
        return "done"


def run_sweep(
    pipeline: Pipeline,
    grid: Mapping[str, Sequence[Any]],
    *,
    raw: Mapping[str, Sequence[str]] | None = None,
    zip_: bool = False,
    executor: str | Executor | None = None,
    parallel: bool | None = None,
    on_run: Callable[[Run, dict[str, Any]], None] | None = None,
    **options: Any,
) -> Sweep:
    """Run every parameter set of ``grid`` and wait for all; return the ``Sweep``.

    Every value is checked against its parameter's default before anything runs.
    ``raw`` holds the texts typed on the command line, per parameter and position.
    ``parallel`` (default: when the executor can run several things at once) runs all
    but the first combination at the same time. ``on_run`` is called as each run starts.
    """
    from .executors import get_executor
    from .parameters import resolve_parameters
    from .run import start_run

    sets = combinations(grid, zip_)
    raw_sets = combinations(raw, zip_) if raw else [{} for _ in sets]
    for values, texts in zip(sets, raw_sets, strict=True):
        resolve_parameters(pipeline.parameters, values, texts, pipeline.path)
    chosen = get_executor(executor or pipeline.config.executor)
    if parallel is None:
        parallel = chosen.name != "kernel"
    store = pipeline.config.open_store()
    sweep_id = store.create_sweep(pipeline.path, grid={k: list(v) for k, v in grid.items()}, zip_=zip_)
    sweep = Sweep(sweep_id, pipeline, sets)
    lock = threading.Lock()

    def one(values: dict[str, Any], texts: dict[str, str]) -> None:
        run = start_run(pipeline, values, raw=texts, executor=chosen, **options)
        with lock:
            sweep.runs.append(run)
            store.add_sweep_run(sweep_id, run.id, values)
        if on_run is not None:
            on_run(run, values)
        run.wait()

    pairs = list(zip(sets, raw_sets, strict=True))
    one(*pairs[0])
    if parallel and len(pairs) > 1:
        threads = [threading.Thread(target=one, args=pair, name="nbflow-sweep") for pair in pairs[1:]]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    else:
        for pair in pairs[1:]:
            one(*pair)
    sweep.runs.sort(key=lambda r: r.id)
    store.close()
    return sweep


def scalar_outputs(config: Any, run_id: int, names: Iterable[str] | None = None) -> dict[str, str]:
    """``{"step.value": repr}`` of the scalar values a run's steps produced.

    ``names`` chooses values (``accuracy`` or ``evaluate.accuracy``); by default, the
    scalars of the steps nothing depends on.
    """
    from .errors import CacheCorrupt

    store = config.open_store()
    steps = store.steps(run_id)
    store.close()
    cache = config.cache()
    wanted = list(names or [])
    found: dict[str, str] = {}
    leaves = _leaf_steps(config, run_id) if not wanted else None
    for row in steps:
        if not row["key"] or (leaves is not None and row["step"] not in leaves):
            continue
        try:
            entry = cache.lookup(row["step"], row["key"])
        except CacheCorrupt:
            continue
        if entry is None:
            continue
        for value, info in entry.names.items():
            if "scalar" not in info:
                continue
            label = f"{row['step']}.{value}"
            if wanted and value not in wanted and label not in wanted:
                continue
            found[label] = info["scalar"]
    return found


def _leaf_steps(config: Any, run_id: int) -> set[str] | None:
    from .graph import load_pipeline

    store = config.open_store()
    run = store.run(run_id)
    store.close()
    try:
        pipeline = load_pipeline(run["notebook"], config)
    except Exception:  # noqa: BLE001 - the notebook moved or changed shape: show every step's scalars
        return None
    return {s for s in pipeline.order if not pipeline.dependants(s)}


def summary_rows(config: Any, sweep_id: int, names: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """One row per run of a sweep: run id, status, parameters, chosen scalar outputs."""

    store = config.open_store()
    rows = []
    for entry in store.sweep_runs(sweep_id):
        run = store.run(entry["run_id"])
        rows.append(
            {
                "run": entry["run_id"],
                "status": run["status"] if run else "?",
                "params": entry["params"],
                "outputs": scalar_outputs(config, entry["run_id"], names),
            }
        )
    store.close()
    return rows
