"""Writing a step's large values while the next step computes (``BackgroundWrites``).

Runs where the values live (the kernel, through ``in_kernel.KernelSide``). A step's
values must be written as they were when the step ended, though the next step may
change them in place. Two ways, best first:

* **a forked writer** (POSIX): ``os.fork`` gives a child process a copy-on-write
  snapshot of the whole process, so the child writes (and hashes, in the same pass,
  ``Cache.dump_values``) and fsyncs the values as they were, without copying a byte up
  front; only the pages a later step changes in place are duplicated, by the operating
  system, when it changes them. The child touches nothing of the kernel's but the
  values and the staging folder: its output streams go to ``/dev/null``, it ignores
  interrupts meant for the kernel, it dies with the kernel (Linux), and it leaves with
  ``os._exit`` (no kernel exit handlers run). It answers with the dump's JSON on a pipe.
* **a copy and a thread** elsewhere (or when forking fails): ``copy.deepcopy`` of the
  values, written by a thread.

A writer that dies, is killed or fails answers ``outcome.dump_error``'s shape: the
executor then discards the staging folder (the entry is never committed, so nothing
half-written is ever read back). ``collect`` hands finished writes to the executor,
which commits the entries (manifest last).

This module must not talk to the executor, the store or the event stream, and the
forked child must not use the kernel's sockets or streams.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..fsutil import fsync_path
from .outcome import dump_error

#: ``dump(staging, values, required) -> result``: ``Cache.dump_values`` behind ``KernelSide._dump``.
Dump = Callable[[str, dict[str, Any], list[str]], dict[str, Any]]


class BackgroundWrites:
    """Writes in progress, by staging folder (see module docstring)."""

    def __init__(self, dump: Dump, fork: bool | None = None) -> None:
        self.dump = dump
        self.fork = hasattr(os, "fork") if fork is None else fork
        self._threads: dict[str, threading.Thread] = {}
        self._done: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def start(self, staging: str, values: dict[str, Any], required: list[str]) -> bool:
        """Write ``values`` into ``staging`` in the background; ``False`` if it cannot be
        (the caller then writes them itself)."""
        if self.fork and all(fork_safe(v) for v in values.values()) and self._start_child(staging, values, required):
            return True
        try:
            snapshot = copy.deepcopy(values)
        except Exception:  # noqa: BLE001 - not copyable: written by the caller instead
            return False
        self._watch(staging, self._in_thread, staging, snapshot, required)
        return True

    def collect(self, wait: bool = False, only: list[str] | None = None) -> dict[str, dict[str, Any]]:
        """Finished writes as ``{staging: result}`` (waiting for them if asked)."""
        for staging, thread in list(self._threads.items()):
            if only is not None and staging not in only:
                continue
            if wait:
                thread.join()
            if not thread.is_alive():
                del self._threads[staging]
        with self._lock:
            done = {s: r for s, r in self._done.items() if only is None or s in only}
            for staging in done:
                del self._done[staging]
        return done

    # ------------------------------------------------------------------ ways
    def _watch(self, staging: str, target: Callable[..., dict[str, Any]], *args: Any) -> None:
        def run() -> None:
            try:
                result = target(*args)
            except Exception as e:  # noqa: BLE001 - reported to the executor, which discards the entry
                result = dump_error(e)
            with self._lock:
                self._done[staging] = result

        thread = threading.Thread(target=run, daemon=True, name=f"nbflow-dump-{Path(staging).name}")
        self._threads[staging] = thread
        thread.start()

    def _in_thread(self, staging: str, values: dict[str, Any], required: list[str]) -> dict[str, Any]:
        return self.dump(staging, values, required)

    def _start_child(self, staging: str, values: dict[str, Any], required: list[str]) -> bool:
        import joblib  # noqa: F401 - imported before forking: the child only writes

        parent = os.getpid()
        read_end, write_end = os.pipe()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # "multi-threaded fork": see docstring
                pid = os.fork()
        except OSError:
            os.close(read_end)
            os.close(write_end)
            return False
        if pid == 0:  # pragma: no cover - the child: coverage does not follow it
            status = 1
            try:
                os.close(read_end)
                _become_writer(parent)
                result = self.dump(staging, values, required)
                if "error" not in result:
                    for name in result.get("files", {}):
                        fsync_path(Path(staging) / name)
                _write_all(write_end, json.dumps(result).encode())
                status = 0
            finally:
                os._exit(status)
        os.close(write_end)
        self._watch(staging, _child_result, pid, read_end)
        return True


#: Where the types of values a forked writer may pickle come from: pure Python and NumPy/pandas
#: memory. Anything else (a CUDA tensor, a database handle...) may need threads or devices
#: the child does not have: it is copied and written by a thread instead.
FORK_SAFE_MODULES = frozenset(
    {"builtins", "numpy", "pandas", "__main__", "collections", "datetime", "decimal", "fractions", "pathlib", "uuid"}
)


def fork_safe(value: Any, depth: int = 3) -> bool:
    """Whether a forked child can pickle ``value`` (its type and, a few levels down, its
    items' types come from ``FORK_SAFE_MODULES``)."""
    if type(value).__module__.split(".")[0] not in FORK_SAFE_MODULES:
        return False
    if isinstance(value, dict):
        items = [*value.keys(), *value.values()]
    elif isinstance(value, list | tuple | set | frozenset):
        items = list(value)
    else:
        return True
    if not depth:
        return not items
    return all(fork_safe(item, depth - 1) for item in items[:1000]) and len(items) <= 1000


def _become_writer(parent: int) -> None:
    """In the forked child: quiet, deaf to the kernel's interrupts, dying with the kernel."""
    devnull = open(os.devnull, "w")  # noqa: SIM115 - lives until os._exit
    sys.stdout = sys.stderr = devnull
    with contextlib.suppress(OSError):
        os.dup2(devnull.fileno(), 1)
        os.dup2(devnull.fileno(), 2)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            import ctypes

            ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: killed if the kernel dies
    if os.getppid() != parent:  # the kernel died before the line above
        os._exit(1)


def _child_result(pid: int, read_end: int) -> dict[str, Any]:
    chunks = []
    with os.fdopen(read_end, "rb") as pipe:
        while chunk := pipe.read(1 << 16):
            chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return {"error": f"the background writer was killed (signal {os.WTERMSIG(status)})", "errno": None}
    if os.WEXITSTATUS(status) != 0 or not chunks:
        return {"error": f"the background writer failed (exit status {os.WEXITSTATUS(status)})", "errno": None}
    return json.loads(b"".join(chunks))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    os.close(fd)
