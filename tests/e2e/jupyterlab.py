"""A real JupyterLab server for browser tests (started once per test module: it is slow).

``lab_server`` serves a temporary root holding copies of ``notebooks/`` and runs with
a token, on 127.0.0.1, with ``allow_unauthenticated_access=False``; nbflow's server and
lab extensions are whatever ``pip install`` enabled (nothing is passed on the command
line, so the install itself is under test). Helpers drive a notebook in a ``page``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .conftest import free_port, wait_for_http

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
BIN = Path(sys.executable).parent

#: In the page: Notebook 7 asks which kernel to start.
DIALOG = "!!document.querySelector('.jp-Dialog .jp-mod-accept')"
#: In the page: Notebook 7's kernel is connected and idle. Its toolbar names no kernel
#: ("No Kernel") and its indicator says idle until a kernel is chosen; then the indicator
#: goes initializing, connecting, idle.
NOTEBOOK7_KERNEL_IDLE = """(() => {
  const name = ((document.querySelector('.jp-KernelName') || {}).innerText || '').trim();
  return name !== '' && !name.includes('No Kernel')
    && !!document.querySelector(".jp-Notebook-ExecutionIndicator[data-status='idle']");
})()"""


@dataclass
class Lab:
    url: str
    token: str
    root: Path
    log: Path

    def open(self, page: Any, notebook: str) -> None:
        """Open ``notebook`` and wait until its kernel is idle."""
        page.goto(f"{self.url}lab/tree/{notebook}?token={self.token}")
        page.wait_for_selector(".jp-Notebook", timeout=90_000)
        page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", state="attached", timeout=90_000)
        # The indicator says idle before the kernel connects; the status bar knows better.
        page.wait_for_function(
            "() => (document.querySelector('#jp-main-statusbar') || {}).innerText?.includes('| Idle')",
            timeout=90_000,
        )

    def open_in_notebook7(self, page: Any, notebook: str) -> None:
        """Open ``notebook`` in Notebook 7 and wait until its kernel is connected and idle.

        Notebook 7 asks which kernel to start only when it cannot tell; that dialog is
        accepted. Waits for whichever comes first, the kernel or the dialog (never for a
        dialog that is not coming)."""
        page.goto(f"{self.url}notebooks/{notebook}?token={self.token}")
        page.wait_for_selector(".jp-Notebook", timeout=90_000)
        page.wait_for_function(f"() => {DIALOG} || {NOTEBOOK7_KERNEL_IDLE}", timeout=90_000)
        accept = page.locator(".jp-Dialog .jp-mod-accept")
        if accept.count():
            accept.click()
            page.wait_for_function(f"() => {NOTEBOOK7_KERNEL_IDLE}", timeout=90_000)


@pytest.fixture(scope="module")
def lab_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    base = tmp_path_factory.mktemp("lab")
    root = base / "root"
    shutil.copytree(NOTEBOOKS, root, ignore=shutil.ignore_patterns(".nbflow", ".ipynb_checkpoints"))
    settings = base / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    # No "get Jupyter news?" toast over the page (it would also try to reach the internet).
    (settings / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    token = "nbflow-test-token"
    port = free_port()
    env = {
        **os.environ,
        "JUPYTERLAB_SETTINGS_DIR": str(base / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(base / "workspaces"),
        "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
        # Own notebook-signature database: a shared one is an SQLite file other Jupyter
        # processes of this user lock, which stalls saving a notebook for many seconds.
        "JUPYTER_DATA_DIR": str(base / "data"),
    }
    env.pop("NBFLOW_HOME", None)
    log = base / "server.log"
    args = [
        str(BIN / "jupyter"),
        "lab",
        "--no-browser",
        f"--port={port}",
        "--ServerApp.ip=127.0.0.1",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--ServerApp.allow_unauthenticated_access=False",
        "--LabApp.news_url=",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        args.append("--allow-root")
    with open(log, "w") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=root)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/api/status?token={token}", proc, timeout=90)
        yield Lab(url=f"http://127.0.0.1:{port}/", token=token, root=root, log=log)
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def run_cell(page: Any, index: int) -> None:
    """Select code/markdown cell ``index`` (0-based) and run it with Shift+Enter."""
    cell = page.locator(".jp-Notebook .jp-Cell").nth(index)
    cell.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Shift+Enter")


def wait_until(predicate: Any, timeout: float = 60.0, every: float = 0.1, page: Any = None) -> Any:
    """Poll ``predicate``; with ``page``, sleep through Playwright so it keeps serving the
    page's routed requests (the sync API runs route handlers only inside its own calls:
    a plain ``time.sleep`` holds every request of the page)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if page is not None:
            page.wait_for_timeout(every * 1000)
        else:
            time.sleep(every)
    raise AssertionError("condition not met in time")


#: In the page: the cytoscape instance inside ``scope`` (cytoscape keeps it on its container).
FIND_CY = """
(scope) => {
  const root = document.querySelector(scope);
  if (!root) return null;
  for (const el of [root, ...root.querySelectorAll('div')]) {
    if (el._cyreg && el._cyreg.cy) return el._cyreg.cy;
  }
  return null;
}
"""
