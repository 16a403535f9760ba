"""``nbflow publish`` of 50 runs of the wine pipeline, then a re-publish after one more run.

Targets (issue 23): publishing 50 runs <= 30 s; re-publishing with one new run <= 2 s.
The plain alternative is what a user does without ``publish``: ``nbflow report`` for
each run, one by one (in one Python process, so that imports are paid once) -- no index,
comparisons, sweeps or history. Whole processes as a user at a shell sees them; wall and
CPU time (CPU shows the cost when other work shares the machine and stretches the wall).

The runs: ``nbflow sweep`` over 50 values of ``n_estimators`` (load, clean and features
are cached after the first run; train and evaluate run each time), so the site has 50
reports, 49 comparisons, one sweep page and the history.

    python benchmarks/bench_publish.py [--runs 50] [--keep FOLDER]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import command, report

ROOT = Path(__file__).resolve().parents[1]

PLAIN = """
import sys
from nbflow.config import Config
from nbflow.report import build_report
config = Config.for_folder(sys.argv[1])
for run_id in range(1, int(sys.argv[2]) + 1):
    build_report(config, run_id)
"""


def measured(args: list[str]) -> tuple[float, float, str]:
    """(wall, CPU) seconds of running ``args`` once, and what it printed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu, proc.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument(
        "--keep", metavar="FOLDER", help="make the runs in FOLDER and keep them; reuse them if it holds them already"
    )
    args = parser.parse_args()
    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="nbflow-bench-publish-"))
    try:
        nb = folder / "wine.ipynb"
        if not nb.exists():
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / "notebooks" / "wine_classifier.ipynb", nb)
            values = [str(10 + i) for i in range(args.runs)]
            start = time.perf_counter()
            proc = subprocess.run(
                [command("nbflow"), "sweep", str(nb), "-p", "n_estimators", *values], capture_output=True, text=True
            )
            if proc.returncode != 0:
                raise SystemExit(f"the sweep failed:\n{proc.stdout}\n{proc.stderr}")
            print(f"{args.runs} runs of the wine pipeline made in {time.perf_counter() - start:.0f} s")
        shutil.rmtree(folder / "site", ignore_errors=True)
        print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        site = folder / "site"
        publish = [command("nbflow"), "publish", str(folder), "-o", str(site)]
        t_first, c_first, out_first = measured(publish)
        t_same, c_same, out_same = measured(publish)
        subprocess.run([command("nbflow"), "run", str(nb), "-p", "n_estimators", "500", "-q"], check=True)
        # plain: the first args.runs runs, one report each
        t_new, c_new, out_new = measured(publish)
        t_plain, c_plain, _ = measured([sys.executable, "-c", PLAIN, str(folder), str(args.runs)])
        size = sum(p.stat().st_size for p in site.rglob("*.html")) / 1e6
        print(f"site: {len(list(site.rglob('*.html')))} pages, {size:.0f} MB")
        report(
            [
                (f"nbflow report x {args.runs}, one by one (plain)", t_plain, f"cpu {c_plain:.2f} s"),
                (
                    f"nbflow publish, {args.runs} runs",
                    t_first,
                    f"cpu {c_first:.2f} s; target <= 30 s: {'OK' if t_first <= 30 else 'MISSED'} ({out_first})",
                ),
                ("nbflow publish again, nothing new", t_same, f"cpu {c_same:.2f} s ({out_same})"),
                (
                    "nbflow publish after one more run",
                    t_new,
                    f"cpu {c_new:.2f} s; target <= 2 s: {'OK' if t_new <= 2 else 'MISSED'} ({out_new})",
                ),
            ]
        )
        print(
            f"  ratio publish/plain: wall {t_first / t_plain:.2f}x, cpu {c_first / c_plain:.2f}x "
            f"(publish also writes {args.runs - 1} comparisons, the sweep page, history and index)"
        )
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
