"""``nbflow/languages``: the kernel's language picks the analysis, the parameters and the
kernel-side code. R cases run R's own parser (a real ``Rscript``); no kernel starts here."""

from __future__ import annotations

import shutil

import pytest

from nbflow import load_pipeline
from nbflow.errors import PipelineError
from nbflow.languages import kernel_language, language_of
from nbflow.languages.python import PYTHON
from nbflow.languages.r import R_LANGUAGE, r_string

from .conftest import code, step

R_KERNEL = {"kernelspec": {"name": "ir", "display_name": "R", "language": "R"}}


@pytest.fixture
def r_notebook(make_notebook):
    if shutil.which("Rscript") is None:
        pytest.fail("Rscript is missing: install Debian's r-base-core (.ci/install-system-packages does)")

    def make(cells, name="pipeline.ipynb"):
        return make_notebook(cells, name=name, **R_KERNEL)

    return make


def test_the_language_comes_from_the_kernel():
    assert kernel_language({"metadata": {"kernelspec": {"language": "R"}}}) == "r"
    assert kernel_language({"metadata": {"language_info": {"name": "julia"}}}) == "julia"
    assert kernel_language({"metadata": {}}) == "python"
    assert language_of({"metadata": {}}) is PYTHON
    assert language_of({"metadata": {"kernelspec": {"language": "R"}}}) is R_LANGUAGE


def test_an_unsupported_kernel_language_is_one_line_naming_the_kernel(make_notebook):
    path = make_notebook(
        [step("fit", "val x = 1\nprintln(x)")],
        kernelspec={"name": "scala212", "display_name": "Scala 2.12", "language": "scala"},
    )
    with pytest.raises(PipelineError) as e:
        load_pipeline(path)
    message = str(e.value)
    assert message == (
        "pipeline.ipynb: the notebook's kernel 'Scala 2.12' runs 'scala', which nbflow cannot analyse; "
        "nbflow supports kernels in julia, python, r"
    )
    assert "syntax" not in message and "\n" not in message


def test_graph_edges_from_r_code(r_notebook):
    path = r_notebook(
        [
            code("n <- 10\nlabel <- 'run'", "parameters"),
            code("library(stats)\noffset <- 1"),
            step("load", "raw <- seq_len(n)  # a comment\ndf = data.frame(x = raw)"),
            step("clean", "df$y <- df$x * 2\nnames(df)[1] <- 'xx'\n10 -> limit"),
            step("model", "fit <- lm(y ~ xx, data = df)\nassign('coefs', coef(fit))"),
            step("helper", "predict_at <- function(v) coefs[1] + coefs[2] * v + offset"),
            step("use", "if (limit > 5) big <- TRUE\nat <- predict_at(limit)\nprint(c(at, label))"),
        ]
    )
    pipeline = load_pipeline(path)
    assert pipeline.language is R_LANGUAGE
    assert set(pipeline.parameters) == {"n", "label"}
    steps = pipeline.steps
    assert (steps["load"].reads, steps["load"].writes) == (
        frozenset({"n", "seq_len", "data.frame"}),
        frozenset({"raw", "df"}),
    )
    # replacement functions change df in place (a write that reads it); -> assigns
    assert steps["clean"].writes == frozenset({"df", "limit"})
    assert steps["clean"].inputs == {"df": "load"}
    # the formula's names are columns, not variables; assign() writes its name
    assert steps["model"].writes == frozenset({"fit", "coefs"})
    assert steps["model"].inputs == {"df": "clean"}
    # calling predict_at reads what its body reads: coefs (model); offset is the setup's
    assert steps["use"].inputs == {"limit": "clean", "predict_at": "helper", "coefs": "model"}
    assert steps["use"].params == ("label",)
    assert steps["use"].writes == frozenset({"big", "at"})
    assert pipeline.edge_names == {
        ("load", "clean"): ("df",),
        ("clean", "model"): ("df",),
        ("clean", "use"): ("limit",),
        ("helper", "use"): ("predict_at",),
        ("model", "use"): ("coefs",),
    }
    # library() is setup: the package is a module name, never a value to cache
    assert "stats" in pipeline.modules
    assert pipeline.warnings == ()


def test_r_analysis_is_remembered_and_code_keys_ignore_comments(r_notebook, monkeypatch):
    path = r_notebook([step("a", "x <- 1"), step("b", "y <- x + 1")])
    before = load_pipeline(path)
    memo = before.config.home / "analysis" / "r-analysis.json"
    assert memo.is_file()
    # a second load of the same cells starts no R: Rscript is not even found
    R_LANGUAGE._cells.clear()
    monkeypatch.setenv("PATH", "/nonexistent")
    again = load_pipeline(path)
    assert again.steps["b"].inputs == {"x": "a"}
    monkeypatch.undo()
    r_notebook([step("a", "x <- 1   # same code"), step("b", "y <- x + 1")])
    assert load_pipeline(path).steps["a"].code == before.steps["a"].code


