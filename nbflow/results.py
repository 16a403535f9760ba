"""Getting a step's value back in any Python session: ``nbflow.result(nb, step, name)``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import NbflowError


def result(notebook: str | Path, step: str, name: str, run: int | None = None) -> Any:
    """The value ``name`` that ``step`` of ``notebook`` produced.

    From run ``run`` when given, else from the newest run where the step finished
    (``done`` or ``cached``), else for the notebook as it is now with default
    parameters. The cache entry's checksums are verified before anything is unpickled.
    """
    from .graph import load_pipeline
    from .project_context import in_project
    from .run import plan_pipeline

    pipeline = in_project(load_pipeline(notebook))
    pipeline.check_steps([step], "step")
    config = pipeline.config
    store = config.open_store()
    try:
        if run is not None:
            rows = {s["step"]: s for s in store.steps(run)}
            if step not in rows or not rows[step]["key"]:
                raise NbflowError(f'run {run} has no step "{step}"')
            key = rows[step]["key"]
        else:
            found = store.latest_step_key(pipeline.path, step)
            key = found[1] if found else plan_pipeline(pipeline)[step].key
    finally:
        store.close()
    cache = config.cache()
    entry = cache.lookup(step, key)
    if entry is None:
        raise NbflowError(f'step "{step}" has no cached result for key {key[:12]} (run it first)')
    if name not in entry.names:
        why = entry.missing.get(name, f"it is not one of the step's cached values ({', '.join(sorted(entry.names))})")
        raise NbflowError(f'step "{step}" has no value {name!r}: {why}')
    cache.verify(entry)
    return cache.load_values(entry, [name])[name]
