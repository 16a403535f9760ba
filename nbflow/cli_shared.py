"""What more than one command module needs: the graph as text, the executor the run options name.

``cli.py`` and ``cli_project.py`` (a pipeline of notebooks) both use these; keeping them
here keeps the command modules from importing each other. Must not import heavy modules
at module level (``nbflow run`` on a cached pipeline stays cheap).
"""

from __future__ import annotations

import argparse
from typing import Any

from .errors import PipelineError


def graph_text(pipeline: Any) -> str:
    """The pipeline as text: one line per step with what it depends on and why."""
    from .graph import edge_text
    from .parameters import shown_default

    params = ", ".join(f"{n}={shown_default(p.default)}" for n, p in pipeline.parameters.items()) or "none"
    lines = [f"{pipeline.path.name}: {len(pipeline.step_names)} steps; parameters: {params}"]
    if not pipeline.steps:
        lines.append("  (no cells are tagged step:<name>; tag a code cell to make it a step)")
    width = max((len(n) for n in pipeline.order), default=0)
    for name in pipeline.order:
        step = pipeline.steps[name]
        parts = []
        for dep in pipeline.deps[name]:
            passed = pipeline.edge_names.get((dep, name), ())
            parts.append(f"{dep} [{edge_text(passed)}]" if passed else f"{dep} [after]")
        text = f"  {name.ljust(width)}  cell {step.cell.number:<3}"
        text += f"  <- {'; '.join(parts)}" if parts else "  <- (no upstream step)"
        if step.params:
            text += f"  params: {', '.join(step.params)}"
        lines.append(text)
    return "\n".join(lines)


def executor_from_args(args: argparse.Namespace) -> Any:
    """The executor the run options ask for: a name, or a ``DaskExecutor`` with options.

    ``--workers``, ``--scheduler`` and ``--shared-cache`` imply ``--executor dask`` (and
    are refused with ``--executor kernel``); the Dask executor module imports dask only
    when a step runs. ``--retries`` applies to every executor (``start_run``).
    """
    dask_options = {
        "workers": args.workers,
        "scheduler": args.scheduler,
        "shared_cache": args.shared_cache,
    }
    given = {k: v for k, v in dask_options.items() if v is not None}
    if args.executor == "kernel" and given:
        flags = ", ".join("--" + k.replace("_", "-") for k in given)
        raise PipelineError(f"{flags} only apply to --executor dask")
    if args.executor != "dask" and not given:
        return args.executor
    from .executors.dask import DaskExecutor

    return DaskExecutor(**given)
