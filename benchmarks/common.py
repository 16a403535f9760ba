"""Helpers shared by the benchmarks: generated notebooks and whole-process timing."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

BIN = Path(sys.executable).parent


def command(name: str) -> str:
    """A console script of this environment (nbflow, papermill)."""
    return str(BIN / name)


def chain_notebook(path: Path, steps: int, body: str = "v{i} = v{j} + 1", with_params: bool = True) -> Path:
    """A notebook of ``steps`` steps, each reading the previous one's value."""
    cells = [new_markdown_cell(f"# Chain of {steps} steps")]
    if with_params:
        cell = new_code_cell("n = 1")
        cell.metadata["tags"] = ["parameters"]
        cells.append(cell)
    for i in range(steps):
        first = "v0 = n" if with_params else "v0 = 1"
        source = first if i == 0 else body.format(i=i, j=i - 1)
        cell = new_code_cell(source)
        cell.metadata["tags"] = [f"step:s{i}"]
        cells.append(cell)
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def timed(args: Sequence[str], repeat: int = 3, env: dict | None = None, check: bool = True) -> float:
    """Median wall time of running ``args`` as a separate process."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        proc = subprocess.run(list(args), capture_output=True, text=True, env={**os.environ, **(env or {})})
        times.append(time.perf_counter() - start)
        if check and proc.returncode != 0:
            raise SystemExit(f"{' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return statistics.median(times)


def report(rows: list[tuple[str, float, str]]) -> None:
    width = max(len(r[0]) for r in rows)
    for label, seconds, note in rows:
        print(f"  {label.ljust(width)}  {seconds:7.3f} s  {note}")
