"""Which setup definitions a step reaches: the setup part of its key.

The setup (code cells before the first step) runs in every kernel, but a step depends
only on the parts of it the step can touch. ``setup_statements(sources)`` splits the
setup into its top-level statements, each with what it **defines** (the names it binds)
and what it **uses** (every global it loads, function and class bodies included), and a
label for people: ``helper clean()``, ``class Model``, ``import np``, ``constant SCALE``.

A statement that defines nothing nbflow can see -- ``np.random.seed(0)``,
``sys.path.insert(0, "lib")``, ``os.chdir("data")``, ``pd.set_option(...)``,
``%matplotlib inline``, ``cfg["x"] = 1`` -- is **ambient**: it changes something every
step may depend on, so it is part of every step's key (labelled ``statement N``).
So is a statement that binds names but also changes what it did not bind (hidden state,
a module, another global): it may act on anything.

``setup_reach(statements, names)`` follows the names a step reads (and the globals of
the functions it calls, ``analysis.used_function_names``) to the statements that define
them, then to the names those statements use, and so on, and adds every ambient statement
(and what they use). A step whose code reaches for names dynamically (``eval``,
``exec``, ``globals()``, ``get_ipython()``...) reaches the whole setup.

Worked example::

    import numpy as np                 # import np
    SCALE = 3                          # constant SCALE
    def helper(v): return v * SCALE    # helper helper()
    def other(v): return v + 1         # helper other()
    np.random.seed(0)                  # statement 1 (ambient: every key)

``[step:a] y = helper(2)`` reaches ``helper helper()``, ``constant SCALE``,
``statement 1`` and ``import np`` (the seed call uses ``np``), not ``helper other()``:
editing ``other`` leaves ``a`` fresh; editing ``SCALE`` or the seed makes it stale.

``constant_names(statements)``: the setup names bound only to immutable literals
(``ROUNDS = 40``), which no step can change in place (an executor running steps at the
same time need not order two steps that both read one).

Pure: takes source text and names, returns values. No notebook, graph or cache
knowledge (``graph.py`` attaches the result to the pipeline, ``plan.py`` keys on it).
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from .analysis import FunctionNames, _Walker, parse_cell
from .deepcode import with_room

#: Names through which code reaches globals the analysis cannot follow.
DYNAMIC_NAMES = frozenset({"eval", "exec", "globals", "locals", "vars", "get_ipython", "__import__"})


@dataclass(frozen=True)
class SetupStatement:
    """One top-level statement of the setup."""

    label: str
    #: SHA-256 of the statement's normalised code (AST dump).
    digest: str
    defines: frozenset[str]
    uses: frozenset[str]
    #: Defines nothing visible (or changes more than it binds): part of every key.
    ambient: bool
    #: ``def``/``class``: its value is code, which travels with the values built from it.
    code_value: bool = False
    #: Where it starts: (index of the setup cell, line in that cell).
    where: tuple[int, int] = (0, 0)
    #: Binds names to immutable literals only (``N = 3``, ``SHAPE = (2, 3)``): values no
    #: code can change in place (``constant_names``).
    constant: bool = False


def setup_statements(sources: Sequence[str], modules: Mapping[str, str] | None = None) -> tuple[SetupStatement, ...]:
    """The setup's top-level statements, in order, each analysed (see module docstring).

    ``sources`` are the setup cells' code; a cell that does not parse raises
    ``analysis.AnalysisError`` (as ``analyse_cells`` does).
    """
    trees = [parse_cell(source, index) for index, source in enumerate(sources)]
    try:
        return _statements(trees, modules or {})
    except RecursionError:
        return with_room(_statements, trees, modules or {})


def _statements(trees: list[ast.Module], modules: Mapping[str, str]) -> tuple[SetupStatement, ...]:
    found: list[SetupStatement] = []
    labels: dict[str, int] = {}
    ambient_count = 0
    aliases = dict(modules)
    for cell, tree in enumerate(trees):
        for node in tree.body:
            walker = _Walker(aliases)
            walker.block([node], set())
            aliases.update(walker.modules)
            binds = {n for n in walker.writes if not n.startswith("<")}
            hidden = {n for n in walker.writes if n.startswith("<")}
            uses = set(walker.refs) | set(walker.late) | set(walker.reads)
            for info in walker.functions.values():
                uses |= set(info.reads)
            # a call on a module (``pd.read_csv(...)``) is not a change to it; ``sys.path.insert``
            # binds nothing, so it is ambient anyway
            changed = set(walker.mutated) - binds - set(aliases)
            ambient = not binds or bool(hidden) or bool(changed)
            if ambient:
                ambient_count += 1
                label = f"statement {ambient_count}"
            else:
                label = _label(node, binds)
            labels[label] = labels.get(label, 0) + 1
            if labels[label] > 1:
                label = f"{label} #{labels[label]}"
            found.append(
                SetupStatement(
                    label=label,
                    digest=hashlib.sha256(ast.dump(node).encode("utf-8")).hexdigest(),
                    defines=frozenset(binds),
                    uses=frozenset(uses),
                    ambient=ambient,
                    code_value=isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef),
                    where=(cell, node.lineno),
                    constant=not ambient and _immutable_literal(node),
                )
            )
    return tuple(found)


def _label(node: ast.stmt, binds: set[str]) -> str:
    names = ", ".join(sorted(binds))
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        return f"helper {node.name}()"
    if isinstance(node, ast.ClassDef):
        return f"class {node.name}"
    if isinstance(node, ast.Import | ast.ImportFrom):
        return f"import {names}"
    return f"constant {names}"


def _immutable_literal(node: ast.stmt) -> bool:
    """``node`` assigns one immutable literal (numbers, text, bytes, ``None``, tuples and
    frozensets of them) to plain names."""
    if isinstance(node, ast.Assign):
        targets, value = node.targets, node.value
    elif isinstance(node, ast.AnnAssign) and node.value is not None:
        targets, value = [node.target], node.value
    else:
        return False
    if not all(isinstance(t, ast.Name) for t in targets):
        return False
    try:
        literal = ast.literal_eval(value)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return _immutable(literal)


def _immutable(value: object) -> bool:
    if isinstance(value, tuple | frozenset):
        return all(_immutable(v) for v in value)
    return value is None or isinstance(value, bool | int | float | complex | str | bytes)


def constant_names(statements: Sequence[SetupStatement]) -> frozenset[str]:
    """Names every setup statement binding them binds to an immutable literal: no step
    can change such a value in place (rebinding it is a write the analysis sees)."""
    constant: set[str] = set()
    other: set[str] = set()
    for statement in statements:
        (constant if statement.constant else other).update(statement.defines)
    return frozenset(constant - other)


def setup_reach(
    statements: Sequence[SetupStatement],
    names: Iterable[str],
    functions: Mapping[str, FunctionNames] | None = None,
) -> tuple[int, ...]:
    """Indexes (in ``statements``) of the setup statements code using ``names`` reaches.

    ``names``: every name the step loads (reads, references, late reads). ``functions``:
    every known function's globals (``analysis.FunctionNames``), so a call to a function
    defined in a step that uses a setup helper reaches the helper.
    """
    names = set(names)
    if names & DYNAMIC_NAMES:
        return tuple(range(len(statements)))
    functions = functions or {}
    definers: dict[str, list[int]] = {}
    for index, statement in enumerate(statements):
        for name in statement.defines:
            definers.setdefault(name, []).append(index)
    reached: set[int] = set()
    seen: set[str] = set()
    todo = list(names)
    for index, statement in enumerate(statements):
        if statement.ambient:
            reached.add(index)
            todo.extend(statement.uses)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if name in DYNAMIC_NAMES:
            return tuple(range(len(statements)))
        if name in functions:
            todo.extend(functions[name].reads)
        for index in definers.get(name, ()):
            if index not in reached:
                reached.add(index)
                todo.extend(statements[index].uses)
    return tuple(sorted(reached))


def setup_part(statements: Sequence[SetupStatement], reached: Iterable[int]) -> dict[str, str]:
    """The setup part of a key: label -> digest of each statement reached."""
    return {statements[i].label: statements[i].digest for i in sorted(reached)}
