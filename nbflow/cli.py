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
import errno
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import cli_project, jsonout
from .cli_hooks import add_hook_options, end_of_run, hooks_from_args
from .cli_parameters import add_parameter_options as _add_parameter_options
from .cli_parameters import parameters_from_args
from .cli_shared import executor_from_args as _executor_from_args
from .cli_shared import graph_text
from .errors import NbflowError, PipelineError
from .startup import skip_unused_imports

_CANNOT_WRITE = (errno.EACCES, errno.EPERM, errno.EROFS)


def _print_warnings(pipeline: Any) -> None:
    for warning in pipeline.warnings:
        print(f"warning: {warning}", file=sys.stderr)


# ------------------------------------------------------------------- commands


def cmd_graph(args: argparse.Namespace) -> int:
    from .graph import load_pipeline

    pipeline = load_pipeline(args.notebook)
    _print_warnings(pipeline)
    if args.format == "json":
        print(jsonout.dumps(pipeline.to_dict(), indent=2, default=repr))
    elif args.format == "dot":
        print(pipeline.to_dot())
    else:
        print(graph_text(pipeline))
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from .graph import load_pipeline
    from .project_context import in_project

    pipeline = in_project(load_pipeline(args.notebook))
    _print_warnings(pipeline)
    values, raw = parameters_from_args(args)
    from .run import plan_pipeline

    plan = plan_pipeline(
        pipeline, values, raw=raw, force=args.force, force_all=args.force_all, only=args.only, from_=args.from_
    )
    if args.json:
        print(jsonout.dumps(plan.to_dict(), indent=2, default=repr))
        return 0
    print(plan.table())
    runs = len(plan.to_run)
    print(f"\n{runs} of {len(pipeline.order)} steps would run; {len(plan.fresh)} are cached.")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from .graph import load_pipeline
    from .project_context import in_project
    from .verify import verify_cache

    pipeline = in_project(load_pipeline(args.notebook))
    _print_warnings(pipeline)
    values, raw = parameters_from_args(args)
    result = verify_cache(pipeline, values, raw=raw)
    print(jsonout.dumps(result.to_dict(), indent=2) if args.json else result.summary())
    return 0 if result.ok else 1


def cmd_run(args: argparse.Namespace) -> int:
    import signal

    from .graph import load_pipeline
    from .progress import ProgressPrinter
    from .run import start_run

    executor = _executor_from_args(args)
    pipeline = load_pipeline(args.notebook)
    _print_warnings(pipeline)
    hooks = hooks_from_args(args, pipeline.config)  # a bad hook setting is refused before the run starts
    values, raw = parameters_from_args(args)
    pipeline = cli_project.linked_for_run(pipeline, args, values, raw, executor)
    run = start_run(
        pipeline,
        values,
        raw=raw,
        only=args.only,
        from_=args.from_,
        force=args.force,
        force_all=args.force_all,
        executor=executor,
        output=args.output,
        timeout=args.timeout,
        fail_fast=args.fail_fast,
        retries=args.retries or 0,
        items=args.items,
        listeners=[ProgressPrinter(quiet=args.quiet)],
        hooks=hooks,
        report=args.report,
    )

    def terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    try:
        while not run.done:
            run.wait(0.25)
    except KeyboardInterrupt:
        print("nbflow: cancelling the run (Ctrl-C again to stop waiting)", file=sys.stderr)
        run.cancel()
        try:
            run.wait()
        except KeyboardInterrupt:
            return 130
    if run.exception is not None:
        print(f"nbflow: error: {run.error}", file=sys.stderr)
    elif run.status == "done" and run.output_notebook is not None and not args.quiet:
        print(f"output notebook: {args.output or run.output_notebook}", file=sys.stderr)
    end_of_run(run)
    return {"done": 0, "cancelled": 130}.get(run.status, 1)