def test_r_parameters_are_literals_typed_as_papermill_writes_them(r_notebook):
    path = r_notebook(
        [
            code(
                'n <- 10\nrate = 0.5\nfull <- 1.0\nname <- "abc"\nflag <- TRUE\nnone <- NULL\n'
                "sizes <- c(1, 2.5, -3)\nopts <- list(a = 1L, b = 'x')\nneg <- -2",
                "parameters",
            ),
            step("a", "print(n)"),
        ]
    )
    params = {name: p.default for name, p in load_pipeline(path).parameters.items()}
    assert params == {
        "n": 10,
        "rate": 0.5,
        "full": 1.0,
        "name": "abc",
        "flag": True,
        "none": None,
        "sizes": [1, 2.5, -3],
        "opts": {"a": 1, "b": "x"},
        "neg": -2,
    }
    assert isinstance(params["full"], float) and isinstance(params["n"], int)


def test_a_non_literal_r_parameter_is_one_line(r_notebook):
    path = r_notebook([code("n <- 10\nm <- sqrt(n)", "parameters"), step("a", "print(m)")])
    with pytest.raises(PipelineError) as e:
        load_pipeline(path)
    assert str(e.value).startswith("pipeline.ipynb, cell 1: parameter 'm' (line 2) must have a literal default")
    assert "\n" not in str(e.value)


def test_an_r_syntax_error_names_the_cell_and_step_never_python(r_notebook):
    path = r_notebook([step("a", "x <- 1"), step("fit", "model <- lm(y ~ x,\n  data = ")])
    with pytest.raises(PipelineError) as e:
        load_pipeline(path)
    assert str(e.value) == 'pipeline.ipynb, cell 2 (step "fit"): R syntax error: unexpected end of input (line 3)'


def test_map_steps_are_refused_in_r_with_one_line(r_notebook):
    path = r_notebook([step("a", "xs <- 1:3"), step("b", "y <- xs * 2", "map:xs")])
    with pytest.raises(PipelineError) as e:
        load_pipeline(path)
    assert str(e.value) == (
        'pipeline.ipynb, cell 2 (step "b"): map:xs steps run in Python kernels only; this notebook\'s kernel runs R'
    )


def test_r_strings_are_escaped():
    assert r_string('a"b\\c\nd') == '"a\\"b\\\\c\\nd"'


def test_the_kernel_side_r_helper_ships_with_the_package():
    helper = R_LANGUAGE.helper_code("/cache", [], None)
    assert helper.startswith("# nbflow's helper in an R kernel") and ".nbflow <- local({" in helper
    assert R_LANGUAGE.dump_code("/s", ["a", "b"], []) == '.nbflow$dump("/s", c("a", "b"), character(0))'


def test_julia_is_written_to_the_same_interface():
    from nbflow.languages.julia import JULIA, julia_string

    assert language_of({"metadata": {"kernelspec": {"language": "julia"}}}) is JULIA
    assert (JULIA.translator, JULIA.fan_out, JULIA.distributed) == ("julia", False, False)
    assert julia_string('a"$b\n') == '"a\\"\\$b\\n"'
    assert JULIA.dump_code("/s", ["x"], []) == '__Nbflow.dump("/s", String["x"], String[])'
    assert JULIA.helper_code("/c", [], None).startswith("# nbflow's helper in a Julia kernel")


@pytest.mark.skipif(
    shutil.which("julia") is None, reason="no Julia installed here (IJulia is not tested on this machine)"
)
def test_graph_edges_from_julia_code(make_notebook):
    path = make_notebook(
        [
            code("n = 10\nscale = 2.5", "parameters"),
            code("using Statistics"),
            step("load", "xs = collect(1:n)  # a comment"),
            step("grow", "push!(xs, 11)\nys = xs .* scale"),
            step("helper", "f(v) = v + sum(ys)"),
            step("use", "if n > 5\n    big = true\nend\nat = f(1)"),
        ],
        kernelspec={"name": "julia-1.10", "display_name": "Julia 1.10", "language": "julia"},
    )
    pipeline = load_pipeline(path)
    assert {k: p.default for k, p in pipeline.parameters.items()} == {"n": 10, "scale": 2.5}
    assert pipeline.steps["grow"].writes == frozenset({"xs", "ys"})
    assert pipeline.steps["use"].inputs == {"f": "helper", "ys": "grow"}
    assert pipeline.edge_names[("load", "grow")] == ("xs",)
