"""Setup precision: editing one setup helper re-runs its callers, not every step.

A notebook whose setup defines 8 helpers (``h0``..``h7``) and seeds a generator; step
``s{i}`` calls ``h{i}`` and works about 0.3 s. After a full run, two edits, each followed by
``nbflow run`` (whole process, as a user at a shell sees it):

* editing helper ``h3`` (reached by ``s3`` only) -- what setup precision re-runs;
* editing the bare ``random.seed(...)`` call -- in every key, so every step re-runs: the
  time the same helper edit cost before setup precision (the whole setup was in every key).

Prints the steps each edit re-ran and the ratio of the two re-run times.

    python benchmarks/bench_setup_precision.py
"""

from __future__ import annotations

import re
import subprocess
import tempfile
import time
from pathlib import Path

import nbformat
from common import command, report
from nbformat.v4 import new_code_cell, new_notebook

HELPERS = 8
WORK = "sum(i * i for i in range(1_500_000))"


def setup_source(seed: int = 0, bump: int = 0) -> str:
    helpers = "\n\n".join(
        f"def h{i}(v):\n    return v + {i}" + (f" + {bump}" if i == 3 else "") for i in range(HELPERS)
    )
    return f"import random\n\n{helpers}\n\nrandom.seed({seed})"


def write(path: Path, seed: int = 0, bump: int = 0) -> None:
    cells = [new_code_cell(setup_source(seed, bump))]
    for i in range(HELPERS):
        cell = new_code_cell(f"w{i} = h{i}({WORK})")
        cell.metadata["tags"] = [f"step:s{i}"]
        cells.append(cell)
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def run(path: Path) -> tuple[float, int]:
    start = time.perf_counter()
    proc = subprocess.run([command("nbflow"), "run", str(path)], capture_output=True, text=True, cwd=path.parent)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(proc.stdout + proc.stderr)
    done = len(re.findall(r"^\s+\S+\s+s\d+\s+done\b", proc.stdout + proc.stderr, flags=re.M))
    return seconds, done


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "helpers.ipynb"
        write(path)
        first, _ = run(path)
        write(path, bump=1)
        helper, helper_steps = run(path)
        write(path, seed=1, bump=1)
        bare, bare_steps = run(path)
    print(f"setup precision, {HELPERS} steps each calling its own setup helper:")
    report(
        [
            ("first run", first, f"{HELPERS} steps"),
            ("edit helper h3", helper, f"{helper_steps} step(s) re-ran"),
            ("edit the bare seed call", bare, f"{bare_steps} steps re-ran (the cost of any setup edit before)"),
        ]
    )
    print(f"  ratio: a helper edit now costs {helper / bare:.2f}x the re-run of every step")


if __name__ == "__main__":
    main()
