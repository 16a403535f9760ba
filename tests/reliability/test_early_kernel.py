"""The kernel starts as soon as the plan says steps will run (``kernel_client.EarlyKernel``),
before the run is recorded: when recording the run fails, that kernel must not be left
running, and its temporary log must not be left behind."""

from __future__ import annotations

import time

import pytest

from ..conftest import code, step, write_notebook
from .conftest import kernels_under, nbflow_cli

pytestmark = pytest.mark.slow

CHAIN = [code("n = 3", "parameters"), step("load", "data = list(range(n))"), step("total", "s = sum(data)")]


def leftovers(folder):
    return sorted(p.name for p in (folder / ".nbflow" / "runs").glob(".kernel-*"))


def test_a_run_that_cannot_be_recorded_stops_the_kernel_it_started(folder):
    path = write_notebook(folder / "pipeline.ipynb", CHAIN)
    first = nbflow_cli("run", str(path))
    assert first.returncode == 0, first.stderr
    assert (folder / ".nbflow" / "runs" / "1" / "kernel.log").is_file()  # the early kernel's log, renamed
    assert leftovers(folder) == []
    (folder / ".nbflow" / "runs.db").write_bytes(b"this is not SQLite " * 500)
    proc = nbflow_cli("run", str(path), "-p", "n", "4")  # steps to run: the kernel starts before recording
    assert proc.returncode == 1 and "damaged" in proc.stderr.strip().splitlines()[-1], proc.stderr
    deadline = time.monotonic() + 15
    while kernels_under(folder) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert kernels_under(folder) == [], "the early kernel was left running"
    assert leftovers(folder) == []
