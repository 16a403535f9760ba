"""What happens after a run: the ``on-failure`` / ``on-success`` commands and the ``notify`` webhook.

A nightly run that fails must tell someone. After a run ends (``run_end.py`` calls it
for every run, whoever started it), ``run_hooks`` runs the
command the run's outcome asks for (``on_failure`` when it failed, was cancelled or
interrupted; ``on_success`` when it is done) with the run described in its environment,
and POSTs the same description as JSON to the ``notify`` URL::

    NBFLOW_RUN_ID=7  NBFLOW_STATUS=failed  NBFLOW_FAILED_STEP=train
    NBFLOW_NOTEBOOK=/home/me/pipeline.ipynb  NBFLOW_REPORT=/home/me/.nbflow/runs/7/report.html
    NBFLOW_ERROR="train: cell 4: ValueError: ..."

    {"run_id": 7, "status": "failed", "failed_step": "train", "notebook": "...", "report": "...", "error": "..."}

A hook is the user's own code and may fail or hang: each has a timeout (``hook_timeout``,
default 30 s; a command's whole process group is killed when it passes it), and a hook
that fails, hangs or cannot be reached is *reported* (the returned lines, which the CLI
prints and records on the run) -- it never changes the run's status or exit code.

Standard library only (``subprocess``, ``urllib``). This module must not change a run's
record beyond the messages its caller adds, nor start a run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Seconds a hook may take before it is stopped (and reported).
DEFAULT_TIMEOUT = 30.0


@dataclass(frozen=True)
class Hooks:
    """The hooks of a run: commands (run by the shell) and a webhook URL."""

    on_failure: str | None = None
    on_success: str | None = None
    notify: str | None = None
    timeout: float = DEFAULT_TIMEOUT

    def __bool__(self) -> bool:
        return bool(self.on_failure or self.on_success or self.notify)


@dataclass(frozen=True)
class RunOutcome:
    """What hooks are told about a finished run."""

    run_id: int
    status: str
    notebook: str
    failed_step: str = ""
    report: str = ""
    error: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "status": self.status,
            "failed_step": self.failed_step,
            "notebook": self.notebook,
            "report": self.report,
            "error": self.error,
        }

    def environment(self) -> dict[str, str]:
        """The ``NBFLOW_*`` variables a hook command receives."""
        return {
            "NBFLOW_RUN_ID": str(self.run_id),
            "NBFLOW_STATUS": self.status,
            "NBFLOW_FAILED_STEP": self.failed_step,
            "NBFLOW_NOTEBOOK": self.notebook,
            "NBFLOW_REPORT": self.report,
            "NBFLOW_ERROR": self.error[:4000],
        }


def outcome_of(run: Any, report: str | Path | None = None) -> RunOutcome:
    """The ``RunOutcome`` of a finished ``run.Run`` (its first failed step, if any)."""
    failed = next((s for s in run.pipeline.order if run.steps[s]["status"] == "failed"), "")
    return RunOutcome(
        run_id=run.id,
        status=run.status,
        notebook=str(run.pipeline.path),
        failed_step=failed,
        report=str(report) if report else "",
        error=run.error or "",
    )


def run_hooks(hooks: Hooks, outcome: RunOutcome, cwd: str | Path | None = None) -> list[str]:
    """Run the hooks ``outcome`` calls for; return one line per hook that failed (empty: all fine).

    Never raises for a hook's own failure: a hook never changes the run's outcome.
    """
    problems: list[str] = []
    command = hooks.on_success if outcome.status == "done" else hooks.on_failure
    if command:
        which = "on-success" if outcome.status == "done" else "on-failure"
        problem = run_command(command, outcome.environment(), hooks.timeout, cwd)
        if problem:
            problems.append(f"{which} hook {command!r} {problem}")
    if hooks.notify:
        problem = post_json(hooks.notify, outcome.to_json(), hooks.timeout)
        if problem:
            problems.append(f"notify {hooks.notify} {problem}")
    return problems


def run_command(command: str, env: Mapping[str, str], timeout: float, cwd: str | Path | None = None) -> str:
    """Run ``command`` by the shell with ``env`` added; ``""`` if it succeeded, else what went wrong.

    It runs in its own process group, killed whole when it passes ``timeout`` (a shell's
    child keeping the output pipe open must not make nbflow wait for it).
    """
    try:
        proc = subprocess.Popen(
            command,
            shell=True,
            env={**os.environ, **env},
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as e:
        return f"could not start: {e.strerror or e}"
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        return f"did not finish within {timeout:g} s and was stopped"
    if proc.returncode != 0:
        tail = output.decode("utf-8", "replace").strip().splitlines()[-1:] if output else []
        said = f": {tail[0][:200]}" if tail else ""
        return f"failed (exit status {proc.returncode}){said}"
    return ""


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    try:
        proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:  # pragma: no cover - a process that survives SIGKILL
        pass


def post_json(url: str, data: Mapping[str, Any], timeout: float) -> str:
    """POST ``data`` as JSON to ``url``; ``""`` if the server answered 2xx, else what went wrong."""
    if not url.startswith(("http://", "https://")):
        return "is not an http:// or https:// URL"
    import urllib.error  # here: urllib.request imports http.client, email and ssl (~20 ms on every run)
    import urllib.request

    body = json.dumps(dict(data)).encode("utf-8")
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json", "User-Agent": "nbflow"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - the user's URL
            response.read(65536)
            return ""
    except urllib.error.HTTPError as e:
        return f"answered HTTP {e.code} {e.reason}"
    except urllib.error.URLError as e:
        reason = e.reason
        if isinstance(reason, TimeoutError):
            return f"did not answer within {timeout:g} s"
        return f"could not be reached: {reason}"
    except TimeoutError:
        return f"did not answer within {timeout:g} s"
    except OSError as e:
        return f"could not be reached: {e}"


__all__ = ["DEFAULT_TIMEOUT", "Hooks", "RunOutcome", "outcome_of", "post_json", "run_command", "run_hooks"]
