"""What the kernel executor does, the user's own kernel does too (issue 17): ``map:`` steps
run element by element, ``timeout:`` interrupts the step, early cut-off restores instead of
re-running, and "restore up to this step" -- through ``%nbflow`` and through the driver
JupyterLab calls, in a real kernel (jupyter_client). Each case is compared with a
kernel-executor run of the same notebook in a folder of its own."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import numpy as np
import pytest

import nbflow
from nbflow import load_pipeline
from nbflow.config import Config

from ..conftest import code, step, write_notebook
from .live import Kernel, text_of


@pytest.fixture
def live_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "live"
    folder.mkdir()
    return folder


@pytest.fixture
def kernel(live_dir):
    k = Kernel(live_dir)
    try:
        assert k.text("%load_ext nbflow") == ""
        yield k
    finally:
        k.close()


def twin(path: Path, tmp_path: Path) -> Path:
    """The same notebook in a folder of its own (its own cache and run store), for the kernel executor."""
    folder = tmp_path / "kernel-executor"
    folder.mkdir(exist_ok=True)
    return Path(shutil.copy(path, folder / path.name))


def edit(path: Path, index: int, source: str) -> None:
    nb = nbformat.read(path, 4)
    nb.cells[index].source = source
    nbformat.write(nb, path)


def step_runs(path: Path, run_id: int) -> tuple[dict, dict[str, dict]]:
    store = Config.for_notebook(path).open_store()
    try:
        return store.run(run_id), {s["step"]: s for s in store.steps(run_id)}
    finally:
        store.close()


def entry_of(path: Path, name: str):
    pipeline = load_pipeline(path)
    cache = pipeline.config.cache()
    return cache, cache.lookup(name, pipeline.plan()[name].key)


# ------------------------------------------------------------------ map: steps

MAP_CELLS = [
    code("words = ['a', 'bb', 'ccc']", "parameters"),
    step("load", "upper = [w.upper() for w in words]"),
    step("measure", "size = len(word) * 10\nprint('measured', word, size)", "map:word=upper"),
    step("total", "t = sum(size)\nprint('total', t)"),
]


def test_a_map_step_runs_element_by_element_in_the_kernel_as_the_kernel_executor_runs_it(tmp_path, live_dir, kernel):
    path = write_notebook(live_dir / "m.ipynb", MAP_CELLS)
    other = twin(path, tmp_path)
    reference = load_pipeline(other).run()
    assert reference.status == "done", reference.error

    shown = kernel.text("%nbflow run --notebook m.ipynb")
    assert "run 1: done (3 done)" in shown, shown
    assert [line for line in shown.splitlines() if line.startswith("measured")] == [
        "measured A 10",
        "measured BB 20",
        "measured CCC 30",
    ]
    # the namespace a plain run leaves: the step's names are lists over the elements, the element unbound
    assert kernel.value("size") == [10, 20, 30] and kernel.value("t") == 60
    assert kernel.value("'word' in globals()") is False
    # the cache: values, outputs and keys equal to the kernel executor's
    for name, value in [("measure", "size"), ("total", "t")]:
        assert nbflow.result(path, name, value) == nbflow.result(other, name, value)
    assert load_pipeline(path).plan()["measure"].key == load_pipeline(other).plan()["measure"].key
    live_cache, live_entry = entry_of(path, "measure")
    ref_cache, ref_entry = entry_of(other, "measure")
    assert live_entry.manifest["executor"] == "live" and ref_entry.manifest["executor"] == "kernel"
    assert live_cache.load_outputs(live_entry) == ref_cache.load_outputs(ref_entry)
    assert [o["text"] for o in live_cache.load_outputs(live_entry)[0]] == [
        "[nbflow] element 0: 'A'\n",
        "measured A 10\n",
        "[nbflow] element 1: 'BB'\n",
        "measured BB 20\n",
        "[nbflow] element 2: 'CCC'\n",
        "measured CCC 30\n",
    ]
    assert load_pipeline(path).plan().to_run == []  # a CLI run finds everything cached
    record, steps = step_runs(path, 1)
    assert record["executor"] == "live" and {s: r["status"] for s, r in steps.items()} == {
        "load": "done",
        "measure": "done",
        "total": "done",
    }

    # a map: step's values come back from its entry like any other step's
    kernel.text("del size")
    assert kernel.text("%nbflow restore total") == "restored from measure (run 1): size\n"
    assert kernel.value("size") == [10, 20, 30]

    # one more element: the three cached elements are restored, only the new one runs
    shown = kernel.text("%nbflow run -p words \"['a', 'bb', 'ccc', 'dddd']\"")
    assert [line for line in shown.splitlines() if line.startswith("measured")] == ["measured DDDD 40"], shown
    assert kernel.value("size") == [10, 20, 30, 40] and kernel.value("t") == 100


def test_the_driver_runs_a_map_step_in_the_kernel_and_returns_its_outputs(live_dir, kernel):
    path = write_notebook(live_dir / "m.ipynb", MAP_CELLS)
    editor = nbformat.read(path, 4)
    begun = kernel.driver("begin", path="m.ipynb", notebook=editor, mode="stale")
    runs = {s["name"]: s["in_kernel"] for s in begun["steps"]}
    assert runs == {"load": False, "measure": True, "total": False}

    load_cell, measure_cell = editor.cells[1], editor.cells[2]
    assert kernel.driver("step_started", step="load") == {}
    outputs = kernel.run(load_cell.source, load_cell.id)
    assert kernel.driver("step_finished", step="load", outputs={load_cell.id: outputs}, error=None)["status"] == "done"
    ran = kernel.driver("run_step", step="measure")
    assert ran["status"] == "done" and ran["step_error"] == ""
    assert [o["text"] for o in ran["outputs"][measure_cell.id]][:2] == ["[nbflow] element 0: 'A'\n", "measured A 10\n"]
    assert kernel.value("size") == [10, 20, 30]
    assert kernel.driver("finish", status="done")["counts"] == {"done": 2, "skipped": 1}
    assert nbflow.result(path, "measure", "size") == [10, 20, 30]


# element 2 fails once (then its retry passes); element 3 fails while the file "broken" is there
CASES_CELLS = [
    code("values = [1, 2, 3, 4]", "parameters"),
    step("load", "items = list(values)"),
    step(
        "square",
        "import pathlib\n"
        "if v == 3 and not pathlib.Path('retried').exists():\n"
        "    pathlib.Path('retried').touch()\n"
        "    raise TimeoutError('slow server')\n"
        "if v == 4 and pathlib.Path('broken').exists():\n"
        "    raise ValueError('bad element')\n"
        "sq = v * v\n"
        "print('element', v)",
        "map:v=items",
        "retry:1:0",
    ),
    step("total", "s = sum(sq)\nbound = 'v' in globals()"),
]

#: run ``m.ipynb`` with the live executor in the kernel's own thread (``%nbflow run`` has no ``--items``)
LIVE_RUN = (
    "import nbflow\n"
    "from nbflow.executors.user_kernel import UserKernelExecutor\n"
    "from nbflow.run import prepare_run\n"
    "r = prepare_run(nbflow.load_pipeline('m.ipynb'), executor=UserKernelExecutor(), {options})\n"
    "r._execute()\n"
    "print(r.status)"
)


def cache_contents(path: Path, name: str) -> dict[str, tuple]:
    """Every entry of step ``name`` (the step's own and its elements'), by key: its values,
    outputs, element keys and manifest fields other than the run's own."""
    cache = load_pipeline(path).config.cache()
    contents = {}
    for entry in cache.entries(name):
        manifest = {k: v for k, v in entry.manifest.items() if k not in ("run_id", "duration", "executor", "created")}
        values = cache.load_values(entry, mmap=False)
        contents[entry.key] = (values, cache.load_outputs(entry), entry.items, sorted(manifest))
    return contents


