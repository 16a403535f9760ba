"""The in-place mutation rules of the static analysis: which calls change a variable.

Owns the tables (``MUTATING_METHODS``, ``PURE_METHODS``, ``PURE_ACCESSORS``,
``ARGUMENT_MUTATING_FUNCTIONS``), ``base_name`` (the variable at the root of ``a.b[c]``)
and ``call_mutations(call)``, the names one call may change in place: a method call
changes its object unless the method is known to be pure, ``inplace=True``/``x.add_()``
always do, ``np.add.at(x, ...)`` and the functions that change their first argument
change it, ``out=x`` changes ``x``. ``analysis.py`` and ``analysis_scopes.py`` walk the
code and ask these rules about each call.

Pure: takes AST nodes, returns names. It must not walk statements or scopes (that is
``analysis.py``/``analysis_scopes.py``) nor know hidden state such as ``np.random``
(that is ``hidden_rules.py``).
"""

from __future__ import annotations

import ast
import builtins

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

_BUILTIN_NAMES = frozenset(dir(builtins))


def base_name(node: ast.AST) -> str | None:
    """The variable at the root of ``a.b[c].d``; ``None`` for ``f().x`` or literals."""
    while isinstance(node, ast.Attribute | ast.Subscript | ast.Starred):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _constant_true(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def call_mutations(node: ast.Call) -> list[str]:
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
