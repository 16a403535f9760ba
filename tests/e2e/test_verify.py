"""``nbflow verify``: a real papermill run from scratch compared with the cache."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nbflow import load_pipeline
from nbflow.run import pipeline_cache

from ..conftest import NOTEBOOKS, code, step, write_notebook

pytestmark = pytest.mark.slow

NBFLOW = str(Path(sys.executable).parent / "nbflow")


def nbflow(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([NBFLOW, *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def plant(path: Path, step_name: str, values: dict) -> None:
    """Replace the cached values of ``step_name`` with ``values``: a valid entry with
    correct checksums, written with the cache's own functions, under the same key."""
    pipeline = load_pipeline(path)
    key = pipeline.plan()[step_name].key
    cache = pipeline_cache(pipeline)
    entry = cache.lookup(step_name, key)
    old = cache.load_values(entry, mmap=False)
    outputs = cache.load_outputs(entry)
    assert cache.invalidate(step_name, key)
    staging = cache.stage(step_name)
    cache.write_outputs(staging, outputs)
    cache.commit(staging, step=step_name, key=key, parts=entry.parts, values={**old, **values})
    assert pipeline.plan()[step_name].state == "fresh"


def test_verify_catches_a_planted_value_and_names_it(tmp_path):
    path = write_notebook(
        tmp_path / "nb.ipynb",
        [
            code("import numpy as np"),
            step("seed", "np.random.seed(0)"),
            step("a", "x = np.random.rand()\nprint(round(x, 4))"),
            step("b", "y = x * 2\nlabel = 'double'"),
        ],
    )
    assert nbflow("run", str(path), cwd=tmp_path).returncode == 0
    ok = nbflow("verify", str(path), cwd=tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.strip().splitlines()[-1] == "cache verified: 3 steps, 5 values"

    plant(path, "b", {"y": 0.5})
    bad = nbflow("verify", str(path), cwd=tmp_path)
    assert bad.returncode == 1
    assert bad.stdout.strip().splitlines() == [
        "cache differs from a fresh run in 1 steps:",
        "  b: value y: differs from the fresh run's",
    ]


def test_verify_catches_a_random_state_the_cache_got_wrong(tmp_path):
    path = write_notebook(
        tmp_path / "nb.ipynb",
        [code("import numpy as np"), step("seed", "np.random.seed(0)"), step("a", "x = np.random.rand()")],
    )
    assert nbflow("run", str(path), cwd=tmp_path).returncode == 0
    import numpy as np

    np.random.seed(1)
    plant(path, "seed", {"<numpy.random>": np.random.get_state(legacy=True)})
    bad = nbflow("verify", str(path), cwd=tmp_path)
    assert bad.returncode == 1
    assert "  seed: hidden state <numpy.random>: differs from the fresh run's" in bad.stdout


def test_verify_compares_text_outputs(tmp_path):
    path = write_notebook(tmp_path / "nb.ipynb", [step("a", "v = 1\nprint('hello')")])
    assert nbflow("run", str(path), cwd=tmp_path).returncode == 0
    pipeline = load_pipeline(path)
    key = pipeline.plan()["a"].key
    cache = pipeline_cache(pipeline)
    entry = cache.lookup("a", key)
    values = cache.load_values(entry, mmap=False)
    cache.invalidate("a", key)
    staging = cache.stage("a")
    cache.write_outputs(staging, [[{"output_type": "stream", "name": "stdout", "text": "bye\n"}]])
    cache.commit(staging, step="a", key=key, parts=entry.parts, values=values)
    bad = nbflow("verify", str(path), cwd=tmp_path)
    assert bad.returncode == 1
    assert "  a: outputs of cell 1: cached 'bye', fresh 'hello'" in bad.stdout


@pytest.mark.parametrize("notebook", sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")))
def test_verify_passes_on_every_example(notebook, tmp_path):
    path = tmp_path / notebook
    shutil.copy(NOTEBOOKS / notebook, path)
    run = nbflow("run", str(path), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    result = nbflow("verify", str(path), cwd=tmp_path)
    language = load_pipeline(path).language
    if not language.verifiable:  # R: values compared by readRDS in tests/e2e/test_r_pipelines.py
        assert result.returncode != 0
        assert result.stderr.strip() == (
            f"nbflow: error: {notebook}: nbflow verify compares Python values; this notebook's kernel runs "
            f"{language.name} (its entries are checked by their SHA-256 on every run)"
        )
        return
    assert result.returncode == 0, result.stdout + result.stderr
    steps = len(load_pipeline(path).order)
    assert result.stdout.strip().splitlines()[-1].startswith(f"cache verified: {steps} steps, ")
