"""What capturing hidden state costs a step (target, issue 13: at most 1 ms per step).

Measured in this process with numpy, pandas and matplotlib imported and every kind
changed from its default (the worst case: a real step captures only the kinds it
writes, and a step that writes none captures nothing). Compared with what every step
already pays: writing one small value into a cache staging folder.

    python benchmarks/bench_hidden_state.py [--repeat 2000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nbflow import hidden_state as hs  # noqa: E402
from nbflow.cache import Cache  # noqa: E402


def per_call(fn, repeat: int) -> float:
    """Median CPU seconds (of this thread: a loaded machine's waiting excluded) of one
    call of ``fn`` over ``repeat`` calls, in 5 batches."""
    batches = []
    for _ in range(5):
        start = time.thread_time()
        for _ in range(repeat // 5):
            fn()
        batches.append((time.thread_time() - start) / (repeat // 5))
    return sorted(batches)[2]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=2000)
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import pandas as pd

    folder = Path(tempfile.mkdtemp(prefix="nbflow-bench-hidden-"))
    cwd = os.getcwd()
    try:
        baseline = hs.Baseline.capture()
        np.random.seed(0)
        os.chdir(folder)
        sys.path.insert(0, str(folder))
        os.environ["NBFLOW_BENCH"] = "1"
        pd.set_option("display.precision", 2)
        plt.style.use("ggplot")
        warnings.filterwarnings("ignore", message="nbflow-bench")
        kinds = sorted(k for k, kind in hs.KINDS.items() if kind.capturable)
        rows = [(kind, per_call(lambda kind=kind: hs.capture([kind], baseline), args.repeat)) for kind in kinds]
        every = per_call(lambda: hs.capture(kinds, baseline), args.repeat)
        none = per_call(lambda: hs.capture(["x", "model"], baseline), args.repeat)
        snapshots = hs.capture(kinds, baseline)
        restore = per_call(lambda: hs.restore(snapshots, baseline), max(args.repeat // 4, 5))
        cache = Cache(folder / "cache")

        def dump_one() -> None:
            staging = cache.stage("s")
            cache.dump_values(staging, {"x": 1.5})
            shutil.rmtree(staging)

        dump = per_call(dump_one, max(args.repeat // 10, 5))
        print("capturing hidden state after a step (numpy, pandas, matplotlib loaded; every kind changed):")
        for kind, seconds in rows:
            print(f"  {kind.ljust(24)} {seconds * 1e6:8.1f} µs")
        print(f"  {'a step writing no kind'.ljust(24)} {none * 1e6:8.1f} µs")
        verdict = "OK" if every <= 1e-3 else "MISSED"
        print(f"  {'every kind at once'.ljust(24)} {every * 1e6:8.1f} µs   target <= 1000 µs: {verdict}")
        print(f"  {'restoring every kind'.ljust(24)} {restore * 1e6:8.1f} µs")
        print(f"  {'dump one value (plain)'.ljust(24)} {dump * 1e6:8.1f} µs   (what every step already pays)")
        print(f"  ratio every-kind capture / plain dump: {every / dump:.2f}x")
    finally:
        os.chdir(cwd)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
