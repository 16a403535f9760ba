"""IPython syntax in a cell, translated to plain Python for an exported script.

``!cmd`` becomes ``subprocess.run(cmd, shell=True)``, ``x = !cmd`` its captured lines,
``%%bash``/``%%sh`` cells ``subprocess.run(["bash"], input=..., check=True)`` (IPython
raises on a failing cell magic too), ``%matplotlib`` is dropped (a script has no inline
backend). Anything else has no plain equivalent and is refused with one line naming the
notebook, cell and step. Only the IPython lines change: the rest of the cell is kept
character for character (comments included).

This module only rewrites text; it must not run any of it.
"""

from __future__ import annotations

import ast
from pathlib import Path

from ..errors import PipelineError

#: Cell magics that are a shell reading the cell's body.
SHELLS = {"bash": "bash", "sh": "sh"}


def plain_python(source: str, notebook: Path, cell: int, step: str | None) -> tuple[str, bool]:
    """``(python, uses_subprocess)`` for the cell ``source``; ``PipelineError`` if it cannot be translated."""
    from IPython.core.inputtransformer2 import TransformerManager

    transformed = TransformerManager().transform_cell(source)
    if "get_ipython()" not in transformed:
        return source, False

    def refuse(what: str) -> PipelineError:
        return PipelineError(
            f"{what} has no plain Python equivalent for `nbflow export`; rewrite it or tag the cell skip",
            notebook=notebook,
            cell=cell,
            step=step,
        )

    tree = ast.parse(transformed)
    lines = transformed.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    edits: list[tuple[int, int, str]] = []
    for node in ast.walk(tree):
        if not _is_ipython_call(node):
            continue
        assert isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
        method, args = node.func.attr, node.args
        if not all(isinstance(a, ast.Constant) and isinstance(a.value, str) for a in args) or node.keywords:
            raise refuse(f"IPython call {method}")
        values = [a.value for a in args]  # type: ignore[attr-defined]
        if method in ("system", "getoutput"):
            command = values[0]
            if "{" in command or "$" in command:
                raise refuse(f"!{command} (IPython expands $name and {{expr}} in it)")
            if method == "system":
                new = f"subprocess.run({command!r}, shell=True)"
            else:
                new = f"subprocess.run({command!r}, shell=True, capture_output=True, text=True).stdout.splitlines()"
        elif method == "run_cell_magic" and values[0] in SHELLS and not values[1].strip():
            new = f"subprocess.run([{SHELLS[values[0]]!r}], input={_string(values[2])}, text=True, check=True)"
        elif method == "run_line_magic" and values[0] == "matplotlib":
            new = "None  # %matplotlib: a script has no inline backend"
        elif method in ("run_line_magic", "run_cell_magic"):
            prefix = "%%" if method == "run_cell_magic" else "%"
            raise refuse(f"{prefix}{values[0]}")
        else:
            raise refuse(f"IPython call {method}")
        start = offsets[node.lineno - 1] + _char_offset(lines[node.lineno - 1], node.col_offset)
        end = offsets[node.end_lineno - 1] + _char_offset(lines[node.end_lineno - 1], node.end_col_offset)  # type: ignore[operator]
        edits.append((start, end, new))
    for start, end, new in sorted(edits, reverse=True):
        transformed = transformed[:start] + new + transformed[end:]
    return transformed, any("subprocess." in new for _, _, new in edits)


def _is_ipython_call(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Call)
        and isinstance(node.func.value.func, ast.Name)
        and node.func.value.func.id == "get_ipython"
    )


def _char_offset(line: str, byte_offset: int | None) -> int:
    """``ast`` column offsets count UTF-8 bytes."""
    return len(line.encode()[: byte_offset or 0].decode(errors="ignore"))


def _string(text: str) -> str:
    """A readable literal for a shell script: a raw triple-quoted string when it can be one."""
    if '"""' not in text and not text.endswith(("\\", '"')) and "\r" not in text:
        return f'r"""{text}"""'
    return repr(text)
