"""The core API every view calls: plan a pipeline, start a run, follow it.

``plan_pipeline`` resolves parameters, hashes declared input files, computes keys and
asks the cache what exists. It is the one place the CLI, the widget, the studio and
the REST API get a plan from.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .cache import Cache, file_sha256
from .parameters import resolve_parameters
from .plan import Plan, compute_plan, step_keys

if TYPE_CHECKING:
    from .graph import Pipeline


def input_file_hashes(pipeline: Pipeline) -> dict[str, str]:
    """SHA-256 of every ``in:`` file (relative to the notebook's folder), or ``missing``."""
    hashes = {}
    folder = pipeline.path.parent
    for step in pipeline.steps.values():
        for name in step.in_files:
            if name not in hashes:
                try:
                    hashes[name] = file_sha256(folder / name)
                except OSError:
                    hashes[name] = "missing"
    return hashes


def pipeline_cache(pipeline: Pipeline) -> Cache:
    assert pipeline.config is not None, "use nbflow.load_pipeline(), which attaches a Config"
    return Cache(pipeline.config.cache_dir)


def plan_pipeline(
    pipeline: Pipeline,
    params: Mapping[str, Any] | None = None,
    *,
    raw: Mapping[str, str] | None = None,
    force: Iterable[str] = (),
    force_all: bool = False,
    only: Iterable[str] = (),
    from_: Iterable[str] = (),
    cache: Cache | None = None,
) -> Plan:
    """The plan of a run of ``pipeline`` with ``params`` (nothing is executed).

    ``raw`` holds parameter values as typed on a command line (see
    ``parameters.resolve_parameters``).
    """
    values = resolve_parameters(pipeline.parameters, params, raw, pipeline.path)
    pipeline.check_steps(force, "--force")
    pipeline.check_steps(from_, "--from")
    cache = cache or pipeline_cache(pipeline)
    parts = step_keys(pipeline, values, input_file_hashes(pipeline))
    return compute_plan(
        pipeline,
        values,
        parts,
        cache.lookup,
        cache.latest,
        force=force,
        force_all=force_all,
        only=only,
        from_=from_,
    )


def notebook_folder(path: str | Path) -> Path:
    return Path(path).resolve().parent
