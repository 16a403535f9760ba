"""``nbflow report`` on a 200-step run, against plain ``jupyter nbconvert --to html``.

Target (issue 5): the report of a 200-step run is written in under 5 s and is under
15 MB. The plain alternative is nbconvert's HTML export of the same executed notebook
(no graph, no timeline, no provenance, not sanitized, MathJax and RequireJS from a CDN).
Whole processes as a user at a shell sees them; medians of three.

The notebook: 200 steps in a chain, each with a markdown paragraph above it and a
printed line; every 10th step shows a DataFrame and every 25th a matplotlib figure.

    python benchmarks/bench_report.py [--steps 200]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from common import command, report, timed
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook


def report_notebook(path: Path, steps: int) -> Path:
    cells = [
        new_markdown_cell(f"# Report benchmark\n{steps} steps in a chain, with text, tables and figures."),
        new_code_cell("import matplotlib.pyplot as plt\nimport pandas as pd"),
    ]
    params = new_code_cell("n = 1")
    params.metadata["tags"] = ["parameters"]
    cells.append(params)
    for i in range(steps):
        body = "v0 = n" if i == 0 else f"v{i} = v{i - 1} + 1"
        body += f"\nprint('step {i}: value', v{i})"
        if i % 10 == 0:
            body += f"\npd.DataFrame({{'i': range(5), 'v': [v{i} * k for k in range(5)]}})"
        if i % 25 == 0:
            body += f"\nfig, ax = plt.subplots(figsize=(4, 2.5))\nax.plot(range(10), [v{i} * k for k in range(10)])"
            body += "\nplt.show()"
        cells.append(new_markdown_cell(f"Step {i} adds one to the value of the step before it."))
        cell = new_code_cell(body)
        cell.metadata["tags"] = [f"step:s{i}"]
        cells.append(cell)
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def measured(args: list[str], repeat: int = 3) -> tuple[float, float]:
    """Median (wall, CPU) seconds of running ``args``: CPU time shows the cost when other
    work shares the machine and stretches the wall time."""
    walls, cpus = [], []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(args, check=True, capture_output=True)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="nbflow-bench-report-"))
    try:
        nb = report_notebook(folder / "chain.ipynb", args.steps)
        ran = timed([command("nbflow"), "run", str(nb), "--quiet"], repeat=1)
        timed([command("nbflow"), "run", str(nb), "--quiet"], repeat=1)  # run 2: all cached
        executed = folder / ".nbflow" / "runs" / "1" / "output.ipynb"
        first = folder / ".nbflow" / "runs" / "1" / "report.html"
        cached = folder / ".nbflow" / "runs" / "2" / "report.html"
        nbconvert_html = folder / "plain.html"

        print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        t_report, c_report = measured([command("nbflow"), "report", "1", "-C", str(folder)])
        t_cached, c_cached = measured([command("nbflow"), "report", "2", "-C", str(folder)])
        t_trusted, c_trusted = measured(
            [command("nbflow"), "report", "1", "-C", str(folder), "--trusted", "-o", str(folder / "t.html")]
        )
        t_plain, c_plain = measured(
            [command("jupyter-nbconvert"), "--to", "html", str(executed), "--output", str(nbconvert_html)]
        )
        size, size_cached, size_plain = (p.stat().st_size / 1e6 for p in (first, cached, nbconvert_html))
        print(f"nbflow report of a {args.steps}-step run ({executed.stat().st_size / 1e6:.1f} MB executed notebook;")
        print(f"the run itself took {ran:.1f} s). Wall time, then CPU time:")
        verdict = ", ".join(
            f"{label} {'OK' if ok else 'MISSED'}"
            for label, ok in (("wall", t_report < 5), ("cpu", c_report < 5), ("size", size < 15))
        )
        report(
            [
                ("jupyter nbconvert --to html (plain)", t_plain, f"cpu {c_plain:.2f} s, {size_plain:.1f} MB"),
                (
                    "nbflow report RUN",
                    t_report,
                    f"cpu {c_report:.2f} s, {size:.1f} MB; target < 5 s, < 15 MB: {verdict}",
                ),
                ("nbflow report RUN --trusted", t_trusted, f"cpu {c_trusted:.2f} s (no sanitizing)"),
                (
                    "nbflow report, cached re-run",
                    t_cached,
                    f"cpu {c_cached:.2f} s, {size_cached:.1f} MB (outputs from cache)",
                ),
            ]
        )
        print(
            f"  ratio report/nbconvert: wall {t_report / t_plain:.2f}x, cpu {c_report / c_plain:.2f}x, "
            f"size {size / size_plain:.2f}x"
        )
        print("  (nbconvert's page is not sanitized and fetches MathJax and RequireJS from a CDN)")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
