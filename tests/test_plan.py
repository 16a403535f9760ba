"""Keys and plans: what is fresh, what is stale, and why."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nbflow import load_pipeline
from nbflow.cache import Cache
from nbflow.plan import step_keys
from nbflow.run import pipeline_cache

from .conftest import code, step, write_notebook


def record(pipeline, params=None) -> None:
    """Commit a real cache entry for every step, as a finished run would have."""
    plan = pipeline.plan(params)
    cache = pipeline_cache(pipeline)
    for entry in plan:
        values = {name: 0 for name in pipeline.steps[entry.step].writes}
        staging = cache.stage(entry.step)
        cache.commit(
            staging,
            step=entry.step,
            key=entry.key,
            parts=entry.parts.to_dict(),
            values=values,
            meta={"notebook": pipeline.path.name},
        )


def edit(path: Path, cell: int, source: str) -> None:
    nb = nbformat.read(path, 4)
    nb.cells[cell].source = source
    nbformat.write(nb, path)


CHAIN = [
    code("import math"),
    code("lr = 0.1\nepochs = 2", "parameters"),
    step("load", "data = list(range(10))"),
    step("clean", "rows = [d for d in data if d % 2]"),
    step("train", "w = sum(rows) * lr"),
    step("report", "text = f'{w:.2f} after {epochs} epochs'"),
    step("side", "other = math.pi"),
]


def test_first_plan_runs_everything(make_notebook):
    plan = load_pipeline(make_notebook(CHAIN)).plan()
    assert [(e.step, e.state, e.action, e.reasons) for e in plan] == [
        (s, "stale", "run", ("never run",)) for s in ("load", "clean", "train", "report", "side")
    ]


def test_after_a_run_everything_is_fresh(make_notebook):
    path = make_notebook(CHAIN)
    record(load_pipeline(path))
    plan = load_pipeline(path).plan()
    assert plan.stale == [] and plan.to_run == []
    assert all(e.action == "cached" for e in plan)


def test_code_edit_invalidates_the_step_and_its_descendants(make_notebook):
    path = make_notebook(CHAIN)
    record(load_pipeline(path))
    edit(path, 3, "rows = [d for d in data if d % 3]")
    plan = load_pipeline(path).plan()
    assert plan.stale == ["clean", "train", "report"]
    assert plan["clean"].reasons == ("code changed",)
    assert plan["train"].reasons == ("upstream clean changed",)
    assert plan["report"].reasons == ("upstream train changed",)


def test_whitespace_and_comments_change_nothing(make_notebook):
    path = make_notebook(CHAIN)
    record(load_pipeline(path))
    edit(path, 3, "# keep odd rows\nrows = [d   for d in data if d % 2]   # odd\n\n")
    assert load_pipeline(path).plan().stale == []


def test_parameter_change_reruns_only_its_readers(make_notebook):
    path = make_notebook(CHAIN)
    record(load_pipeline(path))
    plan = load_pipeline(path).plan({"epochs": 5})
    assert plan.stale == ["report"]
    assert plan["report"].reasons == ("parameter epochs changed",)
    plan = load_pipeline(path).plan({"lr": 0.5})
    assert plan.stale == ["train", "report"]
    assert plan["train"].reasons == ("parameter lr changed",)


def test_default_change_in_parameters_cell(make_notebook):
    path = make_notebook(CHAIN)
    record(load_pipeline(path))
    edit(path, 1, "lr = 0.2\nepochs = 2")
    assert load_pipeline(path).plan().stale == ["train", "report"]


def test_setup_statement_no_step_uses_invalidates_nothing(make_notebook):
    path = make_notebook(CHAIN)
    record(load_pipeline(path))
    edit(path, 0, "import math\nimport json")
    assert load_pipeline(path).plan().stale == []


def test_setup_import_change_invalidates_the_steps_using_it(make_notebook):
    path = make_notebook(CHAIN)
    record(load_pipeline(path))
    edit(path, 0, "import cmath as math")
    plan = load_pipeline(path).plan()
    assert plan.stale == ["side"]
    assert plan["side"].reasons == ("setup: import math changed",)


SETUP = """import numpy as np
SCALE = 3
LIMIT = 10

