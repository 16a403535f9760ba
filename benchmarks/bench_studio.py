"""What one studio edit costs on a large notebook, gesture to redraw (server side).

An edit in the studio (drawing an edge, here) is: the JSON edit, building the pipeline
of the result (static analysis of every step), planning it (cache lookups) and the
graph model sent to the browser. Compared with the plain alternative for the edit
alone: nbformat.read + change the tags + nbformat.writes.

    python benchmarks/bench_studio.py [--steps 200]
"""

from __future__ import annotations

import argparse
import io
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import nbformat
from common import chain_notebook

from nbflow import load_pipeline
from nbflow.config import Config
from nbflow.studio.editing import NotebookEditor
from nbflow.view import graph_model


def median_ms(fn, repeat: int = 7) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="nbflow-bench-studio-"))
    try:
        path = chain_notebook(folder / "big.ipynb", args.steps)
        config = Config.for_notebook(path)
        last = f"s{args.steps - 1}"

        def edit() -> NotebookEditor:
            editor = NotebookEditor.open(path)
            editor.add_after(last, "s0")
            editor.to_bytes()
            return editor

        def edit_and_redraw() -> None:
            editor = edit()
            pipeline = load_pipeline(editor.path, config, source=editor.source())
            graph_model(pipeline, pipeline.plan())

        def with_nbformat() -> None:
            nb = nbformat.read(path, as_version=nbformat.NO_CONVERT)
            nb.cells[-1].metadata["tags"].append("after:s0")
            nbformat.write(nb, io.StringIO())

        nbformat.read(path, as_version=4)  # import and first-use costs out of the timings
        edit_and_redraw()
        plain = median_ms(with_nbformat)
        ours = median_ms(edit)
        whole = median_ms(edit_and_redraw)
        print(f"one edit on a {args.steps}-step notebook ({path.stat().st_size // 1024} KiB), median of 7:")
        print(f"  nbformat read + tag + write (plain)   {plain:8.1f} ms")
        print(f"  NotebookEditor open + tag + bytes     {ours:8.1f} ms   ratio {ours / plain:.2f}x")
        print(f"  ... + build pipeline + plan + model   {whole:8.1f} ms   (what the studio does per edit)")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
