"""The studio through the Jupyter server: a proxied process, or the Bokeh app inside it?

The numbers behind nbflow/studio/proxy.py's choice (README, "The studio through
JupyterLab"). What serving the studio inside jupyter_server would cost every Jupyter
server with nbflow installed, against what the proxied process costs:

* in-process: the import of Panel and the studio (time, and memory in the Jupyter server
  for as long as it runs), and how long opening a ``--steps`` notebook in the studio holds
  the event loop (reading, analysing, planning, the graph model: the studio's callbacks
  run on the loop, so every kernel's messages in JupyterLab would wait that long);
* proxied (jupyter-server-proxy, a Unix socket): the first request, which starts the studio
  process, then a page and a static file through the proxy hop, against the same static
  file served by jupyter_server itself.

    python benchmarks/bench_studio_route.py [--steps 200]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from common import chain_notebook

BIN = Path(sys.executable).parent
TOKEN = "nbflow-bench"

IMPORT = """
import resource, time
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
import panel, nbflow.studio.app  # noqa
print(time.perf_counter() - start, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
"""

OPEN = """
import sys, time
from dataclasses import replace
from nbflow.config import Config
from nbflow.graph import build_pipeline
from nbflow.studio.editing import NotebookEditor
from nbflow.view import graph_model
path = sys.argv[1]
times = []
for _ in range(5):
    start = time.perf_counter()
    editor = NotebookEditor.open(path)
    pipeline = replace(build_pipeline(editor.source()), config=Config.for_notebook(path))
    graph_model(pipeline, pipeline.plan({}))
    times.append(time.perf_counter() - start)
print(sorted(times)[2])
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str) -> float:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=300) as response:
        response.read()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="nbflow-bench-route-"))
    root = base / "root"
    root.mkdir()
    notebook = chain_notebook(root / "big.ipynb", args.steps)

    imported = subprocess.run([sys.executable, "-c", IMPORT], capture_output=True, text=True, check=True)
    import_s, import_mb = map(float, imported.stdout.split())
    opened = subprocess.run([sys.executable, "-c", OPEN, str(notebook)], capture_output=True, text=True, check=True)
    open_s = float(opened.stdout)

    port = free_port()
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(base / "runtime"), "JUPYTER_DATA_DIR": str(base / "data")}
    server = subprocess.Popen(
        [
            str(BIN / "jupyter"),
            "server",
            "--no-browser",
            f"--port={port}",
            "--ServerApp.ip=127.0.0.1",
            f"--IdentityProvider.token={TOKEN}",
            f"--ServerApp.root_dir={root}",
            *(["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=root,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                get(f"{url}api/status?token={TOKEN}")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("the Jupyter server did not start") from None
                time.sleep(0.3)
        page = f"{url}nbflow/studio/?notebook=big.ipynb&token={TOKEN}"
        cold = get(page)
        warm = statistics.median(get(page) for _ in range(3))
        asset = "static/extensions/panel/css/loading.css"
        proxied = statistics.median(get(f"{url}nbflow/studio/{asset}?token={TOKEN}") for _ in range(9))
        own = statistics.median(get(f"{url}static/favicon.ico?token={TOKEN}") for _ in range(9))
    finally:
        server.terminate()
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(base, ignore_errors=True)

    print(f"The studio behind the Jupyter server, {args.steps}-step notebook:")
    print("  inside jupyter_server (not chosen):")
    print(f"    import Panel + the studio, in every Jupyter server   {import_s:6.2f} s  +{import_mb:.0f} MB resident")
    print(f"    opening the notebook holds the event loop            {open_s:6.2f} s  (every kernel's messages wait)")
    print("  proxied process (jupyter-server-proxy, Unix socket):")
    print(f"    first request (starts the studio)                    {cold:6.2f} s  once per Jupyter server")
    print(f"    a studio page afterwards                             {warm:6.2f} s  (a new Bokeh session)")
    print(
        f"    a static file through the proxy                      {proxied * 1000:6.1f} ms"
        f"  x{proxied / own:.1f} jupyter_server's own static file ({own * 1000:.1f} ms)"
    )
    print(json.dumps({"import_s": import_s, "import_mb": import_mb, "open_s": open_s, "cold_s": cold, "warm_s": warm}))


if __name__ == "__main__":
    main()
