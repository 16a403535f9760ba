"""``nbflow graph|plan|run FOLDER`` and ``... nbflow.toml``: the command line of a pipeline of
notebooks (``project.py``). ``cli.main`` hands these commands here when their path is a
folder or a ``.toml``; each prints one section per notebook, then the links between them.

Must not: hold logic beyond calling ``project`` / ``project_run`` and printing.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from . import jsonout
from .cli_parameters import parameters_from_args
from .errors import PipelineError

COMMANDS = ("graph", "plan", "run")


def handles(args: argparse.Namespace) -> bool:
    """Whether ``args`` ask for a pipeline of notebooks: graph/plan/run of a folder or ``.toml``."""
    from pathlib import Path

    path = getattr(args, "notebook", None)
    return args.command in COMMANDS and path is not None and (path.endswith(".toml") or Path(path).is_dir())


def run_command(args: argparse.Namespace) -> int:
    """Dispatch ``args.command`` for the project at ``args.notebook``."""
    from .project import load_project

    project = load_project(args.notebook)
    for name in project.order:
        for warning in project.pipelines[name].warnings:
            print(f"warning: {warning}", file=sys.stderr)
    return {"graph": _graph, "plan": _plan, "run": _run}[args.command](project, args)


def _refuse_selection(args: argparse.Namespace) -> None:
    chosen = [f"--{o.rstrip('_')}" for o in ("only", "from_", "force") if getattr(args, o, None)]
    if getattr(args, "items", None):
        chosen.append("--items")
    if getattr(args, "output", None):
        chosen.append("--output")
    if chosen:
        raise PipelineError(
            f"{', '.join(chosen)} select within one notebook; give that notebook's path instead of the folder "
            "(--force-all reruns a whole pipeline of notebooks)"
        )


def _graph(project: Any, args: argparse.Namespace) -> int:
    if args.format == "json":
        print(jsonout.dumps(project.to_dict(), indent=2, default=repr))
    elif args.format == "dot":
        print(project_dot(project))
    else:
        print(project_text(project))
    return 0


def project_text(project: Any) -> str:
    """Each notebook's graph as ``nbflow graph`` prints it, then the links between notebooks."""
    from .cli_shared import graph_text

    total = sum(len(p.steps) for p in project.pipelines.values())
    lines = [f"{project.title}: {len(project.order)} notebooks, {total} steps"]
    for name in project.order:
        lines.append("")
        text = graph_text(project.pipelines[name]).splitlines()
        lines.append(text[0].replace(project.pipelines[name].path.name, name, 1))
        lines += text[1:]
        for link in project.links:
            if link.consumer.startswith(name + ":"):
                lines.append(f"  {link.consumer.split(':')[-1]} <- {link.producer} [{link.label}]")
    return "\n".join(lines)


