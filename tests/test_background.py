"""Writing large values in the background (``nbflow/executors/background.py``), with the
real cache: the forked writer and the copy-and-thread way write the values as they were,
and a writer that dies leaves an error, never a result."""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
from pathlib import Path

import joblib
import numpy as np
import pytest

from nbflow.cache import Cache
from nbflow.executors.background import BackgroundWrites, fork_safe


def dump_into(cache: Cache):
    def dump(staging: str, values: dict, required: list) -> dict:
        return cache.dump_values(Path(staging), values, required)

    return dump


@pytest.mark.parametrize("fork", [True, False], ids=["forked", "copied"])
def test_values_are_written_as_they_were_when_the_step_ended(tmp_path, fork):
    cache = Cache(tmp_path / "cache")
    writes = BackgroundWrites(dump_into(cache), fork=fork)
    data = np.arange(4_000_000, dtype=np.float64)
    staging = str(cache.staging_path("make"))
    assert writes.start(staging, {"data": data, "n": 3}, ["data"])
    data[:] = -1.0  # the next step changes the array in place while it is written
    done = writes.collect(wait=True)
    result = done[staging]
    assert set(result["values"]) == {"data", "n"} and result["files"]["values.pkl"]["size"] > 32_000_000
    stored = joblib.load(Path(staging) / "values.pkl")
    assert stored["n"] == 3 and stored["data"][0] == 0.0 and stored["data"][-1] == 3_999_999.0
    assert writes.collect(wait=True) == {}  # handed over once


def test_a_killed_writer_reports_an_error_not_a_result(tmp_path):
    pid_file = tmp_path / "writer.pid"

    def slow_dump(staging: str, values: dict, required: list) -> dict:
        pid_file.write_text(str(os.getpid()))
        time.sleep(60)
        return {"values": {}, "missing": {}, "files": {}}

    writes = BackgroundWrites(slow_dump, fork=True)
    assert writes.start(str(tmp_path / ".staging-x"), {"data": np.zeros(10)}, [])
    deadline = time.monotonic() + 30
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    pid = int(pid_file.read_text())
    assert pid != os.getpid()
    os.kill(pid, signal.SIGKILL)
    result = writes.collect(wait=True)[str(tmp_path / ".staging-x")]
    assert result["error"] == "the background writer was killed (signal 9)"


def test_a_writer_that_raises_reports_the_error(tmp_path):
    def failing(staging: str, values: dict, required: list) -> dict:
        raise OSError(28, "No space left on device")

    for fork in (True, False):
        writes = BackgroundWrites(failing, fork=fork)
        assert writes.start("s", {"data": np.zeros(10)}, [])
        result = writes.collect(wait=True)["s"]
        assert "error" in result


def test_only_pure_python_and_numpy_values_go_to_a_forked_writer():
    class Local:
        pass

    Local.__module__ = "__main__"
    assert fork_safe({"a": np.zeros(3), "b": [1, 2.0, "x", (None, b"y")], "c": Local()})
    assert not fork_safe(sqlite3.connect(":memory:"))  # a handle of a native library
    assert not fork_safe({"lock": threading.Lock()})
    assert not fork_safe([1, [2, [3, [4, [object]]]]])  # too deep to inspect: copied instead
    assert not fork_safe(list(range(1001)))