def cmd_sweep(args: argparse.Namespace) -> int:
    from .events import RunFinished
    from .graph import load_pipeline
    from .parameters import parse_cli_value
    from .sweep import run_sweep, summary_rows

    pipeline = load_pipeline(args.notebook)
    _print_warnings(pipeline)
    grid: dict[str, list[Any]] = {}
    raw: dict[str, list[str]] = {}
    for name, *texts in args.parameters:
        if not texts:
            raise PipelineError(f"-p {name} needs at least one value to sweep over")
        grid[name] = [parse_cli_value(t) for t in texts]
        raw[name] = texts
    if not grid:
        raise PipelineError("nothing to sweep: give -p NAME VALUE [VALUE ...]")
    total = 1
    for values in grid.values():
        total = len(values) if args.zip else total * len(values)
    print(
        f"sweep of {pipeline.path.name}: {total} runs over {', '.join(grid)}" + (" (zipped)" if args.zip else ""),
        file=sys.stderr,
    )

    def on_run(run: Any, values: dict[str, Any]) -> None:
        def finished(event: Any) -> None:
            if isinstance(event, RunFinished):
                counts: dict[str, int] = {}
                for info in run.steps.values():
                    counts[info["status"]] = counts.get(info["status"], 0) + 1
                shown = "  ".join(f"{k}={v!r}" for k, v in values.items())
                summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
                print(f"  run {run.id}  {shown}  {event.status} in {event.duration:.2f} s ({summary})", file=sys.stderr)

        run.bus.subscribe(finished)

    sweep = run_sweep(
        pipeline, grid, raw=raw, zip_=args.zip, executor=args.executor, on_run=on_run, timeout=args.timeout
    )
    for run in sweep.runs:  # each run of the sweep fired its own hooks as it ended
        end_of_run(run)
    rows = summary_rows(pipeline.config, sweep.id, args.collect or None)
    outputs = sorted({k for r in rows for k in r["outputs"]})
    table = [["run", *grid, "status", *outputs]]
    for r in rows:
        table.append(
            [
                str(r["run"]),
                *(repr(r["params"].get(n)) for n in grid),
                r["status"],
                *(r["outputs"].get(o, "") for o in outputs),
            ]
        )
    print(f"sweep {sweep.id}: {sweep.status}")
    print(_table(table))
    if args.report:
        from .report import build_sweep_report

        print(f"sweep report: {build_sweep_report(pipeline.config, sweep.id, names=args.collect or None)}")
    return 0 if sweep.status == "done" else 1


def cmd_diff(args: argparse.Namespace) -> int:
    from .compare import compare_runs, format_comparison, to_json
    from .config import Config

    config = Config.for_path(args.dir)
    data = compare_runs(config, args.run_a, args.run_b)
    print(to_json(data) if args.json else format_comparison(data))
    return 0


def _indexes(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of element numbers") from None


def _store(path: str | None) -> Any:
    from .config import Config

    config = Config.for_path(path)
    if not config.store_path.exists() and not config.home.is_file():  # RunStore names a file in the way
        raise PipelineError(f"no runs recorded in {config.home} (run a notebook there first)")
    return config, config.open_store()


def _when(timestamp: float | None) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp)) if timestamp else "-"


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def cmd_runs(args: argparse.Namespace) -> int:
    target = args.notebook if args.notebook and not Path(args.notebook).is_dir() else None
    config, store = _store(args.notebook)
    runs = store.runs(target, limit=args.limit)
    counts = store.step_counts([r["id"] for r in runs])
    if not runs:
        print("no runs yet")
        return 0
    rows = [["run", "notebook", "status", "started", "duration", "steps", "parameters"]]
    for r in runs:
        duration = f"{r['finished'] - r['started']:.2f} s" if r["finished"] and r["started"] else "-"
        steps = ", ".join(f"{n} {s}" for s, n in sorted(counts[r["id"]].items()))
        params = ", ".join(f"{k}={v!r}" for k, v in r["params"].items())
        rows.append(
            [
                str(r["id"]),
                Path(r["notebook"]).name,
                r["status"],
                _when(r["started"] or r["created"]),
                duration,
                steps,
                params[:60],
            ]
        )
    print(_table(rows))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    config, store = _store(args.dir)
    run = store.run(args.run)
    if run is None:
        raise PipelineError(f"no run {args.run} in {config.home}")
    steps = store.steps(args.run)
    if args.step:
        return _show_step(config, run, steps, args.step)
    duration = f" in {run['finished'] - run['started']:.2f} s" if run["finished"] and run["started"] else ""
    prov = run["provenance"]
    print(f"run {run['id']} of {run['notebook']}: {run['status']}{duration}")
    print(
        f"started {_when(run['started'])} by {prov.get('user', '?')}@{run['host']} (pid {run['pid']}), "
        f"executor {run['executor']}"
    )
    print("parameters: " + (", ".join(f"{k}={v!r}" for k, v in run["params"].items()) or "none"))
    git = prov.get("git") or {}
    if git:
        print(
            f"git: {(git.get('commit') or 'no commit')[:12]} on {git.get('branch') or 'detached'}"
            + (" (uncommitted changes)" if git.get("dirty") else "")
        )
    if run["error"]:
        print(f"error: {run['error']}")
    for kind, path in store.artifacts(args.run).items():
        print(f"{kind.replace('_', ' ')}: {path}")
    rows = [["step", "status", "duration", "why"]]
    for s in steps:
        rows.append(
            [s["step"], s["status"], f"{s['duration']:.2f} s" if s["duration"] else "", "; ".join(s["reasons"])]
        )
    print()
    print(_table(rows))
    for s in steps:
        if s["error"]:
            print(f"\n{s['step']}: {s['error']}")
    for m in store.messages(args.run):
        print(f"warning: {'step ' + m['step'] + ': ' if m['step'] else ''}{m['text']}")
    if args.provenance:
        print("\nprovenance:")
        print(jsonout.dumps(prov, indent=2))
    return 1 if run["status"] == "failed" and args.exit_status else 0


