"""The ``[tool.nbflow]`` hooks fire for every run, whoever starts it (``nbflow/run_end.py``):
``nbflow sweep`` (each run), a pipeline of notebooks (each notebook's run), ``%nbflow run``
in a real kernel and a run started from a real ``nbflow studio`` server driven by headless
Chromium; the webhook is a real local HTTP server. (``nbflow run``: ``test_run_hooks.py``;
JupyterLab's REST API: ``tests/test_server.py``.)"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from nbflow.cli import main
from nbflow.config import Config

from ..conftest import code, step, write_notebook
from ..test_hooks import serve_webhook
from .conftest import studio_server
from .live import Kernel

pytestmark = pytest.mark.slow


@pytest.fixture
def webhook():
    with serve_webhook() as server:
        yield server


def hooked(folder: Path, url: str, extra: str = "") -> None:
    (folder / "pyproject.toml").write_text(f'[tool.nbflow]\nnotify = "{url}"\n{extra}')


def received(webhook, count: int, timeout: float = 120.0) -> list[dict]:
    """The JSON bodies the webhook got, once there are ``count`` (the hooks run on their own thread)."""
    deadline = time.monotonic() + timeout
    while len(webhook.received) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(webhook.received) >= count, webhook.received
    return [body for _, body in webhook.received]


def messages(path: Path, run_id: int) -> list[str]:
    store = Config.for_notebook(path).open_store()
    try:
        return [m["text"] for m in store.messages(run_id)]
    finally:
        store.close()


def test_each_run_of_a_sweep_fires_the_pyproject_hooks(tmp_path, webhook, capsys):
    hooked(tmp_path, webhook.url, 'on-failure = "echo failed $NBFLOW_RUN_ID >> failures.txt; exit 4"\n')
    path = write_notebook(
        tmp_path / "sweep.ipynb",
        [code("n = 1", "parameters"), step("check", "assert n < 3, f'n is {n}'\nm = n")],
    )
    assert main(["sweep", str(path), "-p", "n", "1", "5"]) == 1
    bodies = sorted(received(webhook, 2), key=lambda b: b["run_id"])
    assert [(b["status"], b["failed_step"]) for b in bodies] == [("done", ""), ("failed", "check")]
    failed_run = bodies[1]["run_id"]
    # the on-failure command ran for the failed run only; its exit status is reported, never the run's
    assert (tmp_path / "failures.txt").read_text() == f"failed {failed_run}\n"
    problem = "on-failure hook 'echo failed $NBFLOW_RUN_ID >> failures.txt; exit 4' failed (exit status 4)"
    assert f"nbflow: warning: {problem} (the run's status is unchanged)" in capsys.readouterr().err
    assert messages(path, failed_run) == [problem]


def test_each_notebook_of_a_pipeline_fires_its_hooks_and_the_options_win(tmp_path, webhook):
    hooked(tmp_path, "http://127.0.0.1:1/never-used")  # --notify overrides it for this run
    write_notebook(tmp_path / "a.ipynb", [step("make", "open('x.txt', 'w').write('1')", "out:x.txt")])
    write_notebook(tmp_path / "b.ipynb", [step("use", "x = open('x.txt').read()", "in:x.txt")])
    assert main(["run", str(tmp_path), "-q", "--notify", webhook.url]) == 0
    bodies = received(webhook, 2)
    assert sorted((Path(b["notebook"]).name, b["status"]) for b in bodies) == [("a.ipynb", "done"), ("b.ipynb", "done")]


def test_nbflow_run_in_the_users_kernel_fires_the_pyproject_hooks(tmp_path, webhook):
    hooked(tmp_path, webhook.url)
    path = write_notebook(tmp_path / "p.ipynb", [step("load", "x = 1"), step("boom", "raise ValueError('no')")])
    webhook.delay = 120.0  # the webhook hangs until released: the kernel must not wait for it
    kernel = Kernel(tmp_path)
    try:
        assert kernel.text("%load_ext nbflow") == ""
        shown = kernel.text("%nbflow run --notebook p.ipynb")
        assert "run 1: failed" in shown, shown
        assert kernel.value("1 + 1") == 2  # the kernel answers while the hook is still waiting
        (body,) = received(webhook, 1)
        webhook.release.set()
    finally:
        kernel.close()
    assert body["run_id"] == 1 and body["status"] == "failed" and body["failed_step"] == "boom"
    assert body["notebook"] == str(path.resolve())


@pytest.mark.browser
def test_a_run_started_from_the_studio_fires_the_pyproject_hooks(page, tmp_path, webhook):
    hooked(tmp_path, webhook.url)
    write_notebook(tmp_path / "studio.ipynb", [step("load", "data = [1, 2]"), step("total", "t = sum(data)")])
    with studio_server(tmp_path) as server:
        page.goto(f"{server.url}?notebook=studio.ipynb")
        page.wait_for_function("window.nbflowCanvas && window.nbflowCanvas.cy.nodes().length === 2", timeout=60_000)
        page.get_by_role("button", name="Run", exact=True).click()
        (body,) = received(webhook, 1, timeout=180)
    assert body["status"] == "done" and body["failed_step"] == ""
    assert body["notebook"] == str((tmp_path / "studio.ipynb").resolve())
    assert page.outside == []
