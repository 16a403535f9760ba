"""``nbflow export NB --to script``: the pipeline as a plain, readable Python module.

The module holds the setup code as it is in the notebook, one function per step and a
``main(**parameters)`` that calls them in order::

    def step_features(df, n_features, seed, test_size):
        '''The step's markdown documentation.'''
        X = df.drop(columns="target").iloc[:, :n_features]
        ...
        return X_test, X_train, y_test, y_train

    def main(test_size=0.3, n_features=5, ...):
        raw = step_load()
        ...
        return {"raw": raw, "df": df, ...}

A step function takes the values it reads from earlier steps and the parameters it reads
(the graph's edges), and returns the values later steps read (and its ``keep:`` names),
so the data flow nbflow drew is the call graph. A ``map:`` step loops over its iterable
and returns each name as the list of its elements' values, as nbflow binds it. The
parameters cell's defaults are ``main``'s defaults and the command line's
(``python pipeline.py --n_estimators 50``). ``main`` returns every value a step passed on.

The script imports neither Jupyter nor nbflow. IPython syntax is translated where there
is a plain equivalent (``export/ipython.py``), otherwise refused. This module only
writes text; it never runs the notebook.
"""

from __future__ import annotations

import io
import keyword
import re
import textwrap
import tokenize
from dataclasses import dataclass
from pathlib import Path

from ..errors import PipelineError
from ..graph import Pipeline
from ..notebook import Cell
from .ipython import plain_python


@dataclass(frozen=True)
class StepFunction:
    """How a step appears in the script: its function, arguments and returned names."""

    step: str
    function: str
    arguments: tuple[str, ...]
    returns: tuple[str, ...]


def step_functions(pipeline: Pipeline) -> dict[str, StepFunction]:
    """The function each step becomes, in execution order."""
    taken = set(pipeline.setup.writes) | set(pipeline.parameters)
    for step in pipeline.steps.values():
        taken |= step.reads | step.writes
    passed: dict[str, set[str]] = {name: set() for name in pipeline.order}
    for step in pipeline.steps.values():
        for name, provider in step.inputs.items():
            passed[provider].add(name)
    functions = {}
    for name in pipeline.order:
        step = pipeline.steps[name]
        function = "step_" + re.sub(r"\W", "_", name)
        while function in taken or keyword.iskeyword(function):
            function += "_"
        taken.add(function)
        # a setup name the step rebinds is a local of its function: pass it in
        rebound = {n for n in step.reads & step.writes if n in pipeline.setup.writes}
        arguments = sorted(set(step.inputs) | set(step.params) | rebound)
        returns = sorted(passed[name] | (set(step.keep) & step.writes))
        functions[name] = StepFunction(name, function, tuple(arguments), tuple(returns))
    return functions


def export_script(pipeline: Pipeline) -> str:
    """The text of the script for ``pipeline`` (``PipelineError`` if a cell cannot be translated)."""
    if pipeline.setup_params:
        raise PipelineError(
            f"the setup code reads the parameter(s) {', '.join(pipeline.setup_params)}; a script runs its setup "
            "before main() receives the parameters: move that code into a step",
            notebook=pipeline.path,
        )
    from ..languages.python import PYTHON

    if pipeline.language is not PYTHON:
        raise PipelineError(
            f"its kernel runs {pipeline.language.name}; `nbflow export` writes Python only", notebook=pipeline.path
        )
    functions = step_functions(pipeline)
    uses_subprocess = False

    def translate(cells: tuple[Cell, ...], step: str | None) -> str:
        nonlocal uses_subprocess
        parts = []
        for cell in cells:
            text, shell = plain_python(cell.source, pipeline.path, cell.number, step)
            uses_subprocess |= shell
            parts.append(text.rstrip())
        return "\n".join(p for p in parts if p.strip())

    setup = translate(pipeline.source.setup, None)
    bodies = {name: translate(pipeline.steps[name].cells, name) for name in pipeline.order}

    out = [_module_docstring(pipeline)]
    if uses_subprocess:
        out.append("import subprocess\n")
    if setup:
        out.append(setup + "\n")
    for name in pipeline.order:
        out.append(_function(pipeline, functions[name], bodies[name]))
    out.append(_main(pipeline, functions))
    out.append(_command_line(pipeline))
    return "\n\n\n".join(part.rstrip("\n") for part in out) + "\n"


def _module_docstring(pipeline: Pipeline) -> str:
    lines = [pipeline.source.title or pipeline.path.stem, ""]
    description = _plain_markdown(pipeline.source.description)
    if description.splitlines()[:1] == lines[:1]:
        description = description.partition("\n")[2].strip()
    if description:
        lines += [description, ""]
    lines += [
        f"Exported from {pipeline.path.name} by `nbflow export --to script`: one function per step,",
        "main() runs them in order. It needs neither Jupyter nor nbflow:",
        "",
        f"    python {pipeline.path.stem}.py" + "".join(f" --{p} VALUE" for p in list(pipeline.parameters)[:2]),
    ]
    text = "\n".join(lines).replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    return f'"""{text}\n"""\n'


