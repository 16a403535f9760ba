"""Static analysis of a step's code: which names it reads and which it writes.

``analyse_cells(sources)`` walks the top-level statements of a step's cells in order and
returns a ``Names`` record:

* **reads**: names the code loads before it has *definitely* assigned them. An
  assignment inside an ``if``, ``for``, ``while``, ``try`` or ``match`` body may not
  happen, so a later load of that name still counts as a read (conservative: an extra
  dependency costs a re-run, a missing one returns a wrong result).
* **writes**: names bound (assignment, ``import``, ``def``/``class``, ``for``/``with``/
  ``except`` targets, walrus, ``match`` captures) or deleted.
* **mutated**: names changed in place: ``x[...] = ``, ``x.attr = ``, ``del x[...]``,
  ``x += ``, and **any method call not known to be pure** (``x.append(...)``,
  ``model.fit(...)``, ``rng.integers(...)`` -- drawing moves a generator on --,
  ``fh.readline()``, ``cur.execute(...)``; ``df.head()``, ``arr.sum()``,
  ``model.predict(X)``, ``s.str.lower()`` are in ``PURE_METHODS``/``PURE_ACCESSORS``),
  ``inplace=True`` and ``t.add_(...)``, functions that change their first argument
  (``np.add.at(x, ...)``, ``np.copyto``, ``np.put``, ``np.fill_diagonal``, ``shuffle``,
  ``next(it)``...) and ``out=x``. The graph counts these as writes, except for module
  names (``np.random.seed(0)`` does not make a step "write" ``np``).
* **functions**: for every top-level ``def``/``class``, the global names its body reads
  and writes. A step that uses such a function reads (and writes) those names too,
  because they are touched when the function is called.

Comprehensions and function bodies have their own scopes: ``[x for x in data]`` reads
``data``, not ``x``. IPython syntax (``%magic``, ``%%cell magic``, ``!cmd``, ``a = !cmd``)
is turned into Python by IPython's own ``TransformerManager`` first; code inside
``%time``/``%%timeit``/``%%capture`` is analysed as code (its options read as the magic's
``parse_options`` reads them: ``%timeit -n1 -r1 (f(x))`` reads ``f`` and ``x``), the code of
``%timeit``/``%%timeit`` in a namespace of its own (its assignments are not the step's), and ``$name``/``{expr}``
expansions in magic lines and shell commands count as reads. Valid Python is parsed
directly (IPython's transformer leaves valid Python unchanged and costs 0.1 s to import).

This module owns the top-level walk (execution order, definite assignment) and the public
API; it is split along its seams: the in-place mutation rules (``PURE_METHODS``, ...,
``call_mutations``) are ``analysis_rules.py``'s, IPython syntax and magics (``python_source``,
``magic_code``, ``SCOPED_MAGICS``, ...) ``analysis_magics.py``'s, nested function/class/
comprehension scopes ``analysis_scopes.py``'s and hidden state (``np.random``...)
``hidden_rules.py``'s. Their public names are re-exported here.

Pure: takes source text, returns values. No I/O, no notebook or graph knowledge.
"""

from __future__ import annotations

import ast
import builtins
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from . import hidden_rules
from .analysis_magics import (
    CODE_MAGICS,
    MAGIC_OPTIONS,
    SCOPED_MAGICS,
    expansion_names,
    magic_call,
    magic_code,
    python_source,
)
from .analysis_rules import (
    ARGUMENT_MUTATING_FUNCTIONS,
    MUTATING_METHODS,
    PURE_ACCESSORS,
    PURE_METHODS,
    base_name,
    call_mutations,
)
from .analysis_scopes import Scope, class_scope, comprehension_scope, definition_time_exprs, function_scope
from .deepcode import with_room

