"""Building the pipeline graph: inferred and explicit edges, parameters, validation."""

from __future__ import annotations

import pytest

from nbflow import load_pipeline
from nbflow.config import Config
from nbflow.errors import PipelineError

from .conftest import NOTEBOOKS, code, step


def test_edges_from_nearest_writer_above(make_notebook):
    p = load_pipeline(
        make_notebook(
            [
                step("a", "x = 1"),
                step("b", "x = x + 1"),
                step("c", "y = x * 2"),  # reads b's x, not a's
                step("d", "z = 5"),
            ]
        )
    )
    assert p.deps == {"a": (), "b": ("a",), "c": ("b",), "d": ()}
    assert p.edge_names[("b", "c")] == ("x",)
    assert p.steps["c"].inputs == {"x": "b"}


def test_parameters_tracked_per_step(make_notebook):
    p = load_pipeline(
        make_notebook(
            [
                code("import math"),
                code("lr = 0.1\nepochs = 3", "parameters"),
                step("load", "data = list(range(10))"),
                step("train", "w = sum(data) * lr"),
                step("report", "msg = f'{epochs} epochs, w={w}'"),
            ]
        )
    )
    assert p.steps["load"].params == ()
    assert p.steps["train"].params == ("lr",)
    assert p.steps["report"].params == ("epochs",)
    assert p.steps["report"].inputs == {"w": "train"}
    assert set(p.parameters) == {"lr", "epochs"}


def test_setup_names_need_no_edge_but_setup_params_reach_every_step(make_notebook):
    p = load_pipeline(
        make_notebook(
            [
                code("scale = 2", "parameters"),
                code("import math\nFACTOR = scale * math.pi"),
                step("a", "x = FACTOR"),
                step("b", "y = math.sqrt(2)"),
            ]
        )
    )
    assert p.deps == {"a": (), "b": ()}
    assert p.setup_params == ("scale",)


def test_explicit_after_edges(make_notebook):
    p = load_pipeline(make_notebook([step("write", "open('f', 'w').write('x')"), step("read", "t = 1", "after:write")]))
    assert p.deps["read"] == ("write",)
    assert p.edge_names[("write", "read")] == ()
    assert p.graph.edges["write", "read"]["explicit"] is True


def test_function_defined_earlier_makes_callers_depend_on_its_globals(make_notebook):
    p = load_pipeline(
        make_notebook(
            [
                code("def score():\n    return model * 2"),
                step("train", "model = 3"),
                step("evaluate", "s = score()"),
            ]
        )
    )
    assert p.deps["evaluate"] == ("train",)
    assert p.steps["evaluate"].inputs == {"model": "train"}


def test_function_defined_in_a_step_and_called_later(make_notebook):
    p = load_pipeline(
        make_notebook(
            [
                step("data", "rows = [1, 2]"),
                step("helpers", "def total():\n    return sum(rows)"),
                step("use", "t = total()"),
            ]
        )
    )
    assert set(p.deps["use"]) == {"helpers", "data"}


def test_mutating_call_makes_the_step_a_writer(make_notebook):
    p = load_pipeline(
        make_notebook(
            [
                code("import numpy as np"),
                step("build", "model = make()\nnp.random.seed(0)"),
                step("fit", "model.fit(X)"),
                step("score", "s = model.score(X)"),
            ]
        )
    )
    assert p.deps["score"] == ("fit",)  # fit changed model in place
    assert "np" not in p.steps["build"].writes  # calling into a module does not write it


def test_order_keeps_notebook_order_unless_after_forces(make_notebook):
    p = load_pipeline(
        make_notebook([step("a", "x = 1"), step("b", "y = 2", "after:c"), step("c", "z = 3"), step("d", "w = x")])
    )
    assert p.order == ("a", "c", "b", "d")


def test_unknown_after_target_with_suggestion(make_notebook):
    path = make_notebook([step("load", "x = 1"), step("train", "y = x", "after:lod")])
    with pytest.raises(PipelineError) as info:
        load_pipeline(path)
    assert str(info.value) == ('pipeline.ipynb, cell 2 (step "train"): after:lod names no step; did you mean "load"?')


def test_after_self(make_notebook):
    with pytest.raises(PipelineError, match="makes the step wait for itself"):
        load_pipeline(make_notebook([step("a", "x = 1", "after:a")]))


def test_cycle_is_spelled_out(make_notebook):
    path = make_notebook([step("a", "x = 1", "after:b"), step("b", "y = x")])
    with pytest.raises(PipelineError) as info:
        load_pipeline(path)
    assert str(info.value) == (
        'pipeline.ipynb, cell 1 (step "a"): the steps form a cycle: a -> b -> a; tag after:b closes it'
    )


def test_longer_cycle(make_notebook):
    path = make_notebook([step("a", "x = 1", "after:c"), step("b", "y = x"), step("c", "z = y")])
    with pytest.raises(PipelineError, match=r"cycle: a -> b -> c -> a"):
        load_pipeline(path)


def test_syntax_error_names_cell_and_step(make_notebook):
    path = make_notebook([step("a", "x = 1"), code("y = (")])
    with pytest.raises(PipelineError, match=r'cell 2 \(step "a"\): syntax error'):
        load_pipeline(path)


