"""A run store that is damaged, in the way, or on a read-only folder: one line naming the
file and what to do; reading commands still read a read-only store."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ..conftest import code, step, write_notebook
from .conftest import check_invariants, nbflow_cli

pytestmark = pytest.mark.slow

CHAIN = [code("n = 3", "parameters"), step("load", "data = list(range(n))"), step("total", "s = sum(data)")]
READERS = [("runs",), ("show", "1"), ("diff", "1", "2")]


def assert_one_line(proc: subprocess.CompletedProcess, *parts: str) -> str:
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("nbflow: error: "), line
    for part in parts:
        assert part in line, line
    return line


def two_runs(folder: Path) -> Path:
    path = write_notebook(folder / "pipeline.ipynb", CHAIN)
    assert nbflow_cli("run", str(path)).returncode == 0
    assert nbflow_cli("run", str(path), "-p", "n", "4").returncode == 0
    return path


@pytest.mark.parametrize("damage", ["garbage", "cut-in-half", "zero-bytes-then-garbage"])
def test_damaged_run_store_is_named_with_what_to_do(folder, damage):
    path = two_runs(folder)
    db = folder / ".nbflow" / "runs.db"
    data = db.read_bytes()
    if damage == "garbage":
        db.write_bytes(b"this is not SQLite " * 500)
    elif damage == "cut-in-half":
        db.write_bytes(data[: len(data) // 2])
    else:
        db.write_bytes(b"\0" * 100 + b"garbage" * 100)
    broken = db.read_bytes()
    for args in [*READERS, ("run", str(path)), ("clean", str(folder))]:
        proc = nbflow_cli(*args, cwd=folder)
        assert_one_line(proc, str(db), "damaged", "Move it aside", f"mv {db} {db}.broken")
    assert db.read_bytes() == broken  # the evidence is kept as it was
    os.replace(db, db.with_name("runs.db.broken"))  # what the message says to do works
    assert nbflow_cli("run", str(path), cwd=folder).returncode == 0
    check_invariants(folder)


def test_nbflow_home_that_is_a_file_is_named(folder):
    path = write_notebook(folder / "pipeline.ipynb", CHAIN)
    home = folder / ".nbflow"
    home.write_text("someone's notes")
    for args in [("run", str(path)), ("runs",), ("show", "1"), ("clean",)]:
        assert_one_line(nbflow_cli(*args, cwd=folder), str(home), "is a file, not a folder", "move the file aside")
    assert home.read_text() == "someone's notes"


def _read_only_runner() -> str | None:
    if os.geteuid() != 0:
        return "chmod"
    if shutil.which("unshare") and subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode == 0:
        return "mount"
    return None


RUNNER = _read_only_runner()


def read_only_cli(folder: Path, *args: str) -> subprocess.CompletedProcess:
    """The CLI with ``folder`` read-only: a read-only bind mount in a private mount
    namespace (root ignores file modes), else the folder's write bits removed."""
    command = [sys.executable, "-m", "nbflow", *args]
    if RUNNER == "mount":
        script = (
            f"mount --bind {shlex.quote(str(folder))} {shlex.quote(str(folder))} && "
            f"mount -o remount,bind,ro {shlex.quote(str(folder))} && cd {shlex.quote(str(folder))} && "
            + " ".join(shlex.quote(c) for c in command)
        )
        return subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=300)
    modes = {p: p.stat().st_mode for p in [folder, *folder.rglob("*")] if not p.is_symlink()}
    try:
        for p, mode in modes.items():
            p.chmod(mode & ~0o222)
        return subprocess.run(command, capture_output=True, text=True, cwd=folder, timeout=300)
    finally:
        for p, mode in modes.items():
            p.chmod(mode)


@pytest.mark.skipif(RUNNER is None, reason="needs a way to make a folder read-only (unshare -m as root)")
def test_read_only_folder_reading_commands_work_and_run_says_where(folder, tmp_path_factory):
    fresh = tmp_path_factory.mktemp("fresh")
    path = write_notebook(fresh / "pipeline.ipynb", CHAIN)
    proc = read_only_cli(fresh, "run", str(path))
    assert_one_line(proc, str(fresh / ".nbflow"), "NBFLOW_HOME")
    assert not (fresh / ".nbflow").exists()

    path = two_runs(folder)
    before = {p: p.read_bytes() for p in (folder / ".nbflow").rglob("*") if p.is_file()}
    for args in READERS:
        proc = read_only_cli(folder, *args)
        assert proc.returncode == 0, (args, proc.stderr)
    assert "done" in read_only_cli(folder, "runs").stdout
    report = tmp_path_factory.mktemp("elsewhere") / "report.html"
    assert read_only_cli(folder, "report", "1", "-o", str(report)).returncode == 0 and report.exists()
    assert_one_line(read_only_cli(folder, "report", "1"), "report.html", "NBFLOW_HOME")
    assert_one_line(read_only_cli(folder, "run", str(path), "-p", "n", "9"), "runs.db", "NBFLOW_HOME")
    after = {p: p.read_bytes() for p in (folder / ".nbflow").rglob("*") if p.is_file()}
    assert after == before
    check_invariants(folder)
