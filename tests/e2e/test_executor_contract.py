"""What must be the same whichever executor runs a step: every test runs once with the
kernel executor (a real Jupyter kernel) and once with the Dask executor (a real
two-worker LocalCluster, shared by the module's tests).

The contract: a full disk while caching fails the run naming the path; cache entries
carry the same manifest fields (``outcome.ENTRY_META``), so ``Cache.latest`` finds
either's and an edited step is explained as "code changed"; a cell that prints past
the output limit shows the same marker; a ``map:`` step caches its elements; ``out:``
files are checked, cached and restored; cancel ends the run ``cancelled``; a process
that dies fails its step saying how it died.
"""

from __future__ import annotations

import errno
import os
import threading
import time
from pathlib import Path

import nbformat
import pytest

import nbflow
from nbflow import load_pipeline
from nbflow.cache import Cache
from nbflow.events import StepStarted
from nbflow.executors.outcome import ENTRY_META, cap_marker
from nbflow.run import start_run

from ..conftest import code, step
from .test_dask_executor import steps_stop_running
from .test_kernel_executor import CHAIN, edit, statuses

pytestmark = pytest.mark.slow

EXECUTORS = ["kernel", "dask"]


@pytest.fixture(params=EXECUTORS)
def executor(request):
    """What to pass as ``executor=``: the kernel executor's name, or a Dask executor on the shared cluster."""
    if request.param == "kernel":
        return "kernel"
    from nbflow.executors.dask import DaskExecutor

    return DaskExecutor(request.getfixturevalue("client"), announce=False)


def run(path: Path, executor, params=None, **options):
    return load_pipeline(path).run(params, executor=executor, **options)


def name_of(executor) -> str:
    return executor if isinstance(executor, str) else executor.name


def entries(path: Path, params=None) -> dict[str, dict]:
    """The manifest of each step's entry of the plan with ``params``."""
    pipeline = load_pipeline(path)
    cache = pipeline.config.cache()
    plan = pipeline.plan(params)
    found = {}
    for entry in plan:
        cached = cache.lookup(entry.step, entry.key)
        if cached is not None:
            found[entry.step] = cached.manifest
    return found


# ------------------------------------------------------------------ the disk


def test_disk_full_while_caching_fails_the_run_naming_the_path(make_notebook, executor, monkeypatch):
    """Bug (a) of issue 16: the Dask executor only warned and ended ``done``."""
    path = make_notebook(CHAIN)
    write = Cache.write_outputs

    def full(self, staging, cells):
        if f"{os.sep}square{os.sep}" in str(staging):
            raise OSError(errno.ENOSPC, "No space left on device", str(staging / "outputs.json"))
        return write(self, staging, cells)

    monkeypatch.setattr(Cache, "write_outputs", full)
    r = run(path, executor)
    assert r.status == "failed"
    assert r.error.startswith('step "square": cache entry not written (No space left on device: ')
    assert "outputs.json" in r.error and str(load_pipeline(path).config.cache_dir) in r.error
    assert "square" not in entries(path)  # no partial entry
    assert statuses(r)["square"] == "done"  # the step ran; its result could not be kept
    monkeypatch.setattr(Cache, "write_outputs", write)
    again = run(path, executor)
    assert again.status == "done", again.error
    assert statuses(again)["square"] == "done"


# --------------------------------------------------------------- manifests


def test_manifests_carry_the_same_fields_and_latest_finds_them(make_notebook, executor):
    """Bug (b) of issue 16: Dask manifests had no ``notebook``, so ``Cache.latest`` missed them."""
    path = make_notebook(CHAIN)
    r = run(path, executor)
    assert r.status == "done", r.error
    manifests = entries(path)
    assert set(manifests) == {"load", "square", "total", "side"}
    for manifest in manifests.values():
        assert {k: manifest[k] for k in ("run_id", "notebook", "executor")} == {
            "run_id": r.id,
            "notebook": path.name,
            "executor": name_of(executor),
        }
        assert isinstance(manifest["duration"], float)
    cache = load_pipeline(path).config.cache()
    assert cache.latest("square", notebook=path.name) is not None
    edit(path, 4, "sq = [x * x * x for x in data]")
    plan = load_pipeline(path).plan()
    assert plan["square"].reasons == ("code changed",)


def test_both_executors_write_the_same_manifest_keys(make_notebook, tmp_path, client):  # noqa: F811
    from nbflow.executors.dask import DaskExecutor

    keys = {}
    for name, executor in (("kernel", "kernel"), ("dask", DaskExecutor(client, announce=False))):
        folder = tmp_path / name
        folder.mkdir()
        path = make_notebook(CHAIN, name=f"{name}/pipeline.ipynb")
        assert run(path, executor).status == "done"
        keys[name] = {step: sorted(m) for step, m in entries(path).items()}
        assert all(set(ENTRY_META) <= set(k) for k in keys[name].values())
    assert keys["kernel"] == keys["dask"]


