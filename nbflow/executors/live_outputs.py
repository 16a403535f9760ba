"""Recording what a cell prints and displays in the user's own kernel, while it still
reaches the cell (``record_outputs``): the live executor keeps a step's outputs for its
cache entry as the kernel executor does, without taking them from the person.

Must not: change what the cell shows, or outlive the block it wraps.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .cell_outputs import CellOutputs
from .outcome import strip_ansi


@contextmanager
def record_outputs(shell: Any, limit: int | None = None) -> Iterator[CellOutputs]:
    """Record what runs inside the block prints and displays (``CellOutputs``) while it
    still reaches the cell: the shell's streams, display publisher, display hook and
    traceback printer are wrapped for the block, then put back."""
    recorded = CellOutputs(limit or (1 << 62), {})
    patched: list[tuple[Any, str, Any]] = []

    def wrap(obj: Any, attr: str, make: Any) -> None:
        original = getattr(obj, attr)
        had = attr in getattr(obj, "__dict__", {})
        patched.append((obj, attr, original if had else None))
        setattr(obj, attr, make(original))

    def stream(name: str) -> Any:
        def make(original: Any) -> Any:
            def write(text: Any, *args: Any, **kwargs: Any) -> Any:
                recorded.stream(name, text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text))
                return original(text, *args, **kwargs)

            return write

        return make

    def publish(original: Any) -> Any:
        def wrapped(data: Any, metadata: Any = None, *args: Any, **kwargs: Any) -> Any:
            recorded.display(data, metadata, kwargs.get("transient"), bool(kwargs.get("update")))
            return original(data, metadata, *args, **kwargs)

        return wrapped

    def format_data(original: Any) -> Any:
        def wrapped(format_dict: Any, md_dict: Any = None) -> Any:
            recorded.execute_result(format_dict, md_dict, shell.displayhook.prompt_count)
            return original(format_dict, md_dict)

        return wrapped

    def showtraceback(original: Any) -> Any:
        def wrapped(etype: Any, evalue: Any, stb: Any) -> Any:
            recorded.error(getattr(etype, "__name__", str(etype)), str(evalue), [strip_ansi(s) for s in stb])
            return original(etype, evalue, stb)

        return wrapped

    wrap(sys.stdout, "write", stream("stdout"))
    wrap(sys.stderr, "write", stream("stderr"))
    wrap(shell.display_pub, "publish", publish)
    wrap(shell.displayhook, "write_format_data", format_data)
    wrap(shell, "_showtraceback", showtraceback)
    try:
        yield recorded
    finally:
        for obj, attr, original in reversed(patched):
            if original is None:
                try:
                    delattr(obj, attr)
                except AttributeError:
                    pass
            else:
                setattr(obj, attr, original)


__all__ = ["record_outputs"]
