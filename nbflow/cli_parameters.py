"""The parameter options every running command shares (``-p``, ``-r``, ``-y``, ``-f``)
and what they give: a module of its own so ``cli`` and ``cli_production`` both use it
without importing each other.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .errors import ParameterError


def add_parameter_options(p: argparse.ArgumentParser) -> None:
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
