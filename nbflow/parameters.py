"""The pipeline's parameters: the parameters cell, and the values a run is given.

The cell tagged ``parameters`` (papermill's convention) must hold plain assignments of
literals, ``lr = 0.1`` or ``lr: float = 0.1``, so its defaults can be read without
running anything. Values for a run are checked *before* any kernel starts, because
papermill itself does not: it warns about unknown names, injects a name containing a
newline verbatim (code injection) and silently turns values it cannot translate into
strings. Here:

* a name must be an identifier and not a keyword;
* an unknown name is an error, with the closest known name suggested;
* a value must fit the type of the default (``int`` is accepted for a ``float`` default
  and converted; a ``None`` default takes any literal).

``parse_cli_value`` reproduces papermill's ``-p`` rules (``True``/``False``/``None``, int,
float, else string) so ``nbflow run -p`` reads like ``papermill -p``.

Pure and standard library only.
"""

from __future__ import annotations

import ast
import keyword
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ParameterError, PipelineError, did_you_mean

#: Types papermill's Python translator writes back faithfully (tuples and sets nbflow's
#: translator adds; see ``executors.kernel``).
LITERAL_TYPES = (bool, int, float, str, list, dict, tuple, set, type(None))


@dataclass(frozen=True)
class Parameter:
    """A parameter declared in the parameters cell."""

    name: str
    default: Any
    annotation: str | None = None

    @property
    def type_name(self) -> str:
        """The default's type as a person would write it (``float``, ``str``...)."""
        return "any" if self.default is None else type(self.default).__name__


def parse_parameters_cell(
    source: str, notebook: str | Path | None = None, cell: int | None = None
) -> dict[str, Parameter]:
    """The parameters declared in ``source``; ``PipelineError`` unless they are plain literals."""
    try:
        tree = ast.parse(source)
    except SyntaxError as e:
        raise PipelineError(
            f"the parameters cell is not valid Python ({e.msg}, line {e.lineno}); it must hold "
            "plain assignments such as lr = 0.1",
            notebook=notebook,
            cell=cell,
        ) from None
    params: dict[str, Parameter] = {}
    for stmt in tree.body:
        target: ast.AST | None
        value: ast.AST | None
        annotation = None
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
            target, value = stmt.targets[0], stmt.value
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            target, value = stmt.target, stmt.value
            annotation = ast.unparse(stmt.annotation)
        else:
            target = value = None
        if not isinstance(target, ast.Name) or value is None:
            # The line is looked up only here: ast.get_source_segment on every statement
            # re-splits the whole cell each time, quadratic in a cell with a big literal.
            line = source.splitlines()[stmt.lineno - 1][stmt.col_offset :]
            raise PipelineError(
                f"the parameters cell must hold only plain assignments like lr = 0.1; line "
                f"{stmt.lineno} is {line[:80]!r}",
                notebook=notebook,
                cell=cell,
            )
        try:
            default = ast.literal_eval(value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            raise PipelineError(
                f"parameter {target.id!r} (line {stmt.lineno}) must have a literal default such as "
                f"0.1, 'text', [1, 2] or None, not {_short(ast.unparse(value))!r}: papermill replaces this cell's "
                "values and nbflow must know them without running code",
                notebook=notebook,
                cell=cell,
            ) from None
        params[target.id] = Parameter(target.id, default, annotation)
    return params


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def shown_default(value: Any, limit: int = 60) -> str:
    """A parameter's default as ``graph`` prints it: its repr, abbreviated when long."""
    text = repr(value)
    if len(text) <= limit:
        return text
    size = f" ({len(value)} items)" if isinstance(value, list | tuple | dict | set) else f" ({len(text)} characters)"
    return text[: limit - 3] + "..." + size


def parse_cli_value(text: str) -> Any:
    """Parse a ``-p name value`` value the way papermill's CLI does."""
    if text == "True":
        return True
    if text == "False":
        return False
    if text == "None":
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def check_name(name: Any, notebook: str | Path | None = None) -> str:
    """Refuse a parameter name papermill would paste into code unchecked."""
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise ParameterError(
            f"parameter name {name!r} is not a valid Python name (letters, digits and _, not a "
            "keyword); it was not passed to the notebook",
            notebook=notebook,
        )
    return name


def resolve_parameters(
    declared: Mapping[str, Parameter],
    given: Mapping[str, Any] | None = None,
    raw: Mapping[str, str] | None = None,
    notebook: str | Path | None = None,
) -> dict[str, Any]:
    """The values a run uses: defaults overridden by ``given``, every value checked.

    ``raw`` holds the text typed on the command line for a parameter; it lets
    ``-p name 123`` mean the string ``"123"`` when the default is a string, instead of
    papermill's silent int.
    """
    values = {name: p.default for name, p in declared.items()}
    raw = raw or {}
    for name, value in (given or {}).items():
        check_name(name, notebook)
        if name not in declared:
            known = ", ".join(declared) or "none: the notebook has no parameters cell"
            raise ParameterError(
                f"unknown parameter {name!r}{did_you_mean(name, declared)} (parameters: {known})",
                notebook=notebook,
            )
        values[name] = coerce(declared[name], value, raw.get(name), notebook)
    return values


def coerce(param: Parameter, value: Any, raw: str | None = None, notebook: str | Path | None = None) -> Any:
    """``value`` converted to the type of ``param``'s default, or a ``ParameterError``."""
    default = param.default

    def wrong() -> ParameterError:
        shown = raw if raw is not None else repr(value)
        return ParameterError(
            f"parameter {param.name!r} expects {param.type_name} (default {default!r}), got "
            f"{shown} ({type(value).__name__})",
            notebook=notebook,
        )

    if not _is_literal(value):
        raise ParameterError(
            f"parameter {param.name!r}: a {type(value).__name__} cannot be passed to a notebook "
            "(use int, float, str, bool, None, list, dict or tuple values)",
            notebook=notebook,
        )
    if default is None:
        return value
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        raise wrong()
    if isinstance(default, str):
        if isinstance(value, str):
            return value
        if raw is not None:
            return raw
        raise wrong()
    if isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise wrong()
    if isinstance(default, float):
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise wrong()
    if isinstance(default, list | tuple | dict | set):
        if raw is not None and isinstance(value, str):
            try:
                value = ast.literal_eval(raw)
            except (ValueError, SyntaxError):
                raise wrong() from None
        if isinstance(default, list | tuple) and isinstance(value, list | tuple):
            return type(default)(value)
        if isinstance(value, type(default)):
            return value
        raise wrong()
    raise wrong()


def _is_literal(value: Any) -> bool:
    if isinstance(value, list | tuple | set):
        return all(_is_literal(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str | int | float | bool) and _is_literal(v) for k, v in value.items())
    return isinstance(value, LITERAL_TYPES)


def canonical(value: Any) -> Any:
    """A JSON-able form of a literal that keeps types apart (1, 1.0, True, (1,), [1])."""
    if isinstance(value, bool) or value is None or isinstance(value, int | str):
        return value
    if isinstance(value, float):
        return {"float": repr(value)}
    if isinstance(value, list):
        return [canonical(v) for v in value]
    if isinstance(value, tuple):
        return {"tuple": [canonical(v) for v in value]}
    if isinstance(value, set):
        return {"set": sorted((canonical(v) for v in value), key=repr)}
    if isinstance(value, dict):
        return {"dict": sorted(([canonical(k), canonical(v)] for k, v in value.items()), key=repr)}
    raise TypeError(f"not a literal: {value!r}")
