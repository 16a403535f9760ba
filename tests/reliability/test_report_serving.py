"""Run reports served by a real ``nbflow studio``: under load, against traversal, behind a login.

One studio process (started with the CLI, as a user would) serves a folder holding a
run of ``pipeline.ipynb`` and its report, built with ``nbflow report``. Around the
folder sit notebooks that must never be reachable through it, each with a run and a
report of its own carrying a marker, so a lookup that escaped the folder would show
the marker in the response: a notebook in the parent folder, one in a sibling folder
whose name starts with the studio folder's name, symlinks to both, and a second
notebook in the folder whose run shares the store.
"""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import quote

import pytest

from nbflow.config import Config
from nbflow.report import recorded_report
from nbflow.store import RunStore

from ..conftest import code, step, write_notebook
from ..e2e.conftest import free_port, wait_for_http
from .conftest import check_invariants

pytestmark = pytest.mark.slow

MARKER = "outside_marker_7f3a"


def cells(total: str) -> list:
    return [
        code("n = 4", "parameters"),
        step("load", "data = list(range(n))"),
        step("double", "twice = [2 * x for x in data]"),
        step(total, f"{total} = sum(twice)\nprint({total!r})"),
    ]


def run_and_report(path: Path) -> Path:
    """Run ``path`` and build its first run's report with the CLI; the report's path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NBFLOW_")}
    exe = str(Path(sys.executable).parent / "nbflow")
    subprocess.run([exe, "run", str(path), "-q"], check=True, env=env, timeout=300, capture_output=True)
    store = RunStore(Config.for_notebook(path).store_path)
    run_id = max(r["id"] for r in store.runs(path))
    store.close()
    built = subprocess.run(
        [exe, "report", str(run_id), "-C", str(path)], check=True, env=env, timeout=300, capture_output=True, text=True
    )
    report = Path(built.stdout.strip().splitlines()[-1])
    assert report.is_file() and recorded_report(path, run_id) == report.resolve()
    return report


def start_studio(folder: Path, log: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NBFLOW_")}
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "nbflow"), "studio", str(folder), "--port", str(port), *extra],
        cwd=folder,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
    )
    url = f"http://127.0.0.1:{port}/"
    wait_for_http(url, proc, timeout=120)
    return proc, url


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def problems(log: Path) -> list[str]:
    """Lines of the server's stderr that look like an error or a traceback."""
    words = ("Traceback", "ERROR", "Error:", "Exception", "CRITICAL")
    return [line for line in log.read_text().splitlines() if any(w in line for w in words)]