def test_parameters_cell_errors_name_the_cell(make_notebook):
    path = make_notebook([code("lr = get_lr()", "parameters"), step("a", "x = lr")])
    with pytest.raises(PipelineError, match=r"pipeline\.ipynb, cell 1: parameter 'lr' .* must have a literal default"):
        load_pipeline(path)


def test_undefined_name_is_a_warning(make_notebook):
    p = load_pipeline(make_notebook([step("a", "x = 1"), step("b", "y = x + mystery\nprint(len([y]))")]))
    assert len(p.warnings) == 1
    assert p.warnings[0] == (
        "pipeline.ipynb, cell 2 (step \"b\"): reads 'mystery', which no earlier step, setup cell or parameter "
        "defines (a builtin, a name from %run, or a typo?)"
    )


def test_no_warning_when_star_import_may_define_it(make_notebook):
    p = load_pipeline(make_notebook([code("from math import *"), step("a", "x = sqrt(2)")]))
    assert p.warnings == ()


def test_networkx_graph(make_notebook):
    p = load_pipeline(make_notebook([code("n = 1", "parameters"), step("a", "x = n"), step("b", "y = x")]))
    g = p.graph
    assert list(g.nodes) == ["a", "b"]
    assert g.nodes["a"]["params"] == ("n",) and g.nodes["a"]["cell"] == 2
    assert g.edges["a", "b"]["names"] == ("x",)


def test_example_notebook_reads_as_a_person_would(tmp_path):
    path = NOTEBOOKS / "wine_classifier.ipynb"
    p = load_pipeline(path, Config.for_notebook(path, home=tmp_path / ".nbflow"))
    assert p.order == ("load", "clean", "features", "train", "evaluate")
    assert p.deps == {
        "load": (),
        "clean": ("load",),
        "features": ("clean",),
        "train": ("features",),
        "evaluate": ("features", "train"),
    }
    assert p.steps["features"].params == ("n_features", "seed", "test_size")
    assert p.steps["train"].params == ("max_depth", "n_estimators", "seed")
    assert p.warnings == ()


def test_no_steps_and_empty_notebook(make_notebook):
    assert load_pipeline(make_notebook([])).order == ()
    assert load_pipeline(make_notebook([code("x = 1")], name="b.ipynb")).order == ()


def test_files_written_by_a_step_are_dependencies(make_notebook):
    p = load_pipeline(
        make_notebook(
            [
                step("fetch", "open('raw.csv', 'w').write('a')", "out:raw.csv"),
                step("other", "x = 1"),
                step("clean", "t = open('raw.csv').read()", "in:./raw.csv", "in:config.yml"),
            ]
        )
    )
    assert p.deps["clean"] == ("fetch",)
    assert p.edge_names[("fetch", "clean")] == ("file:raw.csv",)
    assert p.steps["clean"].file_inputs == {"raw.csv": "fetch"}
    assert p.steps["clean"].in_files == ("raw.csv", "config.yml")


def test_checks_are_steps_keyed_apart_that_the_dependants_wait_for(make_notebook):
    from nbflow.plan import step_keys

    path = make_notebook(
        [
            step("load", "rows = [1, 2]"),
            step("clean", "kept = rows[:1]"),
            code("assert rows, 'no rows'", "check:load"),
            code("assert kept", "check-warn:clean"),
            step("total", "t = sum(kept)"),
        ]
    )
    p = load_pipeline(path)
    assert p.order == ("load", "load.check1", "clean", "clean.check1", "total")
    assert p.step_names == ("load", "clean", "total")
    assert p.deps["clean"] == ("load", "load.check1")  # waits for the check ...
    assert p.deps["total"] == ("clean",)  # ... a warning check is not waited for
    assert p.steps["load.check1"].inputs == {"rows": "load"}
    parts = step_keys(p, {})
    assert parts["clean"].upstream == {"load": parts["load"].key}  # ... but its key does not hold it
    assert parts["load.check1"].upstream == {"load": parts["load"].key}
    assert [c["name"] for s in p.to_dict()["steps"] for c in s["checks"]] == ["load.check1", "clean.check1"]


@pytest.mark.parametrize(
    "cells, message",
    [
        (
            [step("load", "rows = [1]"), code("assert rows", "check:lod")],
            "pipeline.ipynb, cell 2: tag 'check:lod' names no step; did you mean \"load\"?",
        ),
        (
            [step("load", "rows = [1]"), code("assert rows", "check:load", "check-warn:load")],
            "pipeline.ipynb, cell 2: a cell checks one step, this one has 2 check tags",
        ),
        (
            [step("load", "rows = [1]"), code("assert rows", "check:load", "after:load")],
            "pipeline.ipynb, cell 2: tag 'check:load' makes this cell a check; it cannot also carry 'after:' tags",
        ),
    ],
)
def test_bad_check_tags_are_one_line(make_notebook, cells, message):
    with pytest.raises(PipelineError) as info:
        load_pipeline(make_notebook(cells))
    assert str(info.value) == message