def project_dot(project: Any) -> str:
    """Graphviz DOT: one cluster per notebook, links between clusters."""

    def q(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

    lines = [f"digraph {q(project.title)} {{", "  rankdir=TB;", "  compound=true;", "  node [shape=box];"]
    for index, name in enumerate(project.order):
        pipeline = project.pipelines[name]
        lines.append(f"  subgraph cluster_{index} {{")
        lines.append(f"    label={q(name)};")
        for step in pipeline.order:
            lines.append(f"    {q(name + ':' + step)} [label={q(step)}];")
        for a, b in pipeline.edge_names:
            lines.append(f"    {q(name + ':' + a)} -> {q(name + ':' + b)};")
        lines.append("  }")
    for link in project.links:
        lines.append(f"  {q(link.producer)} -> {q(link.consumer)} [label={q(link.label)}, style=bold];")
    lines.append("}")
    return "\n".join(lines)


def _plan(project: Any, args: argparse.Namespace) -> int:
    from .project import plan_project

    _refuse_selection(args)
    values, raw = parameters_from_args(args)
    plans = plan_project(project, values, raw, force_all=args.force_all)
    if args.json:
        data = {"project": str(project.source), "notebooks": [{"name": n, **plans[n].to_dict()} for n in plans]}
        print(jsonout.dumps(data, indent=2, default=repr))
        return 0
    runs = total = 0
    for name, plan in plans.items():
        print(f"{name}:")
        print("\n".join("  " + line for line in plan.table().splitlines()))
        print()
        runs += len(plan.to_run)
        total += len(plan.entries)
    print(f"{runs} of {total} steps in {len(plans)} notebooks would run; {total - runs} are cached.")
    return 0


def _run(project: Any, args: argparse.Namespace) -> int:
    import signal

    from .cli_hooks import end_of_run, hooks_from_args
    from .cli_shared import executor_from_args
    from .progress import ProgressPrinter
    from .project_run import ProjectRun, run_project

    _refuse_selection(args)
    executor = executor_from_args(args)
    for pipeline in project.pipelines.values():
        hooks_from_args(args, pipeline.config)  # a bad hook setting is refused before any notebook runs
    values, raw = parameters_from_args(args)
    handle = ProjectRun(project)
    parallel = getattr(executor, "name", executor) == "dask"  # notebooks' lines interleave: name them

    def terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    try:
        result = run_project(
            project,
            values,
            raw,
            executor=executor,
            force_all=args.force_all,
            timeout=args.timeout,
            fail_fast=args.fail_fast,
            retries=getattr(args, "retries", None) or 0,
            listeners=lambda name: [ProgressPrinter(_Named(name) if parallel else None, quiet=args.quiet)],
            handle=handle,
            hooks=lambda config: hooks_from_args(args, config),
            report=args.report,
        )
    except KeyboardInterrupt:
        print("nbflow: cancelling the runs", file=sys.stderr)
        handle.cancel()
        for run in handle.runs.values():
            run.wait()
        return 130
    for name, run in result.runs.items():
        if run.exception is not None:
            print(f"nbflow: error: {name}: {run.error}", file=sys.stderr)
        end_of_run(run)  # each notebook's run fired its hooks as it ended: their problems
    if args.report or (args.report is None and any(p.config.report for p in project.pipelines.values())):
        _pipeline_report(result)
    for name, why in result.skipped.items():
        print(f"nbflow: {name} not run: {why}", file=sys.stderr)
    summary = ", ".join(f"{name} run {run.id} {run.status}" for name, run in result.runs.items())
    print(f"{len(result.runs)} notebooks in {result.duration:.2f} s: {summary}", file=sys.stderr)
    return {"done": 0, "cancelled": 130}.get(result.status, 1)


def _pipeline_report(result: Any) -> None:
    """``run FOLDER --report``: one report for the pipeline, a section per notebook (a
    report failure does not change the exit status)."""
    from .errors import NbflowError
    from .report.project import build_project_report

    try:
        print(f"report: {build_project_report(result)}", file=sys.stderr)
    except NbflowError as e:
        print(f"nbflow: no report for the pipeline: {e}", file=sys.stderr)


class _Named:
    """stderr with each line starting ``[notebook]``, and no spinner (two would fight for the line)."""

    def __init__(self, name: str) -> None:
        self.prefix = f"[{name}] "
        self.at_start = True

    def write(self, text: str) -> int:
        out = []
        for piece in text.splitlines(keepends=True):
            out.append((self.prefix if self.at_start else "") + piece)
            self.at_start = piece.endswith("\n")
        sys.stderr.write("".join(out))
        return len(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return False


def linked_for_run(pipeline: Any, args: argparse.Namespace, values: Any, raw: Any, executor: Any) -> Any:
    """``nbflow run NB``: NB linked in its pipeline of notebooks (``project_context``). When a
    step the run would execute needs a step of another notebook that is not ready, the
    notebooks NB needs run first, as ``make`` builds a target's prerequisites (said on stderr)."""
    from .cli_hooks import end_of_run, hooks_from_args
    from .progress import ProgressPrinter
    from .project_context import in_project, run_upstream_first
    from .run import plan_pipeline

    linked = in_project(pipeline)
    for warning in linked.warnings[len(pipeline.warnings) :]:
        print(f"warning: {warning}", file=sys.stderr)
    if not linked.foreign_stale:
        return linked
    plan = plan_pipeline(
        linked, values, raw=raw, force=args.force, force_all=args.force_all, only=args.only, from_=args.from_
    )
    result = run_upstream_first(
        linked,
        plan,
        say=lambda line: print(line, file=sys.stderr),
        executor=executor,
        timeout=args.timeout,
        retries=getattr(args, "retries", None) or 0,
        listeners=lambda name: [ProgressPrinter(_Named(name), quiet=args.quiet)],
        hooks=lambda config: hooks_from_args(args, config),
    )
    if result is None:
        return linked
    for run in result.runs.values():
        end_of_run(run)
    return in_project(pipeline)  # linked again: the keys the notebooks it needs ended with
