"""``nbflow watch``: a real ``nbflow watch`` process re-runs what became stale when the
notebook or an ``in:`` file changes, and Ctrl-C (SIGINT to its process group, as a
terminal sends it) cancels the running step and stops with no process left behind."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import psutil
import pytest

import nbflow
from nbflow.config import Config
from nbflow.store import RunStore

from ..conftest import code, step, write_notebook

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent


class Output:
    """The lines a process prints, read in a thread so waiting never blocks on a pipe."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, args=(proc,), daemon=True).start()

    def _read(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 180) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=1)
            except queue.Empty:
                continue
            self.seen.append(line)
            if text in line:
                return line
        raise AssertionError(f"no line with {text!r} in:\n" + "\n".join(self.seen))


def statuses(path: Path, run_id: int) -> dict[str, str]:
    store = RunStore(Config.for_notebook(path).store_path)
    try:
        return {s["step"]: s["status"] for s in store.steps(run_id)}
    finally:
        store.close()


def edit_step(path: Path, name: str, source: str) -> None:
    nb = nbformat.read(path, 4)
    cell = next(c for c in nb.cells if f"step:{name}" in c.metadata.get("tags", []))
    cell.source = source
    nbformat.write(nb, path)


def test_watch_reruns_what_became_stale_and_stops_on_ctrl_c(tmp_path):
    (tmp_path / "data.txt").write_text("abc")
    path = write_notebook(
        tmp_path / "watched.ipynb",
        [
            code("n = 2", "parameters"),
            step("read", "data = open('data.txt').read()", "in:data.txt"),
            step("total", "total = len(data) * n\nprint('total', total)"),
        ],
    )
    proc = subprocess.Popen(
        [str(BIN / "nbflow"), "watch", str(path), "-p", "n", "3", "--debounce", "0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
        start_new_session=True,
    )
    out = Output(proc)
    try:
        out.wait_for("run 1 done")
        out.wait_for("watching")
        assert statuses(path, 1) == {"read": "done", "total": "done"}

        edit_step(path, "total", "total = len(data) * n * 10\nprint('total', total)")
        out.wait_for("changed: watched.ipynb")
        out.wait_for("run 2 done")
        assert statuses(path, 2) == {"read": "cached", "total": "done"}
        assert nbflow.result(path, "total", "total", run=2) == 90
        out.wait_for("watching")

        (tmp_path / "data.txt").write_text("abcdef")
        out.wait_for("changed: data.txt")
        out.wait_for("run 3 done")
        assert statuses(path, 3) == {"read": "done", "total": "done"}
        assert nbflow.result(path, "total", "total", run=3) == 180
        out.wait_for("watching")

        # a broken edit is reported on one line and the watch goes on
        edit_step(path, "total", "total = (")
        out.wait_for("nbflow: error: watched.ipynb")

        edit_step(path, "total", "import time\ntime.sleep(300)\ntotal = 0")
        out.wait_for("run 4 of watched.ipynb")
        watcher = psutil.Process(proc.pid)
        deadline = time.monotonic() + 120
        while not (kernels := [p for p in watcher.children(recursive=True) if "ipykernel" in " ".join(p.cmdline())]):
            assert time.monotonic() < deadline, "no kernel started for run 4"
            time.sleep(0.2)
        time.sleep(3)  # inside the step's sleep
        children = watcher.children(recursive=True)
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=60) == 0
        out.wait_for("stopped watching", timeout=10)
        assert kernels and not [p for p in children if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        assert statuses(path, 4)["total"] in ("cancelled", "failed")
        store = RunStore(Config.for_notebook(path).store_path)
        assert store.run(4)["status"] == "cancelled"
        store.close()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_an_in_glob_is_watched_through_its_folder(tmp_path):
    from nbflow.watch import watched_files

    (tmp_path / "raw").mkdir()
    path = write_notebook(
        tmp_path / "globbed.ipynb",
        [step("read", "import glob\nk = len(glob.glob('raw/*.csv'))", "in:raw/*.csv", "in:notes.txt")],
    )
    assert watched_files(path) == {path, (tmp_path / "raw").resolve(), (tmp_path / "notes.txt").resolve()}