def clean(v):
    return v * SCALE

def other(v):
    return min(v, LIMIT)

class Model:
    def fit(self, v):
        return clean(v) + 1
"""
PRECISE = [
    code(SETUP),
    code("np.random.seed(0)"),
    step("a", "x = clean(2)"),
    step("b", "y = other(x)"),
    step("c", "m = Model()"),
    step("d", "z = m.fit(1)"),
    step("e", "w = 7"),
]


def test_setup_helper_edit_invalidates_its_callers_and_their_dependants(make_notebook):
    path = make_notebook(PRECISE)
    record(load_pipeline(path))
    edit(path, 0, SETUP.replace("return v * SCALE", "return v * SCALE * 1"))
    plan = load_pipeline(path).plan()
    # a calls clean, the class method calls clean (c builds a Model, d uses one)
    assert plan.stale == ["a", "b", "c", "d"]
    assert plan["a"].reasons == ("setup: helper clean() changed",)
    # what a step builds from a function or class may carry it: its dependants reach it too
    assert set(plan["b"].reasons) == {"setup: helper clean() changed", "upstream a changed"}
    assert plan["c"].reasons == ("setup: helper clean() changed",)
    assert "setup: helper clean() changed" in plan["d"].reasons


def test_setup_constant_edit_invalidates_the_callers_of_the_helper_reading_it(make_notebook):
    path = make_notebook(PRECISE)
    record(load_pipeline(path))
    edit(path, 0, SETUP.replace("LIMIT = 10", "LIMIT = 11"))
    plan = load_pipeline(path).plan()
    assert plan.stale == ["b"]
    assert plan["b"].reasons == ("setup: constant LIMIT changed",)


def test_setup_method_edit_invalidates_the_steps_using_the_class(make_notebook):
    path = make_notebook(PRECISE)
    record(load_pipeline(path))
    edit(path, 0, SETUP.replace("clean(v) + 1", "clean(v) + 2"))
    plan = load_pipeline(path).plan()
    assert plan.stale == ["c", "d"]
    assert plan["c"].reasons == ("setup: class Model changed",)


def test_bare_setup_call_is_part_of_every_key(make_notebook):
    path = make_notebook(PRECISE)
    record(load_pipeline(path))
    edit(path, 1, "np.random.seed(1)")
    plan = load_pipeline(path).plan()
    assert plan.stale == ["a", "b", "c", "d", "e"]
    assert plan["e"].reasons == ("setup: statement 1 changed",)


def test_dynamic_lookup_reaches_the_whole_setup(make_notebook):
    path = make_notebook([code("A = 1\nB = 2"), step("s", "v = eval('A')"), step("t", "u = 1")])
    record(load_pipeline(path))
    edit(path, 0, "A = 1\nB = 3")
    assert load_pipeline(path).plan().stale == ["s"]


def test_helper_function_change_in_an_earlier_step(make_notebook):
    path = make_notebook(
        [
            step("helpers", "def scale(v):\n    return v * 2"),
            step("use", "out = scale(3)"),
            step("unrelated", "z = 1"),
        ]
    )
    record(load_pipeline(path))
    edit(path, 0, "def scale(v):\n    return v * 3")
    assert load_pipeline(path).plan().stale == ["helpers", "use"]


def test_force_from_and_only(make_notebook):
    path = make_notebook(CHAIN)
    record(load_pipeline(path))
    p = load_pipeline(path)
    assert p.plan(force=["clean"]).to_run == ["clean"]
    assert p.plan(force=["clean"])["clean"].reasons == ("forced",)
    assert p.plan(from_=["clean"]).to_run == ["clean", "train", "report"]
    assert p.plan(force_all=True).to_run == ["load", "clean", "train", "report", "side"]
    edit(path, 2, "data = list(range(20))")
    p = load_pipeline(path)
    only = p.plan(only=["clean"])
    assert only.to_run == ["load", "clean"]  # clean needs the stale load
    assert only["train"].action == "excluded" and only["report"].action == "excluded"


def test_unknown_step_in_options(make_notebook):
    import pytest

    from nbflow.errors import PipelineError

    p = load_pipeline(make_notebook(CHAIN))
    with pytest.raises(PipelineError, match=r'--only clen: no such step; did you mean "clean"\?'):
        p.plan(only=["clen"])


def test_corrupt_entry_is_a_reason(make_notebook):
    path = make_notebook(CHAIN)
    record(load_pipeline(path))
    p = load_pipeline(path)
    key = p.plan()["train"].key
    (p.config.cache_dir / "train" / key / "manifest.json").unlink()
    plan = load_pipeline(path).plan()
    assert plan["train"].reasons == ("cache entry corrupt",)
    assert plan.to_run == ["train"]


def test_missing_value_makes_the_provider_run(make_notebook):
    path = make_notebook(CHAIN)
    p = load_pipeline(path)
    record(p)
    # re-commit "load" without its value, as if `data` could not be pickled
    cache = pipeline_cache(p)
    entry = p.plan()["load"]
    cache.prune(keep={(s, p.plan()[s].key) for s in p.order if s != "load"}, older_than=0)
    cache.commit(
        cache.stage("load"),
        step="load",
        key=entry.key,
        parts=entry.parts.to_dict(),
        values={},
        meta={"notebook": p.path.name},
    )
    edit(path, 3, "rows = [d for d in data if d % 5]")
    plan = load_pipeline(path).plan()
    assert plan.to_run == ["load", "clean", "train", "report"]
    assert plan["load"].reasons == ("value data needed by clean: it was not cached",)


def test_input_files_are_part_of_the_key(make_notebook, tmp_path):
    (tmp_path / "data.csv").write_text("a\n1\n")
    path = make_notebook([step("load", "text = open('data.csv').read()", "in:data.csv"), step("n", "k = len(text)")])
    record(load_pipeline(path))
    assert load_pipeline(path).plan().stale == []
    (tmp_path / "data.csv").write_text("a\n2\n")
    plan = load_pipeline(path).plan()
    assert plan.stale == ["load", "n"] and plan["load"].reasons == ("input file data.csv changed",)


def test_keys_identical_across_processes_and_parameter_orders(make_notebook):
    path = make_notebook(CHAIN)
    script = (
        "import json, sys\nfrom nbflow import load_pipeline\nfrom nbflow.plan import step_keys\n"
        "p = load_pipeline(sys.argv[1])\n"
        "params = json.loads(sys.argv[2])\n"
        "print(json.dumps({s: k.key for s, k in step_keys(p, params).items()}))\n"
    )
    outputs = set()
    for seed, params in (
        ("1", {"lr": 0.1, "epochs": 2}),
        ("2", {"epochs": 2, "lr": 0.1}),
        ("3", {"epochs": 2, "lr": 0.1}),
    ):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", script, str(path), json.dumps(params)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        outputs.add(out)
    assert len(outputs) == 1
    keys = json.loads(outputs.pop())
    assert keys == {s: k.key for s, k in step_keys(load_pipeline(path), {"lr": 0.1, "epochs": 2}).items()}


# ------------------------------------------------------------------ property test


@st.composite
def pipelines(draw):
    """Random DAG-shaped notebooks: step i writes v_i from a random subset of earlier values."""
    n = draw(st.integers(min_value=2, max_value=8))
    sources = []
    for i in range(n):
        inputs = draw(st.lists(st.integers(min_value=0, max_value=max(i - 1, 0)), max_size=3, unique=True)) if i else []
        terms = " + ".join([f"v{j}" for j in sorted(inputs)] + [str(i)])
        sources.append(f"v{i} = {terms}")
    edited = draw(st.integers(min_value=0, max_value=n - 1))
    cosmetic = draw(st.booleans())
    return sources, edited, cosmetic


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pipelines())
def test_editing_one_step_makes_exactly_it_and_its_descendants_stale(case):
    sources, edited, cosmetic = case
    with tempfile.TemporaryDirectory() as tmp:
        path = write_notebook(Path(tmp) / "p.ipynb", [step(f"s{i}", src) for i, src in enumerate(sources)])
        record(load_pipeline(path))
        new = sources[edited] + ("   # only a comment" if cosmetic else " + 1000")
        edit(path, edited, new)
        pipeline = load_pipeline(path)
        expected = set() if cosmetic else {f"s{edited}"} | pipeline.descendants([f"s{edited}"])
        assert set(pipeline.plan().stale) == expected
        assert isinstance(Cache(pipeline.config.cache_dir).root, Path)


def test_step_keys_do_not_hash_data(make_notebook):
    # Keys depend on code, parameters and upstream keys only: nothing about values.
    p = load_pipeline(make_notebook(CHAIN))
    parts = step_keys(p, {"lr": 0.1, "epochs": 2})
    assert set(parts["train"].upstream) == {"clean"}
    assert parts["train"].params == {"lr": {"float": "0.1"}}


def test_invalidate_forgets_a_step(make_notebook):
    path = make_notebook(CHAIN)
    record(load_pipeline(path))
    pipeline = load_pipeline(path)
    assert pipeline.invalidate("clean") == ["clean"]
    plan = load_pipeline(path).plan()
    assert plan.stale == ["clean"] and plan["clean"].reasons == ("invalidated",)
    assert pipeline.invalidate("clean") == []  # nothing left to forget


def test_produced_files_are_keyed_by_their_producer_not_their_content(make_notebook, tmp_path):
    path = make_notebook(
        [
            step("make", "open('mid.txt', 'w').write('x')", "out:mid.txt"),
            step("use", "n = len(open('mid.txt').read())", "in:mid.txt"),
        ]
    )
    parts = load_pipeline(path).plan()["use"].parts
    assert parts.files == {} and "make" in parts.upstream
    (tmp_path / "mid.txt").write_text("changed by hand")  # not hashed: make's key stands for it
    assert load_pipeline(path).plan()["use"].key == load_pipeline(path).plan()["use"].key


def test_reasons_compare_with_the_same_notebook_only(make_notebook):
    first = make_notebook([step("load", "x = 1")], name="one.ipynb")
    record(load_pipeline(first))
    second = make_notebook([step("load", "y = 2")], name="two.ipynb")  # same folder, same step name
    assert load_pipeline(second).plan()["load"].reasons == ("never run",)


# ------------------------------------------------------------------ early cut-off


def record_with(pipeline, digests=None, run_writes=None, found_reads=None, params=None) -> None:
    """Commit entries whose manifests carry what a run learnt (as the executors write it)."""
    from nbflow.cutoff import Knowledge

    cache = pipeline_cache(pipeline)
    knowledge = Knowledge(pipeline, cache)
    from nbflow.parameters import resolve_parameters

    values = resolve_parameters(pipeline.parameters, params, None, pipeline.path)
    for name in pipeline.order:
        learnt = {
            "digests": (digests or {}).get(name, {}),
            "run_writes": (run_writes or {}).get(name, []),
            "found_reads": (found_reads or {}).get(name, {}),
        }
        knowledge.learn(name, "pending", learnt)  # its own found reads are part of its key
        parts = knowledge.keys(values)[name]
        knowledge.learn(name, parts.key, learnt)
        cache.commit(
            cache.stage(name),
            step=name,
            key=parts.key,
            parts=parts.to_dict(),
            values={v: 0 for v in pipeline.steps[name].writes},
            meta={"notebook": pipeline.path.name, **learnt},
        )


MIXED = [
    step("setup", "import numpy as np\nn = 3"),
    step("use", "y = np.ones(2)"),
    step("count", "m = n * 2"),
]


def test_readers_of_unchanged_values_stay_fresh_when_their_producer_changes(make_notebook):
    path = make_notebook(MIXED)
    record_with(load_pipeline(path), digests={"setup": {"np": "module:numpy", "n": "value:3"}})
    edit(path, 0, "import numpy as np\nn = 4")
    pipeline = load_pipeline(path)
    plan = pipeline.plan()
    assert plan["setup"].reasons == ("code changed",)
    assert plan["count"].state == "stale"  # it reads n, whose digest is not known before setup runs
    # once setup has run and recorded its digests, use's key is the one it had
    from nbflow.cutoff import Knowledge

    knowledge = Knowledge(pipeline, pipeline_cache(pipeline))
    parts = knowledge.keys({})
    knowledge.learn("setup", parts["setup"].key, {"digests": {"np": "module:numpy", "n": "value:4"}})
    after = knowledge.keys({})
    assert knowledge.lookup("use", after["use"].key) is not None
    assert knowledge.lookup("count", after["count"].key) is None


def test_keys_without_digests_are_upstream_keys(make_notebook):
    pipeline = load_pipeline(make_notebook(MIXED))
    parts = step_keys(pipeline, {})
    assert parts["use"].upstream == {"setup": parts["setup"].key}


def test_a_value_changed_at_run_time_makes_later_readers_depend_on_the_changer(make_notebook):
    cells = [
        step("make", "import numpy as np\nx2 = np.arange(12).reshape(3, 4)"),
        step("alias", "x2_sub = x2[:2, :2]\nx2_sub[0, 0] = 99"),
        step("read", "total = x2.sum()"),
    ]
    pipeline = load_pipeline(make_notebook(cells))
    assert pipeline.steps["read"].inputs == {"x2": "make"}
    record_with(pipeline, run_writes={"alias": ["x2"]})
    plan = pipeline.plan()
    assert plan.fresh == ["make", "alias", "read"]
    assert set(plan["read"].parts.upstream) == {"make", "alias"}


def test_reads_found_at_run_time_are_part_of_the_next_key(make_notebook):
    cells = [
        step("make", "secret = 41"),
        step("show", "value = eval('secret') + 1"),
    ]
    pipeline = load_pipeline(make_notebook(cells))
    assert pipeline.steps["show"].inputs == {}
    record_with(pipeline, found_reads={"show": {"secret": "make"}})
    plan = pipeline.plan()
    assert plan.fresh == ["make", "show"]
    assert "make" in plan["show"].parts.upstream


def test_a_cached_step_reading_what_a_running_step_reads_is_checked_after_it(make_notebook):
    cells = [
        step("make", "import numpy as np\nx2 = np.arange(12).reshape(3, 4)"),
        step("alias", "x2_sub = x2[:2, :2]\nfirst = x2_sub[0, 0]"),
        step("read", "total = x2.sum()"),
        step("other", "z = 1"),
    ]
    path = make_notebook(cells)
    record(load_pipeline(path))
    edit(path, 1, "x2_sub = x2[:2, :2]\nx2_sub[0, 0] = 99")
    plan = load_pipeline(path).plan()
    assert plan.to_run == ["alias"]
    assert plan["read"].recheck == ("alias",)
    assert plan["other"].recheck == ()


def test_value_part_uses_digests_only_when_every_value_has_one():
    from nbflow.plan import value_part

    assert value_part("k1", ["a", "b"], {"a": "value:1", "b": "value:2"}) == value_part(
        "k2", ["b", "a"], {"a": "value:1", "b": "value:2"}
    )
    assert value_part("k1", ["a", "b"], {"a": "value:1"}) == "k1"  # b is large: the key stands for it
    assert value_part("k1", [], {"a": "value:1"}) == "k1"  # an after: edge passes no value
    assert value_part("k1", ["a"], None) == "k1"


def test_a_name_error_names_its_name():
    from nbflow.executors.kernel_state import missing_name

    assert missing_name("NameError", "name 'secret' is not defined") == "secret"
    assert missing_name("KeyError", "name 'secret' is not defined") is None
    assert missing_name(None, None) is None


def retag(path: Path, cell: int, *tags: str) -> None:
    nb = nbformat.read(path, 4)
    nb.cells[cell].metadata["tags"] = list(tags)
    nbformat.write(nb, path)


def test_file_declarations_are_part_of_the_key(make_notebook):
    path = make_notebook(
        [
            step("make", "import pathlib\npathlib.Path('a.txt').write_text('x')\nn = 1", "out:a.txt"),
            step("use", "m = n + 1"),
            step("read", "k = len(open('a.txt').read())", "in:a.txt"),
        ]
    )
    pipeline = load_pipeline(path)
    assert pipeline.plan()["make"].parts.declared == {"out": ("out:a.txt",)}
    assert pipeline.plan()["read"].parts.declared == {"in": ("in:a.txt",)}
    # a step without file tags has no such part: its key is what it was before the part existed
    assert "declared" not in pipeline.plan()["use"].parts.to_dict()
    record(pipeline)
    assert load_pipeline(path).plan().stale == []

    retag(path, 0, "step:make", "out:b.txt")
    plan = load_pipeline(path).plan()
    assert plan["make"].reasons == ("outputs changed: out:a.txt -> out:b.txt",)
    assert plan["make"].reasons[0].kind == "outputs changed"
    assert plan.stale == ["make", "use", "read"]  # its dependants follow its key
    record(load_pipeline(path))

    retag(path, 0, "step:make", "out:parts/")
    assert load_pipeline(path).plan()["make"].reasons == ("outputs changed: out:b.txt -> out:parts/",)
    retag(path, 0, "step:make", "out:plots/*.png")
    assert load_pipeline(path).plan()["make"].reasons == ("outputs changed: out:b.txt -> out:plots/*.png",)
    retag(path, 0, "step:make", "out?:b.txt")  # the same file, now optional
    assert load_pipeline(path).plan()["make"].reasons == ("outputs changed: out:b.txt -> out?:b.txt",)
    retag(path, 0, "step:make", "out:b.txt", "out?:c.txt")
    assert load_pipeline(path).plan()["make"].reasons == ("outputs changed: none -> out?:c.txt",)
    retag(path, 0, "step:make", "out:b.txt")
    assert load_pipeline(path).plan().stale == []  # back as recorded: cached again


def test_the_name_of_an_input_file_a_step_makes_is_part_of_the_key(make_notebook):
    # in: of a file an earlier step makes is keyed by its maker's key, and by its name
    path = make_notebook(
        [
            step("make", "open('a.txt', 'w').write('a')\nopen('b.txt', 'w').write('b')", "out:a.txt", "out:b.txt"),
            step("read", "k = len(open('a.txt').read())", "in:a.txt"),
        ]
    )
    record(load_pipeline(path))
    retag(path, 1, "step:read", "in:b.txt")
    plan = load_pipeline(path).plan()
    assert plan["read"].parts.files == {} and plan["read"].parts.upstream == {"make": plan["make"].key}
    assert plan["read"].reasons == ("inputs changed: in:a.txt -> in:b.txt",)
    assert plan.stale == ["read"]


def test_the_order_of_file_tags_is_not_part_of_the_key(make_notebook):
    path = make_notebook([step("make", "x = 1", "out:a.txt", "out?:b/", "in:c.csv")])
    before = load_pipeline(path).plan()["make"].key
    retag(path, 0, "in:c.csv", "out?:b/", "step:make", "out:a.txt")
    assert load_pipeline(path).plan()["make"].key == before
