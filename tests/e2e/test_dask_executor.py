"""The Dask executor on a real LocalCluster (worker processes), with the real cache and
run store; results compared with the kernel executor's."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import psutil
import pytest

import nbflow
from nbflow import load_pipeline
from nbflow.cache import Cache
from nbflow.events import RunWarning, StepFinished, StepStarted
from nbflow.executors.dask import DaskExecutor
from nbflow.executors.on_worker import sees_cache
from nbflow.run import Run, start_run
from nbflow.store import RunStore

from ..conftest import NOTEBOOKS, code, step
from .test_kernel_executor import CHAIN, run, statuses

pytestmark = pytest.mark.slow

NBFLOW = str(Path(sys.executable).parent / "nbflow")


@pytest.fixture
def dask(client):
    """A Dask executor on the shared cluster."""

    def make(**options):
        return DaskExecutor(client, announce=False, **options)

    return make


def steps_stop_running(client, timeout: float = 90.0) -> bool:
    """Whether, within ``timeout``, both workers are up and none runs an nbflow step
    (a worker restarted by a test must be back before the next test uses the cluster).

    The scheduler may still list a worker that is being replaced, and a broadcast to it
    waits for the connect timeout (30 s): ask only the workers listed now, and give it time."""
    from nbflow.executors.on_worker import running_steps

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            workers = list(client.scheduler_info()["workers"])
            answers = client.run(running_steps, workers=workers, on_error="return") if workers else {}
        except Exception:  # noqa: BLE001 - a worker being restarted; ask again
            answers = {"?": ["restarting"]}
        settled = len(answers) == 2 and all(isinstance(a, list) for a in answers.values())
        if settled and not any(answers.values()):
            return True
        time.sleep(0.2)
    return False


def entry_values(path: Path, step_name: str) -> dict:
    pipeline = load_pipeline(path)
    plan = pipeline.plan()
    cache = Cache(pipeline.config.cache_dir)
    entry = cache.lookup(step_name, plan[step_name].key)
    assert entry is not None, f"no entry for {step_name}"
    cache.verify(entry)
    return cache.load_values(entry)


def entry_outputs(path: Path, step_name: str) -> list:
    pipeline = load_pipeline(path)
    cache = Cache(pipeline.config.cache_dir)
    return cache.load_outputs(cache.lookup(step_name, pipeline.plan()[step_name].key))


def test_kernel_run_then_dask_run_is_fully_cached(make_notebook, dask):
    path = make_notebook(CHAIN)
    first = run(path)
    assert set(statuses(first).values()) == {"done"}
    again = run(path, executor=dask())
    assert again.status == "done"
    assert set(statuses(again).values()) == {"cached"}
    changed = run(path, {"scale": 3.0}, executor=dask())
    assert statuses(changed) == {"load": "cached", "square": "cached", "total": "done", "side": "cached"}
    assert nbflow.result(path, "total", "total", run=changed.id) == 90.0
    assert set(statuses(run(path, {"scale": 3.0})).values()) == {"cached"}  # and back to the kernel


def test_dask_run_then_kernel_run_is_fully_cached(make_notebook, dask):
    path = make_notebook(CHAIN)
    first = run(path, executor=dask())
    assert first.status == "done", first.error
    assert set(statuses(first).values()) == {"done"}
    assert nbflow.result(path, "total", "total") == 60.0
    assert entry_outputs(path, "load") == [[{"output_type": "stream", "name": "stdout", "text": "loaded 5\n"}]]
    total = entry_outputs(path, "total")[0]
    assert total[0]["output_type"] == "execute_result" and total[0]["data"]["text/plain"] == "60.0"
    store = RunStore(load_pipeline(path).config.store_path)
    assert store.run(first.id)["executor"] == "dask" and store.run(first.id)["status"] == "done"
    assert {s["step"]: s["status"] for s in store.steps(first.id)} == statuses(first)
    out = nbformat.read(first.output_notebook, 4)
    nbformat.validate(out)
    load_cell = next(c for c in out.cells if "step:load" in c.metadata.get("tags", []))
    assert load_cell.outputs[0]["text"] == "loaded 5\n"

    again = run(path)
    assert set(statuses(again).values()) == {"cached"}
    assert again.output_notebook is None  # nothing ran: no kernel at all


def _same(a, b) -> bool:
    if isinstance(a, list | tuple):  # a map: step's lists
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, np.random.Generator):
        return isinstance(b, np.random.Generator) and a.bit_generator.state == b.bit_generator.state
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")
    if isinstance(a, pd.DataFrame | pd.Series | pd.Index):
        return a.equals(b)
    if type(a).__module__.startswith("sklearn"):
        return type(a) is type(b) and json.dumps(a.get_params(), default=str) == json.dumps(b.get_params(), default=str)
    if type(a).__eq__ is object.__eq__:  # figures, axes: no value equality; compare what they show
        return type(a) is type(b) and repr(a) == repr(b)
    return a == b


def _shape(outputs: list) -> list:
    """What a person sees of outputs: kinds, mime types, text that has no addresses."""
    shape = []
    for cell in outputs:
        for o in cell:
            kind = o["output_type"]
            if kind == "stream":
                shape.append((kind, o["name"], o["text"]))
            elif kind in ("display_data", "execute_result"):
                text = o["data"].get("text/plain", "")
                shape.append((kind, tuple(sorted(o["data"])), text if " at 0x" not in text else "<object>"))
            else:
                shape.append((kind, o["ename"]))
    return shape


def run_by_both_executors(tmp_path: Path, notebook: str, dask) -> tuple[tuple[Path, Run], tuple[Path, Run]]:
    """A copy of ``notebooks/<notebook>`` run by each executor: ``(path, run)`` for the
    kernel's, then for Dask's; both runs must succeed."""
    by = []
    for name, executor in (("kernel", None), ("dask", dask())):
        (tmp_path / name).mkdir()
        path = Path(shutil.copy(NOTEBOOKS / notebook, tmp_path / name))
        by.append((path, run(path, executor=executor)))
    assert by[0][1].status == by[1][1].status == "done", (by[0][1].error, by[1][1].error)
    return by[0], by[1]


def assert_same_entries(a: Path, b: Path, outputs: bool = True) -> None:
    """Every step of notebooks ``a`` and ``b`` has equal cached values (and outputs)."""
    for name in load_pipeline(a).order:
        expected, got = entry_values(a, name), entry_values(b, name)
        assert sorted(expected) == sorted(got), name
        for value in expected:
            assert _same(expected[value], got[value]), (name, value)
        if outputs:
            assert _shape(entry_outputs(a, name)) == _shape(entry_outputs(b, name)), name


def test_example_notebook_gives_the_kernel_executors_results(tmp_path, dask):
    (by_kernel, _), (by_dask, _) = run_by_both_executors(tmp_path, "wine_classifier.ipynb", dask)
    assert_same_entries(by_kernel, by_dask)
    evaluate = entry_outputs(by_dask, "evaluate")
    assert any("image/png" in o.get("data", {}) for cell in evaluate for o in cell)  # the plot
    assert any("text/html" in o.get("data", {}) for cell in evaluate for o in cell)  # the table


def test_independent_steps_run_at_the_same_time(make_notebook, dask):
    path = make_notebook(
        [
            code("import time"),
            step("a", "time.sleep(1.5)\nx = 1"),
            step("b", "time.sleep(1.5)\ny = 2"),
            step("c", "z = x + y"),
        ]
    )
    order = []
    r = load_pipeline(path).run(
        executor=dask(),
        listeners=[
            lambda e: order.append((type(e).__name__, e.step)) if isinstance(e, StepStarted | StepFinished) else None
        ],
    )
    assert r.status == "done"
    started = [s for kind, s in order if kind == "StepStarted"]
    first_finish = next(i for i, (kind, _) in enumerate(order) if kind == "StepFinished")
    assert set(s for kind, s in order[:first_finish] if kind == "StepStarted") == {"a", "b"}  # both ran at once
    assert started[-1] == "c"
    assert nbflow.result(path, "c", "z") == 3


def step_intervals(path: Path, run_id: int) -> dict[str, tuple[float, float]]:
    """Each step's (started, finished) wall-clock times, as the run store recorded them."""
    store = RunStore(load_pipeline(path).config.store_path)
    return {s["step"]: (s["started"], s["finished"]) for s in store.steps(run_id)}


