"""The kernel executor with real Jupyter kernels, papermill and the SQLite store."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import numpy as np
import psutil
import pytest

import nbflow
from nbflow import load_pipeline
from nbflow.events import StepStarted
from nbflow.store import RunStore

from ..conftest import code, md, step

pytestmark = pytest.mark.slow


def run(path: Path, params=None, **options):
    return load_pipeline(path).run(params, **options)


def statuses(r) -> dict[str, str]:
    return {name: s["status"] for name, s in r.steps.items()}


def edit(path: Path, cell: int, source: str) -> None:
    nb = nbformat.read(path, 4)
    nb.cells[cell].source = source
    nbformat.write(nb, path)


def kernel_children() -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True) if "ipykernel" in " ".join(p.cmdline())]


CHAIN = [
    md("# Chain\nA tiny pipeline."),
    code("import math"),
    code("n = 5\nscale = 2.0", "parameters"),
    step("load", "data = list(range(n))\nprint('loaded', len(data))"),
    step("square", "sq = [x * x for x in data]"),
    step("total", "total = sum(sq) * scale\ntotal"),
    step("side", "other = math.pi"),
]


def test_first_run_cached_rerun_and_edit(make_notebook):
    path = make_notebook(CHAIN)
    first = run(path)
    assert first.status == "done", first.error
    assert set(statuses(first).values()) == {"done"}
    assert nbflow.result(path, "total", "total") == 60.0
    out = nbformat.read(first.output_notebook, 4)
    assert out.cells[3].outputs[0]["text"] == "loaded 5\n"

    again = run(path)
    assert set(statuses(again).values()) == {"cached"}
    assert again.output_notebook is None  # nothing ran: no kernel, no notebook

    edit(path, 4, "sq = [x * x * x for x in data]")
    third = run(path)
    assert statuses(third) == {"load": "cached", "square": "done", "total": "done", "side": "cached"}
    assert third.steps["square"]["reasons"] == ["code changed"]
    assert third.steps["total"]["reasons"] == ["upstream square changed"]
    assert nbflow.result(path, "total", "total") == 200.0
    out = nbformat.read(third.output_notebook, 4)
    assert out.cells[3].outputs[0]["text"] == "loaded 5\n"  # the cached step's output is shown again
    assert out.cells[3].metadata["nbflow"] == {"step": "load", "cached": True}


def test_parameter_change_reruns_only_readers_and_says_why(make_notebook):
    path = make_notebook(CHAIN)
    run(path)
    plan = load_pipeline(path).plan({"scale": 3.0})
    assert plan.to_run == ["total"]
    r = run(path, {"scale": 3.0})
    assert statuses(r)["total"] == "done" and statuses(r)["load"] == "cached"
    store = RunStore(load_pipeline(path).config.store_path)
    assert {s["step"]: s["reasons"] for s in store.steps(r.id)}["total"] == ["parameter scale changed"]
    assert store.run(r.id)["params"]["scale"] == 3.0
    assert nbflow.result(path, "total", "total", run=r.id) == 90.0
    out = nbformat.read(r.output_notebook, 4)
    assert out.metadata.papermill.parameters == {"scale": 3.0}
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in out.cells)


def test_failure_skips_dependants_runs_the_rest_and_resumes(make_notebook):
    path = make_notebook(
        [
            step("a", "x = 1"),
            step("b", "y = x + 1\nraise ValueError('bad input')"),
            step("c", "z = y * 2"),
            step("d", "w = x * 10"),
        ]
    )
    r = run(path)
    assert r.status == "failed"
    assert statuses(r) == {"a": "done", "b": "failed", "c": "skipped", "d": "done"}
    assert r.steps["b"]["error"] == "cell 2: ValueError: bad input"
    assert r.steps["c"]["reasons"] == ["upstream b failed"]
    store = RunStore(load_pipeline(path).config.store_path)
    b = {s["step"]: s for s in store.steps(r.id)}["b"]
    assert "ValueError: bad input" in b["traceback"] and "\x1b[" not in b["traceback"]
    out = nbformat.read(r.output_notebook, 4)
    assert "papermill-error-cell-tag" in out.cells[0].metadata.get("tags", [])  # papermill's error report
    assert nbflow.result(path, "a", "x") == 1

    edit(path, 1, "y = x + 1")
    resumed = run(path)
    assert statuses(resumed) == {"a": "cached", "b": "done", "c": "done", "d": "cached"}
    assert list(statuses(resumed).values()).count("cached") == 2


def test_fail_fast(make_notebook):
    path = make_notebook([step("a", "raise RuntimeError('no')"), step("b", "y = 2")])
    r = run(path, fail_fast=True)
    assert statuses(r) == {"a": "failed", "b": "skipped"}


def test_setup_failure_fails_the_run(make_notebook):
    path = make_notebook([code("import no_such_module_here"), step("a", "x = 1")])
    r = run(path)
    assert r.status == "failed"
    assert "cell 1 (setup) raised ModuleNotFoundError" in r.error
    assert statuses(r) == {"a": "skipped"}


def test_cancel_stops_the_kernel_and_keeps_what_finished(make_notebook):
    path = make_notebook([step("quick", "q = 1"), step("slow", "import time\ntime.sleep(120)"), step("after", "z = q")])
    pipeline = load_pipeline(path)
    started = threading.Event()
    r = nbflow.run.start_run(
        pipeline, listeners=[lambda e: started.set() if isinstance(e, StepStarted) and e.step == "slow" else None]
    )
    assert started.wait(60)
    t0 = time.monotonic()
    r.cancel()
    assert r.wait(30) == "cancelled"
    assert time.monotonic() - t0 < 15
    assert statuses(r) == {"quick": "done", "slow": "cancelled", "after": "cancelled"}
    assert kernel_children() == []
    assert nbflow.result(path, "quick", "q") == 1


def test_timeout_interrupts_and_independent_steps_still_run(make_notebook):
    path = make_notebook([step("hang", "import time\ntime.sleep(60)", "timeout:1"), step("next", "v = 3")])
    t0 = time.monotonic()
    r = run(path)
    assert time.monotonic() - t0 < 30
    assert statuses(r) == {"hang": "failed", "next": "done"}
    assert r.steps["hang"]["error"] == "timed out after 1 s (interrupted)"


def test_step_ignoring_interrupts_is_killed(make_notebook, tmp_path):
    (tmp_path / "pyproject.toml").write_text("[tool.nbflow]\nkill-grace = 1\n")
    path = make_notebook(
        [
            step("stubborn", "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass"),
            step("next", "v = 3"),
        ]
    )
    t0 = time.monotonic()
    r = run(path, timeout=1)
    assert time.monotonic() - t0 < 1 + 1 + 15
    assert r.status == "failed"
    assert statuses(r)["stubborn"] == "failed"
    assert "did not stop when interrupted and was killed" in r.steps["stubborn"]["error"]
    assert kernel_children() == []


def test_killed_kernel_is_reported(make_notebook):
    path = make_notebook(
        [
            step("ok", "a = 1"),
            step("boom", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"),
            step("later", "b = 2"),
        ]
    )
    r = run(path)
    assert r.status == "failed"
    assert statuses(r)["ok"] == "done" and statuses(r)["boom"] == "failed"
    assert r.steps["boom"]["error"] == "cell 2: kernel died (signal 9; possibly out of memory)"
    assert statuses(r)["later"] == "skipped"
    pipeline = load_pipeline(path)
    assert pipeline.config.cache_dir.joinpath("boom").exists() is False or not any(
        p for p in pipeline.config.cache_dir.joinpath("boom").iterdir() if not p.name.startswith(".")
    )
    out = nbformat.read(r.output_notebook, 4)
    boom = next(c for c in out.cells if "step:boom" in c.metadata.get("tags", []))
    assert boom.metadata.papermill.status == "failed" and boom.metadata.papermill.exception is True
    assert "papermill-error-cell-tag" in out.cells[0].metadata.get("tags", [])
    assert kernel_children() == []


PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


def test_cached_plot_is_shown_again(make_notebook, tmp_path):
    path = make_notebook(
        [
            code("from IPython.display import Image, display\nimport base64"),
            step("plot", f"png = base64.b64decode({PNG!r})\ndisplay(Image(png))"),
            step("after", "n = len(png)"),
        ]
    )
    run(path)
    r = run(path, output=tmp_path / "out.ipynb")
    assert statuses(r) == {"plot": "cached", "after": "cached"}
    out = nbformat.read(tmp_path / "out.ipynb", 4)
    assert "image/png" in out.cells[1].outputs[0]["data"]


def test_notebook_functions_and_classes_survive_restore(make_notebook):
    path = make_notebook(
        [
            code("class Scaler:\n    def __init__(self, k):\n        self.k = k"),
            step("define", "def transform(v):\n    return [x * 3 for x in v]\nscaler = Scaler(2)"),
            step("use", "out = transform([1, 2])\nk = scaler.k\nis_scaler = isinstance(scaler, Scaler)"),
        ]
    )
    run(path)
    edit(path, 2, "out = transform([1, 2, 3])\nk = scaler.k\nis_scaler = isinstance(scaler, Scaler)")
    r = run(path)
    assert statuses(r) == {"define": "cached", "use": "done"}
    assert nbflow.result(path, "use", "out") == [3, 6, 9]
    assert nbflow.result(path, "use", "is_scaler") is True  # the setup's class is pickled by name


def test_large_arrays_restore_memory_mapped_and_copy_on_write(make_notebook):
    path = make_notebook(
        [
            code("import numpy as np"),
            step("make", "arr = np.arange(3_000_000, dtype=np.float64)"),
            step("use", "arr[0] = -1.0\ns = float(arr.sum())\nkind = type(arr).__name__"),
        ]
    )
    run(path)
    edit(path, 2, "arr[0] = -2.0\ns = float(arr.sum())\nkind = type(arr).__name__")
    r = run(path)
    assert statuses(r) == {"make": "cached", "use": "done"}
    assert nbflow.result(path, "use", "kind") == "memmap"
    assert nbflow.result(path, "use", "s") == float(np.arange(3_000_000).sum() - 2.0)
    assert nbflow.result(path, "make", "arr")[0] == 0.0  # the cached entry was not changed in place


def test_corrupt_entry_is_recomputed_with_a_warning(make_notebook):
    path = make_notebook([step("a", "x = list(range(1000))"), step("b", "y = sum(x)")])
    run(path)
    pipeline = load_pipeline(path)
    key = pipeline.plan()["a"].key
    values = pipeline.config.cache_dir / "a" / key / "values.pkl"
    data = bytearray(values.read_bytes())
    data[len(data) // 2] ^= 0xFF
    values.write_bytes(bytes(data))
    edit(path, 1, "y = sum(x) + 1")
    r = run(path)
    assert statuses(r) == {"a": "done", "b": "done"}
    assert r.steps["a"]["reasons"] == ["cache entry corrupt"]
    store = RunStore(pipeline.config.store_path)
    assert any("cache entry corrupt" in m["text"] and m["step"] == "a" for m in store.messages(r.id))
    assert nbflow.result(path, "b", "y") == sum(range(1000)) + 1


def test_unpicklable_value_makes_its_step_rerun_when_needed(make_notebook):
    path = make_notebook(
        [step("gen", "import threading\nlock = threading.Lock()\nn = 1"), step("use", "with lock:\n    m = n + 1")]
    )
    first = run(path)
    assert first.status == "done"
    edit(path, 1, "with lock:\n    m = n + 2")
    plan = load_pipeline(path).plan()
    assert plan.to_run == ["gen", "use"]
    assert plan["gen"].reasons[0].startswith("value lock needed by use: cannot be pickled")
    assert run(path).status == "done"


def test_parameters_are_checked_before_any_kernel(make_notebook):
    path = make_notebook(CHAIN)
    with pytest.raises(nbflow.ParameterError, match="parameter 'n' expects int"):
        run(path, {"n": "five"})
    assert not load_pipeline(path).config.store_path.exists()


def test_cli_run_show_runs_and_exit_codes(make_notebook):
    path = make_notebook([step("a", "x = 1"), step("b", "raise KeyError('k')")])

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "nbflow", *args], capture_output=True, text=True)

    proc = cli("run", str(path))
    assert proc.returncode == 1
    assert "✗ b" in proc.stderr and "KeyError" in proc.stderr
    show = cli("show", "1", "-C", str(path))
    assert "b         failed" in show.stdout or "failed" in show.stdout
    step_b = cli("show", "1", "b", "-C", str(path))
    assert "KeyError: 'k'" in step_b.stdout and "Traceback" in step_b.stdout or "KeyError" in step_b.stdout
    runs = cli("runs", str(path))
    assert runs.returncode == 0 and "failed" in runs.stdout
    edit(path, 1, "y = x")
    ok = cli("run", str(path), "--output", str(path.parent / "out.ipynb"))
    assert ok.returncode == 0, ok.stderr
    assert json.loads((path.parent / "out.ipynb").read_text())["metadata"]["papermill"]


def test_clean_keeps_the_newest_runs_entries(make_notebook):
    path = make_notebook(CHAIN)
    for scale in (1.0, 2.0, 3.0):
        run(path, {"scale": scale})
    config = load_pipeline(path).config
    result = nbflow.run.clean(config, keep=1)
    assert result["runs"] == 2 and result["entries"] == 2  # two old "total" entries
    assert load_pipeline(path).plan({"scale": 3.0}).to_run == []


def test_out_files_are_checked_cached_and_restored(make_notebook, tmp_path):
    path = make_notebook(
        [
            step("write", "%%bash\necho -n hello > greeting.txt\necho done", "out:greeting.txt"),
            step("read", "text = open('greeting.txt').read()", "in:greeting.txt"),
            step("forgets", "x = 1", "out:never.txt"),
        ]
    )
    first = run(path)
    assert statuses(first) == {"write": "done", "read": "done", "forgets": "failed"}
    assert first.steps["forgets"]["error"].startswith("out:never.txt was not produced")
    assert nbflow.result(path, "read", "text") == "hello"
    (tmp_path / "greeting.txt").write_text("edited by hand")
    again = run(path)
    assert statuses(again)["write"] == "cached" and statuses(again)["read"] == "cached"
    assert (tmp_path / "greeting.txt").read_text() == "hello"  # the step's own result is put back
    store = RunStore(load_pipeline(path).config.store_path)
    assert any("out:greeting.txt was missing or changed" in m["text"] for m in store.messages(again.id))
    (tmp_path / "greeting.txt").unlink()
    run(path)
    assert (tmp_path / "greeting.txt").read_text() == "hello"


def test_bash_step_with_external_input_file(make_notebook, tmp_path):
    (tmp_path / "numbers.txt").write_text("1\n2\n3\n")
    path = make_notebook(
        [
            step("count", "%%bash\nwc -l < numbers.txt > count.txt", "in:numbers.txt", "out:count.txt"),
            step("parse", "n = int(open('count.txt').read())", "in:count.txt"),
        ]
    )
    assert statuses(run(path)) == {"count": "done", "parse": "done"}
    assert nbflow.result(path, "parse", "n") == 3
    assert load_pipeline(path).plan().to_run == []
    (tmp_path / "numbers.txt").write_text("1\n2\n3\n4\n")
    plan = load_pipeline(path).plan()
    assert plan.to_run == ["count", "parse"] and plan["count"].reasons == ("input file numbers.txt changed",)
    run(path)
    assert nbflow.result(path, "parse", "n") == 4


def test_fan_out_runs_each_element_once_and_caches_them_separately(make_notebook, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for name, text in (("a.txt", "x"), ("b.txt", "yy"), ("c.txt", "zzz")):
        (data / name).write_text(text)
    path = make_notebook(
        [
            code("import os"),
            step("listing", "files = sorted(os.listdir('data'))", "in:data"),
            step("measure", "n = len(open(os.path.join('data', path)).read())\nprint(path, n)", "map:path=files"),
            step("total", "total = sum(n)\ncount = len(n)"),
        ]
    )
    events = []
    first = run(path, listeners=[events.append])
    assert first.status == "done", first.error
    assert nbflow.result(path, "total", "total") == 6 and nbflow.result(path, "measure", "n") == [1, 2, 3]
    items = [e for e in events if e.type == "ItemFinished"]
    assert [(e.item, e.status, e.total) for e in items] == [(0, "done", 3), (1, "done", 3), (2, "done", 3)]
    assert items[0].label == "'a.txt'"
    out = nbformat.read(first.output_notebook, 4)
    measure = next(c for c in out.cells if "step:measure" in c.metadata.get("tags", []))
    text = "".join(o.get("text", "") for o in measure.outputs)
    assert "element 1: 'b.txt'" in text and "b.txt 2" in text

    (data / "d.txt").write_text("wwww")  # the folder changed: listing reruns, one new element runs
    events.clear()
    second = run(path, listeners=[events.append])
    assert statuses(second) == {"listing": "done", "measure": "done", "total": "done"}
    assert [e.status for e in events if e.type == "ItemFinished"] == ["cached", "cached", "cached", "done"]
    assert nbflow.result(path, "total", "total") == 10

    events.clear()
    third = run(path, only=["measure"], items=[1], listeners=[events.append])
    assert [e.status for e in events if e.type == "ItemFinished"] == ["cached", "done", "cached", "cached"]
    assert third.status == "done"
    store = RunStore(load_pipeline(path).config.store_path)
    assert [i["status"] for i in store.items(third.id, "measure")] == ["cached", "done", "cached", "cached"]


def test_fan_out_element_failure_fails_the_step_and_reruns_only_failed_elements(make_notebook):
    path = make_notebook(
        [
            code("values = [1, 0, 2]", "parameters"),
            step("invert", "inv = 1 / values", "map:values"),
            step("use", "s = sum(inv)"),
        ]
    )
    first = run(path)
    assert statuses(first) == {"invert": "failed", "use": "skipped"}
    assert "1 of 3 elements failed; element 1 (0): cell 2: ZeroDivisionError" in first.steps["invert"]["error"]
    events = []
    second = run(path, {"values": [1, 4, 2]}, listeners=[events.append])
    assert second.status == "done"
    assert [e.status for e in events if e.type == "ItemFinished"] == ["cached", "done", "cached"]
    assert nbflow.result(path, "use", "s") == 1 + 0.25 + 0.5


def test_diff_shows_parameters_code_and_reruns(make_notebook):
    path = make_notebook(CHAIN)
    first = run(path)
    edit(path, 4, "sq = [x * x + 1 for x in data]")
    second = run(path, {"scale": 3.0})
    proc = subprocess.run(
        [sys.executable, "-m", "nbflow", "diff", str(first.id), str(second.id), "-C", str(path)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert f"run {first.id} (done) -> run {second.id} (done)" in out
    assert "params: scale: 2.0 -> 3.0" in out
    assert "step square: done -> done (code changed)" in out
    assert "+sq = [x * x + 1 for x in data]" in out
    assert "total: 60.0 -> 105.0" in out
    assert "unchanged: load, side" in out
    page = subprocess.run(
        [sys.executable, "-m", "nbflow", "report", str(first.id), str(second.id), "-C", str(path)],
        capture_output=True,
        text=True,
    )
    assert page.returncode == 0, page.stderr
    html = Path(page.stdout.strip()).read_text()
    assert 'id="nbflow-code"' in html and "+sq = [x * x + 1 for x in data]" in html


def test_fan_out_element_naming_a_rewritten_file_is_recomputed(make_notebook, tmp_path):
    path = make_notebook(
        [
            code("version = 1", "parameters"),
            step(
                "write",
                "files = []\nfor i in range(2):\n    open(f'f{i}.txt', 'w').write(str(version * (i + 1)))\n"
                "    files.append(f'f{i}.txt')",
            ),
            step("read", "value = int(open(path).read())", "map:path=files"),
        ]
    )
    run(path)
    assert nbflow.result(path, "read", "value") == [1, 2]
    events = []
    run(path, {"version": 10}, listeners=[events.append])  # same names, new contents
    assert [e.status for e in events if e.type == "ItemFinished"] == ["done", "done"]
    assert nbflow.result(path, "read", "value") == [10, 20]
