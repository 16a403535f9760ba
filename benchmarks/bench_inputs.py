"""Two costs a fully cached pipeline used to pay on every plan (issue 15, items 9 and 25).

1. A big external ``in:`` file: hashed once, then remembered by (size, mtime, inode,
   ctime) under ``.nbflow``; compared with hashing it (``sha256sum``-like floor: reading
   the file once in Python).
2. A parameters cell with a big literal: ``nbflow graph`` was quadratic in the number of
   statements' source lookups; now it costs about as much as parsing the cell.

    python benchmarks/bench_inputs.py [--mb 1024] [--elements 200000]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import nbformat
from common import command, report, timed
from nbformat.v4 import new_code_cell, new_notebook


def notebook(path: Path, cells: list) -> Path:
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def tagged(source: str, *tags: str):
    cell = new_code_cell(source)
    cell.metadata["tags"] = list(tags)
    return cell


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=1024)
    parser.add_argument("--elements", type=int, default=200_000)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="nbflow-bench-inputs-"))
    try:
        big = folder / "big.bin"
        with open(big, "wb") as f:
            block = bytes(range(256)) * 4096
            for _ in range(args.mb):
                f.write(block)
        nb = notebook(folder / "inputs.ipynb", [tagged("n = 1", "step:read", "in:big.bin")])
        floor = timed([sys.executable, "-c", f"import hashlib; hashlib.sha256(open({str(big)!r}, 'rb').read())"])
        first = timed([command("nbflow"), "plan", str(nb)], repeat=1)
        again = timed([command("nbflow"), "plan", str(nb)], repeat=5)
        print(f"nbflow plan with a {args.mb} MB in: file")
        report(
            [
                ("hash the file once (floor)", floor, ""),
                ("first plan (hashes)", first, ""),
                ("plan again (remembered)", again, f"{first / again:.1f}x faster than the first"),
            ]
        )
        values = ", ".join(map(str, range(args.elements)))
        params = notebook(folder / "params.ipynb", [tagged(f"xs = [{values}]\nlr = 0.1", "parameters")])
        (folder / "cell.py").write_text(f"xs = [{values}]\nlr = 0.1\n")
        parse = timed([sys.executable, "-c", f"import ast; ast.parse(open({str(folder / 'cell.py')!r}).read())"])
        graph = timed([command("nbflow"), "graph", str(params)], repeat=3)
        print(f"nbflow graph with a {args.elements}-element parameter default")
        report([("parse the cell with ast (floor)", parse, ""), ("nbflow graph", graph, f"{graph / parse:.1f}x")])
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
