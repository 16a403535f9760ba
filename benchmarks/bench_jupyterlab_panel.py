"""The JupyterLab side panel on a 200-step notebook: first paint and a drag's round trip.

A real JupyterLab 4 (this environment's, nbflow's extensions as installed) and headless
Chromium (Debian's /usr/bin/chromium through Playwright). Targets (issue 18):

* first paint of the panel <= 1.5 s: from handing the panel the notebook (no graph yet)
  to the canvas drawing all 200 steps, measured in the page (the POST of the notebook as
  edited, nbflow's analysis and plan on the server, cytoscape drawing, two frames);
* drag to model <= 200 ms: from releasing the mouse on a dragged node to the notebook
  model holding the new position in ``metadata.nbflow.layout``.

Printed against the plain alternatives: the read-only panel's GET of the saved file, and
setting the same metadata through JupyterLab's API by hand. Medians of ``--repeat``.

    python benchmarks/bench_jupyterlab_panel.py [--steps 200] [--repeat 5]
"""

from __future__ import annotations

import argparse
import contextlib
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
from collections.abc import Iterator
from pathlib import Path

from common import chain_notebook

BIN = Path(sys.executable).parent
CHROMIUM = os.environ.get("NBFLOW_CHROMIUM", "/usr/bin/chromium")
TOKEN = "nbflow-bench"

PAINT = """async () => {
  const lab = window.nbflowLab, panel = lab.panel, model = panel.model;
  const frames = () => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  panel.model = null; model.graph = null; panel.view._shape = '';
  lab.canvas.setGraph({nodes: [], edges: [], legend: []});
  await frames();
  const start = performance.now();
  panel.model = model;
  void model.refresh();
  // A refresh the notebook's own updates start meanwhile supersedes this one: wait for the drawing.
  while (lab.canvas.cy.nodes('[display]').length < N) {
    await new Promise(r => requestAnimationFrame(r));
  }
  await frames();
  const painted = performance.now() - start;
  const nodes = lab.canvas.cy.nodes('[display]').length;
  const t0 = performance.now();
  await fetch(`/nbflow/api/graph?path=${encodeURIComponent(model.path)}`, {headers: {Authorization: 'token TOKEN'}})
    .then(r => r.json());
  return {painted, nodes, get: performance.now() - t0};
}"""

ARM = """() => {
  const lab = window.nbflowLab, shared = lab.notebook().sharedModel;
  window.__drag = {};
  lab.canvas.root.addEventListener('pointerup', () => (window.__drag.up = performance.now()), {capture: true, once: true});
  const seen = (_, change) => {
    if (change.metadataChange && window.__drag.up && !window.__drag.model) {
      window.__drag.model = performance.now();
      shared.changed.disconnect(seen);
    }
  };
  shared.changed.connect(seen);
}"""

PLAIN = """() => {
  const shared = window.nbflowLab.notebook().sharedModel;
  const start = performance.now();
  const nbflow = {...(shared.getMetadata('nbflow') || {})};
  nbflow.layout = {...(nbflow.layout || {}), s1: {x: Math.random() * 100, y: 5}};
  shared.transact(() => shared.setMetadata('nbflow', nbflow));
  return performance.now() - start;
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"{url} did not answer")


@contextlib.contextmanager
def lab_server(base: Path, root: Path) -> Iterator[str]:
    """A real JupyterLab serving ``root`` on a free loopback port, its settings and runtime
    files under ``base``; yields its URL once it answers, and removes ``base`` at the end."""
    settings = base / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    port = free_port()
    env = {
        **os.environ,
        "JUPYTERLAB_SETTINGS_DIR": str(base / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(base / "workspaces"),
        "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
        "JUPYTER_DATA_DIR": str(base / "data"),
    }
    server = subprocess.Popen(
        [
            str(BIN / "jupyter"),
            "lab",
            "--no-browser",
            f"--port={port}",
            "--ServerApp.ip=127.0.0.1",
            f"--IdentityProvider.token={TOKEN}",
            f"--ServerApp.root_dir={root}",
            "--LabApp.news_url=",
            *(["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=root,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_for(f"{url}api/status?token={TOKEN}")
        yield url
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    base = Path(tempfile.mkdtemp(prefix="nbflow-bench-lab-"))
    root = base / "root"
    root.mkdir()
    chain_notebook(root / "big.ipynb", args.steps)
    with lab_server(base, root) as url:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"{url}lab/tree/big.ipynb?token={TOKEN}")
            page.wait_for_selector(".jp-Notebook", timeout=120_000)
            page.locator(".jp-SideBar [data-id='nbflow-graph-panel']").click()
            page.wait_for_function(
                f"window.nbflowLab && window.nbflowLab.canvas.cy.nodes('[display]').length === {args.steps}",
                timeout=120_000,
            )
            paints, gets = [], []
            paint_js = PAINT.replace("TOKEN", TOKEN).replace("< N", f"< {args.steps}")
            for _ in range(args.repeat):
                result = page.evaluate(paint_js)
                assert result["nodes"] == args.steps, result
                paints.append(result["painted"])
                gets.append(result["get"])

            drags, plains = [], []
            for i in range(args.repeat):
                # At "fit" 200 steps are a few pixels tall: zoom in on the node to grab it.
                page.evaluate(
                    "(() => { const cy = window.nbflowLab.canvas.cy; cy.zoom(1); cy.center(cy.$id('s1')); })()"
                )
                start = page.evaluate("window.nbflowLab.canvas.nodeCenter('s1')")
                page.evaluate(ARM)
                page.mouse.move(start["x"], start["y"])
                page.mouse.down()
                page.mouse.move(start["x"] + 15 + i, start["y"] + 10, steps=5)
                page.mouse.up()
                try:
                    page.wait_for_function("window.__drag.model", timeout=10_000)
                except PlaywrightTimeout:
                    print(f"  drag {i + 1}: no position in the model after 10 s: {page.evaluate('window.__drag')}")
                    continue
                drags.append(page.evaluate("window.__drag.model - window.__drag.up"))
                plains.append(page.evaluate(PLAIN))
                page.wait_for_timeout(500)
            browser.close()

    paint, get = statistics.median(paints), statistics.median(gets)
    drag = statistics.median(drags) if drags else float("nan")
    plain = statistics.median(plains)
    print(f"JupyterLab side panel, {args.steps}-step notebook, median of {args.repeat} ({len(drags)} drags measured):")
    print(
        f"  first paint (POST graph of the notebook as edited + draw)  {paint:7.0f} ms  target <= 1500 ms"
        f"  [{'ok' if paint <= 1500 else 'MISSED'}]; x{paint / get:.2f} the read-only GET of the saved file ({get:.0f} ms)"
    )
    print(
        f"  drag released -> position in the notebook model          {drag:7.1f} ms  target <= 200 ms"
        f"  [{'ok' if drag <= 200 else 'MISSED'}]; the same metadata set by hand: {plain:.1f} ms"
    )


if __name__ == "__main__":
    main()