def test_steps_reading_builtins_and_setup_constants_run_at_the_same_time(make_notebook, dask):
    # Every branch of benchmarks/bench_dask.py reads a setup constant and builtins: the
    # branches ran one after the other, as if each could change them for the next.
    path = make_notebook(
        [
            code("import time\nPAUSE = 1.5\nLABELS = ('a', 'b')"),
            step("a", "time.sleep(PAUSE)\nx = float(len(LABELS))"),
            step("b", "time.sleep(PAUSE)\ny = int(len(LABELS))"),
            step("c", "z = x + y"),
        ]
    )
    r = load_pipeline(path).run(executor=dask())
    assert r.status == "done"
    spans = step_intervals(path, r.id)
    (a0, a1), (b0, b1), (c0, _) = spans["a"], spans["b"], spans["c"]
    assert a0 < b1 and b0 < a1  # the two overlap
    assert c0 >= max(a1, b1)
    assert nbflow.result(path, "c", "z") == 4.0


def test_a_step_waits_for_one_above_that_may_change_what_it_reads(make_notebook, dask):
    # ``grow(data)`` changes ``data`` unseen by the analysis: ``b`` must see it, as in a
    # plain run, so it starts only once ``a`` has finished (and takes ``data`` from it).
    path = make_notebook(
        [
            code("import time\ndata = [1, 2]\ndef grow(v):\n    v.append(3)"),
            step("a", "time.sleep(1.0)\ngrow(data)\nn = len(data)"),
            step("b", "m = len(data)"),
        ]
    )
    r = load_pipeline(path).run(executor=dask())
    assert r.status == "done"
    spans = step_intervals(path, r.id)
    assert spans["b"][0] >= spans["a"][1]
    assert nbflow.result(path, "b", "m") == 3


