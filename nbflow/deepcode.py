"""Deep but valid code: running recursive AST helpers on trees as deep as Python accepts.

A step with a sum of 2 000 terms is valid Python (the kernel compiles it), but its AST
is 2 000 levels deep, and ``ast.dump`` and ``ast.NodeVisitor`` recurse once or twice per
level: at the default recursion limit (1 000) they raise ``RecursionError``. ``with_room``
runs such a helper again in a thread of its own with a large stack and a recursion limit
raised for the call, so the analysis of any code the parser accepted completes.

It must not be used to parse: what the parser refuses at the default limit, the kernel
refuses too, and that is reported as an error naming the cell.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

#: The recursion limit for a deep call: enough for ~10 000 levels of nesting.
DEEP_LIMIT = 50_000
#: Stack of the thread a deep call runs in (Python < 3.11 recurses on the C stack).
DEEP_STACK = 512 * 1024 * 1024

_lock = threading.Lock()


def with_room(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in a thread with a large stack and a raised recursion limit."""
    result: list[Any] = []
    error: list[BaseException] = []

    def call() -> None:
        try:
            result.append(fn(*args))
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            error.append(e)

    with _lock:  # stack_size and the recursion limit are process-wide settings
        old_stack = threading.stack_size(DEEP_STACK)
        old_limit = sys.getrecursionlimit()
        sys.setrecursionlimit(max(old_limit, DEEP_LIMIT))
        try:
            thread = threading.Thread(target=call, name="nbflow-deep-code", daemon=True)
            thread.start()
        finally:
            threading.stack_size(old_stack)
        thread.join()
        sys.setrecursionlimit(old_limit)
    if error:
        raise error[0]
    return result[0]
