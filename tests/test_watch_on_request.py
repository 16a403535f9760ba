"""The kernel executor's watch of a step's reads rides on the step's own execute request.

A real python3 kernel: ``KernelSide.watch_on_request`` hooks IPython's ``pre_run_cell``;
a request whose metadata carries ``nbflow_watch`` is watched just before its code runs,
so a value the step changes through a function call is found by the dump after it --
with one execute request for the step, none of its own for the watch.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest

from nbflow.languages.python import PYTHON


class Kernel:
    def __init__(self, folder: Path) -> None:
        from jupyter_client.manager import start_new_kernel

        self.km, self.kc = start_new_kernel(kernel_name="python3", cwd=str(folder), startup_timeout=120)

    def request(self, code: str, metadata: dict[str, Any] | None = None, **content: Any) -> dict[str, Any]:
        """Send one execute request (with ``metadata``) and return its reply's content."""
        body = {
            "code": code,
            "silent": False,
            "store_history": True,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
            **content,
        }
        msg = self.kc.session.msg("execute_request", body, metadata=metadata or {})
        self.kc.shell_channel.send(msg)
        while True:
            reply = self.kc.get_shell_msg(timeout=60)
            if reply["parent_header"].get("msg_id") == msg["header"]["msg_id"]:
                assert reply["content"]["status"] == "ok", reply["content"]
                return reply["content"]

    def expression(self, code: str, expression: str, metadata: dict[str, Any] | None = None) -> Any:
        result = self.request(code, metadata, user_expressions={"r": expression})["user_expressions"]["r"]
        assert result["status"] == "ok", result
        return json.loads(ast.literal_eval(result["data"]["text/plain"]))

    def close(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


@pytest.fixture
def kernel(tmp_path: Path) -> Any:
    k = Kernel(tmp_path)
    yield k
    k.close()


def test_a_step_is_watched_from_its_request_metadata(kernel: Kernel, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    names = ["data", "grow", "size"]
    kernel.request(PYTHON.helper_code(str(cache), [], None), silent=True, store_history=False)
    assert kernel.expression("", PYTHON.watch_setup(names), None) is True
    kernel.request("data = [1]\ndef grow(x):\n    x.append(2)\n    return len(x)\n")

    def step(metadata: dict[str, Any] | None, staging: str) -> dict[str, Any]:
        dump = PYTHON.dump_expression(str(cache / "size" / staging), ["size"], ["size"])
        return kernel.expression("size = grow(data)", dump, metadata)

    # the request asks for the watch: the in-place change of ``data`` is found
    watched = step(PYTHON.watch_metadata(["data", "grow"]), ".staging-1")
    assert watched["learnt"]["run_writes"] == ["data"]
    assert "watch_error" not in watched
    # the same step without the metadata is not watched (the dump finds no watch)
    assert step(None, ".staging-2")["learnt"]["run_writes"] == []
    # the watched step ran as a cell like any other, and no other code ran for its watch
    history = kernel.expression("", "__import__('json').dumps(In)")
    assert [h for h in history if h] == [
        "data = [1]\ndef grow(x):\n    x.append(2)\n    return len(x)",
        *["size = grow(data)"] * 2,
    ]