def record_of(path: Path, run_id: int) -> tuple[str, dict, list]:
    """A run's status, its steps' (status, error) and the map step's elements, without durations."""
    record, steps = step_runs(path, run_id)
    store = Config.for_notebook(path).open_store()
    try:
        items = [{k: v for k, v in i.items() if k != "duration"} for i in store.items(run_id, "square")]
    finally:
        store.close()
    return record["status"], {s: (r["status"], r["error"]) for s, r in steps.items()}, items


def test_a_map_step_leaves_the_same_cache_record_and_namespace_in_the_kernel_as_the_kernel_executor(
    tmp_path, live_dir, kernel
):
    """Cached, forced, retried and failing elements: one element loop (``map_loop``) for both executors."""
    path = write_notebook(live_dir / "m.ipynb", CASES_CELLS)
    other = twin(path, tmp_path)
    for folder in (live_dir, other.parent):
        (folder / "broken").touch()

    # run 1: element 2 is retried and passes, element 3 fails twice: the step fails, three elements are cached
    reference = load_pipeline(other).run()
    assert reference.status == "failed"
    shown = kernel.text("%nbflow run --notebook m.ipynb")
    assert "run 1: failed" in shown, shown
    status, steps, items = record_of(path, 1)
    assert (status, steps, items) == record_of(other, 1)
    assert [i["status"] for i in items] == ["done", "done", "done", "failed"]
    assert steps["square"] == ("failed", "1 of 4 elements failed; element 3 (4): cell 3: ValueError: bad element")
    assert steps["total"][0] == "skipped"
    assert len(cache_contents(path, "square")) == 3
    assert cache_contents(path, "square") == cache_contents(other, "square")

    # run 2: element 0 forced, elements 1 and 2 restored, element 3 runs again and passes
    for folder in (live_dir, other.parent):
        (folder / "broken").unlink()
    reference = load_pipeline(other).run(only=["square"], items=[0])
    assert reference.status == "done", reference.error
    shown = kernel.text(LIVE_RUN.format(options="only=['square'], items=[0]"))
    assert shown.splitlines()[-1] == "done", shown
    assert [line for line in shown.splitlines() if line.startswith("element")] == ["element 1", "element 4"]
    status, steps, items = record_of(path, 2)
    assert (status, steps, items) == record_of(other, 2)
    assert [i["status"] for i in items] == ["done", "cached", "cached", "done"]
    contents = cache_contents(path, "square")
    assert len(contents) == 5 and contents == cache_contents(other, "square")  # 4 elements and the step's own
    step_entry = next(c for c in contents.values() if c[2])
    assert step_entry[0]["sq"] == [1, 4, 9, 16]
    assert [o["text"] for o in step_entry[1][0]][4:6] == ["[nbflow] element 2: 3\n", "element 3\n"]  # the retry's
    assert kernel.value("sq") == [1, 4, 9, 16] and kernel.value("'v' in globals()") is False

    # run 3: the namespace after the map step, seen by the step after it, is the kernel executor's
    assert load_pipeline(other).run().status == "done"
    assert "run 3: done" in kernel.text("%nbflow run --notebook m.ipynb")
    for name in ("s", "bound"):
        assert nbflow.result(path, "total", name) == nbflow.result(other, "total", name)
    assert kernel.value("s") == 30 and kernel.value("bound") is False