def test_failure_skips_dependants_runs_the_rest_and_resumes(make_notebook, dask):
    path = make_notebook(
        [
            step("a", "x = 1"),
            step("b", "y = x + 1\nraise ValueError('bad input')"),
            step("c", "z = y * 2"),
            step("d", "w = x * 10"),
        ]
    )
    r = run(path, executor=dask())
    assert r.status == "failed"
    assert statuses(r) == {"a": "done", "b": "failed", "c": "skipped", "d": "done"}
    assert r.steps["b"]["error"] == "cell 2: ValueError: bad input"
    assert r.steps["c"]["reasons"] == ["upstream b failed"]
    store = RunStore(load_pipeline(path).config.store_path)
    b = {s["step"]: s for s in store.steps(r.id)}["b"]
    assert "ValueError: bad input" in b["traceback"] and "\x1b[" not in b["traceback"]
    nb = nbformat.read(path, 4)
    nb.cells[1].source = "y = x + 1"
    nbformat.write(nb, path)
    resumed = run(path, executor=dask())
    assert statuses(resumed) == {"a": "cached", "b": "done", "c": "done", "d": "cached"}
    assert nbflow.result(path, "c", "z") == 4


def test_setup_failure_fails_the_run(make_notebook, dask):
    path = make_notebook([code("import no_such_module_here"), step("a", "x = 1"), step("b", "y = 2")])
    r = run(path, executor=dask())
    assert r.status == "failed"
    assert "cell 1 (setup) raised ModuleNotFoundError" in r.error
    assert statuses(r) == {"a": "skipped", "b": "skipped"}


