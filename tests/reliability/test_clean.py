"""``nbflow clean`` deletes only what nbflow wrote and nothing a run still needs."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from nbflow.cache import Cache
from nbflow.store import RunStore

from ..conftest import code, step, write_notebook
from .conftest import check_invariants, nbflow_cli

pytestmark = pytest.mark.slow

CHAIN = [code("n = 3", "parameters"), step("load", "data = list(range(n))"), step("total", "s = sum(data)")]


def entries(cache_dir: Path) -> set[tuple[str, str]]:
    return {(e.step, e.key) for e in Cache(cache_dir).entries()}


def files_under(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_clean_refuses_a_cache_folder_holding_other_programs_data(folder, tmp_path_factory):
    dot_cache = tmp_path_factory.mktemp("home") / ".cache"
    (dot_cache / "pip" / "http" / "a").mkdir(parents=True)
    (dot_cache / "pip" / "http" / "a" / "blob").write_bytes(b"wheel" * 100)
    (dot_cache / "huggingface" / "hub").mkdir(parents=True)
    (dot_cache / "huggingface" / "hub" / "model.bin").write_bytes(b"weights" * 100)
    (dot_cache / "README").write_text("not nbflow's")
    env = {"NBFLOW_CACHE": str(dot_cache)}
    path = write_notebook(folder / "pipeline.ipynb", CHAIN)
    for n in ("1", "2"):
        assert nbflow_cli("run", str(path), "-p", "n", n, env=env).returncode == 0
    before = files_under(dot_cache)
    proc = nbflow_cli("clean", str(folder), "--keep", "1", env=env)
    assert proc.returncode == 2
    line = proc.stderr.strip().splitlines()[-1]
    assert str(dot_cache) in line and "did not write" in line and "nothing was deleted" in line, line
    assert "README" in line and "huggingface/hub" in line
    assert files_under(dot_cache) == before  # pip's, huggingface's and nbflow's own files all kept
    assert len(RunStore(folder / ".nbflow" / "runs.db").runs()) == 2


def test_clean_never_follows_a_symlinked_step_folder(folder, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside")
    (outside / "precious").mkdir()
    (outside / "precious" / "thesis.tex").write_text("years of work")
    path = write_notebook(folder / "pipeline.ipynb", CHAIN)
    assert nbflow_cli("run", str(path)).returncode == 0
    (folder / ".nbflow" / "cache" / "evil").symlink_to(outside)
    proc = nbflow_cli("clean", str(folder), "--keep", "0")
    assert proc.returncode == 2 and "evil" in proc.stderr.strip().splitlines()[-1], proc.stderr
    assert (outside / "precious" / "thesis.tex").read_text() == "years of work"
    (folder / ".nbflow" / "cache" / "evil").unlink()
    check_invariants(folder)


def test_prune_deletes_only_entries_with_a_manifest_and_skips_symlinks(tmp_path):
    """The mechanism under ``clean``: what has no manifest naming it is not nbflow's."""
    cache = Cache(tmp_path / "cache")
    staging = cache.stage("a")
    cache.commit(staging, step="a", key="k1", parts={}, values={"x": 1})
    (tmp_path / "cache" / "a" / "nomanifest").mkdir()
    (tmp_path / "cache" / "a" / "nomanifest" / "data").write_text("?")
    outside = tmp_path / "outside"
    (outside / "inner").mkdir(parents=True)
    (outside / "inner" / "f").write_text("keep me")
    (tmp_path / "cache" / "b").symlink_to(outside)
    (tmp_path / "cache" / "a" / "linked").symlink_to(outside / "inner")
    removed, _ = cache.prune(keep=set())
    assert removed == 1 and not (tmp_path / "cache" / "a" / "k1").exists()
    assert (tmp_path / "cache" / "a" / "nomanifest" / "data").exists()
    assert (outside / "inner" / "f").read_text() == "keep me"
    assert (tmp_path / "cache" / "b").is_symlink() and (tmp_path / "cache" / "a" / "linked").is_symlink()


