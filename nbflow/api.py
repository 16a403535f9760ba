"""What ``import nbflow`` offers: ``load_pipeline`` -> ``Pipeline`` (``plan``, ``run``,
``invalidate``, ``widget``) -> ``Run`` (``report``).

These methods reach from the core (``graph``, ``run``) to the views (``widget``,
``report``), so they are defined here, above both: the core modules never import a
view. ``Pipeline`` and ``Run`` add methods only; the data and the work stay in
``graph.Pipeline`` and ``run.Run``, which every view and the CLI use directly.

This module must not hold logic of its own beyond calling the core and the views.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import graph, run
from .config import Config
from .notebook import NotebookSource
from .plan import Plan


class Run(run.Run):
    """A run (see ``nbflow.run.Run``) that can write its report."""

    def report(self, **options: Any) -> Path:
        """Write this run's self-contained HTML report and return its path.

        Options are those of ``nbflow.report.build_report`` (``output``, ``trusted``).
        Call it after ``wait()``: a run still going is reported as it stands.
        """
        from .report import build_report

        return build_report(self.pipeline.config, self.id, **options)


class Pipeline(graph.Pipeline):
    """A pipeline (see ``nbflow.graph.Pipeline``) that can plan, run and show itself."""

    def plan(self, params: Mapping[str, Any] | None = None, **options: Any) -> Plan:
        """What a run with ``params`` would do, and why (nothing is executed)."""
        return run.plan_pipeline(self, params, **options)

    def run(self, params: Mapping[str, Any] | None = None, **options: Any) -> Run:
        """Run the pipeline and wait for it; see ``nbflow.run.start_run`` for options."""
        started = run.start_run(self, params, run_class=Run, **options)
        started.wait()
        return started

    def invalidate(self, *steps: str, params: Mapping[str, Any] | None = None) -> list[str]:
        """Forget the cached results of ``steps``; the next run recomputes them."""
        return run.invalidate(self, steps, params)

    def widget(self, **options: Any) -> Any:
        """An ipycytoscape view of this pipeline that follows runs live."""
        from .widget import PipelineWidget

        return PipelineWidget(self, **options)


def load_pipeline(path: str | Path, config: Config | None = None, *, source: NotebookSource | None = None) -> Pipeline:
    """Read, analyse and validate the notebook at ``path`` (see ``graph.load_pipeline``), keyed
    in the pipeline of notebooks it belongs to, if any (``project_context.in_project``)."""
    from .project_context import in_project

    return in_project(graph.load_pipeline(path, config, source=source, cls=Pipeline))


__all__ = ["Pipeline", "Run", "load_pipeline"]
