"""``nbflow publish`` of 50 runs of the wine pipeline, then a re-publish after one more run.

Targets (issue 23): publishing 50 runs <= 30 s; re-publishing with one new run <= 2 s.
The plain alternatives are what a user does without ``publish``: ``nbflow report`` for
each run, one by one (in one Python process, so that imports are paid once) -- no index,
comparisons, sweeps or history -- and, after one more run, ``nbflow report`` of that run.
Whole processes as a user at a shell sees them; wall and CPU time (CPU shows the cost
when other work shares the machine and stretches the wall). Each number is the median
of ``--repeat`` rounds; every round starts from the same 50 runs (the run store and
cache are put back as they were), so the one more run really runs two steps each time.

The runs: ``nbflow sweep`` over 50 values of ``n_estimators`` (load, clean and features
are cached after the first run; train and evaluate run each time), so the site has 50
reports, 49 comparisons, one sweep page and the history.

The last rows publish after one more run made with ``nbflow run --report``: its report
is already written (and current), so the publish copies it instead of rendering it.

    python benchmarks/bench_publish.py [--runs 50] [--repeat 3] [--keep FOLDER]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
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


def make_runs(folder: Path, runs: int) -> Path:
    nb = folder / "wine.ipynb"
    if not nb.exists():
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / "notebooks" / "wine_classifier.ipynb", nb)
        values = [str(10 + i) for i in range(runs)]
        start = time.perf_counter()
        proc = subprocess.run(
            [command("nbflow"), "sweep", str(nb), "-p", "n_estimators", *values], capture_output=True, text=True
        )
        if proc.returncode != 0:
            raise SystemExit(f"the sweep failed:\n{proc.stdout}\n{proc.stderr}")
        print(f"{runs} runs of the wine pipeline made in {time.perf_counter() - start:.0f} s")
    return nb


def one_round(folder: Path, nb: Path, runs: int) -> dict[str, tuple[float, float, str]]:
    """Every measurement once, from the 50 runs; the store and cache are put back afterwards."""
    home, saved = folder / ".nbflow", folder / ".nbflow-saved"
    shutil.rmtree(saved, ignore_errors=True)
    shutil.copytree(home, saved)
    try:
        site = folder / "site"
        shutil.rmtree(site, ignore_errors=True)
        publish = [command("nbflow"), "publish", str(folder), "-o", str(site)]
        got = {"first": measured(publish)}
        before = json.loads((site / ".nbflow-site.json").read_text())["pages"]
        got["same"] = measured(publish)
        after = json.loads((site / ".nbflow-site.json").read_text())["pages"]
        rewritten = sorted(p for p in after if after[p]["sha256"] != before.get(p, {}).get("sha256"))
        if rewritten:
            print(f"  publishing again with nothing new rewrote: {', '.join(rewritten)}")
        one_more = [command("nbflow"), "run", str(nb), "-p", "n_estimators", "500", "-q"]
        subprocess.run(one_more, check=True)
        got["new"] = measured(publish)
        got["plain_one"] = measured([command("nbflow"), "report", "-C", str(folder), str(runs + 1)])
        subprocess.run([*one_more[:-1], "-p", "max_depth", "4", "--report", "-q"], check=True)
        got["new_reported"] = measured(publish)
        got["plain"] = measured([sys.executable, "-c", PLAIN, str(folder), str(runs)])
        size = sum(p.stat().st_size for p in site.rglob("*.html")) / 1e6
        got["size"] = (size, float(len(list(site.rglob("*.html")))), "")
        return got
    finally:
        shutil.rmtree(home)
        saved.rename(home)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3, help="rounds; medians are reported")
    parser.add_argument(
        "--keep", metavar="FOLDER", help="make the runs in FOLDER and keep them; reuse them if it holds them already"
    )
    args = parser.parse_args()
    folder = Path(args.keep).resolve() if args.keep else Path(tempfile.mkdtemp(prefix="nbflow-bench-publish-"))
    try:
        nb = make_runs(folder, args.runs)
        print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        rounds = [one_round(folder, nb, args.runs) for _ in range(args.repeat)]
        print(f"load average at end: {os.getloadavg()[0]:.1f}; medians of {args.repeat} rounds")

        def med(key: str) -> tuple[float, float, str]:
            return (
                statistics.median(r[key][0] for r in rounds),
                statistics.median(r[key][1] for r in rounds),
                rounds[-1][key][2],
            )

        (t_plain, c_plain, _), (t_first, c_first, out_first) = med("plain"), med("first")
        t_same, c_same, out_same = med("same")
        t_new, c_new, out_new = med("new")
        t_one, c_one, _ = med("plain_one")
        t_rep, c_rep, out_rep = med("new_reported")
        size, pages, _ = rounds[-1]["size"]
        print(f"site: {pages:.0f} pages, {size:.0f} MB")
        report(
            [
                (f"nbflow report x {args.runs}, one by one (plain)", t_plain, f"cpu {c_plain:.2f} s"),
                (
                    f"nbflow publish, {args.runs} runs",
                    t_first,
                    f"cpu {c_first:.2f} s; target <= 30 s: {'OK' if t_first <= 30 else 'MISSED'} ({out_first})",
                ),
                ("nbflow publish again, nothing new", t_same, f"cpu {c_same:.2f} s ({out_same})"),
                ("nbflow report of one more run (plain)", t_one, f"cpu {c_one:.2f} s"),
                (
                    "nbflow publish after one more run",
                    t_new,
                    f"cpu {c_new:.2f} s; target <= 2 s: {'OK' if t_new <= 2 else 'MISSED'} ({out_new})",
                ),
                (
                    "... after one more run with --report",
                    t_rep,
                    f"cpu {c_rep:.2f} s; target <= 2 s: {'OK' if t_rep <= 2 else 'MISSED'} ({out_rep})",
                ),
            ]
        )
        print(
            f"  ratio publish/plain: wall {t_first / t_plain:.2f}x, cpu {c_first / c_plain:.2f}x "
            f"(publish also writes {args.runs - 1} comparisons, the sweep page, history and index)\n"
            f"  ratio re-publish/plain report of the new run: wall {t_new / t_one:.2f}x, cpu {c_new / c_one:.2f}x "
            f"(with --report: wall {t_rep / t_one:.2f}x, cpu {c_rep / c_one:.2f}x)"
        )
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