def _show_step(config: Any, run: dict[str, Any], steps: list[dict[str, Any]], name: str) -> int:
    from .errors import did_you_mean

    found = {s["step"]: s for s in steps}
    if name not in found:
        raise PipelineError(f"run {run['id']} has no step {name!r}{did_you_mean(name, found)}")
    s = found[name]
    print(f"step {name} of run {run['id']}: {s['status']}")
    print(f"why: {'; '.join(s['reasons']) or 'fresh (cached)'}")
    if s["duration"] is not None:
        print(f"duration: {s['duration']:.3f} s (started {_when(s['started'])})")
    print(f"key: {s['key']}")
    entry = config.cache().lookup(name, s["key"]) if s["key"] else None
    if entry is not None:
        print("cached values:")
        for value, info in sorted(entry.names.items()):
            extra = info.get("scalar") or info.get("summary") or ""
            print(f"  {value}: {info.get('type')} {extra}".rstrip())
        for value, why in entry.missing.items():
            print(f"  {value}: not cached ({why})")
    if s["error"]:
        print(f"error: {s['error']}")
    if s["traceback"]:
        print(s["traceback"])
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .report import build_comparison, build_report

    config, store = _store(args.dir)
    store.close()
    output = Path(args.output) if args.output else None
    if args.run_b is None:
        path = build_report(config, args.run, output=output, trusted=args.trusted, jobs=2)
    else:
        path = build_comparison(config, args.run, args.run_b, output=output, trusted=args.trusted)
    print(path)
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    from .publish import publish_site

    result = publish_site(args.paths or ["."], args.output, trusted=args.trusted, metrics=args.metric, jobs=args.jobs)
    for page, why in sorted(result.failed.items()):
        print(f"nbflow: {page} not written: {why}", file=sys.stderr)
    print(f"site: {result.index} ({result.summary()})")
    return 1 if result.failed else 0


def cmd_studio(args: argparse.Namespace) -> int:
    from .studio.serve import StudioError, serve

    try:
        serve(
            args.folder,
            port=args.port,
            address=args.address,
            basic_auth=args.basic_auth,
            allow_websocket_origin=args.allow_websocket_origin,
            show=args.show,
            unix_socket=args.unix_socket,
            prefix=args.prefix,
        )
    except StudioError as e:
        raise PipelineError(str(e)) from None
    return 0


