"""The steps of other notebooks a linked pipeline depends on, at run time: a step whose
upstream step of another notebook is not ready (``Pipeline.foreign_stale``, found by
``project_context.in_project``) is not run, so the cache never holds a result computed
from a file that is not what its key says.

Kept apart from ``project_context`` (which plans other notebooks through ``run``) so that
``run.prepare_run`` can refuse without an import circle. Pure: no I/O.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .errors import PipelineError

if TYPE_CHECKING:
    from .graph import Pipeline
    from .plan import Plan


def unready_needs(pipeline: Pipeline, plan: Plan) -> list[tuple[str, str]]:
    """``(step, other.ipynb:step)`` for each step the plan runs that needs a step of another
    notebook that is not ready."""
    return [
        (step, producer)
        for step in plan.to_run
        for producer in sorted(pipeline.foreign.get(step, {}))
        if producer in pipeline.foreign_stale
    ]


def refuse_unready_upstream(pipeline: Pipeline, plan: Plan) -> None:
    """``PipelineError`` naming the first step the plan would run on a result of another
    notebook that is not what its key says, the upstream step, and the command to run."""
    needs = unready_needs(pipeline, plan)
    if not needs:
        return
    from .sources import with_line

    step, producer = needs[0]
    error = PipelineError(
        f"needs {producer}, which {pipeline.foreign_stale[producer]}: run the notebooks it needs first "
        f"(nbflow run {_shown(pipeline.path)} runs them, then this one; nbflow run {_shown(pipeline.project)} "
        "runs the whole pipeline of notebooks)",
        notebook=pipeline.path,
        cell=pipeline.steps[step].cell.number,
        step=step,
    )
    raise with_line(error, pipeline.source.lines)


def _shown(path: Path | None) -> str:
    """``path`` as the command to type shows it: relative to the working folder when inside it."""
    if path is None:
        return "FOLDER"
    try:
        return Path(path).resolve().relative_to(Path.cwd().resolve()).as_posix() or "."
    except (ValueError, OSError):
        return str(path)
