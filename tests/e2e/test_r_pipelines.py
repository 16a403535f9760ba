"""R pipelines with a real IRkernel, papermill, saveRDS/readRDS and the SQLite store.

Values are compared in R itself (``identical(readRDS(a), readRDS(b))`` in an Rscript),
against a plain ``papermill`` run of the same notebook.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from nbflow import load_pipeline
from nbflow.executors import kernel as kernel_executor
from nbflow.languages.r import r_string, r_strings
from nbflow.store import RunStore

from ..conftest import NOTEBOOKS, code, step

pytestmark = pytest.mark.slow

R_KERNEL = {"kernelspec": {"name": "ir", "display_name": "R", "language": "R"}}

CHAIN = [
    code("n <- 6\nscale <- 2.5", "parameters"),
    code("library(stats)\nbase <- 100"),
    step("load", "x <- seq_len(n)\ndf <- data.frame(x = x, y = x * 2)\ncat('loaded', nrow(df), '\\n')"),
    step("transform", "df$z <- df$y * scale\nnames(df)[1] <- 'xx'"),
    step("fit", "fit <- lm(z ~ xx, data = df)\nslope <- unname(coef(fit)[2])"),
    step("report", "total <- sum(df$z) + base + slope\ncat('total', total, '\\n')"),
]


@pytest.fixture
def r_kernel() -> None:
    from jupyter_client.kernelspec import find_kernel_specs

    if shutil.which("Rscript") is None or "ir" not in find_kernel_specs():
        pytest.fail("R or IRkernel is missing: .ci/install-system-packages installs and registers them")


@pytest.fixture
def r_notebook(make_notebook, r_kernel):
    def make(cells, name="pipeline.ipynb"):
        return make_notebook(cells, name=name, **R_KERNEL)

    return make


def run(path: Path, params=None, **options):
    return load_pipeline(path).run(params, **options)


def statuses(r) -> dict[str, str]:
    return {name: s["status"] for name, s in r.steps.items()}


def entry_file(path: Path, step_name: str, value: str) -> Path:
    pipeline = load_pipeline(path)
    entry = pipeline.config.cache().lookup(step_name, pipeline.plan()[step_name].key)
    assert entry is not None
    return entry.path / entry.names[value]["file"]


def plain_papermill_values(path: Path, names: list[str], folder: Path, params: dict | None = None) -> Path:
    """Run ``path`` with the papermill CLI, saving ``names`` at the end; return the .rds."""
    saved = folder / "plain.rds"
    plain = nbformat.read(path, 4)
    plain.cells.append(nbformat.v4.new_code_cell(f"saveRDS(mget({r_strings(names)}), {r_string(str(saved))})"))
    nbformat.write(plain, folder / "plain.ipynb")
    args = [a for k, v in (params or {}).items() for a in ("-p", k, str(v))]
    subprocess.run(
        [sys.executable, "-m", "papermill", str(folder / "plain.ipynb"), str(folder / "plain-out.ipynb"), *args],
        check=True,
        capture_output=True,
        cwd=path.parent,
    )
    return saved


def r_identical(a: Path, b: Path, name: str) -> bool:
    """Whether the value in ``a`` (an .rds) equals ``name`` in the list saved in ``b``, in R."""
    done = subprocess.run(
        ["Rscript", "-e", f"cat(identical(readRDS('{a}'), readRDS('{b}')[['{name}']]))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip() == "TRUE"


def test_run_parameter_change_and_fully_cached_rerun(r_notebook, monkeypatch):
    path = r_notebook(CHAIN)
    first = run(path)
    assert first.status == "done", first.error
    assert statuses(first) == {"load": "done", "transform": "done", "fit": "done", "report": "done"}
    out = nbformat.read(first.output_notebook, 4)
    assert out.cells[2].outputs[0]["text"] == "loaded 6 \n"
    entry = load_pipeline(path).config.cache().lookup("transform", load_pipeline(path).plan()["transform"].key)
    assert entry.names["df"]["type"] == "R data.frame" and entry.names["df"]["summary"] == "6 x 3"
    assert set(entry.manifest["files"]) == {"value-1.rds", "outputs.json"}

    # a parameter change re-runs only the steps that read it (and what depends on them)
    assert load_pipeline(path).plan({"scale": 3.0}).to_run == ["transform", "fit", "report"]
    assert load_pipeline(path).plan({"n": 4}).to_run == ["load", "transform", "fit", "report"]
    changed = run(path, {"scale": 3.0})
    assert statuses(changed) == {"load": "cached", "transform": "done", "fit": "done", "report": "done"}
    assert changed.steps["transform"]["reasons"] == ["parameter scale changed"]
    out = nbformat.read(changed.output_notebook, 4)
    assert out.metadata.papermill.parameters == {"scale": 3.0}
    assert out.cells[-1].outputs[0]["text"] == "total 232 \n"  # 3 * 2 * (1+...+6) + 100 + slope 6

    # a fully cached re-run starts no kernel (and no R at all: the analysis is remembered)
    starts = []
    original = kernel_executor.start_kernel
    monkeypatch.setattr(kernel_executor, "start_kernel", lambda ctx: starts.append(1) or original(ctx))
    again = run(path, {"scale": 3.0})
    assert set(statuses(again).values()) == {"cached"}
    assert again.output_notebook is None and starts == []
    store = RunStore(load_pipeline(path).config.store_path)
    assert store.run(again.id)["params"]["scale"] == 3.0


def test_rerun_of_the_last_step_restores_with_readrds_and_equals_papermill(r_notebook, tmp_path):
    path = r_notebook(CHAIN)
    assert run(path).status == "done"
    r = run(path, force=["report"])
    assert statuses(r) == {"load": "cached", "transform": "cached", "fit": "cached", "report": "done"}
    out = nbformat.read(r.output_notebook, 4)
    assert out.cells[-1].outputs[0]["text"] == "total 210 \n"

    # a plain papermill run of the same notebook, every value saved at the end
    plain = plain_papermill_values(path, ["df", "fit", "slope", "total", "x"], tmp_path)
    for step_name, value in [("report", "total"), ("fit", "slope"), ("fit", "fit"), ("transform", "df")]:
        assert r_identical(entry_file(path, step_name, value), plain, value), value


def test_a_corrupt_rds_entry_is_detected_and_recomputed(r_notebook):
    path = r_notebook(CHAIN)
    assert run(path).status == "done"
    rds = entry_file(path, "transform", "df")
    data = bytearray(rds.read_bytes())
    data[len(data) // 2] ^= 0xFF
    rds.write_bytes(bytes(data))
    r = run(path, force=["report"])
    assert statuses(r) == {"load": "cached", "transform": "done", "fit": "cached", "report": "done"}
    assert r.steps["transform"]["reasons"] == ["cache entry corrupt"]
    store = RunStore(load_pipeline(path).config.store_path)
    assert any("cache entry corrupt" in m["text"] and m["step"] == "transform" for m in store.messages(r.id))
    assert nbformat.read(r.output_notebook, 4).cells[-1].outputs[0]["text"] == "total 210 \n"


def test_an_r_step_failure_names_the_cell_and_skips_dependants(r_notebook):
    path = r_notebook([step("a", "x <- 1"), step("b", "y <- x + undefined_thing"), step("c", "z <- y * 2")])
    r = run(path)
    assert r.status == "failed"
    assert statuses(r) == {"a": "done", "b": "failed", "c": "skipped"}
    assert r.steps["b"]["error"].startswith("cell 2: ")
    assert "undefined_thing" in r.steps["b"]["error"]


def test_the_dask_executor_refuses_r_with_one_line(r_notebook):
    path = r_notebook([step("a", "x <- 1")])
    r = run(path, executor="dask")
    assert r.status == "failed"
    assert r.error == "pipeline.ipynb: the dask executor runs Python notebooks; this one is R (use --executor kernel)"


def test_report_result_and_verify_on_an_r_run(r_notebook):
    import nbflow
    from nbflow.errors import NbflowError
    from nbflow.verify import verify_cache

    path = r_notebook(CHAIN)
    r = run(path)
    html = r.report().read_text(encoding="utf-8")
    assert "transform" in html and "R data.frame" in html and "6 x 3" in html
    with pytest.raises(NbflowError) as e:
        nbflow.result(path, "fit", "slope")
    assert str(e.value).startswith('step "fit" cached slope as R numeric in ')
    assert str(e.value).endswith("value-2.rds, which only its own language can load (R: readRDS)")
    with pytest.raises(NbflowError) as e:
        verify_cache(load_pipeline(path))
    assert str(e.value) == (
        "pipeline.ipynb: nbflow verify compares Python values; this notebook's kernel runs R "
        "(its entries are checked by their SHA-256 on every run)"
    )


def test_cli_runs_an_r_notebook_with_parameters_quietly(r_notebook):
    path = r_notebook([code("k <- 2", "parameters"), step("a", "y <- k * 21\ncat('y is', y, '\\n')")])
    done = subprocess.run(
        [sys.executable, "-m", "nbflow", "run", str(path), "-p", "k", "3"],
        capture_output=True,
        text=True,
        cwd=path.parent,
    )
    assert done.returncode == 0, done.stderr
    # papermill cannot introspect R parameters and would call k unknown: nbflow checked it
    assert "unknown parameter" not in done.stdout + done.stderr
    assert "introspection" not in done.stdout + done.stderr
    out = nbformat.read(next(path.parent.glob(".nbflow/runs/1/output.ipynb")), 4)
    assert out.cells[-1].outputs[0]["text"] == "y is 63 \n"
    bad = subprocess.run(
        [sys.executable, "-m", "nbflow", "run", str(path), "-p", "k", "'three'"],
        capture_output=True,
        text=True,
        cwd=path.parent,
    )
    assert bad.returncode != 0
    assert bad.stderr.strip().splitlines()[-1].startswith("nbflow: error: pipeline.ipynb: parameter 'k' expects int")


def test_file_tags_after_and_timeout_work_in_r(r_notebook):
    path = r_notebook(
        [
            step("write", "writeLines(c('a', 'bb', 'ccc'), 'lines.txt')", "out:lines.txt"),
            step("count", "n_chars <- sum(nchar(readLines('lines.txt')))", "in:lines.txt"),
            step("slow", "Sys.sleep(30)", "timeout:2"),
            step("last", "done <- TRUE", "after:count"),
        ]
    )
    pipeline = load_pipeline(path)
    assert pipeline.edge_names[("write", "count")] == ("file:lines.txt",)
    assert pipeline.deps["last"] == ("count",)
    r = run(path)
    assert statuses(r) == {"write": "done", "count": "done", "slow": "failed", "last": "done"}
    assert r.steps["slow"]["error"].startswith("timed out after 2 s")
    (path.parent / "lines.txt").unlink()
    again = run(path)
    # the cached out: file is put back; only the failed step runs (and times out) again
    assert statuses(again) == {"write": "cached", "count": "cached", "slow": "failed", "last": "cached"}
    assert (path.parent / "lines.txt").read_text() == "a\nbb\nccc\n"


def test_a_step_rerun_that_leaves_the_same_values_leaves_its_readers_cached(r_notebook):
    path = r_notebook(CHAIN)
    assert run(path).status == "done"
    nb = nbformat.read(path, 4)
    nb.cells[2].source = nb.cells[2].source.replace("x <- seq_len(n)", "x <- 1:n  # the same integers")
    nbformat.write(nb, path)
    r = run(path)
    assert statuses(r) == {"load": "done", "transform": "cached", "fit": "cached", "report": "cached"}
    assert r.steps["load"]["reasons"] == ["code changed"]


def test_r_example_matches_papermill(tmp_path, r_kernel):
    """Every value of notebooks/r_example.ipynb's steps equals a plain papermill run's,
    after a first run and after a parameter change (compared with identical() in R)."""
    path = tmp_path / "r_example.ipynb"
    path.write_bytes((NOTEBOOKS / "r_example.ipynb").read_bytes())
    pipeline = load_pipeline(path)
    for params in ({}, {"holdout": 0.4}):
        r = run(path, params)
        assert r.status == "done", r.error
        folder = tmp_path / f"plain-{len(params)}"
        folder.mkdir()
        written = {value: name for name in pipeline.order for value in pipeline.steps[name].writes}
        plain = plain_papermill_values(path, sorted(written), folder, params)
        cache = pipeline.config.cache()
        for value, name in written.items():
            entry = cache.lookup(name, r.steps[name]["key"])
            assert r_identical(entry.path / entry.names[value]["file"], plain, value), (params, value)


def test_an_r_step_is_retried_with_its_input_restored(r_notebook, tmp_path):
    """Retries go through the language interface: the R list the failed attempt changed
    in place is read back from the cache before the second attempt."""
    marker = r_string(str(tmp_path / "failed-once"))
    path = r_notebook(
        [
            step("load", "data <- c(1, 2, 3)"),
            step(
                "flaky",
                f"data <- c(data, 99)\nif (!file.exists({marker})) {{ file.create({marker}); stop('network blip') }}\n"
                "total <- sum(data)",
                "retry:1:0",
            ),
            step("check", "stopifnot(total == 105)  # 1 + 2 + 3 + 99: the first attempt's 99 did not leak"),
        ]
    )
    r = run(path)
    assert r.status == "done", r.error
    messages = [m["text"] for m in RunStore(load_pipeline(path).config.store_path).messages(r.id)]
    assert any("attempt 1 of 2 failed" in m and "network blip" in m for m in messages)
    assert statuses(r) == {"load": "done", "flaky": "done", "check": "done"}