# --------------------------------------------------------------- truncation


def test_a_cell_past_the_output_limit_shows_one_marker(make_notebook, tmp_path, executor):
    """Bug (c) of issue 16: the kernel's marker said "output truncated: 0 more bytes not kept"."""
    (tmp_path / "pyproject.toml").write_text("[tool.nbflow]\noutput-limit = 100000\n")
    path = make_notebook([step("shout", "print('x' * 300_000)\ndone = True"), step("quiet", "print('hi')")])
    r = run(path, executor)
    assert r.status == "done", r.error
    out = nbformat.read(r.output_notebook, 4)
    cells = {c.metadata["nbflow"]["step"]: c for c in out.cells if "nbflow" in c.metadata}
    text = "".join(o.get("text", "") for o in cells["shout"].outputs)
    assert text.count(cap_marker(100_000).strip()) == 1, text[-300:]
    assert "more than 100 kB" in text and "more bytes not kept" not in text
    assert 100_000 <= len(text) < 100_000 + 1000
    assert [o.get("text") for o in cells["quiet"].outputs] == ["hi\n"]
    assert nbflow.result(path, "shout", "done") is True


# ------------------------------------------------------------------ fan-out


def test_fan_out_elements_are_cached_one_by_one(make_notebook, executor):
    path = make_notebook(
        [
            code("values = [1, 2, 3]", "parameters"),
            step("square", "sq = v * v\nprint('element', v)", "map:v=values"),
            step("total", "s = sum(sq)"),
        ]
    )
    first = run(path, executor)
    assert first.status == "done", first.error
    assert nbflow.result(path, "total", "s") == 14
    events = []
    second = run(path, executor, {"values": [1, 2, 3, 4]}, listeners=[events.append])
    assert second.status == "done", second.error
    assert [e.status for e in events if e.type == "ItemFinished"] == ["cached", "cached", "cached", "done"]
    assert nbflow.result(path, "total", "s") == 30
    manifest = entries(path, {"values": [1, 2, 3, 4]})["square"]
    assert len(manifest["items"]) == 4 and manifest["executor"] == name_of(executor)
    out = nbformat.read(second.output_notebook, 4)
    cell = next(c for c in out.cells if "step:square" in c.metadata.get("tags", []))
    texts = [o["text"] for o in cell.outputs]
    assert texts == [
        "[nbflow] element 0: 1\n",
        "element 1\n",
        "[nbflow] element 1: 2\n",
        "element 2\n",
        "[nbflow] element 2: 3\n",
        "element 3\n",
        "[nbflow] element 3: 4\n",
        "element 4\n",
    ]


# ------------------------------------------------------------------ out: files


def test_out_files_are_checked_cached_and_restored(make_notebook, tmp_path, executor):
    path = make_notebook(
        [
            step("write", "open('result.txt', 'w').write('42')\nv = 1", "out:result.txt"),
            step("forget", "w = 2", "out:missing.txt"),
        ]
    )
    r = run(path, executor)
    assert statuses(r) == {"write": "done", "forget": "failed"}
    assert r.steps["forget"]["error"] == f"out:missing.txt was not produced (no file {tmp_path / 'missing.txt'})"
    assert entries(path)["write"]["out_files"]["result.txt"]["size"] == 2
    (tmp_path / "result.txt").unlink()
    again = run(path, executor, only=["write"])
    assert statuses(again)["write"] == "cached"
    assert (tmp_path / "result.txt").read_text() == "42"


# ------------------------------------------------------------- cancel, death


def test_cancel_ends_the_run_cancelled_and_keeps_what_finished(make_notebook, executor, request):
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
        executor=executor,
        listeners=[lambda e: started.set() if isinstance(e, StepStarted) and e.step == "slow" else None],
    )
    assert started.wait(60)
    t0 = time.monotonic()
    r.cancel()
    assert r.wait(60) == "cancelled"
    assert time.monotonic() - t0 < 30
    assert statuses(r) == {"quick": "done", "slow": "cancelled", "after": "cancelled"}
    assert nbflow.result(path, "quick", "q") == 1
    assert "slow" not in entries(path)
    if name_of(executor) == "dask":
        assert steps_stop_running(request.getfixturevalue("client"))


def test_a_process_death_fails_the_step_saying_how(make_notebook, executor, request):
    path = make_notebook(
        [step("ok", "a = 1"), step("boom", "import os, signal\nb = a\nos.kill(os.getpid(), signal.SIGKILL)")]
    )
    r = run(path, executor)
    assert r.status == "failed"
    assert statuses(r) == {"ok": "done", "boom": "failed"}
    what = "kernel" if name_of(executor) == "kernel" else "worker"
    assert f"{what} died (signal 9; possibly out of memory)" in r.steps["boom"]["error"]
    assert "boom" not in entries(path)
    if what == "worker":
        assert steps_stop_running(request.getfixturevalue("client"))
