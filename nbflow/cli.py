"""The ``nbflow`` command line.

Each sub-command is a thin layer over the core API (``load_pipeline``, ``Pipeline.plan``,
``run.start_run``, the run store): parse arguments, call, print. Errors nbflow raises
on purpose are printed as one line naming the notebook, cell and step, with exit status
2 for bad input and 1 for a failed run.

Imports are deferred into the commands: ``nbflow run`` on a fully cached pipeline must
not pay for nbformat, papermill, networkx or rich.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import NbflowError, ParameterError, PipelineError


def _add_parameter_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-p",
        "--parameters",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="a parameter value, parsed like papermill's -p (True/False/None, int, float, else text)",
    )
    p.add_argument(
        "-r",
        "--parameters-raw",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="a parameter value taken as text",
    )
    p.add_argument(
        "-y", "--parameters-yaml", action="append", default=[], metavar="YAML", help="parameters as a YAML mapping"
    )
    p.add_argument(
        "-f", "--parameters-file", action="append", default=[], metavar="FILE", help="parameters from a YAML file"
    )


def parameters_from_args(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, str]]:
    """(values, raw texts) from the -p/-r/-y/-f options, later options winning."""
    from .parameters import parse_cli_value

    values: dict[str, Any] = {}
    raw: dict[str, str] = {}
    for text in args.parameters_yaml:
        values.update(_yaml_mapping(text, "-y"))
    for path in args.parameters_file:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as e:
            raise ParameterError(f"-f {path}: {e.strerror}") from None
        values.update(_yaml_mapping(text, f"-f {path}"))
    for name, text in args.parameters:
        values[name] = parse_cli_value(text)
        raw[name] = text
    for name, text in args.parameters_raw:
        values[name] = text
        raw.pop(name, None)
    return values, raw


def _yaml_mapping(text: str, option: str) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ParameterError(f"{option}: not valid YAML ({e})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ParameterError(f"{option}: expected a mapping of parameter names to values")
    return data


def _print_warnings(pipeline: Any) -> None:
    for warning in pipeline.warnings:
        print(f"warning: {warning}", file=sys.stderr)


# ------------------------------------------------------------------- commands


def cmd_graph(args: argparse.Namespace) -> int:
    from .graph import load_pipeline

    pipeline = load_pipeline(args.notebook)
    _print_warnings(pipeline)
    if args.format == "json":
        print(json.dumps(pipeline.to_dict(), indent=2, default=repr))
    elif args.format == "dot":
        print(pipeline.to_dot())
    else:
        print(graph_text(pipeline))
    return 0


def graph_text(pipeline: Any) -> str:
    """The pipeline as text: one line per step with what it depends on and why."""
    params = ", ".join(f"{n}={p.default!r}" for n, p in pipeline.parameters.items()) or "none"
    lines = [f"{pipeline.path.name}: {len(pipeline.steps)} steps; parameters: {params}"]
    if not pipeline.steps:
        lines.append("  (no cells are tagged step:<name>; tag a code cell to make it a step)")
    width = max((len(n) for n in pipeline.order), default=0)
    for name in pipeline.order:
        step = pipeline.steps[name]
        parts = []
        for dep in pipeline.deps[name]:
            passed = pipeline.edge_names.get((dep, name), ())
            parts.append(f"{dep} [{', '.join(passed)}]" if passed else f"{dep} [after]")
        text = f"  {name.ljust(width)}  cell {step.cell.number:<3}"
        text += f"  <- {'; '.join(parts)}" if parts else "  <- (no upstream step)"
        if step.params:
            text += f"  params: {', '.join(step.params)}"
        lines.append(text)
    return "\n".join(lines)


def cmd_plan(args: argparse.Namespace) -> int:
    from .graph import load_pipeline

    pipeline = load_pipeline(args.notebook)
    _print_warnings(pipeline)
    values, raw = parameters_from_args(args)
    plan = pipeline.plan(values, raw=raw, force=args.force, force_all=args.force_all, only=args.only, from_=args.from_)
    if args.json:
        print(json.dumps(plan.to_dict(), indent=2, default=repr))
        return 0
    print(plan.table())
    runs = len(plan.to_run)
    print(f"\n{runs} of {len(pipeline.order)} steps would run; {len(plan.fresh)} are cached.")
    return 0


# --------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nbflow",
        description="Run a tagged Jupyter notebook as a pipeline: only what changed re-runs.",
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"nbflow {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("graph", help="show the steps and their dependencies")
    p.add_argument("notebook")
    p.add_argument("--format", choices=["text", "json", "dot"], default="text")
    p.set_defaults(func=cmd_graph)

    p = sub.add_parser("plan", help="show which steps a run would execute, and why")
    p.add_argument("notebook")
    _add_parameter_options(p)
    _add_selection_options(p)
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.set_defaults(func=cmd_plan)
    return parser


def _add_selection_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="STEP",
        help="run only this step (and the stale steps it needs); repeatable",
    )
    p.add_argument(
        "--from",
        dest="from_",
        action="append",
        default=[],
        metavar="STEP",
        help="rerun this step and everything downstream of it",
    )
    p.add_argument(
        "--force", action="append", default=[], metavar="STEP", help="rerun this step even if it is cached; repeatable"
    )
    p.add_argument("--force-all", action="store_true", help="rerun every step")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except PipelineError as e:
        print(f"nbflow: error: {e}", file=sys.stderr)
        return 2
    except NbflowError as e:
        print(f"nbflow: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("nbflow: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