__all__ = [
    "ARGUMENT_MUTATING_FUNCTIONS",
    "CODE_MAGICS",
    "KERNEL_NAMES",
    "MAGIC_OPTIONS",
    "MUTATING_METHODS",
    "PURE_ACCESSORS",
    "PURE_METHODS",
    "SCOPED_MAGICS",
    "AnalysisError",
    "FunctionNames",
    "Names",
    "analyse_cells",
    "base_name",
    "call_mutations",
    "class_scope",
    "comprehension_scope",
    "expansion_names",
    "function_scope",
    "magic_code",
    "normalised_code",
    "parse_cell",
    "python_source",
    "used_function_names",
]


#: Names that exist in every IPython kernel without being defined.
KERNEL_NAMES = frozenset(
    set(dir(builtins))
    | {
        "get_ipython",
        "display",
        "In",
        "Out",
        "exit",
        "quit",
        "_",
        "__",
        "___",
        "_i",
        "_ii",
        "_iii",
        "_oh",
        "_dh",
        "__name__",
        "__doc__",
        "__builtins__",
        "__file__",
    }
)


class AnalysisError(Exception):
    """The code cannot be parsed, even after IPython's transformation."""

    def __init__(self, message: str, cell: int, line: int | None) -> None:
        self.cell = cell
        self.line = line
        super().__init__(message)


@dataclass(frozen=True)
class FunctionNames:
    """The globals a function or class body reads and writes when it runs."""

    reads: frozenset[str] = frozenset()
    writes: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Names:
    """What a piece of code reads, writes, mutates and defines (see module docstring)."""

    reads: frozenset[str] = frozenset()
    writes: frozenset[str] = frozenset()
    mutated: frozenset[str] = frozenset()
    refs: frozenset[str] = frozenset()
    imports: frozenset[str] = frozenset()
    late_reads: frozenset[str] = frozenset()
    functions: Mapping[str, FunctionNames] = field(default_factory=dict)
    star_import: bool = False
    code: str = ""
    #: Names bound to modules by ``import``: ``{"np": "numpy"}``.
    modules: Mapping[str, str] = field(default_factory=dict)


def parse_cell(source: str, cell: int = 0) -> ast.Module:
    """Parse one cell, transforming IPython syntax first; raise ``AnalysisError``."""
    try:
        code = python_source(source)
        return ast.parse(code)
    except SyntaxError as e:
        raise AnalysisError(f"syntax error: {e.msg} (line {e.lineno})", cell, e.lineno) from None
    except (RecursionError, MemoryError):
        raise AnalysisError(
            "the code is nested too deeply for Python to compile (split the expression)", cell, None
        ) from None


def analyse_cells(sources: Sequence[str], modules: Mapping[str, str] | None = None) -> Names:
    """Analyse the cells of one step (or the setup), in order, as one piece of code.

    ``modules`` are module aliases bound elsewhere (the setup's ``import numpy as np``),
    to recognise hidden-state calls (``hidden_rules``: ``np.random.seed`` writes the
    pseudo-name ``<numpy.random>``). ``AnalysisError.cell`` is the index in ``sources``
    of a cell that does not parse.
    """
    trees = [parse_cell(source, index) for index, source in enumerate(sources)]
    try:
        return _names(trees, modules or {})
    except RecursionError:  # valid deep code (a sum of 2 000 terms): the walk needs room
        return with_room(_names, trees, modules or {})


def _names(trees: list[ast.Module], modules: Mapping[str, str]) -> Names:
    walker = _Walker(modules)
    assigned: set[str] = set()
    dumps = []
    for tree in trees:
        dumps.append(ast.dump(tree))
        walker.block(tree.body, assigned)
    return Names(
        reads=frozenset(walker.reads),
        writes=frozenset(walker.writes),
        mutated=frozenset(walker.mutated),
        refs=frozenset(walker.refs),
        imports=frozenset(walker.imports),
        late_reads=frozenset(walker.late),
        functions=dict(walker.functions),
        star_import=walker.star_import,
        code="\n".join(dumps),
        modules=dict(walker.modules),
    )


