"""A cell's outputs as nbformat output dicts, built where the output is produced.

``CellOutputs`` records ``stream``, ``display_data`` (with display updates),
``execute_result`` and ``error`` outputs in the shapes nbclient records from a kernel's
messages, capped at a byte limit (past it, ``outcome.cap_marker``). Used where nbflow
runs a step's code in a shell of its own process instead of sending it to a kernel:
on a Dask worker (``on_worker``) and in the user's own kernel (``user_kernel``).

Standard library only; it must not run code or know about steps.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

from .outcome import cap_marker


def jsonable(value: Any) -> Any:
    """Output data as Jupyter sends it: bytes as base64 text, tuples as lists."""
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, str | bool | int | float):
        return value
    return str(value)


class CellOutputs:
    """The outputs of one cell, built as nbclient builds them, capped at ``limit`` bytes."""

    def __init__(self, limit: int, displays: dict[str, list[dict[str, Any]]]) -> None:
        self.outputs: list[dict[str, Any]] = []
        self.limit = limit
        self.used = 0
        self.dropped = 0
        self.clear_pending = False
        self.displays = displays

    def _add(self, output: dict[str, Any], size: int) -> bool:
        if self.clear_pending:
            self.outputs.clear()
            self.clear_pending = False
        if self.used + size > self.limit and output["output_type"] != "error":
            self.dropped += size
            return False
        self.used += size
        self.outputs.append(output)
        return True

    def stream(self, name: str, text: str) -> None:
        if self.clear_pending:
            self.outputs.clear()
            self.clear_pending = False
        last = self.outputs[-1] if self.outputs else None
        room = max(0, self.limit - self.used)
        if len(text) > room:  # keep what fits, as the kernel does (in_kernel.limit_outputs)
            self.dropped += len(text) - room
            text = text[:room]
            if not text:
                return
        if last is not None and last["output_type"] == "stream" and last["name"] == name:
            last["text"] += text
            self.used += len(text)
        else:
            self._add({"output_type": "stream", "name": name, "text": text}, len(text))

    def display(
        self, data: Mapping[str, Any], metadata: Mapping[str, Any] | None, transient: Any, update: bool
    ) -> None:
        data, metadata = jsonable(dict(data)), jsonable(dict(metadata or {}))
        display_id = (transient or {}).get("display_id")
        if update:
            for output in self.displays.get(display_id, []):
                output["data"], output["metadata"] = data, metadata
            return
        output = {"output_type": "display_data", "data": data, "metadata": metadata}
        size = sum(len(v) if isinstance(v, str) else len(json.dumps(v)) for v in data.values())
        if self._add(output, size) and display_id:
            self.displays.setdefault(display_id, []).append(output)

    def execute_result(self, data: Mapping[str, Any], metadata: Mapping[str, Any] | None, count: int) -> None:
        data = jsonable(dict(data))
        output = {
            "output_type": "execute_result",
            "data": data,
            "metadata": jsonable(dict(metadata or {})),
            "execution_count": count,
        }
        self._add(output, sum(len(v) if isinstance(v, str) else len(json.dumps(v)) for v in data.values()))

    def error(self, ename: str, evalue: str, traceback: list[str]) -> None:
        self._add({"output_type": "error", "ename": ename, "evalue": evalue, "traceback": list(traceback)}, 0)

    def clear(self, wait: bool) -> None:
        if wait:
            self.clear_pending = True
        else:
            self.outputs.clear()

    def finish(self) -> list[dict[str, Any]]:
        if self.dropped:
            # Captured here, where the output is produced: the kernel's marker (see in_kernel.limit_outputs).
            self.outputs.append({"output_type": "stream", "name": "stderr", "text": cap_marker(self.limit)})
        return self.outputs
