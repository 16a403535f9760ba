"""What the JupyterLab side panel asks for a pipeline of notebooks: ``GET project?path=NB``
(find the pipeline the notebook belongs to, read and link every notebook, plan them all,
draw the groups) on a real JupyterLab server, for a folder of 10 notebooks x 20 steps run
once (every step fresh). The panel asks on opening a notebook, on each save and once a
second while a pipeline run goes on.

Printed against the plain alternative: ``GET graph?path=NB``, the one notebook's graph the
panel asks anyway (keyed in its pipeline: the notebooks upstream of it planned too, so also
for the last notebook, which has every other one upstream), and the whole pipeline's plan from the shell (``nbflow plan FOLDER``,
interpreter start-up included). Medians of ``--repeat`` requests.

    python benchmarks/bench_project_route.py [--notebooks 10] [--steps 20] [--repeat 7]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path

from bench_jupyterlab_panel import TOKEN, lab_server
from bench_multi_notebook import write_project
from common import command, report, timed


def get(url: str) -> float:
    request = urllib.request.Request(url, headers={"Authorization": f"token {TOKEN}"})
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=120) as response:
        response.read()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--notebooks", type=int, default=10)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    nbflow = command("nbflow")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root"
        folder = root / "pipe"
        folder.mkdir(parents=True)
        paths = write_project(folder, args.notebooks, args.steps)
        timed([nbflow, "run", str(folder), "--quiet"], repeat=1)
        middle = paths[len(paths) // 2].name
        with lab_server(Path(tmp) / "lab", root) as url:
            api = f"{url}nbflow/api"
            get(f"{api}/project?path=pipe/{middle}")  # warm: imports, the text-source memo
            get(f"{api}/graph?path=pipe/{middle}")
            project = statistics.median(get(f"{api}/project?path=pipe/{middle}") for _ in range(args.repeat))
            graph = statistics.median(get(f"{api}/graph?path=pipe/{middle}") for _ in range(args.repeat))
            get(f"{api}/graph?path=pipe/{paths[-1].name}")
            last = statistics.median(get(f"{api}/graph?path=pipe/{paths[-1].name}") for _ in range(args.repeat))
        plan = timed([nbflow, "plan", str(folder)], repeat=3)
    print(f"GET project for a notebook of a pipeline of {args.notebooks} notebooks x {args.steps} steps:")
    report(
        [
            ("GET project?path=NB (the whole pipeline)", project, f"{project / graph:.1f}x GET graph"),
            ("GET graph?path=NB (one notebook, its upstream notebooks planned)", graph, ""),
            (
                f"GET graph of the last notebook ({len(paths) - 1} upstream)",
                last,
                f"{last / graph:.1f}x the middle one",
            ),
            ("nbflow plan FOLDER (from the shell)", plan, f"GET project is {project / plan:.2f}x this"),
        ]
    )


if __name__ == "__main__":
    main()