def test_magics_bash_and_rich_outputs_are_captured(make_notebook, dask):
    path = make_notebook(
        [
            code("from IPython.display import HTML, display"),
            step("shell", "%%bash\necho from bash\necho oops >&2"),
            step("bang", "files = !echo one two\n%time n = len(files)"),
            step(
                "rich",
                "display(HTML('<b>bold</b>'))\nimport matplotlib.pyplot as plt\nfig, ax = plt.subplots()\n"
                "ax.plot([1, 3, 2])\nplt.show()",
            ),
            step("value", "answer = 42\nanswer"),
        ]
    )
    r = run(path, executor=dask())
    assert r.status == "done", r.error
    assert entry_outputs(path, "shell") == [
        [
            {"output_type": "stream", "name": "stdout", "text": "from bash\n"},
            {"output_type": "stream", "name": "stderr", "text": "oops\n"},
        ]
    ]
    assert "Wall time" in entry_outputs(path, "bang")[0][0]["text"]
    assert nbflow.result(path, "bang", "n") == 1
    rich = entry_outputs(path, "rich")[0]
    assert rich[0] == {
        "output_type": "display_data",
        "data": {"text/plain": "<IPython.core.display.HTML object>", "text/html": "<b>bold</b>"},
        "metadata": {},
    }
    assert rich[-1]["output_type"] == "display_data" and rich[-1]["data"]["image/png"].startswith("iVBOR")
    value = entry_outputs(path, "value")[0]
    assert value == [
        {"output_type": "execute_result", "data": {"text/plain": "42"}, "metadata": {}, "execution_count": 2}
    ]  # the setup cell ran first in the worker's shell
    # The kernel executor shows the same outputs for these steps when it runs them.
    kernel = run(path, force_all=True)
    assert kernel.status == "done"
    assert entry_outputs(path, "shell") == [
        [
            {"output_type": "stream", "name": "stdout", "text": "from bash\n"},
            {"output_type": "stream", "name": "stderr", "text": "oops\n"},
        ]
    ]
    assert _shape(entry_outputs(path, "rich"))[0] == _shape([rich])[0]


def test_notebook_functions_and_classes_travel_between_executors(make_notebook, dask):
    path = make_notebook(
        [
            code("def double(v):\n    return 2 * v"),
            step(
                "make", "class Box:\n    def __init__(self, v):\n        self.v = v\nbox = Box(double(4))\nf = double"
            ),
            step("use", "out = f(box.v)"),
        ]
    )
    assert run(path, executor=dask()).status == "done"
    assert nbflow.result(path, "use", "out") == 16
    r = run(path, force=["use"])  # the kernel restores dask's entry of "make"
    assert r.status == "done", r.error
    assert nbflow.result(path, "use", "out") == 16


def test_killed_worker_fails_the_step_clearly_and_the_run_goes_on(make_notebook, dask):
    path = make_notebook(
        [
            step("ok", "a = 1"),
            step("boom", "import os, signal\nb = a\nos.kill(os.getpid(), signal.SIGKILL)"),
            step("later", "c = b + 1"),
            step("other", "d = a + 1"),
        ]
    )
    t0 = time.monotonic()
    r = start_run(load_pipeline(path), executor=dask())
    assert r.wait(120) == "failed"
    assert time.monotonic() - t0 < 60
    assert statuses(r) == {"ok": "done", "boom": "failed", "later": "skipped", "other": "done"}
    assert r.steps["boom"]["error"].startswith("worker died (signal 9; possibly out of memory)")
    store = RunStore(load_pipeline(path).config.store_path)
    assert "worker died (signal 9" in {s["step"]: s for s in store.steps(r.id)}["boom"]["error"]
    assert load_pipeline(path).plan()["boom"].state == "stale"  # nothing cached for it