def normalised_code(sources: Iterable[str]) -> str:
    """The code of ``sources`` with whitespace and comments made irrelevant (AST dump)."""
    trees = [parse_cell(s, i) for i, s in enumerate(sources)]
    try:
        return "\n".join(ast.dump(t) for t in trees)
    except RecursionError:
        return with_room(lambda: "\n".join(ast.dump(t) for t in trees))


# ---------------------------------------------------------------- top-level walker


class _Walker:
    """Walks top-level statements in execution order, tracking definite assignment."""

    def __init__(self, modules: Mapping[str, str]) -> None:
        self.reads: set[str] = set()
        self.writes: set[str] = set()
        self.mutated: set[str] = set()
        self.refs: set[str] = set()
        self.imports: set[str] = set()
        self.late: set[str] = set()
        self.functions: dict[str, FunctionNames] = {}
        self.star_import = False
        self.modules: dict[str, str] = {}
        self.aliases: dict[str, str] = {**hidden_rules.DEFAULT_ALIASES, **modules}

    def hidden(self, effects: hidden_rules.Effects, assigned: set[str]) -> None:
        """Hidden state read and written, as pseudo-names (``<numpy.random>``)."""
        for name in sorted(effects.reads):
            self.load(name, assigned)
        for name in sorted(effects.writes):
            self.bind(name, assigned)

    def imported(self, name: str, module: str) -> None:
        self.modules[name] = module
        self.aliases[name] = module

    # -- names
    def load(self, name: str, assigned: set[str]) -> None:
        self.refs.add(name)
        if name not in assigned:
            self.reads.add(name)

    def bind(self, name: str, assigned: set[str]) -> None:
        self.writes.add(name)
        assigned.add(name)

    def mutate(self, name: str, assigned: set[str]) -> None:
        self.load(name, assigned)
        self.mutated.add(name)

    # -- statements
    def block(self, body: Sequence[ast.stmt], assigned: set[str]) -> set[str]:
        for node in body:
            self.stmt(node, assigned)
        return assigned

    def branch(self, body: Sequence[ast.stmt], assigned: set[str]) -> set[str]:
        """Walk a body that may or may not run; return what it would assign."""
        return self.block(body, set(assigned))

    def stmt(self, node: ast.stmt, assigned: set[str]) -> None:  # noqa: C901 - one case per statement
        if isinstance(node, ast.Assign):
            self.expr(node.value, assigned)
            for target in node.targets:
                self.target(target, assigned)
        elif isinstance(node, ast.AugAssign):
            self.expr(node.value, assigned)
            if isinstance(node.target, ast.Name):
                self.load(node.target.id, assigned)
            self.target(node.target, assigned)
        elif isinstance(node, ast.AnnAssign):
            self.expr(node.annotation, assigned)
            if node.value is not None:
                self.expr(node.value, assigned)
                self.target(node.target, assigned)
            elif not isinstance(node.target, ast.Name):
                self.target(node.target, assigned)
        elif isinstance(node, ast.For | ast.AsyncFor):
            self.expr(node.iter, assigned)
            inner = set(assigned)
            self.target(node.target, inner)
            self.block(node.body, inner)
            self.branch(node.orelse, assigned)
        elif isinstance(node, ast.While):
            self.expr(node.test, assigned)
            self.branch(node.body, assigned)
            self.branch(node.orelse, assigned)
        elif isinstance(node, ast.If):
            self.expr(node.test, assigned)
            both = self.branch(node.body, assigned) & self.branch(node.orelse, assigned)
            assigned |= both
        elif isinstance(node, ast.With | ast.AsyncWith):
            for item in node.items:
                self.expr(item.context_expr, assigned)
                if item.optional_vars is not None:
                    self.target(item.optional_vars, assigned)
            self.block(node.body, assigned)
        elif isinstance(node, ast.Try | getattr(ast, "TryStar", ast.Try)):
            outcomes = [self.block(node.orelse, self.branch(node.body, assigned))]
            for handler in node.handlers:
                inner = set(assigned)
                if handler.type is not None:
                    self.expr(handler.type, inner)
                if handler.name:
                    self.bind(handler.name, inner)
                outcomes.append(self.block(handler.body, inner))
            assigned |= set.intersection(*outcomes)
            self.block(node.finalbody, assigned)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for expr in definition_time_exprs(node):
                self.expr(expr, assigned)
            free, global_writes = function_scope(node)
            effects = hidden_rules.effects_in(node, self.aliases)
            self.functions[node.name] = FunctionNames(
                frozenset(free | effects.reads), frozenset(global_writes | effects.writes)
            )
            self.bind(node.name, assigned)
        elif isinstance(node, ast.ClassDef):
            for expr in [*node.decorator_list, *node.bases, *(k.value for k in node.keywords)]:
                self.expr(expr, assigned)
            free, global_writes = class_scope(node)
            effects = hidden_rules.effects_in(node, self.aliases)
            free, global_writes = free | effects.reads, global_writes | effects.writes
            # A class body runs when it is defined: its reads happen now.
            for name in free:
                self.load(name, assigned)
            self.writes |= global_writes
            self.functions[node.name] = FunctionNames(frozenset(free), frozenset(global_writes))
            self.bind(node.name, assigned)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                name = alias.asname or alias.name.split(".")[0]
                self.imports.add(name)
                self.bind(name, assigned)
                self.imported(name, alias.name if alias.asname else name)
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if alias.name == "*":
                    self.star_import = True
                else:
                    self.imports.add(alias.asname or alias.name)
                    self.bind(alias.asname or alias.name, assigned)
                    if node.module and not node.level:
                        self.imported(alias.asname or alias.name, f"{node.module}.{alias.name}")
        elif isinstance(node, ast.Delete):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    self.load(target.id, assigned)
                    self.writes.add(target.id)
                    assigned.discard(target.id)
                else:
                    self.target(target, assigned)
        elif isinstance(node, ast.Match):
            self.expr(node.subject, assigned)
            for case in node.cases:
                inner = set(assigned)
                captures = Scope()
                captures.visit(case.pattern)
                for name in captures.loads:
                    self.load(name, inner)
                for name in captures.bound:
                    self.bind(name, inner)
                if case.guard is not None:
                    self.expr(case.guard, inner)
                self.block(case.body, inner)
        elif isinstance(node, ast.Global | ast.Nonlocal | ast.Pass | ast.Break | ast.Continue):
            pass
        else:  # Expr, Assert, Raise, Return, ...
            for child in ast.iter_child_nodes(node):
                self.expr(child, assigned)

    def target(self, target: ast.AST, assigned: set[str]) -> None:
        if isinstance(target, ast.Name):
            self.bind(target.id, assigned)
        elif isinstance(target, ast.Tuple | ast.List):
            for elt in target.elts:
                self.target(elt, assigned)
        elif isinstance(target, ast.Starred):
            self.target(target.value, assigned)
        elif isinstance(target, ast.Attribute):
            self.expr(target.value, assigned)
            self._mutate_base(target, assigned)
            self.hidden(hidden_rules.target_effects(target, self.aliases), assigned)
        elif isinstance(target, ast.Subscript):
            self.expr(target.value, assigned)
            self.expr(target.slice, assigned)
            self._mutate_base(target, assigned)
            self.hidden(hidden_rules.target_effects(target, self.aliases), assigned)

    def _mutate_base(self, target: ast.AST, assigned: set[str]) -> None:
        name = base_name(target)
        if name:
            self.mutate(name, assigned)

    # -- expressions
    def expr(self, node: ast.AST, assigned: set[str]) -> None:
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Load):
                self.load(node.id, assigned)
            else:
                self.bind(node.id, assigned)
        elif isinstance(node, ast.NamedExpr):
            self.expr(node.value, assigned)
            self.target(node.target, assigned)
        elif isinstance(node, ast.Lambda):
            for expr in definition_time_exprs(node):
                self.expr(expr, assigned)
            free, global_writes = function_scope(node)
            effects = hidden_rules.effects_in(node, self.aliases)
            self.late |= free | effects.reads
            self.refs |= free | effects.reads
            self.writes |= global_writes | effects.writes
        elif isinstance(node, ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp):
            free, walrus = comprehension_scope(node)
            for name in sorted(free):
                self.load(name, assigned)
            for name in walrus:
                self.bind(name, assigned)
            for child in ast.walk(node):
                if isinstance(child, ast.Call):
                    for name in call_mutations(child):
                        if name in free:
                            self.mutate(name, assigned)
                    self.hidden(hidden_rules.call_effects(child, self.aliases), assigned)
        elif isinstance(node, ast.Call):
            magic = magic_call(node)
            if magic is not None:
                self.magic(*magic, assigned)
                return
            for child in ast.iter_child_nodes(node):
                self.expr(child, assigned)
            for name in call_mutations(node):
                self.mutate(name, assigned)
            self.hidden(hidden_rules.call_effects(node, self.aliases), assigned)
        else:
            for child in ast.iter_child_nodes(node):
                self.expr(child, assigned)

    def magic(self, kind: str, args: list[ast.AST], assigned: set[str]) -> None:
        texts = [a.value if isinstance(a, ast.Constant) and isinstance(a.value, str) else None for a in args]
        for arg, text in zip(args, texts, strict=True):
            if text is None:
                self.expr(arg, assigned)
        if kind in ("system", "getoutput"):
            for name in expansion_names(texts[0] or ""):
                self.load(name, assigned)
            self.hidden(hidden_rules.magic_effects(kind, ""), assigned)
            return
        name = texts[0] or ""
        line = texts[1] if len(texts) > 1 and texts[1] is not None else ""
        self.hidden(hidden_rules.magic_effects(name, line), assigned)
        for var in expansion_names(line):
            self.load(var, assigned)
        if name not in CODE_MAGICS:
            return
        scoped = name in SCOPED_MAGICS
        if kind == "run_cell_magic":
            body = texts[2] if len(texts) > 2 and texts[2] is not None else ""
            capture_var = None
            if name == "capture":
                outputs = [w for w in line.split() if not w.startswith("-")]
                capture_var = outputs[0] if outputs else None
            elif name == "timeit":
                body = magic_code(name, line) + "\n" + body  # %%timeit's line is its setup code
            self._analyse_code(body, assigned, scoped)
            if capture_var and capture_var.isidentifier():
                self.bind(capture_var, assigned)
        else:
            self._analyse_code(magic_code(name, line), assigned, scoped)

    def _analyse_code(self, code: str, assigned: set[str], scoped: bool = False) -> None:
        try:
            tree = ast.parse(python_source(code))
        except SyntaxError:
            return
        if not scoped:
            self.block(tree.body, assigned)
            return
        # Its own namespace: what it reads from the step's, and changes in place, counts.
        inner = _Walker(self.aliases)
        inner.block(tree.body, set(assigned))
        for name in sorted(inner.reads & inner.writes):  # hidden state (``<numpy.random>``) drawn from inside
            if name.startswith("<"):
                self.bind(name, assigned)
        for name in sorted(inner.reads):
            self.load(name, assigned)
        for name in sorted(inner.mutated - inner.writes):
            self.mutate(name, assigned)
        self.refs |= inner.refs - inner.writes
        self.late |= inner.late


def used_function_names(names: Names, functions: Mapping[str, FunctionNames]) -> FunctionNames:
    """The globals read and written by the known functions ``names`` uses, transitively.

    A step that calls ``score()``, where ``score`` (defined in the setup or an earlier
    step) reads ``model``, reads ``model`` too.
    """
    reads: set[str] = set()
    writes: set[str] = set()
    seen: set[str] = set()
    todo = [n for n in names.refs | names.late_reads if n in functions]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        info = functions[name]
        reads |= info.reads
        writes |= info.writes
        todo.extend(n for n in info.reads if n in functions and n not in seen)
    return FunctionNames(frozenset(reads), frozenset(writes))
