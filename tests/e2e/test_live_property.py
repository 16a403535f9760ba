"""Hand-run cells never poison the cache: random sequences of edits, hand runs (of the
notebook's code and of code not saved), scratch cells, restores and runs in a real kernel;
afterwards every cache entry must hold exactly what a plain papermill run of the same code
and parameters produced (DESIGN.md section 8: "The cache never holds a value a plain
papermill run would not produce")."""

from __future__ import annotations

import random
from pathlib import Path

import nbformat
import pytest

from nbflow import load_pipeline
from nbflow.config import Config

from ..conftest import code, step, write_notebook
from .live import Kernel
from .test_against_papermill import papermill_snapshots, same

pytestmark = pytest.mark.slow

#: The one step whose code is edited, in two versions; the parameter in two values.
SQUARE = ("sq = data ** 2 + noise[0]", "sq = data ** 3 - noise[1]")
N = (3, 4)
SCRATCH = ("data = data + 1", "noise = noise[::-1]", "sq = sq * 0", "np.random.rand()")
SEQUENCES, LENGTH = 3, 24


def notebook(path: Path, version: int) -> Path:
    return write_notebook(
        path,
        [
            code("import numpy as np"),
            code("n = 3", "parameters"),
            step("load", "data = np.arange(n) * 1.5"),
            step("noisy", "np.random.seed(len(data))\nnoise = np.random.rand(2) + data.sum()"),
            step("square", SQUARE[version]),
            step("report", "total = float(sq.sum()) + n\nextra = np.random.rand()"),
        ],
    )


def set_version(path: Path, version: int) -> None:
    """Edit ``square`` to ``version`` and save, keeping cell ids (as JupyterLab does)."""
    nb = nbformat.read(path, 4)
    cell = next(c for c in nb.cells if "step:square" in c.metadata.get("tags", []))
    cell.source = SQUARE[version]
    nbformat.write(nb, path)


def cell_ids(path: Path) -> dict[str, tuple[str, str]]:
    """step -> (cell id, code) as saved in ``path``."""
    nb = nbformat.read(path, 4)
    return {
        c.metadata["tags"][0][5:]: (c.id, c.source) for c in nb.cells if c.metadata.get("tags", [""])[0][:5] == "step:"
    }


#: Hand runs refused while their step had no cache entry: each one a value that, cached,
#: could have poisoned the cache (the sessions must produce some, or they test nothing).
REFUSED: list[str] = []


def hand(kernel: Kernel, path: Path, name: str, n: int) -> None:
    """Shift-Enter on step ``name``'s cell (its saved code, its cell id)."""
    cell_id, source = cell_ids(path)[name]
    uncached = load_pipeline(path).plan({"n": n})[name].state == "stale"
    kernel.text(source, cell_id)
    if uncached and kernel.driver("status", path=path.name)["steps"][name] == "by-hand":
        REFUSED.append(name)


def play(kernel: Kernel, path: Path, rng: random.Random) -> set[tuple[int, int]]:
    """One random sequence; the (version, n) combinations whose keys it may have cached."""
    version, n = 0, 3
    seen = {(version, n)}
    kernel.text("%nbflow run --notebook p.ipynb")  # a first run: values to play with
    for _ in range(LENGTH):
        op = rng.choice(
            [
                "edit",
                "hand",
                "hand",
                "hand_all",
                "unsaved",
                "scratch",
                "scratch",
                "restore",
                "restore_step",
                "run",
                "run_to",
            ]
        )
        steps = ["load", "noisy", "square", "report"]
        if op == "edit":
            version = 1 - version
            set_version(path, version)
            if rng.random() < 0.7:  # poke at its inputs while editing
                kernel.text(rng.choice(SCRATCH[:2]))
            hand(kernel, path, "square", n)  # and run it by hand, as people do after an edit
        elif op == "hand":  # mostly the steps downstream of the edits and scratch cells
            hand(kernel, path, rng.choice(["load", "noisy", "square", "square", "report", "report"]), n)
        elif op == "hand_all":  # the notebook re-run by hand, top to bottom
            for name in steps:
                hand(kernel, path, name, n)
        elif op == "unsaved":
            cell_id, _ = cell_ids(path)["square"]
            kernel.text(SQUARE[1 - version], cell_id)
        elif op == "scratch":
            kernel.text(rng.choice(SCRATCH))
            if rng.random() < 0.5:  # then re-run a step by hand
                hand(kernel, path, rng.choice(["noisy", "square", "report"]), n)
        elif op == "restore":
            kernel.text("%nbflow restore")
        elif op == "restore_step":
            kernel.text(f"%nbflow restore {rng.choice(steps)}")
        elif op == "run":
            if rng.random() < 0.5:
                n = rng.choice(N)
            kernel.text(f"%nbflow run --stale -p n {n}")
        else:
            kernel.text(f"%nbflow run --to {rng.choice(steps)} -p n {n}")
        seen.add((version, n))
    return seen


def test_random_sessions_never_poison_the_cache(tmp_path):
    REFUSED.clear()
    snapshots: dict[tuple[int, int], dict] = {}
    checked = 0
    for seed in range(SEQUENCES):
        folder = tmp_path / f"session{seed}"
        folder.mkdir()
        path = notebook(folder / "p.ipynb", 0)
        ids = cell_ids(path)
        kernel = Kernel(folder)
        try:
            kernel.text("%load_ext nbflow")
            combos = play(kernel, path, random.Random(seed))
        finally:
            kernel.close()
        assert cell_ids(path).keys() == ids.keys()
        # every entry's key is some combination's plan key; its values are papermill's
        keys: dict[tuple[str, str], tuple[int, int]] = {}
        for version, n in sorted(combos):
            set_version(path, version)
            plan = load_pipeline(path).plan({"n": n})
            for entry in plan:
                keys.setdefault((entry.step, entry.key), (version, n))
        cache = Config.for_notebook(path).cache()
        for entry in cache.entries():
            combo = keys.get((entry.step, entry.key))
            assert combo is not None, f"session {seed}: an entry of {entry.step} no plain run of these versions makes"
            if combo not in snapshots:
                pm = tmp_path / f"papermill-{combo[0]}-{combo[1]}"
                pm.mkdir()
                snapshots[combo] = papermill_snapshots(notebook(pm / "p.ipynb", combo[0]), {"n": combo[1]}, pm / "snap")
            cache.verify(entry)
            values = cache.load_values(entry, [name for name in entry.names if not name.startswith("<")])
            for name, value in values.items():
                assert same(value, snapshots[combo][entry.step][name]), (
                    f"session {seed}: {entry.step}.{name} (version {combo[0]}, n={combo[1]}) differs from papermill's"
                )
                checked += 1
    assert checked > 10  # the sessions did cache things
    assert REFUSED, "no session refused a hand run that could have poisoned the cache"
