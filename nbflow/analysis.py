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

Pure: takes source text, returns values. No I/O, no notebook or graph knowledge.
"""

from __future__ import annotations

import ast
import builtins
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from . import hidden_rules
from .deepcode import with_room

#: Method names that change their object in place.
MUTATING_METHODS = frozenset(
    {
        # list, dict, set, deque, bytearray
        "append",
        "extend",
        "insert",
        "pop",
        "remove",
        "clear",
        "sort",
        "reverse",
        "update",
        "setdefault",
        "popitem",
        "add",
        "discard",
        "difference_update",
        "intersection_update",
        "symmetric_difference_update",
        "appendleft",
        "extendleft",
        "popleft",
        "rotate",
        # numpy
        "fill",
        "resize",
        "put",
        "itemset",
        "setflags",
        "partition",
        "byteswap",
        # estimators and models (scikit-learn, statsmodels, keras, torch)
        "fit",
        "partial_fit",
        "fit_transform",
        "fit_predict",
        "fit_resample",
        "set_params",
        "load_state_dict",
        "compile",
        "train",
        # files and streams
        "write",
        "writelines",
        "close",
        "seek",
        "truncate",
    }
)
#: Methods known not to change their object (pandas, NumPy, str, dict, list, set,
#: fitted estimators). A call of any other method on a variable counts as changing it:
#: ``rng.integers(10)`` draws from (changes) the generator, ``f.readline()`` moves the file.
PURE_METHODS = frozenset(
    {
        # pandas / NumPy reads and computations returning new objects
        *("head", "tail", "describe", "info", "copy", "sum", "mean", "median", "mode", "std", "var", "sem"),
        *("min", "max", "idxmin", "idxmax", "argmin", "argmax", "argsort", "count", "nunique", "unique"),
        *("value_counts", "quantile", "prod", "cumsum", "cumprod", "cummax", "cummin", "diff", "pct_change"),
        *("shift", "rank", "round", "abs", "clip", "corr", "cov", "corrwith", "nlargest", "nsmallest"),
        *("groupby", "agg", "aggregate", "apply", "applymap", "map", "transform", "pipe", "rolling"),
        *("expanding", "ewm", "resample", "merge", "join", "concat", "sort_values", "sort_index"),
        *("reset_index", "set_index", "reindex", "drop", "drop_duplicates", "duplicated", "rename"),
        *("rename_axis", "dropna", "fillna", "ffill", "bfill", "interpolate", "replace", "astype", "query"),
        *("eval", "filter", "select_dtypes", "isna", "isnull", "notna", "notnull", "isin", "between", "any"),
        *("all", "pivot", "pivot_table", "melt", "stack", "unstack", "explode", "crosstab", "get_group"),
        *("to_numpy", "to_list", "tolist", "to_dict", "to_frame", "to_string", "to_csv", "to_json"),
        *("to_parquet", "to_excel", "to_markdown", "to_html", "to_latex", "to_records", "to_pickle"),
        *("items", "iterrows", "itertuples", "keys", "values", "get", "where", "mask", "assign", "sample"),
        *("nunique", "memory_usage", "equals", "dot", "reshape", "transpose", "flatten", "ravel", "squeeze"),
        *("item", "nonzero", "searchsorted", "view", "astype", "conj", "trace", "cumsum", "ptp", "plot"),
        *("hist", "boxplot", "style", "first", "last", "nth", "size", "describe", "memory_usage", "swapaxes"),
        *("to_period", "to_timestamp", "tz_localize", "tz_convert", "strftime", "total_seconds", "date"),
        *("isoformat", "timestamp", "weekday", "isocalendar", "between_time", "at_time", "asfreq", "agg"),
        # str, bytes, dict, list, set, tuple
        *("split", "rsplit", "splitlines", "strip", "lstrip", "rstrip", "lower", "upper", "title"),
        *("capitalize", "casefold", "format", "format_map", "startswith", "endswith", "find", "rfind"),
        *("index", "rindex", "encode", "decode", "zfill", "center", "ljust", "rjust"),
        *("isdigit", "isalpha", "isalnum", "isspace", "isupper", "islower", "isnumeric", "removeprefix"),
        *("removesuffix", "expandtabs", "translate", "maketrans", "hex", "union", "intersection"),
        *("difference", "symmetric_difference", "issubset", "issuperset", "isdisjoint", "fromkeys"),
        *("is_integer", "bit_length", "as_integer_ratio", "conjugate", "exists", "is_file", "is_dir"),
        *("with_suffix", "with_name", "relative_to", "resolve", "glob", "rglob", "iterdir", "read_text"),
        *("read_bytes", "stat", "joinpath", "match"),
        # fitted estimators and models: using them does not change them
        *("predict", "predict_proba", "predict_log_proba", "decision_function", "score", "score_samples"),
        *("get_params", "get_feature_names_out", "inverse_transform", "summary", "conf_int", "pdf", "cdf"),
        *("ppf", "sf", "logpdf", "logcdf", "pmf", "interval", "entropy", "moment", "stats"),
    }
)
#: pandas accessors whose methods leave the object alone.
PURE_ACCESSORS = frozenset({"plot", "str", "dt", "cat", "sparse", "style", "array"})
#: Functions that change their first argument in place.
ARGUMENT_MUTATING_FUNCTIONS = frozenset(
    {
        "next",
        "shuffle",
        "copyto",
        "fill_diagonal",
        "place",
        "put",
        "putmask",
        "put_along_axis",
        "heappush",
        "heappop",
        "heapify",
        "heapreplace",
        "heappushpop",
        "insort",
        "insort_left",
        "insort_right",
        "setattr",
        "delattr",
    }
)
#: Magics whose argument (line or cell body) is Python code run in the user namespace.
CODE_MAGICS = frozenset({"time", "timeit", "prun", "capture", "debug", "memit", "mprun", "lprun"})
#: Magics whose code runs in a namespace of its own: it reads the step's names but its
#: assignments stay there (``%timeit x = f()`` does not define ``x``).
SCOPED_MAGICS = frozenset({"timeit"})
#: Options of code magics, as their ``parse_options`` spec (getopt: ``n:`` takes a value).
MAGIC_OPTIONS = {
    "time": "",
    "timeit": "n:r:tcp:qo",
    "prun": "D:l:rs:T:q",
    "lprun": "rsf:m:D:T:u:z",
    "mprun": "rf:T:c",
    "memit": "r:t:i:co",
}
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

_BUILTIN_NAMES = frozenset(dir(builtins))
_DOLLAR = re.compile(r"(?<!\$)\$(\w+)")
_BRACES = re.compile(r"(?<!\{)\{([^{}]+)\}(?!\})")


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


def python_source(source: str) -> str:
    """``source`` as plain Python: IPython syntax turned into calls by IPython itself."""
    try:
        ast.parse(source)
        return source
    except SyntaxError:
        pass
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager().transform_cell(source)


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


def base_name(node: ast.AST) -> str | None:
    """The variable at the root of ``a.b[c].d``; ``None`` for ``f().x`` or literals."""
    while isinstance(node, ast.Attribute | ast.Subscript | ast.Starred):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _constant_true(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def _call_mutations(node: ast.Call) -> list[str]:
    """Names a call may change in place.

    A method call changes its object unless the method is known to be pure
    (``PURE_METHODS``; ``inplace=True`` or a trailing ``_`` as in torch's ``x.add_(1)``
    always change it); ``np.add.at(x, ...)`` (a ufunc's ``at``) and the functions of
    ``ARGUMENT_MUTATING_FUNCTIONS`` change their first argument; ``out=x`` changes ``x``.
    Calls on builtins (``str.join``) change nothing; the graph leaves modules out
    (``np.random.seed(0)`` is hidden state, not a write of ``np``).
    """
    names = []
    func = node.func
    if isinstance(func, ast.Attribute):
        method = func.attr
        target = base_name(func.value)
        if target and (
            method in MUTATING_METHODS
            or any(k.arg == "inplace" and _constant_true(k.value) for k in node.keywords)
            or (method.endswith("_") and not method.startswith("_"))
            or (method not in PURE_METHODS and target not in _BUILTIN_NAMES and not _through_accessor(func.value))
        ):
            names.append(target)
        function = method
    elif isinstance(func, ast.Name):
        function = func.id
    else:
        function = ""
    if (function in ARGUMENT_MUTATING_FUNCTIONS or (function == "at" and isinstance(func, ast.Attribute))) and (
        node.args
    ):
        target = base_name(node.args[0])
        if target:
            names.append(target)
    for keyword in node.keywords:
        if keyword.arg == "out":
            target = base_name(keyword.value)
            if target:
                names.append(target)
    return names


def _through_accessor(node: ast.AST) -> bool:
    """Whether ``node`` (what a method is called on) goes through a pandas accessor whose
    methods return new objects or draw: ``df.plot.bar``, ``s.str.lower``, ``s.dt.year``."""
    while isinstance(node, ast.Attribute | ast.Subscript):
        if isinstance(node, ast.Attribute) and node.attr in PURE_ACCESSORS:
            return True
        node = node.value
    return False


def _magic_call(node: ast.Call) -> tuple[str, list[ast.AST]] | None:
    """``('run_cell_magic', args)`` for ``get_ipython().run_cell_magic(...)`` and friends."""
    func = node.func
    if (
        isinstance(func, ast.Attribute)
        and func.attr in ("run_line_magic", "run_cell_magic", "system", "getoutput")
        and isinstance(func.value, ast.Call)
        and isinstance(func.value.func, ast.Name)
        and func.value.func.id == "get_ipython"
    ):
        return func.attr, list(node.args)
    return None


def expansion_names(text: str) -> set[str]:
    """Names that IPython's ``$name`` and ``{expr}`` expansion would read from ``text``."""
    names = set(_DOLLAR.findall(text))
    for expr in _BRACES.findall(text):
        try:
            tree = ast.parse(expr.strip(), mode="eval")
        except SyntaxError:
            continue
        names |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    return names


def magic_code(magic: str, line: str) -> str:
    """The code in a code magic's ``line``, its options left out as IPython reads them.

    ``%timeit -n1 -r1 (expr)`` -> ``(expr)``: options are getopt-style (``-n1``, ``-n 1``,
    ``-qo``) per the magic's spec in ``MAGIC_OPTIONS``; the code starts at the first word
    that is not an option. Magics without a known spec drop the longest prefix of words
    that keeps the rest valid Python.
    """
    spec = MAGIC_OPTIONS.get(magic)
    if spec is None:
        return _strip_magic_options(line)
    pos = 0
    while True:
        pos = len(line) - len(line[pos:].lstrip()) if line[pos:].strip() else len(line)
        if pos >= len(line) or line[pos] != "-":
            return line[pos:]
        end = pos + len(line[pos:].split()[0])
        token = line[pos:end]
        if token == "--":
            return line[end:].lstrip()
        i = 1
        while i < len(token):
            letter = token[i]
            if not letter.isalpha() or letter not in spec.replace(":", ""):
                return line[pos:]  # not an option: code that starts with a minus
            if spec[spec.index(letter) + 1 : spec.index(letter) + 2] == ":":
                if i + 1 == len(token):  # the value is the next word
                    rest = line[end:].lstrip()
                    end = len(line) - len(rest) + (len(rest.split()[0]) if rest.split() else 0)
                break
            i += 1
        pos = end


def _strip_magic_options(line: str) -> str:
    """``-n 10 -r 3 f(x)`` -> the longest suffix of ``line`` that parses as Python."""
    words = line.split()
    for start in range(len(words) + 1):
        candidate = " ".join(words[start:])
        try:
            ast.parse(candidate)
            return candidate
        except SyntaxError:
            continue
    return ""


# --------------------------------------------------------------------------- scopes


class _Scope(ast.NodeVisitor):
    """Collects bindings and loads of one function/class/lambda/comprehension body."""

    def __init__(self) -> None:
        self.bound: set[str] = set()
        self.loads: set[str] = set()
        self.declared_global: set[str] = set()
        self.declared_nonlocal: set[str] = set()
        self.mutated: set[str] = set()
        self.nested_free: set[str] = set()
        self.nested_global_writes: set[str] = set()

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self.loads.add(node.id)
        else:
            self.bound.add(node.id)

    def _mutation_target(self, node: ast.AST) -> None:
        name = base_name(node)
        if name:
            self.loads.add(name)
            self.mutated.add(name)

    def visit_Assign(self, node: ast.Assign) -> None:
        self.visit(node.value)
        for target in node.targets:
            self._target(target)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self.visit(node.value)
        if isinstance(node.target, ast.Name):
            self.loads.add(node.target.id)
        self._target(node.target)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self.visit(node.annotation)
        if node.value is not None:
            self.visit(node.value)
        self._target(node.target)

    def visit_Delete(self, node: ast.Delete) -> None:
        for target in node.targets:
            self._target(target)

    def _target(self, target: ast.AST) -> None:
        if isinstance(target, ast.Name):
            self.bound.add(target.id)
        elif isinstance(target, ast.Tuple | ast.List):
            for elt in target.elts:
                self._target(elt)
        elif isinstance(target, ast.Starred):
            self._target(target.value)
        else:
            self._mutation_target(target)
            self.generic_visit(target)

    def visit_Call(self, node: ast.Call) -> None:
        self.generic_visit(node)
        for name in _call_mutations(node):
            self.loads.add(name)
            self.mutated.add(name)

    def visit_Global(self, node: ast.Global) -> None:
        self.declared_global.update(node.names)

    def visit_Nonlocal(self, node: ast.Nonlocal) -> None:
        self.declared_nonlocal.update(node.names)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.bound.add(alias.asname or alias.name.split(".")[0])

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            if alias.name != "*":
                self.bound.add(alias.asname or alias.name)

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.name:
            self.bound.add(node.name)
        self.generic_visit(node)

    def visit_MatchAs(self, node: ast.MatchAs) -> None:
        if node.name:
            self.bound.add(node.name)
        self.generic_visit(node)

    def visit_MatchStar(self, node: ast.MatchStar) -> None:
        if node.name:
            self.bound.add(node.name)

    def visit_MatchMapping(self, node: ast.MatchMapping) -> None:
        if node.rest:
            self.bound.add(node.rest)
        self.generic_visit(node)

    def _nested(self, free: set[str], global_writes: set[str]) -> None:
        self.nested_free |= free
        self.nested_global_writes |= global_writes

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.bound.add(node.name)
        for expr in _definition_time_exprs(node):
            self.visit(expr)
        self._nested(*function_scope(node))

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> None:
        for expr in _definition_time_exprs(node):
            self.visit(expr)
        self._nested(*function_scope(node))

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.bound.add(node.name)
        for expr in [*node.decorator_list, *node.bases, *(k.value for k in node.keywords)]:
            self.visit(expr)
        self._nested(*class_scope(node))

    def _comprehension(self, node: ast.AST) -> None:
        free, walrus = comprehension_scope(node)
        self.loads |= free
        self.bound |= walrus

    visit_ListComp = visit_SetComp = visit_GeneratorExp = visit_DictComp = _comprehension


def _definition_time_exprs(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> list[ast.AST]:
    """Decorators, defaults and annotations: evaluated where the function is defined."""
    args = node.args
    exprs: list[ast.AST] = [*args.defaults, *(d for d in args.kw_defaults if d is not None)]
    if not isinstance(node, ast.Lambda):
        exprs += node.decorator_list
        every = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
        exprs += [a.annotation for a in every if a is not None and a.annotation is not None]
        if node.returns is not None:
            exprs.append(node.returns)
    return exprs


def function_scope(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> tuple[set[str], set[str]]:
    """(free names, global names written) of a function or lambda body."""
    scope = _Scope()
    args = node.args
    params = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
    scope.bound |= {a.arg for a in params if a is not None}
    for stmt in node.body if isinstance(node.body, list) else [node.body]:
        scope.visit(stmt)
    local = scope.bound - scope.declared_global - scope.declared_nonlocal
    free = (scope.loads | scope.nested_free) - local
    global_writes = (
        (scope.declared_global & (scope.bound | scope.mutated))
        | (scope.mutated - local)
        | (scope.nested_global_writes - local)
    )
    return free, global_writes


def class_scope(node: ast.ClassDef) -> tuple[set[str], set[str]]:
    """(free names, global names written) of a class body and its methods.

    Names bound in a class body are not visible inside its methods, so the methods'
    free names are kept whole.
    """
    scope = _Scope()
    for stmt in node.body:
        scope.visit(stmt)
    local = scope.bound - scope.declared_global
    free = (scope.loads - local) | scope.nested_free
    global_writes = (scope.declared_global & scope.bound) | (scope.mutated - local) | scope.nested_global_writes
    return free, global_writes


def comprehension_scope(node: ast.AST) -> tuple[set[str], set[str]]:
    """(free names, walrus targets bound in the enclosing scope) of a comprehension."""
    generators: list[ast.comprehension] = node.generators  # type: ignore[attr-defined]
    outer = _Scope()
    outer.visit(generators[0].iter)
    inner = _Scope()
    for i, gen in enumerate(generators):
        if i:
            inner.visit(gen.iter)
        targets = _Scope()
        targets._target(gen.target)
        inner.bound |= targets.bound
        for cond in gen.ifs:
            inner.visit(cond)
    if isinstance(node, ast.DictComp):
        inner.visit(node.key)
        inner.visit(node.value)
    else:
        inner.visit(node.elt)  # type: ignore[attr-defined]
    walrus = {n.target.id for n in ast.walk(node) if isinstance(n, ast.NamedExpr) and isinstance(n.target, ast.Name)}
    comprehension_local = inner.bound - walrus
    free = outer.loads | outer.nested_free | ((inner.loads | inner.nested_free) - comprehension_local)
    return free, walrus


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
            for expr in _definition_time_exprs(node):
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
                captures = _Scope()
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
            for expr in _definition_time_exprs(node):
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
                    for name in _call_mutations(child):
                        if name in free:
                            self.mutate(name, assigned)
                    self.hidden(hidden_rules.call_effects(child, self.aliases), assigned)
        elif isinstance(node, ast.Call):
            magic = _magic_call(node)
            if magic is not None:
                self.magic(*magic, assigned)
                return
            for child in ast.iter_child_nodes(node):
                self.expr(child, assigned)
            for name in _call_mutations(node):
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
