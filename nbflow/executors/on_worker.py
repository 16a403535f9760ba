"""What runs on a Dask worker on the Dask executor's behalf (``run_step_on_worker``).

The Dask executor runs ``run_step_on_worker(spec, inputs, notify)`` as one task per
step. In the worker process it keeps one IPython shell (``WorkerShell``: magics,
``%%bash`` and ``!cmd`` work, the matplotlib inline backend is on, as in a kernel) and
for each task: clears the shell's namespace, runs the setup cells and the parameters
cell, sets the run's parameter values, restores the step's inputs (from the cache
folder, or from bytes that travelled through Dask when the workers cannot see it),
runs the step's cells capturing their outputs as nbformat output dicts (the shapes
nbclient records: ``stream``, ``display_data``, ``execute_result``, ``error``), and
dumps the step's values with ``Cache.dump_values`` -- into the shared cache's staging
folder, or into a private temporary folder whose files travel back as bytes. The
executor, on the client, writes the outputs and commits the entry, so both executors
make byte-compatible entries. One step runs at a time in a worker process (standard
streams, ``__main__`` and the working folder are per process); ``interrupt_step``
stops a step's user code from another thread (timeouts, cancel).

This module runs in worker processes: it must not talk to the run store or publish
events (the executor, on the client, does that), and must not import the client side.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .. import hidden_state
from ..cache import Cache, Entry
from ..fingerprint import StepWatch, in_namespace
from .cell_outputs import CellOutputs as _CellOutputs
from .in_kernel import restore_values
from .outcome import dump_error, element_fingerprint, element_label, error_text

#: One step at a time per worker process: streams, ``__main__`` and the cwd are global.
_STEP_LOCK = threading.Lock()
#: Steps running in this process, by task token (for ``interrupt_step``).
_RUNNING: dict[str, _WorkerTask] = {}
_SHELL: Any = None


#: The cell whose outputs are being captured (one step at a time per process).
_CURRENT: list[_CellOutputs | None] = [None]


class _Stream(io.TextIOBase):
    """``sys.stdout``/``sys.stderr`` while a step runs: text goes to the cell's outputs."""

    def __init__(self, name: str, fallback: Any) -> None:
        self.name = name
        self.fallback = fallback

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        current = _CURRENT[0]
        if current is None:
            return self.fallback.write(text)
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        current.stream(self.name, text)
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"


def _shell_class() -> type:
    from IPython.core.displayhook import DisplayHook
    from IPython.core.displaypub import DisplayPublisher
    from IPython.core.interactiveshell import InteractiveShell

    class Publisher(DisplayPublisher):
        def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kwargs) -> None:  # noqa: ANN001
            current = _CURRENT[0]
            if current is not None:
                current.display(data, metadata, transient, update)

        def clear_output(self, wait: bool = False) -> None:
            current = _CURRENT[0]
            if current is not None:
                current.clear(wait)

    class Hook(DisplayHook):
        def write_output_prompt(self) -> None:
            pass

        def write_format_data(self, format_dict, md_dict=None) -> None:  # noqa: ANN001
            current = _CURRENT[0]
            if current is not None:
                current.execute_result(format_dict, md_dict, self.prompt_count)

        def finish_displayhook(self) -> None:
            self._is_active = False

        def flush(self) -> None:
            # IPython's flush (called by reset) ends with gc.collect(): 26 ms per step
            # once numpy is loaded. The namespace is cleared right after it anyway.
            for n in range(1, self.prompt_count + 1):
                self.shell.user_ns_hidden.pop(f"_{n}", None)
                self.shell.user_ns.pop(f"_{n}", None)
            history = self.shell.user_ns.get("_oh")
            if history is not None:
                history.clear()
            self._, self.__, self.___ = "", "", ""

    class ZMQLikeWorkerShell(InteractiveShell):
        """An IPython shell whose outputs are captured per cell, as a kernel's would be.

        "ZMQ" in the name is on purpose: pandas (``in_ipython_frontend``) and others
        look for it to know their output goes to a notebook, not a terminal.
        """

        display_pub_class = Publisher
        displayhook_class = Hook
        # Present but empty, like a kernel without a front end: pandas (``is_terminal``)
        # and others check ``hasattr(shell, "kernel")`` to format for a notebook.
        kernel = None

        def _showtraceback(self, etype, evalue, stb) -> None:  # noqa: ANN001
            current = _CURRENT[0]
            if current is not None:
                current.error(getattr(etype, "__name__", str(etype)), str(evalue), stb)
            else:
                print(self.InteractiveTB.stb2text(stb), file=sys.__stderr__)

    return ZMQLikeWorkerShell


