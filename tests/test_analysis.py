"""Static analysis: what a step reads and writes."""

from __future__ import annotations

import pytest

from nbflow.analysis import KERNEL_NAMES, AnalysisError, analyse_cells, normalised_code, used_function_names


def names(*sources: str):
    return analyse_cells(sources)


def reads(*sources: str) -> set[str]:
    return set(names(*sources).reads) - KERNEL_NAMES


def writes(*sources: str) -> set[str]:
    n = names(*sources)
    return set(n.writes) | set(n.mutated)


@pytest.mark.parametrize(
    "source, expected_reads, expected_writes",
    [
        ("y = x + 1", {"x"}, {"y"}),
        ("x = 1\ny = x", set(), {"x", "y"}),
        ("x = x + 1", {"x"}, {"x"}),
        ("x += 1", {"x"}, {"x"}),
        ("a, (b, *c) = t", {"t"}, {"a", "b", "c"}),
        ("import numpy as np\nimport os.path\nfrom math import pi as PI", set(), {"np", "os", "PI"}),
        ("def f(a, b=default):\n    return a", {"default"}, {"f"}),
        ("class C(Base):\n    pass", {"Base"}, {"C"}),
        ("for i in items:\n    total = i", {"items"}, {"i", "total"}),
        ("with open(p) as fh:\n    text = fh.read()", {"p"}, {"fh", "text"}),
        ("try:\n    v = risky()\nexcept ValueError as e:\n    v = None", {"risky"}, {"v", "e"}),
        ("if (n := compute()) > 3:\n    pass", {"compute"}, {"n"}),
        ("del old", {"old"}, {"old"}),
        ("lr: float = base_lr * 2", {"base_lr"}, {"lr"}),
        ("match cmd:\n    case [first, *rest]:\n        out = first", {"cmd"}, {"first", "rest", "out"}),
    ],
)
def test_reads_and_writes(source, expected_reads, expected_writes):
    assert reads(source) == expected_reads
    assert writes(source) == expected_writes


@pytest.mark.parametrize(
    "source, mutated",
    [
        ("df['a'] = 1", "df"),
        ("df.loc[mask, 'a'] = 0", "df"),
        ("obj.attr = 3", "obj"),
        ("config.section.value = 3", "config"),
        ("del cache[key]", "cache"),
        ("counts[k] += 1", "counts"),
        ("results.append(4)", "results"),
        ("model.fit(X, y)", "model"),
        ("df.drop(columns='a', inplace=True)", "df"),
        ("t.add_(1)", "t"),
        ("np.random.shuffle(arr)", "arr"),
        ("np.multiply(a, 2, out=b)", "b"),
        ("heapq.heappush(queue, 3)", "queue"),
    ],
)
def test_mutation_counts_as_read_and_write(source, mutated):
    n = names(source)
    assert mutated in n.mutated
    assert mutated in n.reads  # the object must exist before it is changed


def test_method_calls_that_do_not_mutate():
    n = names("df.head()\nsummary = df.describe()")
    assert n.mutated == frozenset()


def test_comprehension_scope():
    assert reads("ys = [x * k for x in xs if x > lo]") == {"xs", "k", "lo"}
    assert reads("d = {k: v for k, v in pairs.items()}") == {"pairs"}
    assert reads("g = sum(x for row in grid for x in row)") == {"grid"}
    # the loop variable does not leak
    assert "x" not in writes("ys = [x for x in xs]")


def test_walrus_in_comprehension_binds_outside():
    assert "last" in writes("ys = [last := x for x in xs]")


def test_function_body_reads_are_reported_per_function():
    n = names("def score():\n    return model.score(X_test, y_test)\n")
    assert n.reads == frozenset()
    assert set(n.functions["score"].reads) == {"model", "X_test", "y_test"}


def test_function_locals_and_closures_are_not_globals():
    n = names("def outer(a):\n    b = a + offset\n    def inner():\n        return b + scale\n    return inner()\n")
    assert set(n.functions["outer"].reads) == {"offset", "scale"}