STOPPED_CELLS = [
    code("values = [1, 2, 3]", "parameters"),
    step("load", "values = list(values)"),
    step(
        "square",
        "import time\nif values == 2:\n    print('sleeping', flush=True)\n    time.sleep(60)\nsq = values * values",
        "map:values",
    ),
]


def staged(path: Path, name: str) -> list[str]:
    """The staging folders left under step ``name``'s part of the cache."""
    folder = load_pipeline(path).config.cache().root / name
    return sorted(p.name for p in folder.glob(".staging-*")) if folder.exists() else []


def test_a_map_step_stopped_mid_element_keeps_the_elements_before_it_with_either_executor(tmp_path, live_dir, kernel):
    """Cancel (kernel executor) and interrupt (live): the step ends cancelled naming why, the
    finished element stays cached, nothing of the stopped one is kept, the iterable is whole again."""
    path = write_notebook(live_dir / "s.ipynb", STOPPED_CELLS)
    other = twin(path, tmp_path)
    from nbflow.events import ItemFinished
    from nbflow.run import start_run

    run: list = []

    def cancel_after_the_first(event):
        if isinstance(event, ItemFinished) and event.item == 0:
            run[0].cancel()

    run.append(start_run(load_pipeline(other), listeners=[cancel_after_the_first]))
    assert run[0].wait(120) == "cancelled"
    _, steps = step_runs(other, 1)
    assert (steps["square"]["status"], steps["square"]["error"]) == ("cancelled", "element 1 (2): cancelled")

    msg_id = kernel.send("%nbflow run --notebook s.ipynb")
    assert "sleeping" in text_of(kernel.outputs(msg_id, until="sleeping"))
    kernel.km.interrupt_kernel()
    shown = text_of(kernel.outputs(msg_id))
    assert "run 1: cancelled (1 cancelled, 1 done)" in shown, shown
    _, steps = step_runs(path, 1)
    assert (steps["square"]["status"], steps["square"]["error"]) == ("cancelled", "interrupted (KeyboardInterrupt)")
    assert kernel.value("values") == [1, 2, 3]  # map_abort: the iterable, not the element it stopped at

    for notebook in (path, other):
        assert staged(notebook, "square") == []
        plan = load_pipeline(notebook).plan()
        assert plan["square"].state == "stale"
        events = []
        assert load_pipeline(notebook).run(listeners=[events.append], timeout=1).status == "failed"
        # element 0 is restored from its entry; element 1 runs again (and times out)
        assert [e.status for e in events if isinstance(e, ItemFinished)][:2] == ["cached", "failed"]


