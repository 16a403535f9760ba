"""Hooks after a run (``nbflow/hooks.py``): real shell commands and a real local HTTP
server for ``--notify``. Runs through ``nbflow run`` with hooks: ``e2e/test_run_hooks.py``."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from nbflow.hooks import Hooks, RunOutcome, post_json, run_command, run_hooks


class _Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((self.headers["Content-Type"], json.loads(body)))  # type: ignore[attr-defined]
        if self.server.delay:  # type: ignore[attr-defined]
            self.server.release.wait(self.server.delay)  # type: ignore[attr-defined]
        self.send_response(self.server.code)  # type: ignore[attr-defined]
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def serve_webhook() -> Iterator[ThreadingHTTPServer]:
    """A real HTTP server on 127.0.0.1 recording the JSON POSTed to it."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    server.received, server.code, server.delay, server.release = [], 200, 0.0, threading.Event()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()


@pytest.fixture
def webhook():
    with serve_webhook() as server:
        yield server


OUTCOME = RunOutcome(run_id=7, status="failed", notebook="/x/nb.ipynb", failed_step="train", report="", error="boom")


def test_command_gets_the_run_in_its_environment(tmp_path):
    out = tmp_path / "env.txt"
    problems = run_hooks(
        Hooks(on_failure=f'echo "$NBFLOW_RUN_ID $NBFLOW_STATUS $NBFLOW_FAILED_STEP $NBFLOW_NOTEBOOK" > {out}'),
        OUTCOME,
    )
    assert problems == []
    assert out.read_text() == "7 failed train /x/nb.ipynb\n"


def test_only_the_matching_command_runs(tmp_path):
    marker = tmp_path / "ran"
    assert run_hooks(Hooks(on_success=f"touch {marker}"), OUTCOME) == []
    assert not marker.exists()


def test_failing_and_hanging_commands_are_reported(tmp_path):
    assert run_command("echo nope >&2; exit 3", {}, 10) == "failed (exit status 3): nope"
    # a shell whose child keeps the pipe open: the whole group is stopped at the timeout
    assert run_command("sleep 60 & sleep 60", {}, 0.5) == "did not finish within 0.5 s and was stopped"
    problems = run_hooks(Hooks(on_failure="exit 1", timeout=5), OUTCOME)
    assert problems == ["on-failure hook 'exit 1' failed (exit status 1)"]


def test_webhook_posts_the_outcome_as_json(webhook):
    assert run_hooks(Hooks(notify=webhook.url), OUTCOME) == []
    assert webhook.received == [
        (
            "application/json",
            {
                "run_id": 7,
                "status": "failed",
                "failed_step": "train",
                "notebook": "/x/nb.ipynb",
                "report": "",
                "error": "boom",
            },
        )
    ]


def test_webhook_errors_and_timeouts_are_reported(webhook, tmp_path):
    webhook.code = 500
    assert post_json(webhook.url, {}, 5) == "answered HTTP 500 Internal Server Error"
    webhook.code, webhook.delay = 200, 30.0
    assert post_json(webhook.url, {}, 0.5) == "did not answer within 0.5 s"
    webhook.release.set()
    assert post_json("ftp://example.org/x", {}, 1) == "is not an http:// or https:// URL"
    assert post_json("http://127.0.0.1:1/x", {}, 2).startswith("could not be reached")