def test_function_global_writes():
    n = names("def bump():\n    global counter\n    counter += 1\n    log.append(1)\n")
    assert set(n.functions["bump"].writes) == {"counter", "log"}


def test_class_body_reads_immediately_but_method_names_are_late():
    n = names("class Model:\n    size = SIZE\n    def run(self):\n        return helper(self)\n")
    assert "SIZE" in n.reads and "helper" in n.reads  # conservative: class seen as used
    assert set(n.functions["Model"].reads) >= {"SIZE", "helper"}


def test_class_names_invisible_in_methods():
    n = names("class C:\n    x = 1\n    def get(self):\n        return x\n")
    assert "x" in n.functions["C"].reads  # the method's x is the global one


def test_used_functions_are_followed_transitively():
    setup = names("def base():\n    return model\n\ndef score():\n    return base() + bias\n")
    step = names("s = score()")
    used = used_function_names(step, setup.functions)
    assert {"model", "bias", "base"} <= set(used.reads)


def test_lambda_free_names_are_late_reads():
    n = names("f = lambda v: v * factor")
    assert "factor" in n.late_reads and "factor" not in n.reads


def test_conditional_assignment_is_not_definite():
    assert "q" in reads("if flag:\n    q = 1\nprint(q)")
    assert "q" not in reads("if flag:\n    q = 1\nelse:\n    q = 2\nprint(q)")
    assert "v" in reads("for i in range(3):\n    v = i\nprint(v)")


def test_cells_are_analysed_in_order():
    assert reads("a = 1", "b = a + c") == {"c"}


def test_line_and_cell_magics():
    assert reads("%time y = f(x)") == {"f", "x"}
    assert writes("%time y = f(x)") == {"y"}
    assert reads("%%time\nz = g(w)\n") == {"g", "w"}
    assert reads("%timeit -n 10 -r 2 h(v)") == {"h", "v"}
    assert reads("%matplotlib inline") == set()


def test_capture_magic_writes_its_variable():
    n = names("%%capture captured\nprint(value)\n")
    assert "captured" in n.writes and "value" in n.reads


def test_shell_commands_and_expansions():
    assert reads("files = !ls {folder}") == {"folder"}
    assert writes("files = !ls {folder}") == {"files"}
    assert reads("!echo $name > out.txt") == {"name"}


def test_bash_cell_body_is_not_python():
    n = names("%%bash\nfor f in *.csv; do wc -l $f; done\n")
    assert set(n.reads) <= {"get_ipython"} and n.writes == frozenset()


def test_star_import_is_flagged():
    assert names("from math import *").star_import


def test_syntax_error_names_the_cell():
    with pytest.raises(AnalysisError) as info:
        analyse_cells(["x = 1", "def broken(:\n    pass"])
    assert info.value.cell == 1 and "syntax error" in str(info.value)


def test_normalised_code_ignores_whitespace_and_comments():
    a = normalised_code(["x = f(1,2)  # first\n\n\ny=x"])
    b = normalised_code(["# a comment\nx = f(1, 2)\ny = x\n"])
    assert a == b
    assert a != normalised_code(["x = f(1, 3)\ny = x"])


@pytest.mark.parametrize(
    "source, mutated",
    [
        ("draws = rng.integers(0, 10, size=5)", "rng"),  # a generator's state moves on
        ("line = fh.readline()", "fh"),
        ("cur.execute('select 1')", "cur"),
        ("item = next(it)", "it"),
        ("np.add.at(x, idx, 1)", "x"),
        ("np.copyto(dst, src)", "dst"),
        ("np.put(a, [0], 5)", "a"),
        ("np.fill_diagonal(m, 0)", "m"),
        ("np.place(arr, arr > 2, 0)", "arr"),
        ("np.putmask(arr, arr > 2, 0)", "arr"),
        ("rng.shuffle(deck)", "deck"),
        ("obj.unknown_method()", "obj"),
    ],
)
def test_calls_that_change_their_object_or_argument(source, mutated):
    n = names(source)
    assert mutated in n.mutated
    assert mutated in n.reads