def worker_shell() -> Any:
    """This process's ``WorkerShell`` (created once; IPython's singleton instance)."""
    global _SHELL
    if _SHELL is not None:
        return _SHELL
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config as TraitletsConfig

    if InteractiveShell.initialized():
        raise RuntimeError(
            "this Dask worker runs inside an IPython process (a cluster with processes=False started in a "
            "notebook?); nbflow runs steps in worker processes of their own: use LocalCluster(processes=True)"
        )
    # What ipykernel does: plots made with matplotlib are displayed (captured) at the end of a cell.
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    config = TraitletsConfig()
    config.HistoryManager.enabled = False
    # Libraries (tqdm, plotly) look for this section to know they display in a notebook.
    config.IPKernelApp.nbflow_worker = True
    _SHELL = _shell_class().instance(config=config)
    _SHELL._nbflow_baseline = hidden_state.Baseline.capture()  # what each step starts from
    return _SHELL


class _WorkerTask:
    """One step running in this process: the thread to interrupt and why it was."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.thread = threading.get_ident()
        self.in_user_code = False
        self.reason: str | None = None
        self.lock = threading.Lock()

    def interrupt(self, reason: str) -> bool:
        """Raise ``KeyboardInterrupt`` in the step's code (only while user code runs)."""
        with self.lock:
            if self.reason is None:
                self.reason = reason
            if not self.in_user_code:
                return False
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self.thread), ctypes.py_object(KeyboardInterrupt))
            return True

    @contextlib.contextmanager
    def user_code(self) -> Any:
        with self.lock:
            if self.reason is not None:
                raise KeyboardInterrupt
            self.in_user_code = True
        try:
            yield
        finally:
            with self.lock:
                self.in_user_code = False


def interrupt_step(token: str, reason: str = "cancelled") -> bool:
    """Stop the step of task ``token`` if it runs in this process; ``True`` if it does."""
    task = _RUNNING.get(token)
    if task is None:
        return False
    task.interrupt(reason)
    return True


def running_steps() -> list[str]:
    """Tokens of the steps running in this process."""
    return list(_RUNNING)


def sees_cache(root: str, probe: str, token: str) -> bool:
    """Whether this process sees the cache folder the client wrote ``probe`` into."""
    try:
        return (Path(root) / probe).read_text() == token
    except OSError:
        return False