def test_clean_keeps_the_entries_of_a_running_run(folder):
    cells = [
        step("load", "data = [1, 2, 3]"),
        step(
            "wait",
            "import os, time\nwhile not os.path.exists('go'):\n    time.sleep(0.1)\ntotal = sum(data)",
        ),
    ]
    path = write_notebook(folder / "pipeline.ipynb", cells)
    (folder / "go").touch()
    assert nbflow_cli("run", str(path), cwd=folder).returncode == 0
    (folder / "go").unlink()
    cache_dir = folder / ".nbflow" / "cache"
    load_entries = {e for e in entries(cache_dir) if e[0] == "load"}
    running = subprocess.Popen(
        [sys.executable, "-m", "nbflow", "run", str(path), "--force", "wait"],
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        store = RunStore(folder / ".nbflow" / "runs.db")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            steps = {s["step"]: s["status"] for s in store.steps(2)} if store.run(2) else {}
            if steps.get("wait") == "running":
                break
            time.sleep(0.2)
        assert steps.get("wait") == "running", steps
        proc = nbflow_cli("clean", str(folder), "--keep", "0")
        assert proc.returncode == 0, proc.stderr
        assert load_entries <= entries(cache_dir), "an entry of the running run was pruned"
        assert [r["id"] for r in store.runs()] == [2]  # the finished run went, the running one stayed
    finally:
        (folder / "go").touch()
        out, err = running.communicate(timeout=120)
    assert running.returncode == 0, err
    check_invariants(folder)


def test_clean_in_one_folder_keeps_entries_of_another_folder_sharing_the_cache(folder):
    (folder / "pyproject.toml").write_text('[tool.nbflow]\ncache-dir = "shared-cache"\n')
    (folder / "a").mkdir()
    (folder / "b").mkdir()
    a = write_notebook(folder / "a" / "pipeline.ipynb", CHAIN)
    b = write_notebook(folder / "b" / "pipeline.ipynb", [step("load", "data = [7, 8]"), step("other", "t = len(data)")])
    shared = folder / "shared-cache"
    assert nbflow_cli("run", str(a)).returncode == 0
    a_entries = entries(shared)
    assert nbflow_cli("run", str(b)).returncode == 0
    b_entries = entries(shared) - a_entries
    assert len(a_entries) == len(b_entries) == 2
    proc = nbflow_cli("clean", str(folder / "a"), "--keep", "0")
    assert proc.returncode == 0, proc.stderr
    assert "removed 1 runs and 2 cache entries" in proc.stdout  # a's own entries only
    assert entries(shared) == b_entries
    again = nbflow_cli("plan", str(b))
    assert "0 of 2 steps would run" in again.stdout, again.stdout + again.stderr
    check_invariants(folder / "b")


def test_clean_keep_applies_per_notebook(folder):
    quiet = write_notebook(folder / "quiet.ipynb", [step("q", "x = 1")])
    busy = write_notebook(folder / "busy.ipynb", CHAIN)
    assert nbflow_cli("run", str(quiet)).returncode == 0
    for n in ("1", "2", "3"):
        assert nbflow_cli("run", str(busy), "-p", "n", n).returncode == 0
    proc = nbflow_cli("clean", str(folder), "--keep", "1")
    assert proc.returncode == 0, proc.stderr
    runs = RunStore(folder / ".nbflow" / "runs.db").runs()
    assert sorted((Path(r["notebook"]).name, r["params"].get("n")) for r in runs) == [
        ("busy.ipynb", 3),
        ("quiet.ipynb", None),
    ]
    assert "0 of 1 steps would run" in nbflow_cli("plan", str(quiet)).stdout
    assert "per notebook" in nbflow_cli("clean", "--help").stdout
    check_invariants(folder)