@pytest.mark.parametrize(
    "source",
    [
        "df.head()\nsummary = df.describe()",
        "total = arr.sum() + arr.mean()\nshape = arr.reshape(2, -1)",
        "counts = df.groupby('a').size()\nout = df.sort_values('b').reset_index(drop=True)",
        "words = text.lower().split()",
        "p = model.predict(X)",
        "joined = ', '.join(words)\nkeys = str.join('', words)",
        "coefficients.plot.barh(ax=ax)\nlabels = s.str.lower()",
    ],
)
def test_known_pure_methods_do_not_change_their_object(source):
    assert names(source).mutated == frozenset()


def test_a_function_drawing_from_a_global_generator_writes_it():
    n = names("def noisy(k):\n    return rng.normal(size=k)")
    assert "rng" in n.functions["noisy"].writes


@pytest.mark.parametrize(
    "source, expected_reads, expected_writes",
    [
        # IPython runs %timeit's code in a namespace of its own: no assignment in the step
        ("%timeit counts, edges = f()", {"f"}, set()),
        # options are not code: not "-n1 - r1(expr)"
        ("%timeit -n1 -r1 (expr)", {"expr"}, set()),
        ("%timeit -n 3 -r 2 -q -o h(v)", {"h", "v"}, set()),
        ("%%timeit -n1 setup = g(1)\nx = h(setup, w)\n", {"g", "h", "w"}, set()),
        ("%time y = f(x)", {"f", "x"}, {"y"}),  # %time runs in the step's namespace
        ("%prun -s cumulative -q y = f(x)", {"f", "x"}, {"y"}),
    ],
)
def test_magics_are_read_as_ipython_reads_them(source, expected_reads, expected_writes):
    assert reads(source) == expected_reads
    assert writes(source) == expected_writes


def test_setup_statements_labels_and_ambient_statements():
    from nbflow.analysis_setup import setup_reach, setup_statements

    statements = setup_statements(
        [
            "import numpy as np\nimport os, sys\nSCALE = 3\n\ndef helper(v):\n    return v * SCALE\n\n"
            "class Model:\n    def fit(self):\n        return helper(1)\n",
            "np.random.seed(0)\nsys.path.insert(0, 'lib')\nos.chdir('.')\n%matplotlib inline\n"
            "rng = np.random.default_rng(0)\nSCALE = SCALE + 1\nfrom math import *",
        ]
    )
    assert [(s.label, s.ambient) for s in statements] == [
        ("import np", False),
        ("import os, sys", False),
        ("constant SCALE", False),
        ("helper helper()", False),
        ("class Model", False),
        ("statement 1", True),
        ("statement 2", True),
        ("statement 3", True),
        ("statement 4", True),
        ("constant rng", False),
        ("constant SCALE #2", False),
        ("statement 5", True),
    ]
    reached = {statements[i].label for i in setup_reach(statements, {"Model"})}
    ambient = {"statement 1", "statement 2", "statement 3", "statement 4", "statement 5", "import np", "import os, sys"}
    assert reached == ambient | {"class Model", "helper helper()", "constant SCALE", "constant SCALE #2"}
    assert {statements[i].label for i in setup_reach(statements, {"rng"})} == ambient | {"constant rng"}
    assert len(setup_reach(statements, {"eval"})) == len(statements)  # dynamic lookups reach everything


def test_constant_names_are_setup_names_bound_only_to_immutable_literals():
    from nbflow.analysis_setup import constant_names, setup_statements

    statements = setup_statements(
        [
            "ROUNDS = 2_000\nNAME: str = 'x'\nSHAPE = (2, -3)\nLIMIT = None\nITEMS = [1, 2]\nKEYS = {1, 2}",
            "import numpy as np\nSCALE = 3\nSCALE = [3]\nFROZEN = frozenset()\nA = B = 1.5\nC, D = 1, 2\nE = 2 * 3",
        ]
    )
    assert constant_names(statements) == {"ROUNDS", "NAME", "SHAPE", "LIMIT", "A", "B"}