def get(url: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """A GET with the standard library that follows no redirect (``path`` sent as given)."""
    host, port = url.split("//")[1].rstrip("/").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    base = tmp_path_factory.mktemp("serving")
    folder = base / "studio"
    folder.mkdir()
    pipeline = write_notebook(folder / "pipeline.ipynb", cells("total"))
    report = run_and_report(pipeline)
    # a second notebook of the folder: its run (2) is in the same store
    other = run_and_report(write_notebook(folder / "other.ipynb", cells(MARKER)))
    secret = write_notebook(base / "secret.ipynb", cells(MARKER))
    sibling = base / "studio-other"
    sibling.mkdir()
    sibling_nb = write_notebook(sibling / "s.ipynb", cells(MARKER))
    outside = [run_and_report(secret), run_and_report(sibling_nb)]
    (folder / "link.ipynb").symlink_to(secret)
    (folder / "up").symlink_to(base)
    (folder / "sub").mkdir()
    log = base / "studio.log"
    proc, url = start_studio(folder, log)
    try:
        yield SimpleNamespace(
            base=base, folder=folder, url=url, log=log, report=report, other=other, outside=outside, proc=proc
        )
    finally:
        stop(proc)
    assert problems(log) == [], log.read_text()


def report_path(run_id: int, notebook: str) -> str:
    return f"/report/{run_id}?notebook={quote(notebook, safe='')}"


def test_a_hundred_concurrent_report_loads_are_identical(served):
    expected = served.report.read_bytes()
    assert b"double" in expected

    def load(_: int) -> tuple[int, dict[str, str], bytes]:
        return get(served.url, report_path(1, "pipeline.ipynb"))

    with ThreadPoolExecutor(max_workers=100) as pool:
        answers = list(pool.map(load, range(100)))
    assert [status for status, _, _ in answers] == [200] * 100
    assert all(body == expected for _, _, body in answers)
    for _, headers, _ in answers:
        assert headers["content-security-policy"] == "sandbox allow-scripts"
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["content-type"] == "text/html; charset=utf-8"
    assert served.proc.poll() is None
    assert problems(served.log) == [], served.log.read_text()
    check_invariants(served.folder)


TRAVERSAL = {
    "dotdot": lambda s: report_path(1, "../secret.ipynb"),
    "deep dotdot": lambda s: report_path(1, "sub/../../secret.ipynb"),
    "encoded dotdot": lambda s: "/report/1?notebook=%2e%2e%2fsecret.ipynb",
    "double-encoded dotdot": lambda s: "/report/1?notebook=%252e%252e%252fsecret.ipynb",
    "absolute outside": lambda s: report_path(1, str(s.base / "secret.ipynb")),
    "absolute inside": lambda s: report_path(1, str(s.folder / "pipeline.ipynb")),
    "symlink file": lambda s: report_path(1, "link.ipynb"),
    "symlink folder": lambda s: report_path(1, "up/secret.ipynb"),
    "sibling prefix": lambda s: report_path(1, "../studio-other/s.ipynb"),
    "sibling through symlink": lambda s: report_path(1, "up/studio-other/s.ipynb"),
    "another notebook's run": lambda s: report_path(2, "pipeline.ipynb"),
    "no such run": lambda s: report_path(99, "pipeline.ipynb"),
    "no notebook": lambda s: "/report/1",
    "the folder itself": lambda s: report_path(1, "."),
    "dotdot in the route": lambda s: "/report/../../secret.ipynb",
}


@pytest.mark.parametrize("kind", list(TRAVERSAL))
def test_report_paths_leaving_the_studio_folder_are_a_bare_404(served, kind):
    status, _, body = get(served.url, TRAVERSAL[kind](served))
    assert status == 404, (kind, status)
    assert MARKER.encode() not in body and str(served.base).encode() not in body
    assert b"<script" not in body and b"double" not in body
    # the same notebooks are served when asked for the right way: the 404 is the confinement
    assert served.outside[0].is_file() and served.other.is_file()
    assert get(served.url, report_path(2, "other.ipynb"))[0] == 200


@pytest.mark.parametrize("run_id", [str(2**63), str(2**64 + 1), "9" * 5000])
def test_run_ids_no_store_can_hold_are_a_404_without_a_traceback(served, run_id):
    """#15 item 14 (the studio's side): a 5000-digit id was a ValueError, one past 2**63 an OverflowError."""
    before = problems(served.log)
    status, _, body = get(served.url, report_path(run_id, "pipeline.ipynb"))
    assert status == 404, (status, body[:200])
    assert served.proc.poll() is None
    assert problems(served.log) == before, served.log.read_text()[-3000:]


def test_basic_auth_guards_the_reports(served, tmp_path):
    import http.cookiejar
    import urllib.parse
    import urllib.request

    log = tmp_path / "auth.log"
    proc, url = start_studio(served.folder, log, "--basic-auth", "correct horse battery")
    try:
        status, headers, body = get(url, report_path(1, "pipeline.ipynb"))
        assert status in (302, 401, 403), status
        if status == 302:
            assert "/login" in headers["location"]
        assert b"double" not in body and b"<script" not in body
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        wrong = urllib.parse.urlencode({"username": "me", "password": "wrong"}).encode()
        with opener.open(f"{url}login", data=wrong):
            pass
        with opener.open(url + report_path(1, "pipeline.ipynb")[1:]) as page:
            assert "/login" in page.url and b"double" not in page.read()
        right = urllib.parse.urlencode({"username": "me", "password": "correct horse battery"}).encode()
        with opener.open(f"{url}login", data=right):
            pass
        with opener.open(url + report_path(1, "pipeline.ipynb")[1:]) as page:
            assert page.status == 200 and page.read() == served.report.read_bytes()
    finally:
        stop(proc)
    assert problems(log) == [], log.read_text()