# -------------------------------------------------------------------- timeout:

SLOW = "import time\nfor _ in range(600):\n    time.sleep(0.1)\nb = a + 1"


def test_a_timeout_interrupts_the_step_in_the_kernel_with_the_kernel_executors_error(tmp_path, live_dir, kernel):
    path = write_notebook(
        live_dir / "t.ipynb",
        [step("fast", "a = 1"), step("slow", SLOW, "timeout:1"), step("after", "c = b + 1")],
    )
    reference = load_pipeline(twin(path, tmp_path)).run()
    assert reference.status == "failed"
    error = reference.steps["slow"]["error"]
    assert error == "timed out after 1 s (interrupted)"

    shown = kernel.text("%nbflow run --notebook t.ipynb")
    assert f"failed: slow: {error}" in shown and "run 1: failed" in shown, shown
    record, steps = step_runs(path, 1)
    assert record["status"] == "failed"
    assert {s: r["status"] for s, r in steps.items()} == {"fast": "done", "slow": "failed", "after": "skipped"}
    assert steps["slow"]["error"] == error
    assert kernel.value("1 + 1") == 2  # the kernel goes on
    plan = load_pipeline(path).plan()
    assert plan["fast"].state == "fresh" and plan["slow"].state == "stale"

    # the same through the driver: JupyterLab executes the cell, the kernel interrupts it
    begun = kernel.driver("begin", path="t.ipynb", mode="stale")
    assert [s["action"] for s in begun["steps"]] == ["restore", "run", "run"]  # slow reads fast's a
    cell = nbformat.read(path, 4).cells[1]
    assert kernel.driver("step_started", step="slow") == {}
    outputs = kernel.run(cell.source, cell.id)
    assert [o["ename"] for o in outputs if o["output_type"] == "error"] == ["KeyboardInterrupt"]
    finished = kernel.driver("step_finished", step="slow", outputs={cell.id: outputs}, error="KeyboardInterrupt: ")
    assert finished["status"] == "failed" and finished["step_error"] == error
    assert kernel.driver("finish", status="failed")["status"] == "failed"
    assert step_runs(path, 2)[1]["slow"]["error"] == error