def run_step_on_worker(
    spec: Mapping[str, Any],
    inputs: Mapping[str, Mapping[str, Any]] | None = None,
    notify: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run one step in this process's IPython shell; return its outcome as plain data.

    ``spec`` (built by ``executors.dask``): ``token``, ``step``, ``folder`` (the
    notebook's), ``prelude`` (``[[kind, cell number, source]]``, kind ``setup`` or
    ``parameters``), ``params``, ``cells`` (``[[cell number, source]]``), ``restores``
    (``[[provider, key, names]]``), ``shared``, ``cache_root``, ``staging``, ``stored``,
    ``required``, ``by_reference``, ``output_limit``, ``timeout``, ``out_files`` (the
    step's ``out:`` paths) and, for a ``map:`` step, ``map``: ``{"iterable", "element",
    "expand": True}`` (only list the elements: count, fingerprints, labels) or
    ``{"iterable", "element", "index", "fingerprint"}`` (run the cells for that element).
    ``inputs`` holds, when the cache is not shared, each provider's values as
    ``{"values": descriptions, "files": {name: bytes}}``.

    ``notify`` is called with ``{"event": "started", ...}`` when the step's own cells
    start (after the setup and the restores).

    The outcome: ``status`` (``done``, ``failed``, ``setup-failed``, ``interrupted``,
    ``expanded`` with ``count``, ``fingerprints`` and ``labels``),
    ``started`` (whether the step's cells ran), ``error``, ``traceback``, ``reason`` (of
    an interrupt), ``duration`` (of the step's cells and dump; ``cpu_seconds`` of it on
    the CPU, ``dump_seconds`` writing values), ``outputs``
    (per step cell), ``prelude_outputs``, ``dumped`` (``Cache.dump_values``' answer) and,
    when the cache is not shared, ``files`` (the entry's files as bytes) and
    ``out_file_bytes`` (the ``out:`` files the step wrote, which the client puts in place).
    """
    with _STEP_LOCK:
        task = _WorkerTask(spec["token"])
        _RUNNING[task.token] = task
        try:
            with hidden_state.own_random_generator():
                return _WorkerStep(spec, inputs or {}, task, notify).run()
        finally:
            _RUNNING.pop(task.token, None)


class _WorkerStep:
    """The work of ``run_step_on_worker``, top to bottom in execution order."""

    def __init__(
        self,
        spec: Mapping[str, Any],
        inputs: Mapping[str, Mapping[str, Any]],
        task: _WorkerTask,
        notify: Callable[[dict[str, Any]], None] | None,
    ) -> None:
        self.spec = spec
        self.notify = notify
        self.inputs = inputs
        self.task = task
        self.shell = worker_shell()
        self.limit = int(spec.get("output_limit") or 20 << 20)
        self.displays: dict[str, list[dict[str, Any]]] = {}
        self.last_error: BaseException | None = None
        self.run_writes: list[str] = []
        self.result: dict[str, Any] = {
            "status": "done",
            "error": "",
            "traceback": "",
            "reason": None,
            "started": False,
            "pid": os.getpid(),
        }

    def run(self) -> dict[str, Any]:
        spec, shell = self.spec, self.shell
        saved = (sys.stdout, sys.stderr, os.getcwd(), list(sys.path))
        folder = spec.get("folder")
        try:
            sys.stdout, sys.stderr = _Stream("stdout", sys.__stdout__), _Stream("stderr", sys.__stderr__)
            if folder and os.path.isdir(folder):
                os.chdir(folder)
                sys.path.insert(0, folder)
            # Hidden state the previous step left in this process (options, environment,
            # figures) must not leak into this one.
            hidden_state.reset(shell._nbflow_baseline)
            self.baseline = hidden_state.Baseline.capture()
            shell.reset(new_session=False)
            shell.execution_count = 1
            if not self.run_prelude():
                return self.result
            if not self.replay():
                return self.result
            if not self.restore(self.spec["restores"]):
                return self.result
            # The step starts here, as in the kernel executor: after the setup and restores.
            self.result["started"] = True
            if self.notify is not None:
                self.notify({"event": "started", "token": self.task.token, "step": spec["step"], "pid": os.getpid()})
            if spec.get("map") and not self.bind_element():
                return self.result
            started = time.monotonic()
            cpu_started = time.thread_time()
            timer = self.start_timer()
            watch = StepWatch()
            watch.before(self.shell.user_ns, spec.get("watched") or (), spec.get("reads"))
            try:
                self.result["outputs"] = self.run_cells()
                if self.result["status"] == "failed" and self.restore_found_read():
                    self.result.update(status="done", error="", traceback="")
                    self.result["outputs"] = self.run_cells()
            finally:
                if timer is not None:
                    timer.cancel()
            self.run_writes = watch.run_writes(self.shell.user_ns, spec["stored"])
            if self.result["status"] == "done":
                self.collect_out_files()
            if self.result["status"] == "done":
                dumping = time.monotonic()
                self.dump()
                self.result["dump_seconds"] = time.monotonic() - dumping
            self.result["duration"] = time.monotonic() - started
            self.result["cpu_seconds"] = time.thread_time() - cpu_started
            return self.result
        finally:
            _CURRENT[0] = None
            with contextlib.suppress(Exception):
                shell.reset(new_session=False)  # release the step's values now, not at the next task
            sys.stdout, sys.stderr = saved[0], saved[1]
            with contextlib.suppress(OSError):
                os.chdir(saved[2])
            sys.path[:] = saved[3]

    # ----------------------------------------------------------------- cells
    def run_cell(self, source: str) -> tuple[list[dict[str, Any]], BaseException | None]:
        capture = _CellOutputs(self.limit, self.displays)
        _CURRENT[0] = capture
        error: BaseException | None = None
        try:
            with self.task.user_code():
                result = self.shell.run_cell(source, store_history=True)
            error = result.error_before_exec or result.error_in_exec
        except KeyboardInterrupt as e:  # arrived outside the cell's own code
            error = e
        finally:
            _CURRENT[0] = None
        return capture.finish(), error

    def run_prelude(self) -> bool:
        outputs = []
        for kind, number, source in self.spec["prelude"]:
            cell_outputs, error = self.run_cell(source) if source.strip() else ([], None)
            outputs.append(cell_outputs)
            if error is not None:
                self.result.update(
                    status="interrupted" if self.task.reason else "setup-failed",
                    reason=self.task.reason,
                    error=f"cell {number} ({kind}) raised {type(error).__name__}: {error}",
                    traceback=error_text(cell_outputs),
                )
                self.result["prelude_outputs"] = outputs
                return False
            if kind == "parameters":
                self.shell.user_ns.update(self.spec["params"])
        if not any(kind == "parameters" for kind, _, _ in self.spec["prelude"]):
            self.shell.user_ns.update(self.spec["params"])
        self.result["prelude_outputs"] = outputs
        return True

    def run_cells(self) -> list[list[dict[str, Any]]]:
        outputs: list[list[dict[str, Any]]] = []
        for number, source in self.spec["cells"]:
            if self.result["status"] != "done" or not source.strip():
                outputs.append([])
                continue
            cell_outputs, error = self.run_cell(source)
            outputs.append(cell_outputs)
            if self.task.reason is not None:
                self.result.update(status="interrupted", reason=self.task.reason, traceback=error_text(cell_outputs))
            elif error is not None:
                self.last_error = error
                self.result.update(
                    status="failed",
                    error=f"cell {number}: {type(error).__name__}: {error}",
                    traceback=error_text(cell_outputs),
                )
        return outputs

    def start_timer(self) -> threading.Timer | None:
        timeout = self.spec.get("timeout")
        if not timeout:
            return None
        timer = threading.Timer(float(timeout), self.task.interrupt, args=("timeout",))
        timer.daemon = True
        timer.start()
        return timer

    # --------------------------------------------------------------- fan-out
    def bind_element(self) -> bool:
        """For a ``map:`` step: list the elements (``expand``), or bind the one to run.

        The iterable is evaluated again in every element's task; an element whose
        fingerprint is not the one the client keyed it by fails the element rather
        than caching a result under another element's key.
        """
        import joblib

        fan = self.spec["map"]
        ns = self.shell.user_ns
        try:
            items = list(ns[fan["iterable"]])
        except Exception as e:  # noqa: BLE001 - reported as the step's failure
            self.result.update(
                status="failed", error=f"map:{fan['iterable']} cannot be iterated: {type(e).__name__}: {e}"
            )
            return False
        if fan.get("expand"):
            self.result.update(
                status="expanded",
                count=len(items),
                fingerprints=[element_fingerprint(item, joblib.hash) for item in items],
                labels=[element_label(item) for item in items],
            )
            return False
        index = int(fan["index"])
        if index >= len(items) or element_fingerprint(items[index], joblib.hash) != fan["fingerprint"]:
            self.result.update(
                status="failed",
                error=f"map:{fan['iterable']} gave other elements on this worker than when the step started "
                f"(element {index} differs): make it deterministic",
            )
            return False
        ns[fan["element"]] = items[index]
        return True

    def collect_out_files(self) -> None:
        """Fail the step if an ``out:`` output is missing (``outfiles.problem``); carry the
        files back when the client does not share this worker's disk."""
        from ..outfiles import expand, problem

        patterns = self.spec.get("out_files") or []
        why = problem(os.getcwd(), patterns, self.spec.get("optional_outs") or ())
        if why:
            self.result.update(status="failed", error=why)
            return
        if patterns and not self.spec["shared"]:
            found: dict[str, str] = {}
            before = {n: tuple(v) for n, v in (self.spec.get("out_before") or {}).items()}
            for pattern in patterns:
                for name in expand(os.getcwd(), pattern):
                    st = os.stat(name)
                    if before.get(name) != (st.st_size, st.st_mtime_ns):  # not the user's untouched file
                        found.setdefault(name, pattern)
            self.result["out_file_bytes"] = {n: Path(n).read_bytes() for n in found}
            self.result["out_file_patterns"] = found

    # ---------------------------------------------------------------- values
    def replay(self) -> bool:
        """Re-execute the steps whose state cannot be restored (pyplot's figures, modules
        nbflow has no rule for, steps tagged ``always``), as the setup is: ``spec["replay"]``
        is ``[[step, restores, cells]]`` in execution order."""
        for name, restores, cells in self.spec.get("replay") or []:
            if not self.restore(restores):
                return False
            for number, source in cells:
                cell_outputs, error = self.run_cell(source) if source.strip() else ([], None)
                if error is not None:
                    self.result.update(
                        status="interrupted" if self.task.reason else "failed",
                        reason=self.task.reason,
                        error=f'could not re-execute step "{name}" (cell {number}): {type(error).__name__}: {error}',
                        traceback=error_text(cell_outputs),
                    )
                    return False
        return True

    def restore(self, restores: list[list[Any]]) -> bool:
        ns = self.shell.user_ns
        try:
            for provider, key, names in restores:
                if self.spec["shared"]:
                    cache = Cache(self.spec["cache_root"])
                    entry = cache.lookup(provider, key)
                    if entry is None:
                        raise LookupError(f'no cache entry for step "{provider}" (key {key[:12]}) on this worker')
                    ns.update(in_namespace(restore_values(cache, entry, names, self.baseline), ns))
                else:
                    values, states = hidden_state.split(_load_payload(provider, key, names, self.inputs[provider]))
                    hidden_state.restore(states, self.baseline)
                    ns.update(in_namespace(values, ns))
        except Exception as e:  # noqa: BLE001 - reported as the step's failure
            self.result.update(status="failed", error=f"could not restore its inputs: {type(e).__name__}: {e}")
            return False
        return True

    def restore_found_read(self) -> bool:
        """After a ``NameError`` for a value an earlier step provides (``spec["providers"]``,
        shared cache only): restore it and say so, so the step runs again, once."""
        error = self.last_error
        name = getattr(error, "name", None) if isinstance(error, NameError) else None
        provider = (self.spec.get("providers") or {}).get(name or "")
        if provider is None or not self.spec["shared"]:
            return False
        step, key = provider
        try:
            cache = Cache(self.spec["cache_root"])
            entry = cache.lookup(step, key)
            if entry is None or name not in entry.names:
                return False
            ns = self.shell.user_ns
            ns.update(in_namespace(cache.load_values(entry, [name]), ns))
        except Exception:  # noqa: BLE001 - the step fails as it did
            return False
        self.result["found_reads"] = {name: step}
        return True

    def dump(self) -> None:
        spec = self.spec
        ns = self.shell.user_ns
        stored = [*spec["stored"], *self.run_writes]
        values = {n: ns[n] for n in stored if n in ns}
        values.update(hidden_state.capture(stored, self.baseline))
        self.result["learnt"] = StepWatch.learnt(ns, stored, self.run_writes)
        local = None if spec["shared"] else Path(tempfile.mkdtemp(prefix="nbflow-values-"))
        staging = Path(spec["staging"]) if local is None else local / "entry"
        try:
            self.result["dumped"] = Cache(staging.parent).dump_values(
                staging, values, spec["required"], spec["by_reference"]
            )
            if local is not None:
                self.result["files"] = {
                    name: (staging / name).read_bytes() for name in self.result["dumped"].get("files", {})
                }
        except Exception as e:  # noqa: BLE001 - reported to the executor (outcome.commit_entry)
            self.result["dumped"] = dump_error(e)
        finally:
            if local is not None:
                shutil.rmtree(local, ignore_errors=True)


def _load_payload(provider: str, key: str, names: list[str], payload: Mapping[str, Any]) -> dict[str, Any]:
    """Values of ``provider`` from an entry's files that travelled as bytes.

    ``payload`` is ``{"values", "files"}`` (an entry the client read) or the outcome of
    the provider's own task (``{"dumped": {"values"}, "files"}``) passed worker to worker.
    """
    folder = Path(tempfile.mkdtemp(prefix="nbflow-inputs-"))
    try:
        for name, data in payload["files"].items():
            (folder / name).write_bytes(data)
        described = payload["values"] if "values" in payload else payload["dumped"]["values"]
        entry = Entry(provider, key, folder, {"values": described})
        # Not memory-mapped: the folder is removed when the values are loaded.
        return Cache(folder).load_values(entry, names, mmap=False)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