def cmd_clean(args: argparse.Namespace) -> int:
    from .clean import clean
    from .config import Config

    target = args.path if args.path and not Path(args.path).is_dir() else None
    config = Config.for_path(args.path)
    if not config.store_path.exists() and not config.home.is_file():
        print(f"nothing to clean in {config.home}")
        return 0
    result = clean(config, keep=args.keep, notebook=target)
    leftovers = f", {result['leftovers']} leftover file{'s' if result['leftovers'] != 1 else ''} of crashed writes"
    print(
        f"removed {result['runs']} runs and {result['entries']} cache entries ({result['bytes'] / 1e6:.1f} MB)"
        + (leftovers if result["leftovers"] else "")
    )
    return 0


# --------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nbflow",
        description="Run a tagged Jupyter notebook as a pipeline: only what changed re-runs.",
    )
    from ._version import __version__

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

    p = sub.add_parser("verify", help="run the notebook from scratch with papermill and compare the cache with it")
    p.add_argument("notebook")
    _add_parameter_options(p)
    p.add_argument("--json", action="store_true", help="print what was compared and found as JSON")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("run", help="run the stale steps (papermill + joblib cache)")
    p.add_argument("notebook")
    _add_parameter_options(p)
    _add_selection_options(p)
    p.add_argument("--output", "-o", metavar="OUT.ipynb", help="also write the executed notebook here")
    p.add_argument("--executor", choices=["kernel", "dask"], default=None, help="where steps run (default kernel)")
    p.add_argument(
        "--workers", type=int, metavar="N", help="dask: worker processes of the local cluster (default: one per core)"
    )
    p.add_argument(
        "--scheduler", metavar="ADDRESS", help="dask: run on the cluster of this scheduler (tcp://host:8786)"
    )
    p.add_argument(
        "--retries",
        type=int,
        metavar="N",
        help="run a step that raises (or whose Dask worker dies) again, up to N times, its inputs restored "
        "from the cache each time (a step's retry:N[:BACKOFF_S] tag wins)",
    )
    p.add_argument(
        "--shared-cache",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="dask: whether the workers see the cache folder (default: find out); with --no-shared-cache "
        "values travel through Dask and this process writes the cache",
    )
    p.add_argument(
        "--timeout", type=float, metavar="SECONDS", help="per-step timeout (a step's timeout:SECONDS tag wins)"
    )
    p.add_argument("--fail-fast", action="store_true", help="stop at the first failed step")
    p.add_argument(
        "--items",
        metavar="I,J",
        type=_indexes,
        default=[],
        help="with --only MAP_STEP: recompute these elements (0-based) even if cached",
    )
    p.add_argument("--quiet", "-q", action="store_true", help="print only failures and the summary")
    p.add_argument(
        "--report",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="write the run's HTML report when it ends, failed or not (default: report in [tool.nbflow])",
    )
    add_hook_options(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("sweep", help="run every combination of parameter values; cached steps are shared")
    p.add_argument("notebook")
    p.add_argument(
        "-p",
        "--parameters",
        nargs="+",
        action="append",
        default=[],
        metavar="NAME VALUE",
        help="a parameter and the values to sweep over: -p lr 0.01 0.1",
    )
    p.add_argument("--zip", action="store_true", help="pair the value lists instead of taking every combination")
    p.add_argument(
        "--collect",
        action="append",
        default=[],
        metavar="NAME",
        help="a value to tabulate (accuracy or evaluate.accuracy); default: scalars of the last steps",
    )
    p.add_argument(
        "--executor", choices=["kernel", "dask"], default=None, help="dask runs the combinations at the same time"
    )
    p.add_argument("--timeout", type=float, metavar="SECONDS", help="per-step timeout")
    p.add_argument("--report", action="store_true", help="also write the sweep's HTML summary (table and charts)")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("runs", help="list recorded runs")
    p.add_argument("notebook", nargs="?", help="a notebook (its runs) or a folder (default: here)")
    p.add_argument("--limit", type=int, default=30)
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("show", help="show a run, or one step of it")
    p.add_argument("run", type=int)
    p.add_argument("step", nargs="?")
    p.add_argument("-C", dest="dir", metavar="PATH", help="notebook or folder whose runs to read (default: here)")
    p.add_argument("--provenance", action="store_true", help="also print git, Python and package details")
    p.add_argument("--exit-status", action="store_true", help="exit 1 if the run failed")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("diff", help="what differs between two runs: parameters, code, git, environment, steps")
    p.add_argument("run_a", type=int)
    p.add_argument("run_b", type=int)
    p.add_argument("-C", dest="dir", metavar="PATH", help="notebook or folder whose runs to read (default: here)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_diff)

    p = sub.add_parser(
        "report",
        help="write a run's self-contained HTML report (or compare two runs)",
        description="Write one HTML file that opens offline: the run's parameters, provenance, graph, "
        "timeline and every step's docs, code and outputs. With two runs, what differs between them.",
    )
    p.add_argument("run", type=int, help="the run to report")
    p.add_argument("run_b", type=int, nargs="?", metavar="RUN_B", help="a second run to compare the first with")
    p.add_argument("-o", "--output", metavar="FILE", help="where to write (default: .nbflow/runs/RUN/report.html)")
    p.add_argument(
        "--trusted", action="store_true", help="show cell outputs as they are, scripts included (default: sanitized)"
    )
    p.add_argument("-C", dest="dir", metavar="PATH", help="notebook or folder whose runs to read (default: here)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("publish", help="write a static site of the runs: reports, comparisons, sweeps, history")
    p.add_argument(
        "paths", nargs="*", metavar="FOLDER|NB", help="folders or notebooks whose runs to publish (default: here)"
    )
    p.add_argument(
        "-o", "--output", required=True, metavar="SITE", help="folder of the site (created; updated if it exists)"
    )
    p.add_argument(
        "--trusted", action="store_true", help="keep cell outputs' scripts in the run reports (not sanitized)"
    )
    p.add_argument(
        "--metric",
        action="append",
        default=[],
        metavar="NAME",
        help="a scalar for the history charts (accuracy or step.name)",
    )
    p.add_argument("--jobs", "-j", type=int, metavar="N", help="processes rendering pages (default: one per core)")
    p.set_defaults(func=cmd_publish)

    p = sub.add_parser("studio", help="build, run and browse pipelines in a web app (Panel)")
    p.add_argument("folder", nargs="?", default=".", help="folder of notebooks, or one notebook (default: here)")
    p.add_argument("--port", type=int, default=5006, help="port to listen on (default 5006)")
    p.add_argument(
        "--address",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; another address needs --basic-auth)",
    )
    p.add_argument(
        "--basic-auth",
        metavar="PASSWORD|FILE",
        help="require a login: a password, or a JSON file of users and passwords (Panel's basic auth)",
    )
    p.add_argument(
        "--allow-websocket-origin",
        action="append",
        default=[],
        metavar="HOST[:PORT]",
        help="another address browsers use to reach the studio; repeatable",
    )
    p.add_argument("--show", action="store_true", help="open the studio in a web browser")
    p.add_argument(
        "--unix-socket",
        metavar="PATH",
        help="listen on this Unix socket instead of a port (how the Jupyter server's /nbflow/studio/ runs it)",
    )
    p.add_argument("--prefix", default="", help="URL path the studio is served under (behind a proxy)")
    p.set_defaults(func=cmd_studio)

    p = sub.add_parser(
        "clean",
        help="delete old runs and cache entries no kept run uses",
        description="Delete all but the N newest runs of each notebook, and the cache entries no remaining "
        "run (of this folder, or of another folder sharing the cache) uses. Only entries nbflow wrote are "
        "deleted; a cache folder holding anything else is refused.",
    )
    p.add_argument("path", nargs="?", help="a notebook (only its runs) or a folder (default: here)")
    p.add_argument("--keep", type=int, default=10, metavar="N", help="runs to keep per notebook (default 10)")
    p.set_defaults(func=cmd_clean)

    from .cli_production import add_production_commands

    add_production_commands(sub)  # export, watch
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
    skip_unused_imports()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if cli_project.handles(args):  # a folder or nbflow.toml: a pipeline of notebooks
            args.func = cli_project.run_command
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
    except OSError as e:  # a read-only folder, a full disk: one line naming the path
        where = f"{e.filename}: " if e.filename else ""
        hint = "; use a writable folder (NBFLOW_HOME, -o FILE)" if e.errno in _CANNOT_WRITE else ""
        print(f"nbflow: error: {where}{e.strerror or e}{hint}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