# --------------------------------------------------------------- early cut-off

CUT_CELLS = [
    step("a", "x = 1 + 1"),
    step("b", "y = x * 10\nprint('b ran', y)"),
    step("c", "z = y + 1"),
]


def test_early_cut_off_restores_the_dependants_instead_of_running_them(tmp_path, live_dir, kernel):
    path = write_notebook(live_dir / "c.ipynb", CUT_CELLS)
    other = twin(path, tmp_path)
    for notebook in (path, other):
        assert load_pipeline(notebook).run().status == "done"
        edit(notebook, 0, "x = 2")  # new code, same value
    reference = load_pipeline(other).run()
    assert {s: r["status"] for s, r in reference.steps.items()} == {"a": "done", "b": "cached", "c": "cached"}

    shown = kernel.text("%nbflow run --notebook c.ipynb")
    assert "[nbflow] a: running (code changed)" in shown
    assert "[nbflow] b: cached (the steps above it left the values it read before)" in shown
    assert "[nbflow] c: cached" in shown and "b ran" not in shown
    assert "run 2: done (2 cached, 1 done)" in shown, shown
    record, steps = step_runs(path, 2)
    assert {s: r["status"] for s, r in steps.items()} == {"a": "done", "b": "cached", "c": "cached"}
    assert steps["b"]["key"] == reference.steps["b"]["key"] and steps["c"]["key"] == reference.steps["c"]["key"]
    assert (kernel.value("x"), kernel.value("y"), kernel.value("z")) == (2, 20, 21)  # restored, not run
    assert load_pipeline(path).plan().to_run == []

    # through the driver: step_started says "cached" and hands the cached outputs for the cell
    edit(path, 0, "x = 4 - 2")
    kernel.text("del y")
    begun = kernel.driver("begin", path="c.ipynb", mode="stale")
    assert [s["action"] for s in begun["steps"]] == ["run", "run", "run"]
    nb = nbformat.read(path, 4)
    assert kernel.driver("step_started", step="a") == {}
    outputs = kernel.run(nb.cells[0].source, nb.cells[0].id)
    assert kernel.driver("step_finished", step="a", outputs={nb.cells[0].id: outputs})["status"] == "done"
    cut = kernel.driver("step_started", step="b")
    assert cut == {
        "status": "cached",
        "outputs": {nb.cells[1].id: [{"name": "stdout", "output_type": "stream", "text": "b ran 20\n"}]},
    }
    assert kernel.value("y") == 20
    assert kernel.driver("step_started", step="c")["status"] == "cached"
    assert kernel.driver("finish", status="done")["counts"] == {"cached": 2, "done": 1}