def test_killed_worker_is_retried(make_notebook, tmp_path, dask):
    marker = tmp_path / "killed-once"
    path = make_notebook(
        [
            step(
                "flaky",
                f"import os, signal, pathlib\nm = pathlib.Path({str(marker)!r})\n"
                "if not m.exists():\n    m.touch()\n    os.kill(os.getpid(), signal.SIGKILL)\nv = 7",
            ),
        ]
    )
    warnings = []
    r = load_pipeline(path).run(
        executor=dask(retries=1),
        listeners=[lambda e: warnings.append(e.message) if isinstance(e, RunWarning) else None],
    )
    assert r.status == "done", r.error
    assert nbflow.result(path, "flaky", "v") == 7
    assert any("attempt 1 of 2 failed (worker died (signal 9" in w and "running it again" in w for w in warnings)


def test_cancel_stops_the_submitted_tasks(make_notebook, dask, client):
    path = make_notebook(
        [
            step("quick", "q = 1"),
            step("slow", "import time\ntime.sleep(120)", "after:quick"),
            step("after", "z = q", "after:slow"),
        ]
    )
    started = threading.Event()
    r = start_run(
        load_pipeline(path),
        executor=dask(),
        listeners=[lambda e: started.set() if isinstance(e, StepStarted) and e.step == "slow" else None],
    )
    assert started.wait(60)
    t0 = time.monotonic()
    r.cancel()
    assert r.wait(60) == "cancelled"
    assert time.monotonic() - t0 < 30
    assert statuses(r) == {"quick": "done", "slow": "cancelled", "after": "cancelled"}
    assert nbflow.result(path, "quick", "q") == 1
    # The sleeping step does not linger on a worker (it was restarted after the grace period).
    assert steps_stop_running(client)


def test_timeout_interrupts_and_independent_steps_still_run(make_notebook, dask):
    path = make_notebook([step("hang", "while True:\n    pass", "timeout:1"), step("next", "v = 3")])
    r = run(path, executor=dask())
    assert statuses(r) == {"hang": "failed", "next": "done"}
    assert r.steps["hang"]["error"] == "timed out after 1 s (interrupted)"


def test_a_step_that_ignores_the_interrupt_is_stopped_by_restarting_its_worker(make_notebook, tmp_path, dask, client):
    (tmp_path / "pyproject.toml").write_text("[tool.nbflow]\nkill-grace = 1\n")
    path = make_notebook([step("stuck", "import time\ntime.sleep(300)", "timeout:1"), step("next", "v = 3")])
    t0 = time.monotonic()
    r = start_run(load_pipeline(path), executor=dask())
    assert r.wait(120) == "failed"
    assert time.monotonic() - t0 < 60
    assert statuses(r) == {"stuck": "failed", "next": "done"}
    assert "did not stop when interrupted and its worker was restarted" in r.steps["stuck"]["error"]
    assert steps_stop_running(client)


def test_values_travel_through_dask_when_the_cache_is_not_shared(make_notebook, dask):
    path = make_notebook(
        [
            code("import numpy as np"),
            step("make", "arr = np.arange(10.0)\ndef f(v):\n    return v + 1"),
            step("use", "total = float(f(arr).sum())"),
        ]
    )
    r = run(path, executor=dask(shared_cache=False))
    assert r.status == "done", r.error
    assert nbflow.result(path, "use", "total") == 55.0
    np.testing.assert_array_equal(nbflow.result(path, "make", "arr"), np.arange(10.0))
    again = run(path, executor=dask(shared_cache=False), force=["use"])  # "make" now comes from the cache
    assert statuses(again) == {"make": "cached", "use": "done"}
    assert set(statuses(run(path)).values()) == {"cached"}


def _can_hide_folders() -> bool:
    if sys.platform != "linux" or not shutil.which("unshare"):
        return False
    return subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _can_hide_folders(), reason="needs unshare -m (a private mount namespace) on Linux")
