"""The command line's production sub-commands: ``nbflow export`` and ``nbflow watch``.

Kept beside ``cli.py`` (which adds them with one call) so the commands that hand a
pipeline to other tools read in one place. Like every sub-command, each is a thin layer
over a core API (``nbflow.export``, ``nbflow.watch``): parse, call, print.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def cmd_export(args: argparse.Namespace) -> int:
    from .export import write_script
    from .graph import load_pipeline

    pipeline = load_pipeline(args.notebook)
    if args.to == "script":
        path = write_script(pipeline, args.output)
        print(f"wrote {path}  (run it: python {path.name} --help)")
    else:
        from .export.cwl import write_cwl

        written = write_cwl(pipeline, args.output)
        workflow, job = written[0], written[-1]
        print(f"wrote {', '.join(str(p) for p in written)}")
        print(f"run it: cwltool --no-container {workflow} {job}")
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    from .cli_parameters import parameters_from_args
    from .watch import watch

    values, raw = parameters_from_args(args)
    return watch(args.notebook, values, raw=raw, debounce=args.debounce, stream=sys.stderr)


def add_production_commands(sub: Any) -> None:
    """Add ``export`` and ``watch`` to the ``nbflow`` parser's sub-commands."""
    from .cli_parameters import add_parameter_options

    p = sub.add_parser("export", help="write the pipeline as a plain Python script or a CWL workflow")
    p.add_argument("notebook")
    p.add_argument("--to", choices=("script", "cwl"), required=True, help="what to write")
    p.add_argument(
        "-o",
        "--output",
        metavar="PATH",
        help="script: the file (default NOTEBOOK.py); cwl: the folder (default NOTEBOOK-cwl/)",
    )
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("watch", help="re-run what became stale whenever the notebook or an in: file changes")
    p.add_argument("notebook")
    add_parameter_options(p)
    p.add_argument(
        "--debounce", type=float, default=0.5, metavar="SECONDS", help="wait for changes to settle (default 0.5)"
    )
    p.set_defaults(func=cmd_watch)