def _function(pipeline: Pipeline, fn: StepFunction, body: str) -> str:
    step = pipeline.steps[fn.step]
    docs = _plain_markdown(step.docs).replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    lines = [f"def {fn.function}({', '.join(fn.arguments)}):"]
    if docs:
        lines.append(textwrap.indent(f'"""{docs}\n"""' if "\n" in docs else f'"""{docs}"""', "    "))
    if step.map_over:
        element = step.map_as or step.map_over
        inner = [a for a in fn.arguments if a != step.map_over]
        lines.append(f"    def element({', '.join([element, *inner])}):")
        lines.append(_indent(body or "pass", 8))
        if fn.returns:
            lines.append(f"        return {', '.join(fn.returns)}" + ("," if len(fn.returns) == 1 else ""))
        call = f"element({', '.join(['item', *inner])})"
        lines.append(f"    results = [{call} for item in {step.map_over}]")
        if fn.returns:
            lines.append("    return " + ", ".join(f"[r[{i}] for r in results]" for i in range(len(fn.returns))))
    else:
        lines.append(_indent(body or "pass", 4))
        if fn.returns:
            lines.append(f"    return {', '.join(fn.returns)}")
    return "\n".join(lines) + "\n"


def _main(pipeline: Pipeline, functions: dict[str, StepFunction]) -> str:
    signature = ", ".join(f"{name}={p.default!r}" for name, p in pipeline.parameters.items())
    lines = [
        f"def main({signature}):",
        '    """Run every step in order; return the values the steps passed on, by name."""',
    ]
    produced: list[str] = []
    for name in pipeline.order:
        fn = functions[name]
        call = f"{fn.function}({', '.join(fn.arguments)})"
        if not fn.returns:
            lines.append(f"    {call}")
        elif len(fn.returns) == 1:
            lines.append(f"    {fn.returns[0]} = {call}")
        else:
            lines.append(f"    {', '.join(fn.returns)}{',' if len(fn.returns) == 1 else ''} = {call}")
        produced += [n for n in fn.returns if n not in produced]
    lines.append("    return {" + ", ".join(f"{n!r}: {n}" for n in produced) + "}")
    return "\n".join(lines) + "\n"


def _command_line(pipeline: Pipeline) -> str:
    lines = [
        "def parse_args(argv=None):",
        '    """The parameters from the command line; the parameters cell\'s values are the defaults."""',
        "    import argparse",
        "",
        "    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])",
    ]
    for name, p in pipeline.parameters.items():
        kind = type(p.default)
        if kind in (int, float, str):
            convert = kind.__name__
        elif kind is bool:
            convert = 'lambda text: {"true": True, "false": False}[text.lower()]'
        else:
            convert = "ast.literal_eval"
        lines.append(f"    parser.add_argument({'--' + name!r}, type={convert}, default={p.default!r})")
    if any("ast." in line for line in lines):
        lines.insert(3, "    import ast")
    lines += [
        "    return vars(parser.parse_args(argv))",
        "",
        "",
        'if __name__ == "__main__":',
        "    main(**parse_args())",
    ]
    return "\n".join(lines) + "\n"


def _plain_markdown(text: str) -> str:
    """Markdown for a docstring: headings without their ``#`` marks."""
    return "\n".join(re.sub(r"^#+\s*", "", line) for line in text.strip().splitlines()).strip()


def _indent(code: str, width: int) -> str:
    """Indent ``code`` by ``width`` spaces, leaving the inside of multi-line strings alone."""
    keep: set[int] = set()
    try:
        for tok in tokenize.generate_tokens(io.StringIO(code + "\n").readline):
            if tok.type == tokenize.STRING and tok.end[0] > tok.start[0]:
                keep.update(range(tok.start[0] + 1, tok.end[0] + 1))
            elif getattr(tokenize, "FSTRING_MIDDLE", None) == tok.type and tok.end[0] > tok.start[0]:
                keep.update(range(tok.start[0] + 1, tok.end[0] + 1))
    except (tokenize.TokenError, SyntaxError):
        pass
    pad = " " * width
    return "\n".join(
        line if (i in keep or not line.strip()) else pad + line for i, line in enumerate(code.splitlines(), start=1)
    )


def write_script(pipeline: Pipeline, output: str | Path | None = None) -> Path:
    """Write the script (default: ``<notebook>.py`` next to the notebook) atomically; return its path."""
    from ..fsutil import atomic_write_bytes

    path = Path(output) if output is not None else pipeline.path.with_suffix(".py")
    atomic_write_bytes(path, export_script(pipeline).encode(), perms=0o644)
    return path