def test_workers_that_cannot_see_the_cache_get_values_through_dask(make_notebook, tmp_path):
    """A worker in its own mount namespace, with the notebook's folder hidden under a
    tmpfs: like a worker on another host without a shared file system."""
    import signal

    from distributed import Client, LocalCluster

    path = make_notebook(
        [
            code("import numpy as np"),
            step("make", "arr = np.arange(5.0)\nprint('made')"),
            step("use", "total = float(arr.sum())"),
        ]
    )
    with LocalCluster(
        n_workers=0, host="127.0.0.1", dashboard_address="127.0.0.1:0", scheduler_kwargs={"dashboard": False}
    ) as cluster:
        dask_cli = str(Path(sys.executable).parent / "dask")
        worker = subprocess.Popen(
            [
                "unshare", "-m", "--propagation", "private", "sh", "-c",
                f'mount -t tmpfs none "{tmp_path}" && exec "{dask_cli}" worker {cluster.scheduler_address} '
                "--nthreads 1 --no-dashboard --host 127.0.0.1",
            ],
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            with Client(cluster, set_as_default=False) as client:
                client.wait_for_workers(1, timeout=120)
                warnings = []
                r = load_pipeline(path).run(
                    executor=DaskExecutor(client, announce=False),
                    listeners=[lambda e: warnings.append(e.message) if isinstance(e, RunWarning) else None],
                )
        finally:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(60)
    assert r.status == "done", r.error
    assert "the Dask workers do not see the cache folder: values travel through Dask" in warnings
    assert nbflow.result(path, "use", "total") == 10.0
    assert entry_outputs(path, "make") == [[{"output_type": "stream", "name": "stdout", "text": "made\n"}]]
    assert set(statuses(run(path)).values()) == {"cached"}  # the client wrote the kernel executor's entries


def test_the_probe_tells_whether_workers_see_the_cache(tmp_path):
    (tmp_path / ".probe-x").write_text("token")
    assert sees_cache(str(tmp_path), ".probe-x", "token")
    assert not sees_cache(str(tmp_path), ".probe-x", "other")
    assert not sees_cache(str(tmp_path / "elsewhere"), ".probe-x", "token")


def test_resources_are_passed_to_dask(make_notebook, dask):
    path = make_notebook(
        [
            step("small", "a = 1", "resources:memory=100MB"),
            step("gpu", "b = 2", "resources:gpu=1"),
        ]
    )
    r = run(path, executor=dask())
    assert statuses(r) == {"small": "done", "gpu": "failed"}
    assert "needs Dask worker resources gpu=1, which no worker offers" in r.steps["gpu"]["error"]


def test_unpicklable_value_needed_downstream_fails_clearly(make_notebook, dask):
    path = make_notebook([step("make", "gen = (i for i in range(3))"), step("use", "total = sum(gen)")])
    r = run(path, executor=dask())
    assert statuses(r) == {"make": "done", "use": "failed"}
    assert 'value gen of step "make" is needed by step "use" but cannot be pickled' in r.steps["use"]["error"]


def processes_marked(mark: str) -> list[psutil.Process]:
    """Processes whose environment carries ``mark`` (a run's children inherit it)."""
    found = []
    for p in psutil.process_iter():
        try:
            if p.environ().get("NBFLOW_TEST_MARK") == mark:
                found.append(p)
        except (psutil.Error, OSError):
            continue
    return found


def test_own_cluster_starts_while_the_run_is_recorded_and_is_closed_when_not_taken(make_notebook):
    from nbflow.executors.dask_cluster import EarlyCluster
    from nbflow.run import prepare_run

    path = make_notebook(CHAIN)
    pipeline = load_pipeline(path)
    executor = DaskExecutor(workers=1, announce=False)
    run = prepare_run(pipeline, executor=executor)
    early = run._ctx.early_kernel
    assert isinstance(early, EarlyCluster)  # starting before the run does
    early.thread.join(timeout=120)
    cluster = early.outcome["cluster"]
    workers = [psutil.Process(w.process.pid) for w in cluster.owned.workers.values()]
    assert workers and all(w.is_running() for w in workers)
    run._ctx.early_kernel = None
    early.discard()  # what the run's end does when the executor never took it
    assert cluster.owned.status.name == "closed"
    psutil.wait_procs(workers, timeout=30)
    assert not any(w.is_running() for w in workers)
    # A run started from prepare_run takes the cluster that is already starting.
    r = start_run(pipeline, executor=DaskExecutor(workers=1, announce=False))
    assert r.wait(300) == "done" and r._ctx.early_kernel is None
    assert nbflow.result(path, "total", "total") == 60.0


def test_own_cluster_answers_at_once_and_shows_the_dashboard_once_added():
    import urllib.error
    import urllib.request

    from distributed import Client

    from nbflow.executors.dask_cluster import add_dashboard, start_local_cluster

    cluster = start_local_cluster(1)
    client = Client(cluster, set_as_default=False)
    try:
        link = client.dashboard_link
        assert link.startswith("http://127.0.0.1:") and link.endswith("/status")
        assert urllib.request.urlopen(link.replace("/status", "/health"), timeout=10).read() == b"ok"
        with pytest.raises(urllib.error.HTTPError):  # Bokeh not imported while the cluster starts
            urllib.request.urlopen(link, timeout=10)
        add_dashboard(cluster).join(timeout=60)
        deadline = time.monotonic() + 30
        while True:
            try:
                page = urllib.request.urlopen(link, timeout=10)
                break
            except urllib.error.HTTPError:
                assert time.monotonic() < deadline, "the dashboard's pages were never added"
                time.sleep(0.1)
        assert page.status == 200 and b"Dask" in page.read()
    finally:
        client.close()
        cluster.close()


def test_cli_runs_with_its_own_local_cluster_and_a_given_scheduler(make_notebook, client):
    path = make_notebook(CHAIN)
    mark = uuid.uuid4().hex
    proc = subprocess.run(
        [NBFLOW, "run", str(path), "--executor", "dask", "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NBFLOW_TEST_MARK": mark},
    )
    assert proc.returncode == 0, proc.stderr
    assert "nbflow: Dask dashboard: http://127.0.0.1:" in proc.stderr
    assert nbflow.result(path, "total", "total") == 60.0
    proc = subprocess.run(
        [NBFLOW, "run", str(path), "-p", "scale", "3", "--scheduler", client.scheduler.address],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert nbflow.result(path, "total", "total") == 90.0
    store = RunStore(load_pipeline(path).config.store_path)
    assert [r["executor"] for r in store.runs(path)] == ["dask", "dask"]
    proc = subprocess.run([NBFLOW, "run", str(path), "--workers", "0"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--workers 0: need at least one worker" in proc.stderr
    deadline = time.monotonic() + 10
    while processes_marked(mark) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processes_marked(mark) == []  # no scheduler, worker or forkserver left behind


# ------------------------------------------------------------ fan-out and files


def item_statuses(path: Path, run_id: int, name: str) -> list[str]:
    store = RunStore(nbflow.Config.for_notebook(path).store_path)
    try:
        return [i["status"] for i in store.items(run_id, name)]
    finally:
        store.close()


def test_fan_out_example_gives_the_kernel_executors_results(tmp_path, dask):
    (kernel_path, kernel_run), (dask_path, dask_run) = run_by_both_executors(tmp_path, "sensor_files.ipynb", dask)
    assert_same_entries(kernel_path, dask_path, outputs=False)
    assert item_statuses(dask_path, dask_run.id, "measure") == ["done"] * len(
        item_statuses(kernel_path, kernel_run.id, "measure")
    )
    # The other executor finds every step, and every element, in the cache.
    assert set(statuses(run(dask_path)).values()) == {"cached"}


def test_elements_of_a_map_step_run_at_the_same_time_and_are_cached_one_by_one(make_notebook, dask):
    path = make_notebook(
        [
            code("import os, time"),
            step("make", "seeds = [1, 2, 3, 4]"),
            step("work", "time.sleep(1.5)\nsquare = seed * seed\npid = os.getpid()", "map:seed=seeds"),
            step("total", "total = sum(square)\npids = set(pid)"),
        ]
    )
    started = time.monotonic()
    r = run(path, executor=dask())
    assert r.status == "done", r.error
    assert time.monotonic() - started < 4 * 1.5 + 2  # not one after the other (two workers)
    assert nbflow.result(path, "total", "total") == 30
    assert len(nbflow.result(path, "total", "pids")) == 2  # both workers took elements
    assert item_statuses(path, r.id, "work") == ["done"] * 4
    # One element again, on demand: the other three come from the cache.
    again = run(path, executor=dask(), only=["work"], items=[2])
    assert again.status == "done", again.error
    assert item_statuses(path, again.id, "work") == ["cached", "cached", "done", "cached"]
    # A new element: only it runs.
    nb = nbformat.read(path, as_version=4)
    nb.cells[1].source = "seeds = [1, 2, 3, 4, 5]"
    nbformat.write(nb, path)
    third = run(path, executor=dask())
    assert item_statuses(path, third.id, "work") == ["cached"] * 4 + ["done"]
    assert nbflow.result(path, "total", "total") == 55


def test_a_failing_element_fails_its_step_and_keeps_the_others(make_notebook, dask):
    path = make_notebook(
        [
            step("make", "values = [1, 0, 2]"),
            step("invert", "inverse = 1 / value", "map:value=values"),
            step("after", "n = len(inverse)"),
        ]
    )
    r = run(path, executor=dask())
    assert statuses(r) == {"make": "done", "invert": "failed", "after": "skipped"}
    assert r.steps["invert"]["error"].startswith("1 of 3 elements failed; element 1 (0): cell 2: ZeroDivisionError")
    assert item_statuses(path, r.id, "invert") == ["done", "failed", "done"]
    nb = nbformat.read(path, as_version=4)
    nb.cells[0].source = "values = [1, 4, 2]"
    nbformat.write(nb, path)
    again = run(path, executor=dask())
    assert again.status == "done", again.error
    assert item_statuses(path, again.id, "invert") == ["cached", "done", "cached"]


def test_a_map_step_over_values_that_travel_through_dask(make_notebook, dask):
    path = make_notebook(
        [
            step("make", "words = ['a', 'bb', 'ccc']"),
            step("measure", "size = len(word)", "map:word=words"),
            step("use", "total = sum(size)"),
        ]
    )
    r = run(path, executor=dask(shared_cache=False))
    assert r.status == "done", r.error
    assert nbflow.result(path, "use", "total") == 6
    again = run(path, executor=dask(shared_cache=False), force=["use"])  # the lists come from the cache
    assert statuses(again) == {"make": "cached", "measure": "cached", "use": "done"}
    assert nbflow.result(path, "use", "total") == 6


def test_out_files_are_checked_staged_and_restored(make_notebook, tmp_path, dask):
    path = make_notebook(
        [
            step("write", "%%bash\nprintf 'a,b\\n1,2\\n' > table.csv", "out:table.csv"),
            step("forget", "x = 1", "out:missing.txt"),
        ]
    )
    r = run(path, executor=dask())
    assert statuses(r) == {"write": "done", "forget": "failed"}
    assert r.steps["forget"]["error"] == f"out:missing.txt was not produced (no file {tmp_path / 'missing.txt'})"
    assert (tmp_path / "table.csv").read_text() == "a,b\n1,2\n"
    (tmp_path / "table.csv").unlink()
    again = run(path, executor=dask(), only=["write"])
    assert statuses(again)["write"] == "cached"
    assert (tmp_path / "table.csv").read_text() == "a,b\n1,2\n"  # put back from the cache


def test_out_files_come_back_from_workers_that_do_not_share_the_disk(make_notebook, tmp_path, dask):
    path = make_notebook([step("write", "with open('result.txt', 'w') as f:\n    f.write('42')", "out:result.txt")])
    r = run(path, executor=dask(shared_cache=False))
    assert r.status == "done", r.error
    assert (tmp_path / "result.txt").read_text() == "42"
    entry = Cache(nbflow.Config.for_notebook(path).cache_dir).lookup("write", load_pipeline(path).plan()["write"].key)
    assert entry is not None and "result.txt" in entry.out_files