def test_a_cached_step_whose_input_a_running_step_changed_runs_after_all(tmp_path, live_dir, kernel):
    cells = [
        step("make", "import numpy as np\nx2 = np.arange(12).reshape(3, 4)"),
        step("alias", "x2_sub = x2[:2, :2]\nfirst = x2_sub[0, 0]"),
        step("read", "total = int(x2.sum())"),
    ]
    path = write_notebook(live_dir / "d.ipynb", cells)
    other = twin(path, tmp_path)
    for notebook in (path, other):
        assert load_pipeline(notebook).run().status == "done"
        edit(notebook, 1, "x2_sub = x2[:2, :2]\nx2_sub[0, 0] = 99")  # changes x2 through an alias
    assert load_pipeline(path).plan()["read"].recheck == ("alias",)
    reference = load_pipeline(other).run()

    shown = kernel.text("%nbflow run --notebook d.ipynb")
    assert "[nbflow] read: running (upstream alias changed its inputs at run time)" in shown, shown
    record, steps = step_runs(path, 2)
    assert {s: r["status"] for s, r in steps.items()} == {s: r["status"] for s, r in reference.steps.items()}
    assert steps["read"]["status"] == "done"
    assert kernel.value("total") == nbflow.result(other, "read", "total") == 66 + 99

    # through the driver: read is to be restored, but at its turn it runs, in the kernel
    third = live_dir / "three" / "d.ipynb"
    third.parent.mkdir()
    write_notebook(third, cells)
    assert load_pipeline(third).run().status == "done"
    edit(third, 1, "x2_sub = x2[:2, :2]\nx2_sub[0, 0] = 99")
    kernel.text("del total")
    begun = kernel.driver("begin", path="three/d.ipynb", mode="stale")
    assert [s["action"] for s in begun["steps"]] == ["restore", "run", "restore"]
    nb = nbformat.read(third, 4)
    assert kernel.driver("restore", step="make")["missing"] == {}
    assert kernel.driver("step_started", step="alias") == {}
    outputs = kernel.run(nb.cells[1].source, nb.cells[1].id)
    assert kernel.driver("step_finished", step="alias", outputs={nb.cells[1].id: outputs})["status"] == "done"
    ran = kernel.driver("restore", step="read")
    assert ran["status"] == "done" and ran["restored"] == {} and kernel.value("total") == 66 + 99
    assert kernel.driver("finish", status="done")["counts"] == {"cached": 1, "done": 2}


# ---------------------------------------------------------------- restore --to


def test_restore_up_to_a_step_leaves_what_a_run_up_to_it_leaves(live_dir, kernel):
    path = write_notebook(
        live_dir / "r.ipynb",
        [
            code("import numpy as np"),
            step("load", "data = np.arange(4) * 1.5\nnp.random.seed(7)"),
            step("square", "sq = data ** 2\nnoise = np.random.rand(2)"),
            step("report", "total = float(sq.sum())\nlater = np.random.rand(3)"),
        ],
    )
    first = load_pipeline(path).run()
    assert first.status == "done", first.error

    shown = kernel.text("%nbflow restore --to square --notebook r.ipynb")
    assert shown.splitlines() == [
        f"restored from load (run {first.id}): data",
        f"restored from square (run {first.id}): noise, sq",
    ]
    assert kernel.value("[k for k in ('data', 'sq', 'noise', 'total', 'later') if k in globals()]") == [
        "data",
        "sq",
        "noise",
    ]
    np.random.seed(7)
    np.random.rand(2)
    after_square = np.random.rand(3).tolist()  # what report draws in a plain run
    assert kernel.value("np.random.rand(3).tolist()") == after_square
    # the kernel holds square's values, but not its hidden state any more: --to STEP puts it back
    kernel.text("np.random.rand(10)")
    assert kernel.text("%nbflow restore --to square") == f"restored from square (run {first.id}): noise, sq\n"
    assert kernel.value("np.random.rand(3).tolist()") == after_square

    # the driver's restore-to mode makes the same decisions, for JupyterLab's "Restore up to this step"
    begun = kernel.driver("begin", path="r.ipynb", mode="restore-to", step="square")
    assert begun["run_id"] is None
    assert [(s["name"], s["action"], s["reason"]) for s in begun["steps"]] == [
        ("load", "skip", "this kernel holds its current values"),
        ("square", "restore", "fresh"),
        ("report", "skip", "not needed"),
    ]
    assert kernel.driver("restore", step="square")["missing"] == {}
    assert kernel.driver("finish", status="done")["status"] == "done"
    assert (
        kernel.driver("begin", path="r.ipynb", mode="restore-to")["error"] == "r.ipynb: mode 'restore-to' needs a step"
    )

    # bad input: one line
    outputs = kernel.run("%nbflow restore square --to load")
    assert len(outputs) == 1 and "give STEP (what it reads) or --to STEP, not both" in outputs[0]["text"]
    assert "no such step" in text_of(kernel.run("%nbflow restore --to nope"))
