"""Fixtures for end-to-end tests: real headless Chromium (Debian's), real servers.

``page`` is a Playwright page in a fresh Chromium profile that aborts and records every
request to a host other than 127.0.0.1/localhost (``page.outside``) and collects console
errors (``page.console_errors``): views must work with the network cut. Chromium is
Debian's ``/usr/bin/chromium`` driven by the ``playwright`` package; no browser is
downloaded.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlparse

import pytest

CHROMIUM = os.environ.get("NBFLOW_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
#: The README's pictures (tracked): written only with NBFLOW_UPDATE_DOCS=1, through ``screenshot``.
DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    # Module scope, not session: while the sync API is open its event loop counts as
    # running in this thread, which breaks every later asyncio-based test (pytest-jupyter).
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package (make test does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


# pytest-jupyter (registered by tests/test_server.py) adds autouse fixtures to every test
# of the session that close "the" event loop and clean up a ServerApp after each test; in
# a browser test that loop is Playwright's, still running. These tests need neither.
@pytest.fixture(autouse=True)
def jp_asyncio_loop() -> Iterator[None]:
    yield None


@pytest.fixture(autouse=True)
def jp_server_cleanup() -> Iterator[None]:
    yield None


@pytest.fixture(scope="module")
def browser(playwright: Any) -> Iterator[Any]:
    """One headless Chromium per test module (starting it is the slow part); every test
    still gets its own context (``browser_context``)."""
    browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture
def browser_context(browser: Any) -> Iterator[Any]:
    """A fresh Chromium context: its own cookies, storage, cache and permissions, shared
    with no other test (what a fresh profile gave, without starting a browser per test)."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def page(browser_context: Any) -> Any:
    """A page that blocks and records requests leaving this machine."""
    page = browser_context.new_page()
    page.outside = []
    page.console_errors = []

    def route(route: Any) -> None:
        url = urlparse(route.request.url)
        if url.scheme in ("http", "https", "ws", "wss") and url.hostname not in LOCAL_HOSTS:
            page.outside.append(route.request.url)
            route.abort()
        else:
            route.continue_()

    browser_context.route("**/*", route)
    page.on("console", lambda msg: page.console_errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: page.console_errors.append(str(exc)))
    return page


def update_docs() -> bool:
    """Whether this test run may refresh the README's pictures in docs/ (``NBFLOW_UPDATE_DOCS=1``)."""
    return os.environ.get("NBFLOW_UPDATE_DOCS") == "1"


def screenshot(page: Any, name: str, docs: str | None = None) -> Path:
    """Save a screenshot under test-artifacts/ (kept by CI) and return its path.

    ``docs`` names the README picture it also is (``docs/<docs>``); that tracked file is
    written only when ``update_docs()``, so running the tests never changes the work tree.
    This is the one place a test writes into docs/.
    """
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    if docs is not None and update_docs():
        DOCS.mkdir(exist_ok=True)
        (DOCS / docs).write_bytes(path.read_bytes())
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url: str, process: subprocess.Popen | None = None, timeout: float = 60.0) -> None:
    """Wait until ``url`` answers (any HTTP status), failing early if ``process`` exits."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before answering {url}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


@pytest.fixture(scope="module")
def client(request: Any) -> Iterator[Any]:
    """A real Dask ``LocalCluster`` (nbflow's own settings) and its client, shared by one
    module's tests; the module's ``DASK_WORKERS`` says how many workers (default 2)."""
    from distributed import Client

    from nbflow.executors.dask_cluster import start_local_cluster

    cluster = start_local_cluster(getattr(request.module, "DASK_WORKERS", 2), dashboard=False)
    client = Client(cluster, set_as_default=False)
    yield client
    client.close()
    cluster.close()


@pytest.fixture(params=["kernel", "dask"])
def executor(request: Any) -> Any:
    """Each test twice: a factory of the executor under test, the kernel's name or a Dask
    executor on the module's cluster (``client``)."""
    if request.param == "kernel":
        return lambda: "kernel"
    from nbflow.executors.dask import DaskExecutor

    client = request.getfixturevalue("client")
    return lambda: DaskExecutor(client, announce=False)


@contextmanager
def studio_server(folder: Path) -> Iterator[SimpleNamespace]:
    """``nbflow studio FOLDER`` on a free port of 127.0.0.1 (its log in ``folder/server.log``),
    stopped with Ctrl-C (so it cancels its runs and stops their kernels) when done."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NBFLOW_")}
    log = (folder / "server.log").open("w")
    exe = Path(sys.executable).parent / "nbflow"
    proc = subprocess.Popen(
        [str(exe), "studio", str(folder), "--port", str(port)],
        cwd=folder,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_for_http(url, proc, timeout=120)
        yield SimpleNamespace(url=url, folder=folder, proc=proc, log=folder / "server.log")
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def assert_no_server_errors(text: str) -> None:
    """An exception in a studio's server-side callback shows nowhere in the page: fail on it
    here. Tornado reports a message to a browser that just closed its page; nothing else may fail."""
    assert "ERROR" not in text, text
    for trace in text.split("Traceback (most recent call last):")[1:]:
        assert "WebSocketClosedError" in trace or "StreamClosedError" in trace, text
