"""A pipeline of notebooks: the fully cached re-run of a folder of 10 notebooks x 20 steps,
each notebook reading the file the previous one writes (``nbflow run FOLDER``).

Target (issue 21): no-op re-run of the 10 x 20 pipeline <= 0.5 s from the shell. Printed
beside it, the plain alternatives: ten separate ``nbflow run NB`` no-op processes (what a
Makefile calling nbflow per notebook pays) and one 20-step notebook's no-op re-run.

    python benchmarks/bench_multi_notebook.py [--notebooks N] [--steps N]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import nbformat
from common import command, report, timed
from nbformat.v4 import new_code_cell, new_notebook


def write_project(folder: Path, notebooks: int, steps: int) -> list[Path]:
    """``nb00.ipynb`` ... each a chain of ``steps`` steps; notebook k reads ``f{k-1}.txt``
    in its first step and writes ``f{k}.txt`` in its last."""
    paths = []
    for k in range(notebooks):
        cells = []
        for i in range(steps):
            tags = [f"step:s{i}"]
            if i == 0:
                source = f"v0 = len(open('f{k - 1}.txt').read())" if k else "v0 = 1"
                if k:
                    tags.append(f"in:f{k - 1}.txt")
            elif i == steps - 1:
                source = f"v{i} = v{i - 1} + 1\nopen('f{k}.txt', 'w').write(str(v{i}))"
                tags.append(f"out:f{k}.txt")
            else:
                source = f"v{i} = v{i - 1} + 1"
            cell = new_code_cell(source)
            cell.metadata["tags"] = tags
            cells.append(cell)
        nb = new_notebook(cells=cells)
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        path = folder / f"nb{k:02d}.ipynb"
        nbformat.write(nb, path)
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--notebooks", type=int, default=10)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    nbflow = command("nbflow")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths = write_project(folder, args.notebooks, args.steps)
        start = time.perf_counter()
        timed([nbflow, "run", str(folder), "--quiet"], repeat=1)
        first = time.perf_counter() - start
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        noop = timed([nbflow, "run", str(folder), "--quiet"], repeat=5)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        # CPU seconds per no-op run: what the run costs, whatever else the machine is doing
        cpu = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / 5
        separate = sum(timed([nbflow, "run", str(p), "--quiet"], repeat=3) for p in paths)
        single = timed([nbflow, "run", str(paths[0]), "--quiet"], repeat=5)
        plan = timed([nbflow, "plan", str(folder)], repeat=5)
    shape = f"{args.notebooks} notebooks x {args.steps} steps"
    print(f"pipeline of notebooks, {shape}:")
    report(
        [
            ("first run (one kernel per notebook)", first, ""),
            ("no-op re-run: nbflow run FOLDER", noop, f"target <= 0.5 s ({'met' if noop <= 0.5 else 'MISSED'})"),
            ("  its CPU time (user + system)", cpu, "less sensitive to a loaded machine than wall time"),
            ("plan of the folder", plan, ""),
            (f"{args.notebooks} separate nbflow run NB (no-op)", separate, f"{separate / noop:.1f}x the folder run"),
            (f"one notebook of {args.steps} steps (no-op)", single, f"the folder run is {noop / single:.1f}x this"),
        ]
    )


if __name__ == "__main__":
    main()
