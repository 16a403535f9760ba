"""Reliability of the views beyond their own test files: the test suite leaves the work tree as it was.

#15 item 20: running the tests overwrote the tracked ``docs/widget-mid-run.png`` and
``docs/jupyterlab-panel-mid-run.png``. Screenshots go to ``test-artifacts/``; the README's
pictures are written only through ``tests/e2e/conftest.screenshot(..., docs=...)`` and
only with ``NBFLOW_UPDATE_DOCS=1``.
"""

from __future__ import annotations

import ast
import hashlib
import os
from pathlib import Path

import pytest

from ..e2e.conftest import (  # noqa: F401 - fixtures (the jp_ ones undo pytest-jupyter's autouse loop handling)
    ARTIFACTS,
    DOCS,
    browser,
    browser_context,
    jp_asyncio_loop,
    jp_server_cleanup,
    page,
    playwright,
    screenshot,
)

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent


def _writes_into_docs(path: Path) -> list[str]:
    """Lines of ``path`` that name the docs folder (a ``DOCS`` name or a ``"docs"`` path part)."""
    found = []
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        named = isinstance(node, ast.Name) and node.id == "DOCS"
        literal = isinstance(node, ast.Constant) and node.value == "docs"
        if named or literal:
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_only_the_screenshot_helper_may_write_into_docs():
    """Every screenshot of tests/e2e goes through ``screenshot``; nothing else names docs/."""
    helper = TESTS / "e2e" / "conftest.py"
    offenders = []
    for path in sorted(TESTS.rglob("*.py")):
        if path in (helper, Path(__file__).resolve()):
            continue
        offenders += _writes_into_docs(path)
    # reading the REST API's description is the one other use, and it is a read
    reads = {line for line in offenders if line.startswith("tests/test_server.py:")}
    assert sorted(set(offenders) - reads) == []
    source = helper.read_text(encoding="utf-8")
    assert 'os.environ.get("NBFLOW_UPDATE_DOCS") == "1"' in source


@pytest.mark.browser
def test_a_screenshot_does_not_touch_the_readme_pictures(page, monkeypatch):  # noqa: F811 - the fixture
    """With NBFLOW_UPDATE_DOCS unset, a screenshot named as a README picture stays in test-artifacts/."""
    monkeypatch.delenv("NBFLOW_UPDATE_DOCS", raising=False)
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in DOCS.glob("*.png")}
    assert "widget-mid-run.png" in before
    page.set_content("<h1>not the widget</h1>")
    shot = screenshot(page, "not-the-widget", docs="widget-mid-run.png")
    assert shot.parent == ARTIFACTS and shot.is_file()
    after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in DOCS.glob("*.png")}
    assert after == before
    monkeypatch.setenv("NBFLOW_UPDATE_DOCS", "yes")  # only "1" means it
    screenshot(page, "not-the-widget", docs="widget-mid-run.png")
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in DOCS.glob("*.png")} == before
    assert os.environ.get("NBFLOW_UPDATE_DOCS") != "1"


@pytest.mark.browser
def test_a_slow_plan_does_not_freeze_the_studio_for_anyone(tmp_path, page):  # noqa: F811 - the fixture
    """#15 item 21: planning ran on the Bokeh server's one IO loop, so a notebook whose plan
    is slow (here: a 16 GB ``in:`` file to hash, sparse so it takes no disk) made every
    other session and a plain ``GET /`` wait. The plan now runs off the loop, and past the
    time limit the page says what it is waiting for."""
    import signal
    import subprocess
    import sys
    import urllib.request

    from ..conftest import step, write_notebook
    from ..e2e.conftest import free_port, wait_for_http
    from .conftest import nbflow_cli

    folder = tmp_path / "studio"
    folder.mkdir()
    write_notebook(folder / "a_fast.ipynb", [step("load", "x = 1"), step("use", "y = x + 1")])
    ran = nbflow_cli("run", str(folder / "a_fast.ipynb"), cwd=folder)
    assert ran.returncode == 0, ran.stderr  # so its plan says fresh, which no provisional drawing does
    with open(folder / "big.bin", "wb") as f:
        f.truncate(16 << 30)
    write_notebook(folder / "z_slow.ipynb", [step("head", "size = len(open('big.bin', 'rb').read(10))", "in:big.bin")])
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    env = {k: v for k, v in os.environ.items() if not k.startswith("NBFLOW_")}
    log = tmp_path / "studio.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("nbflow")), "studio", str(folder), "--port", str(port)],
            cwd=folder,
            env={**env, "NBFLOW_STUDIO_TIME_LIMIT": "1", "PYTHONFAULTHANDLER": "1"},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_http(url, proc, timeout=120)
        page.goto(f"{url}?notebook=z_slow.ipynb", timeout=60_000)
        waiting = page.get_by_text("still planning z_slow.ipynb")
        waiting.wait_for(timeout=60_000)
        # the slow session draws its step (states unknown yet) instead of hanging
        page.wait_for_function("window.nbflowCanvas && window.nbflowCanvas.cy.nodes().length === 1", timeout=60_000)
        # another client is answered meanwhile: a plain GET / (which plans a_fast.ipynb) ...
        with urllib.request.urlopen(url, timeout=60) as answer:
            assert answer.status == 200 and b"nbflow studio" in answer.read()
        # ... and another browser session, whose fast plan comes in while the slow one goes on
        other = page.context.new_page()
        other.goto(f"{url}?notebook=a_fast.ipynb", timeout=60_000)
        other.wait_for_function(
            "window.nbflowCanvas && window.nbflowCanvas.cy.nodes().length === 2 &&"
            " Object.values(window.nbflowCanvas.states()).every(s => s === 'fresh')",
            timeout=60_000,
        )
        assert waiting.is_visible(), "the slow plan ended before the other clients were answered"
        assert page.outside == []
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)  # the plan's thread does not keep the server alive
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGABRT)  # faulthandler writes every thread's stack to the log
            proc.wait(30)
            raise AssertionError("the studio did not stop:\n" + log.read_text()[-6000:]) from None
    text = log.read_text()
    assert "Traceback" not in text, text[-3000:]
