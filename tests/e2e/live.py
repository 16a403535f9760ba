"""A real Jupyter kernel driven the way a console or JupyterLab drives it, for the tests of
``nbflow.live`` (the ``%nbflow`` magics, the driver, the run-cell ledger)."""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


class Kernel:
    """A python3 kernel started in ``folder`` with this worktree's nbflow importable; with
    ``session``, a notebook's kernel as Jupyter starts one (``JPY_SESSION_NAME`` names it)."""

    def __init__(self, folder: Path, session: str | None = None) -> None:
        from jupyter_client.manager import start_new_kernel

        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        env.pop("JPY_SESSION_NAME", None)
        if session is not None:
            env["JPY_SESSION_NAME"] = session
        self.km, self.kc = start_new_kernel(kernel_name="python3", cwd=str(folder), env=env, startup_timeout=120)
        #: the run events the driver's answers brought (``driver``)
        self.events: list[dict[str, Any]] = []

    def close(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)

    def send(self, code: str, cell_id: str | None = None) -> str:
        """Send an execute request as JupyterLab does (with the cell's id); its msg id."""
        content = {
            "code": code,
            "silent": False,
            "store_history": True,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        }
        msg = self.kc.session.msg("execute_request", content, metadata={"cellId": cell_id} if cell_id else {})
        self.kc.shell_channel.send(msg)
        return msg["header"]["msg_id"]

    def outputs(self, msg_id: str, until: str | None = None, timeout: float = 120) -> list[dict[str, Any]]:
        """The iopub outputs of ``msg_id`` until the kernel is idle (or a stream has ``until``)."""
        outputs: list[dict[str, Any]] = []
        while True:
            msg = self.kc.get_iopub_msg(timeout=timeout)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind in ("stream", "execute_result", "display_data", "error"):
                outputs.append({"output_type": kind, **content})
                if until and kind == "stream" and until in content["text"]:
                    return outputs
            elif kind == "status" and content["execution_state"] == "idle":
                return outputs

    def run(self, code: str, cell_id: str | None = None) -> list[dict[str, Any]]:
        return self.outputs(self.send(code, cell_id))

    def text(self, code: str, cell_id: str | None = None) -> str:
        """What ``code`` printed and displayed (text/plain), errors as ``ename: evalue``."""
        return text_of(self.run(code, cell_id))

    def value(self, expression: str) -> Any:
        """The Python value of ``expression`` (its repr must be a literal)."""
        reply = self.kc.execute_interactive(
            "", silent=True, store_history=False, user_expressions={"r": expression}, timeout=120
        )
        result = reply["content"]["user_expressions"]["r"]
        assert result["status"] == "ok", result
        return ast.literal_eval(result["data"]["text/plain"])

    def driver(self, name: str, **args: Any) -> dict[str, Any]:
        """Call a driver function exactly as the JupyterLab extension does (LIVE-PROTOCOL.md);
        its answer, the run's events it brought moved to ``events`` (in order, all answers)."""
        expression = f'__import__("nbflow.live.driver").live.driver.call({name!r}, {json.dumps(json.dumps(args))})'
        answer = json.loads(self.value(expression))
        self.events.extend(answer.pop("events", []))
        return answer


def text_of(outputs: list[dict[str, Any]]) -> str:
    parts = []
    for output in outputs:
        if output["output_type"] == "stream":
            parts.append(output["text"])
        elif output["output_type"] == "error":
            parts.append(f"{output['ename']}: {output['evalue']}\n")
        else:
            parts.append(output["data"].get("text/plain", "") + "\n")
    return "".join(parts)
