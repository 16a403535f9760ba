"""How long ``nbflow plan`` takes on a large notebook, as a user at a shell sees it.

Target (issue 2): a 1000-step notebook plans in under 1 s. Compared in the same run with
the floor: starting Python and reading the notebook's JSON.

    python benchmarks/bench_plan.py [--steps 1000]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from common import chain_notebook, command, report, timed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=1000)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="nbflow-bench-plan-"))
    try:
        nb = chain_notebook(folder / "big.ipynb", args.steps)
        floor = timed([sys.executable, "-c", f"import json; json.load(open({str(nb)!r}))"])
        # First plan of new content validates the notebook with nbformat once.
        first = timed([command("nbflow"), "plan", str(nb)], repeat=1)
        again = timed([command("nbflow"), "plan", str(nb)], repeat=5)
        print(f"nbflow plan on a {args.steps}-step notebook ({nb.stat().st_size // 1024} KiB):")
        report(
            [
                ("python + json.load (floor)", floor, ""),
                ("nbflow plan, new content", first, "(validates with nbformat once)"),
                ("nbflow plan, again", again, f"target < 1 s: {'OK' if again < 1 else 'MISSED'}"),
            ]
        )
        print(f"  ratio plan/floor: {again / floor:.1f}x")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
