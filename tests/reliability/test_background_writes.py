"""Faults while a step's values are still being written in the background.

Large values are written by a forked child of the kernel while the next steps run
(``nbflow/executors/background.py``). Here the writer is stopped in the middle of a
write -- killed by itself, or with the kernel when nbflow is killed -- and the cache
must hold no entry for that step (never a half-written one read back as good), the run
record must be consistent, no process may be left, and the next run recomputes it.

The step's value ``slow`` blocks its pickling in any process other than the one the
step ran in: the write is in progress, on purpose, for as long as the test needs.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

import nbflow
from nbflow.store import RunStore

from ..conftest import code, step, write_notebook
from .conftest import check_invariants, kernels_under, nbflow_cli

pytestmark = pytest.mark.slow

MAKE = """\
class Slow:
    def __reduce__(self):
        if os.getpid() != STEP_PID and not os.path.exists(STARTED + ".released"):  # a background writer: block
            open(STARTED, "w").close()
            time.sleep(120)
        return (int, (0,))
STEP_PID = os.getpid()
data = np.ones(2_000_000)  # 16 MB: written in the background
slow = Slow()
"""


def notebook(folder: Path) -> Path:
    started = folder / "writer-started"
    return write_notebook(
        folder / "pipeline.ipynb",
        [
            code(f"import os, time\nimport numpy as np\nSTARTED = {str(started)!r}"),
            step("make", MAKE, "keep:slow"),
            step("use", "total = float(data.sum())"),
        ],
    )


def wait_for(condition, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.1)


def writers_under(folder: Path) -> list[psutil.Process]:
    """The kernels' children: background writers."""
    return [child for kernel in kernels_under(folder) for child in kernel.children()]


def entries(folder: Path, name: str) -> list[Path]:
    return [p for p in (folder / ".nbflow" / "cache" / name).glob("*") if not p.name.startswith(".")]


def test_writer_killed_mid_write_leaves_no_entry_and_the_next_run_recomputes(folder):
    path = notebook(folder)
    proc = subprocess.Popen(
        [sys.executable, "-m", "nbflow", "run", str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    wait_for(lambda: (folder / "writer-started").exists(), "the background write never started")
    writers = writers_under(folder)
    assert len(writers) == 1
    writers[0].send_signal(signal.SIGKILL)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "step make: values not cached: the background writer was killed (signal 9)" in out + err
    steps = {s["step"]: s["status"] for s in RunStore(folder / ".nbflow" / "runs.db").steps(1)}
    assert steps == {"make": "done", "use": "done"}
    assert entries(folder, "make") == [] and len(entries(folder, "use")) == 1
    assert nbflow.result(path, "use", "total") == 2_000_000.0
    check_invariants(folder)
    assert kernels_under(folder) == []

    (folder / "writer-started.released").touch()
    again = nbflow_cli("run", str(path))
    assert again.returncode == 0, again.stderr
    steps = {s["step"]: s["status"] for s in RunStore(folder / ".nbflow" / "runs.db").steps(2)}
    assert steps["make"] == "done"  # not cached: it runs again


def test_nbflow_killed_mid_write_leaves_no_entry_and_no_process(folder):
    path = notebook(folder)
    proc = subprocess.Popen([sys.executable, "-m", "nbflow", "run", str(path)], stderr=subprocess.DEVNULL)
    wait_for(lambda: (folder / "writer-started").exists(), "the background write never started")
    writers = writers_under(folder)
    assert len(writers) == 1
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    wait_for(lambda: not kernels_under(folder), "the kernel outlived its nbflow process", timeout=30)
    wait_for(lambda: not writers[0].is_running() or writers[0].status() == psutil.STATUS_ZOMBIE, "writer", 30)
    assert entries(folder, "make") == []
    nbflow_cli("runs", str(path))  # reconciles the killed run
    assert RunStore(folder / ".nbflow" / "runs.db").run(1)["status"] == "interrupted"
    check_invariants(folder)
