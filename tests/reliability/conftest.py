"""The four invariants every reliability case checks after injecting its fault.

1. the CLI exited non-zero with one human line naming the file, cell or step;
2. no run or step is left ``running`` (or ``pending``) in the store;
3. every notebook and cache entry on disk is valid (JSON + nbformat schema; checksums);
4. no kernel process is left behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import psutil
import pytest

from nbflow.cache import Cache
from nbflow.errors import CacheCorrupt
from nbflow.store import RunStore


def nbflow_cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 300):
    """Run the nbflow CLI in a separate process."""
    return subprocess.run(
        [sys.executable, "-m", "nbflow", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def kernels_under(folder: Path) -> list[psutil.Process]:
    """Kernel processes whose working directory is inside ``folder``."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if "ipykernel_launcher" in " ".join(proc.info["cmdline"] or []) and str(proc.cwd()).startswith(str(folder)):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def check_invariants(
    folder: Path,
    proc: subprocess.CompletedProcess | None = None,
    *,
    names: tuple[str, ...] = (),
    outputs: tuple[Path, ...] = (),
):
    """Assert the four invariants for everything nbflow wrote under ``folder``.

    Notebooks checked: those nbflow writes (output notebooks, snapshots under .nbflow/)
    and ``outputs`` (``--output`` files); the user's own input may be broken on purpose.
    """
    if proc is not None:
        assert proc.returncode != 0, f"expected a failure exit status:\n{proc.stdout}\n{proc.stderr}"
        lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
        assert lines, "the CLI said nothing"
        last = lines[-1]
        assert any(n in last for n in names) or ".ipynb" in last or "cell " in last or "step" in last, last
    home = folder / ".nbflow"
    if (home / "runs.db").exists():
        store = RunStore(home / "runs.db")
        for run in store.runs(limit=10_000):
            assert run["status"] not in ("pending", "running"), run
            for step in store.steps(run["id"]):
                assert step["status"] not in ("pending", "running"), (run["id"], step)
        assert store.integrity_check() == "ok"
        store.close()
    for path in [*home.rglob("*.ipynb"), *outputs]:
        if path.name.startswith("."):
            continue  # a temporary file is never at a final path
        nbformat.validate(json.loads(path.read_text()))
    cache = Cache(home / "cache")
    for step_dir in (home / "cache").glob("*"):
        if step_dir.name.startswith("."):
            continue  # the cache's record of the stores that use it
        for entry_dir in step_dir.iterdir():
            if entry_dir.name.startswith("."):
                continue  # staging leftovers and quarantined entries are never read
            try:
                entry = cache.lookup(step_dir.name, entry_dir.name)
            except CacheCorrupt as e:  # pragma: no cover - the failure message is the point
                raise AssertionError(f"corrupt entry left in place: {e}") from None
            assert entry is not None
            cache.verify(entry)
    deadline = time.monotonic() + 15
    while kernels_under(folder) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert kernels_under(folder) == [], "a kernel process was left behind"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path
