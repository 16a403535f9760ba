"""Faults during a run: state stays consistent, nothing is lost, resume works.

Faults are injected into the real processes: a step that kills its kernel, a watchdog
that kills it like the OOM killer, signals to the nbflow process, and a
``sitecustomize.py`` on PYTHONPATH that patches a function in the nbflow process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest

import nbflow
from nbflow import load_pipeline
from nbflow.cache import Cache
from nbflow.store import RunStore

from ..conftest import code, step, write_notebook
from .conftest import check_invariants, kernels_under, nbflow_cli

pytestmark = pytest.mark.slow

CHAIN = [
    code("n = 4", "parameters"),
    step("load", "data = list(range(n))"),
    step("double", "twice = [2 * x for x in data]"),
    step("total", "total = sum(twice)"),
    step("side", "other = n * 100"),
]


def notebook(folder: Path, cells=CHAIN) -> Path:
    return write_notebook(folder / "pipeline.ipynb", cells)


def store_of(folder: Path) -> RunStore:
    return RunStore(folder / ".nbflow" / "runs.db")


def inject(folder: Path, source: str) -> dict[str, str]:
    """Environment that makes every Python process started with it run ``source`` first."""
    site = folder / "inject"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(textwrap.dedent(source))
    return {"PYTHONPATH": f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def crash_on_replace(folder: Path, condition: str) -> dict[str, str]:
    """Environment in which ``os.replace(src, dst)`` ends the process (exit 3) when
    ``condition`` (a Python expression of ``src`` and ``dst`` as strings) holds: a crash
    between writing a file and renaming it into place."""
    return inject(
        folder,
        f"""
        import os
        _replace = os.replace
        def replace(src, dst, *a, **k):
            src, dst = str(src), str(dst)
            if {condition}:
                os._exit(3)
            return _replace(src, dst, *a, **k)
        os.replace = replace
    """,
    )


def edit(path: Path, cell: int, source: str) -> None:
    import nbformat

    nb = nbformat.read(path, 4)
    nb.cells[cell].source = source
    nbformat.write(nb, path)


# ----------------------------------------------------------------- failing steps


def test_step_raises_dependants_skipped_and_rerun_is_nextflow_style(folder):
    path = notebook(folder)
    edit(path, 2, "twice = [2 * x for x in data]\nraise RuntimeError('broken input')")
    proc = nbflow_cli("run", str(path))
    check_invariants(folder, proc, names=("double",))
    steps = {s["step"]: s["status"] for s in store_of(folder).steps(1)}
    assert steps == {"load": "done", "double": "failed", "total": "skipped", "side": "done"}
    edit(path, 2, "twice = [2 * x for x in data]")
    again = nbflow_cli("run", str(path))
    assert again.returncode == 0, again.stderr
    steps = [s["status"] for s in store_of(folder).steps(2)]
    assert steps.count("cached") == 2 and steps.count("done") == 2  # only double and total ran
    assert nbflow.result(path, "total", "total") == 12


def test_kernel_killed_by_signal_9_mid_step(folder):
    path = notebook(
        folder, [*CHAIN[:2], step("double", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"), *CHAIN[3:]]
    )
    proc = nbflow_cli("run", str(path))
    check_invariants(folder, proc, names=("double",))
    double = {s["step"]: s for s in store_of(folder).steps(1)}["double"]
    assert double["status"] == "failed" and "kernel died (signal 9; possibly out of memory)" in double["error"]
    assert store_of(folder).run(1)["status"] == "failed"
    assert not any(p for p in (folder / ".nbflow" / "cache" / "double").glob("*") if not p.name.startswith("."))


def test_out_of_memory_kill_is_reported_as_such(folder):
    """The OOM killer, played by a watchdog: kill the kernel once it holds more than 300 MB."""
    path = notebook(
        folder,
        [
            *CHAIN[:2],
            step(
                "double",
                "import time\nhog = []\nfor _ in range(100):\n"
                "    hog.append(bytearray(20_000_000))\n    time.sleep(0.05)",
            ),
            *CHAIN[3:],
        ],
    )
    proc = subprocess.Popen([sys.executable, "-m", "nbflow", "run", str(path)], stderr=subprocess.PIPE, text=True)

    def oom_killer() -> None:
        while proc.poll() is None:
            for kernel in kernels_under(folder):
                try:
                    if kernel.memory_info().rss > 300_000_000:
                        kernel.send_signal(signal.SIGKILL)
                except psutil.NoSuchProcess:
                    pass
            time.sleep(0.05)

    threading.Thread(target=oom_killer, daemon=True).start()
    _, err = proc.communicate(timeout=120)
    check_invariants(folder, subprocess.CompletedProcess(proc.args, proc.returncode, "", err), names=("double",))
    double = {s["step"]: s for s in store_of(folder).steps(1)}["double"]
    assert "kernel died (signal 9; possibly out of memory)" in double["error"]
    out = json.loads((folder / ".nbflow" / "runs" / "1" / "output.ipynb").read_text())
    cell = next(c for c in out["cells"] if "step:double" in c["metadata"].get("tags", []))
    assert cell["metadata"]["papermill"]["status"] == "failed"  # not "completed", as papermill would say


def test_memory_limit_in_the_kernel_fails_the_step_cleanly(folder):
    path = notebook(
        folder,
        [
            *CHAIN[:2],
            step(
                "double",
                "import resource\nresource.setrlimit(resource.RLIMIT_AS, "
                "(1_500_000_000, resource.RLIM_INFINITY))\n"
                "big = bytearray(3_000_000_000)",
            ),
            *CHAIN[3:],
        ],
    )
    proc = nbflow_cli("run", str(path))
    check_invariants(folder, proc, names=("double",))
    steps = {s["step"]: s for s in store_of(folder).steps(1)}
    assert steps["double"]["status"] == "failed" and "MemoryError" in steps["double"]["error"]
    assert steps["side"]["status"] == "done"  # the kernel survived: independent steps ran


@pytest.mark.parametrize(
    "body, how",
    [
        ("while True:\n    pass", "interrupted"),
        ("import time\ntime.sleep(600)", "interrupted"),
        ("import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass", "killed"),
    ],
    ids=["busy-loop", "long-sleep", "ignores-interrupts"],
)
def test_hung_step_is_stopped_within_timeout_and_grace(folder, body, how):
    (folder / "pyproject.toml").write_text("[tool.nbflow]\nkill-grace = 2\n")
    path = notebook(folder, [*CHAIN[:2], step("double", body, "timeout:2"), *CHAIN[3:]])
    started = time.monotonic()
    proc = nbflow_cli("run", str(path))
    elapsed = time.monotonic() - started
    check_invariants(folder, proc, names=("double",))
    assert elapsed < 2 + 2 + 20, elapsed  # timeout + grace + start-up
    double = {s["step"]: s for s in store_of(folder).steps(1)}["double"]
    assert ("timed out after 2 s" if how == "interrupted" else "was killed") in double["error"]


# ------------------------------------------------------------- the nbflow process


def _wait_for_running_step(folder: Path, step_name: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        db = folder / ".nbflow" / "runs.db"
        if db.exists():
            steps = {s["step"]: s["status"] for s in RunStore(db, reconcile=False).steps(1)}
            if steps.get(step_name) == "running":
                return
        time.sleep(0.1)
    raise TimeoutError(f"step {step_name} never started")


SLOW = [*CHAIN[:2], step("double", "import time\ntime.sleep(30)\ntwice = [2 * x for x in data]"), *CHAIN[3:]]


def test_nbflow_killed_mid_run_is_marked_interrupted_and_resumes(folder):
    path = notebook(folder, SLOW)
    proc = subprocess.Popen([sys.executable, "-m", "nbflow", "run", str(path)], stderr=subprocess.DEVNULL)
    _wait_for_running_step(folder, "double")
    # load's entry is committed on a thread while double runs: kill once it is there
    deadline = time.monotonic() + 30
    while not list(Cache(folder / ".nbflow" / "cache").entries("load")) and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 20
    while kernels_under(folder) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert kernels_under(folder) == [], "the kernel outlived its nbflow process"
    listing = nbflow_cli("runs", str(path))  # any next command reconciles
    assert "interrupted" in listing.stdout
    assert store_of(folder).run(1)["status"] == "interrupted"
    edit(path, 2, "twice = [2 * x for x in data]")
    resumed = nbflow_cli("run", str(path))
    assert resumed.returncode == 0, resumed.stderr
    steps = {s["step"]: s["status"] for s in store_of(folder).steps(2)}
    assert steps["load"] == "cached" and steps["double"] == "done"
    assert nbflow.result(path, "total", "total") == 12
    check_invariants(folder)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_or_terminate_cancels_cleanly(folder, sig):
    path = notebook(folder, SLOW)
    proc = subprocess.Popen([sys.executable, "-m", "nbflow", "run", str(path)], stderr=subprocess.PIPE, text=True)
    _wait_for_running_step(folder, "double")
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    run = store_of(folder).run(1)
    assert run["status"] == "cancelled"
    steps = {s["step"]: s["status"] for s in store_of(folder).steps(1)}
    assert steps["load"] == "done" and steps["double"] == "cancelled"
    check_invariants(folder, subprocess.CompletedProcess(proc.args, proc.returncode, "", err), names=("cancel",))


# ------------------------------------------------------------------- the disk


def test_crash_while_renaming_the_output_notebook(folder):
    path = notebook(folder)
    env = crash_on_replace(folder, 'dst.endswith("output.ipynb")')
    proc = nbflow_cli("run", str(path), env=env)
    assert proc.returncode == 3
    assert not (folder / ".nbflow" / "runs" / "1" / "output.ipynb").exists()  # nothing claims completion
    nbflow_cli("runs", str(path))  # reconciles the dead run
    again = nbflow_cli("run", str(path))
    assert again.returncode == 0, again.stderr
    check_invariants(folder)


def test_crash_while_committing_a_cache_entry_recomputes(folder):
    path = notebook(folder)
    env = crash_on_replace(folder, '".staging-" in src and "/double/" in src')
    proc = nbflow_cli("run", str(path), env=env)
    assert proc.returncode == 3
    nbflow_cli("runs", str(path))
    plan = load_pipeline(path).plan()
    assert "double" in plan.to_run  # no half-written entry is ever read back
    assert nbflow_cli("run", str(path)).returncode == 0
    assert nbflow.result(path, "total", "total") == 12
    check_invariants(folder)


def test_crash_while_renaming_the_report(folder):
    from nbflow.report import recorded_report

    path = notebook(folder)
    assert nbflow_cli("run", str(path)).returncode == 0
    env = crash_on_replace(folder, 'dst.endswith("report.html")')
    proc = nbflow_cli("report", "1", "-C", str(path), env=env)
    assert proc.returncode == 3, proc.stderr
    final = folder / ".nbflow" / "runs" / "1" / "report.html"
    assert not final.exists()  # never a half report at the final path
    leftovers = [p.name for p in final.parent.glob("*report*")]
    assert len(leftovers) == 1 and leftovers[0].startswith(".report.html.")  # the hidden temporary file only
    recorded = store_of(folder).artifacts(1).get("report")
    assert recorded is None or Path(recorded).is_file()  # no artifact names a missing file
    assert recorded_report(path, 1) is None  # what the REST API and the studio serve: nothing
    again = nbflow_cli("report", "1", "-C", str(path))
    assert again.returncode == 0, again.stderr
    assert recorded_report(path, 1) == final.resolve()
    assert "total" in final.read_text()
    # The crashed write's temporary file is swept by nbflow clean once it is old.
    leftover = final.parent / leftovers[0]
    nbflow_cli("clean", str(folder))
    assert leftover.exists()  # a recent one may be a write going on now
    os.utime(leftover, (time.time() - 7200, time.time() - 7200))
    cleaned = nbflow_cli("clean", str(folder))
    assert cleaned.returncode == 0 and "1 leftover file" in cleaned.stdout
    assert not leftover.exists() and final.exists()
    check_invariants(folder)


def test_disk_full_while_writing_the_cache(folder):
    path = notebook(folder)
    env = inject(
        folder,
        """
        import errno
        import nbflow.cache as cache
        _write = cache.Cache.write_outputs
        def write_outputs(self, staging, cells):
            if "/double/" in str(staging):
                raise OSError(errno.ENOSPC, "No space left on device", str(staging / "outputs.json"))
            return _write(self, staging, cells)
        cache.Cache.write_outputs = write_outputs
    """,
    )
    proc = nbflow_cli("run", str(path), env=env)
    check_invariants(folder, proc, names=("double",))
    assert "No space left on device" in proc.stderr and "outputs.json" in proc.stderr
    assert store_of(folder).run(1)["status"] == "failed"
    assert not [p for p in (folder / ".nbflow" / "cache" / "double").glob("*")]  # no partial entry


# ------------------------------------------------------------------ the cache


def _corrupt(folder: Path, how: str) -> None:
    pipeline = load_pipeline(folder / "pipeline.ipynb")
    entry = pipeline.config.cache_dir / "load" / pipeline.plan()["load"].key
    values = entry / "values.pkl"
    if how == "garbage":
        values.write_bytes(os.urandom(values.stat().st_size))
    elif how == "truncated":
        values.write_bytes(values.read_bytes()[:10])
    elif how == "zero-bytes":
        values.write_bytes(b"")
    elif how == "one-byte-flipped":
        data = bytearray(values.read_bytes())
        data[len(data) // 2] ^= 0x01
        values.write_bytes(bytes(data))
    elif how == "manifest-deleted":
        (entry / "manifest.json").unlink()


@pytest.mark.parametrize("how", ["garbage", "truncated", "zero-bytes", "one-byte-flipped", "manifest-deleted"])
def test_corrupt_entry_is_reported_recomputed_and_equal(folder, how):
    path = notebook(folder)
    assert nbflow_cli("run", str(path)).returncode == 0
    _corrupt(folder, how)
    edit(path, 2, "twice = [x * 2 for x in data]")  # new code, same values: needs load's values
    proc = nbflow_cli("run", str(path))
    assert proc.returncode == 0, proc.stderr
    key = load_pipeline(path).plan()["load"].key
    assert "cache entry corrupt" in proc.stderr and key[:12] in proc.stderr and "load" in proc.stderr
    assert {s["step"]: s["status"] for s in store_of(folder).steps(2)}["load"] == "done"
    assert nbflow.result(path, "total", "total") == 12
    check_invariants(folder)


class Marker:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def test_planted_pickle_never_runs(folder):
    import pickle

    path = notebook(folder)
    nbflow_cli("run", str(path))
    pipeline = load_pipeline(path)
    entry = pipeline.config.cache_dir / "load" / pipeline.plan()["load"].key
    marker = folder / "MARKER"
    (entry / "values.pkl").write_bytes(pickle.dumps({"data": Marker(str(marker))}))
    manifest = json.loads((entry / "manifest.json").read_text())
    manifest["files"]["values.pkl"]["size"] = (entry / "values.pkl").stat().st_size
    (entry / "manifest.json").write_text(json.dumps(manifest))
    edit(path, 2, "twice = [x * 2 for x in data]")
    proc = nbflow_cli("run", str(path))
    assert proc.returncode == 0 and "fails its checksum" in proc.stderr
    assert not marker.exists()
    assert nbflow.result(path, "total", "total") == 12


def test_cache_folder_writable_by_others_is_refused(folder):
    path = notebook(folder)
    nbflow_cli("run", str(path))
    os.chmod(folder / ".nbflow" / "cache", 0o777)
    proc = nbflow_cli("run", str(path))
    assert proc.returncode == 2
    assert "writable by other users" in proc.stderr and "chmod go-w" in proc.stderr


# ------------------------------------------------------------- many processes


def test_eight_processes_on_one_cache_and_store(folder):
    path = notebook(folder)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "nbflow", "run", str(path), "--quiet"], stderr=subprocess.PIPE, text=True
        )
        for _ in range(8)
    ]
    outputs = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, outputs
    assert not any("database is locked" in err for err in outputs)
    store = store_of(folder)
    assert len(store.runs(limit=100)) == 8
    assert nbflow.result(path, "total", "total") == 12
    check_invariants(folder)


def test_two_versions_of_a_step_on_one_cache_never_mix(folder):
    versions = {}
    for i, factor in enumerate((2, 3)):
        sub = folder / f"v{i}"
        sub.mkdir()
        (sub / "pyproject.toml").write_text(f"[tool.nbflow]\nhome = '{folder / '.nbflow'}'\n")
        versions[factor] = write_notebook(
            sub / "pipeline.ipynb", [*CHAIN[:2], step("double", f"twice = [{factor} * x for x in data]"), *CHAIN[3:]]
        )
    procs = [
        (
            factor,
            subprocess.Popen(
                [sys.executable, "-m", "nbflow", "run", str(p), "--quiet"], stderr=subprocess.PIPE, text=True
            ),
        )
        for _ in range(3)
        for factor, p in versions.items()
    ]
    for _, p in procs:
        assert p.wait(timeout=300) == 0, p.stderr.read()
    assert nbflow.result(versions[2], "total", "total") == 12
    assert nbflow.result(versions[3], "total", "total") == 18
    check_invariants(folder)


# -------------------------------------------------------------------- outputs


def test_huge_outputs_are_capped_and_memory_stays_bounded(folder):
    (folder / "pyproject.toml").write_text("[tool.nbflow]\noutput-limit = 5000000\n")
    images = (
        "import base64\nfrom IPython.display import Image, display\n"
        "png = base64.b64decode('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==')\n"
        "for i in range(50):\n    display(Image(png + b'0' * 1_000_000))"
    )
    path = notebook(folder, [step("shout", "print('x' * 200_000_000)\ndone = True"), step("pictures", images)])
    proc = subprocess.Popen([sys.executable, "-m", "nbflow", "run", str(path)], stderr=subprocess.PIPE, text=True)
    peak = 0
    while proc.poll() is None:
        try:
            peak = max(peak, psutil.Process(proc.pid).memory_info().rss)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)
    _, err = proc.communicate()
    assert proc.returncode == 0, err
    assert peak < 400_000_000, f"nbflow held {peak / 1e6:.0f} MB"
    out = json.loads((folder / ".nbflow" / "runs" / "1" / "output.ipynb").read_text())
    for name in ("shout", "pictures"):
        cell = next(c for c in out["cells"] if f"step:{name}" in c["metadata"].get("tags", []))
        text = json.dumps(cell["outputs"])
        assert "output truncated" in text and len(text) < 8_000_000
    assert nbflow.result(path, "shout", "done") is True
    check_invariants(folder)
