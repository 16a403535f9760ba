"""The production paths against their plain alternatives, on ``notebooks/wine_classifier.ipynb``.

* ``papermill --engine nbflow``: first run and fully cached re-run, against plain papermill
  (same notebook, same parameters); the cached re-run restores every step.
* the exported script (``nbflow export --to script``) against ``nbflow run`` (first run).

Whole processes, as a user at a shell sees them; medians of a few repetitions.

    python benchmarks/bench_production.py [--quick]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from common import command, report, timed

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "wine_classifier.ipynb"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one repetition each")
    repeat = 1 if parser.parse_args().quick else 3
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        nb = folder / NOTEBOOK.name
        shutil.copy(NOTEBOOK, nb)
        papermill = [command("papermill"), str(nb), str(folder / "out.ipynb"), "--no-progress-bar"]
        plain = timed(papermill, repeat=repeat)
        first = []
        for _ in range(repeat):
            shutil.rmtree(folder / ".nbflow", ignore_errors=True)
            first.append(timed([*papermill, "--engine", "nbflow"], repeat=1))
        engine_first = sorted(first)[len(first) // 2]
        engine_cached = timed([*papermill, "--engine", "nbflow"], repeat=repeat)
        subprocess.run([command("nbflow"), "export", str(nb), "--to", "script"], check=True, capture_output=True)
        script = timed([sys.executable, str(nb.with_suffix(".py"))], repeat=repeat, env={"MPLBACKEND": "Agg"})
        runs = []
        for _ in range(repeat):
            shutil.rmtree(folder / ".nbflow", ignore_errors=True)
            runs.append(timed([command("nbflow"), "run", str(nb), "-q"], repeat=1))
        nbflow_first = sorted(runs)[len(runs) // 2]
    report(
        [
            ("papermill (plain engine)", plain, ""),
            ("papermill --engine nbflow, first run", engine_first, f"{engine_first / plain:.2f}x plain"),
            ("papermill --engine nbflow, cached", engine_cached, f"{engine_cached / plain:.2f}x plain"),
            ("nbflow run, first run", nbflow_first, ""),
            ("exported script", script, f"{script / nbflow_first:.2f}x nbflow run"),
        ]
    )


if __name__ == "__main__":
    main()
