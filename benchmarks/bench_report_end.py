"""The report a run's end writes (``report = true``), as the process that started the run
sees it: the user's kernel, a Jupyter server, the studio.

``run_end`` writes the report in a child process (``nbflow report RUN``); the plain
alternative is ``nbflow.report.build_report`` on a thread of the starter's own process
(what ``nbflow run --report`` did before). Each way runs in a fresh Python process (a
kernel that never made a report has imported neither nbconvert nor Bokeh), whose main
thread meanwhile runs pure-Python work, as a user's cell would. Printed per way: the wall
time until the report is written, the CPU time spent in the starter's own process, and
how much work its main thread got done per second, against the same work alone.

    python benchmarks/bench_report_end.py [--steps 20] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import chain_notebook, command


def spin(stop: threading.Event | None, seconds: float) -> float:
    """Pure-Python work until ``stop`` is set (or ``seconds`` pass): iterations per second."""
    count, started = 0, time.perf_counter()
    while not (stop.is_set() if stop is not None else time.perf_counter() - started >= seconds):
        for _ in range(1000):
            count += 1
    return count / (time.perf_counter() - started)


def measure_one(way: str, folder: Path, run_id: int) -> dict[str, float]:
    """In this (fresh) process: write run ``run_id``'s report ``way`` while the main thread works."""
    from nbflow.config import Config

    notebook = folder / "chain.ipynb"
    config = Config.for_notebook(notebook)
    alone = spin(None, 1.5)
    done = threading.Event()
    failure: list[BaseException] = []
    writer_cpu: list[float] = []

    def write() -> None:
        cpu = time.thread_time()
        try:
            if way == "child":
                from nbflow.run_end import write_report

                write_report(config, notebook, run_id)
            else:
                from nbflow.report import build_report

                build_report(config, run_id)
        except BaseException as e:  # noqa: BLE001 - reported by the parent
            failure.append(e)
        finally:
            writer_cpu.append(time.thread_time() - cpu)
            done.set()

    children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    thread = threading.Thread(target=write)
    thread.start()
    busy = spin(done, 0)
    wall = time.perf_counter() - started
    thread.join()
    children1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if failure:
        raise failure[0]
    child_cpu = (children1.ru_utime + children1.ru_stime) - (children0.ru_utime + children0.ru_stime)
    return {"wall": wall, "own_cpu": writer_cpu[0], "child_cpu": child_cpu, "speed": busy / alone}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--one", nargs=3, metavar=("WAY", "FOLDER", "RUN"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        way, folder, run_id = args.one
        print(json.dumps(measure_one(way, Path(folder), int(run_id))))
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        chain_notebook(folder / "chain.ipynb", args.steps, body="v{i} = v{j} + 1\nprint('step {i}', v{i})")
        subprocess.run([command("nbflow"), "run", "chain.ipynb", "-q"], cwd=folder, check=True)
        results: dict[str, list[dict[str, float]]] = {"child": [], "thread": []}
        for _ in range(args.repeat):
            for way in results:
                out = subprocess.run(
                    [sys.executable, __file__, "--one", way, str(folder), "1"],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                results[way].append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"report of a {args.steps}-step run while the starter's main thread works (medians of {args.repeat})")
    print(f"{'way':<40} {'wall s':>7} {'CPU in starter s':>17} {'CPU in child s':>15} {'main thread speed':>18}")
    med = {way: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for way, rs in results.items()}
    names = {"child": "child process (run_end.write_report)", "thread": "thread in process (plain alternative)"}
    for way, m in med.items():
        print(
            f"{names[way]:<40} {m['wall']:>7.2f} {m['own_cpu']:>17.2f} {m['child_cpu']:>15.2f} {m['speed'] * 100:>17.0f}%"
        )
    print(
        f"ratio child/thread: wall {med['child']['wall'] / med['thread']['wall']:.2f}x, "
        f"CPU in the starter {med['child']['own_cpu']:.2f} s vs {med['thread']['own_cpu']:.2f} s, "
        f"main thread speed {med['child']['speed'] / med['thread']['speed']:.2f}x"
    )


if __name__ == "__main__":
    main()
