"""The kernel executor's client side of a Jupyter kernel: the process and the messages.

* ``start_kernel`` / ``shutdown_kernel``: the kernel process (unix sockets, no TCP port;
  its own output in the run's ``kernel.log``), ``kernel_death`` in words; ``EarlyKernel``:
  the same kernel started while the run is set up;
* papermill glue: ``register_translator`` (tuples and sets as literals),
  ``notebook_for_papermill``, ``execute_notebook`` (a disk that refuses the executed
  notebook ends the run with one line, ``outcome.OutputNotWritten``);
* ``client_class``: nbclient with outputs capped at the output limit (the kernel's own
  marker passes; ``outcome.dropped_marker`` counts what is dropped here) and
  ``user_expressions`` on a cell's request; ``expression_results`` reads their replies;
* ``SilentError``: a silent execution that raised, its traceback as plain text.

This module must not decide what runs or publish events: ``kernel_session.Session`` does.
"""

from __future__ import annotations

import ast
import contextlib
import json
import logging
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import NbflowError
from .outcome import OutputNotWritten, disk_error, dropped_marker, error_text, process_death, strip_ansi

if TYPE_CHECKING:
    from ..graph import Pipeline
    from .base import RunContext

#: Room past the output limit for the kernel's own marker (``outcome.cap_marker``), so the
#: client's cap only drops what a kernel without nbflow's limit sends.
_MARKER_ROOM = 4096


def execute_notebook(nb: Any, tmp: str, out: Path, **options: Any) -> None:
    """``papermill.execute_notebook`` into ``tmp``; a disk that refuses papermill's writes
    of the notebook ends the run with one line naming ``out`` (``OutputNotWritten``)."""
    import papermill

    _quiet_parameter_checks()
    try:
        papermill.execute_notebook(nb, tmp, **options)
    except OSError as e:
        if disk_error(e.errno) or e.filename in (tmp, str(out)):
            raise OutputNotWritten(out, e) from None
        raise


class _CheckedParameters(logging.Filter):
    """papermill warns that it cannot check the parameters of a kernel whose translator
    has no introspection (R, Julia), calling every parameter unknown: nbflow checked them
    against the parameters cell before the run started (``parameters.resolve_parameters``)."""

    NOTES = ("does not support parameter introspection", "Passed unknown parameter")

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(note in record.getMessage() for note in self.NOTES)


def _quiet_parameter_checks() -> None:
    log = logging.getLogger("papermill")
    if not any(isinstance(f, _CheckedParameters) for f in log.filters):
        log.addFilter(_CheckedParameters())


def start_kernel(ctx: RunContext) -> Any:
    """The run's kernel on unix sockets (no TCP port), its own output to the run's
    ``kernel.log``: the one ``EarlyKernel`` started while the run was set up, if any."""
    log_path = ctx.config.runs_dir / str(ctx.run_id) / "kernel.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    early, ctx.early_kernel = ctx.early_kernel, None
    if early is not None:
        return early.take(log_path)
    return _launch(ctx.pipeline, log_path)


def _launch(pipeline: Pipeline, log_path: Path) -> Any:
    from jupyter_client.manager import KernelManager

    sockets = tempfile.mkdtemp(prefix="nbflow-kernel-")
    km = KernelManager(kernel_name=pipeline.source.kernel_name, transport="ipc", ip=os.path.join(sockets, "k"))
    log = open(log_path, "ab")  # noqa: SIM115 - the kernel process writes to it until it exits
    try:
        km.start_kernel(cwd=str(pipeline.path.resolve().parent), stdout=log, stderr=log)
    except Exception as e:
        shutil.rmtree(sockets, ignore_errors=True)
        raise NbflowError(f"cannot start the {km.kernel_name!r} kernel: {e}") from e
    finally:
        log.close()
    km._nbflow_sockets = sockets  # removed with the kernel
    return km


class EarlyKernel:
    """A kernel started on a thread as soon as the plan says steps will run, so it boots
    on the other core while the run is recorded and papermill is imported (``start_run``
    creates it, ``start_kernel`` takes it, ``discard`` stops it if the run never does).

    Its log starts under a temporary name in the runs folder (the run has no id yet) and
    is renamed to the run's ``kernel.log`` when taken.
    """

    def __init__(self, pipeline: Pipeline, runs_dir: Path) -> None:
        self.log = runs_dir / f".kernel-{uuid.uuid4().hex}.log"
        self._km: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._start, args=(pipeline,), name="nbflow-kernel-start", daemon=True)
        self._thread.start()

    def _start(self, pipeline: Pipeline) -> None:
        try:  # a runs folder that cannot be made is named by the store, which is opened next
            self.log.parent.mkdir(parents=True, exist_ok=True)
            self._km = _launch(pipeline, self.log)
        except BaseException as e:  # noqa: BLE001 - raised where the kernel is taken
            self._error = e
            return
        with contextlib.suppress(Exception):
            import papermill  # noqa: F401 - the engine's import, done while the kernel boots

            # papermill validates the notebook as it reads and writes it: nbformat compiles
            # its schema validator on first use (~50 ms), here rather than on the run's path
            from nbformat import current_nbformat_minor
            from nbformat.validator import get_validator

            for minor in {pipeline.source.data.get("nbformat_minor"), current_nbformat_minor}:
                if isinstance(minor, int):
                    get_validator(version=4, version_minor=minor)

    def take(self, log_path: Path) -> Any:
        """The started kernel (raises what starting it raised), its log at ``log_path``."""
        self._thread.join()
        with contextlib.suppress(OSError):
            os.replace(self.log, log_path)
        if self._error is not None:
            raise self._error
        return self._km

    def discard(self) -> None:
        """Stop the kernel: the run did not need it (or could not start)."""
        self._thread.join()
        if self._km is not None:
            shutdown_kernel(self._km)
        with contextlib.suppress(OSError):
            os.unlink(self.log)


def shutdown_kernel(km: Any) -> None:
    with contextlib.suppress(Exception):
        if km.has_kernel:
            km.shutdown_kernel(now=True)
    with contextlib.suppress(Exception):
        km.cleanup_resources()
    shutil.rmtree(getattr(km, "_nbflow_sockets", ""), ignore_errors=True)


def kernel_death(km: Any) -> str:
    """How the kernel process ended, as a person would want to read it."""
    process = getattr(getattr(km, "provisioner", None), "process", None)
    code = process.poll() if process is not None else None
    return "kernel died" if code is None else process_death("kernel", code)


_registered = False


def register_translator() -> None:
    """Teach papermill's Python translator tuples and sets (it would stringify them)."""
    global _registered
    if _registered:
        return
    from papermill.translators import PythonTranslator, papermill_translators

    class Translator(PythonTranslator):
        @classmethod
        def translate(cls, val: Any) -> str:
            if isinstance(val, tuple):
                return "(" + "".join(f"{cls.translate(v)}, " for v in val).rstrip() + ")"
            if isinstance(val, set | frozenset):
                return "{" + ", ".join(cls.translate(v) for v in val) + "}" if val else "set()"
            return super().translate(val)

        @classmethod
        def translate_list(cls, val: list) -> str:
            return "[" + ", ".join(cls.translate(v) for v in val) + "]"

        @classmethod
        def translate_dict(cls, val: dict) -> str:
            return "{" + ", ".join(f"{cls.translate(k)}: {cls.translate(v)}" for k, v in val.items()) + "}"

    papermill_translators.register("python", Translator)
    _registered = True


def notebook_for_papermill(pipeline: Pipeline) -> Any:
    """The notebook as a NotebookNode, each cell marked with its original index."""
    import nbformat

    data = json.loads(json.dumps(pipeline.source.data))
    for index, cell in enumerate(data["cells"]):
        cell.setdefault("metadata", {})["nbflow"] = {"cell": index}
    metadata = data.setdefault("metadata", {})
    spec = metadata.get("kernelspec") or {}
    if not spec.get("language") and not (metadata.get("language_info") or {}).get("name"):
        # nbformat.v4.new_notebook() writes no language: papermill then cannot inject
        # parameters. Such a notebook runs in the Python kernel, as without parameters.
        metadata["kernelspec"] = {"display_name": "Python 3", **spec, "name": pipeline.source.kernel_name}
        metadata["kernelspec"].setdefault("language", "python")
    return nbformat.from_dict(data)


class SilentError(Exception):
    def __init__(self, content: Mapping[str, Any]) -> None:
        self.traceback = strip_ansi("\n".join(content.get("traceback", [])))
        super().__init__(f"{content.get('ename')}: {content.get('evalue')}")


def client_class() -> type:
    from nbclient import NotebookClient

    class StepClient(NotebookClient):
        """nbclient with capped outputs and ``user_expressions`` on a cell's request."""

        def __init__(self, *args: Any, output_limit: int, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.output_limit = output_limit
            self.output_bytes: dict[int, int] = {}
            self.dropped: dict[int, int] = {}
            self.last_reply: dict[str, Any] | None = None
            self.on_cell_executed = self._remember_reply

        def _remember_reply(self, cell: Any, cell_index: int, execute_reply: dict[str, Any]) -> None:
            self.last_reply = execute_reply

        async def execute_cell_with(
            self,
            cell: Any,
            index: int,
            expressions: dict[str, str] | None,
            metadata: dict[str, Any] | None = None,
        ) -> Any:
            """Run ``cell``, its execute request carrying ``expressions`` (``user_expressions``)
            and ``metadata`` (the request's, which ipykernel hands to the cell's hooks)."""
            self.output_bytes[index] = 0
            self.dropped[index] = 0
            self.last_reply = None
            kc = self.kc
            if expressions or metadata:

                def execute(code: str, **kw: Any) -> str:
                    content = {
                        "code": code,
                        "silent": kw.get("silent", False),
                        "store_history": kw.get("store_history", True),
                        "user_expressions": expressions or {},
                        "allow_stdin": kc.allow_stdin if kw.get("allow_stdin") is None else kw["allow_stdin"],
                        "stop_on_error": kw.get("stop_on_error", True),
                    }
                    msg = kc.session.msg("execute_request", content, metadata=metadata or {})
                    kc.shell_channel.send(msg)
                    return msg["header"]["msg_id"]

                kc.execute = execute
            try:
                return await self.async_execute_cell(cell, index)
            finally:
                if expressions or metadata:
                    del kc.execute
                if self.dropped.get(index):
                    from nbformat.v4 import new_output

                    cell.outputs.append(new_output("stream", name="stderr", text=dropped_marker(self.dropped[index])))

        def output(self, outs: list, msg: dict, display_id: str | None, cell_index: int) -> Any:
            size = _message_size(msg)
            used = self.output_bytes.get(cell_index, 0)
            if used + size > self.output_limit + _MARKER_ROOM and msg["msg_type"] != "error":
                self.dropped[cell_index] = self.dropped.get(cell_index, 0) + size
                return None
            self.output_bytes[cell_index] = used + size
            return super().output(outs, msg, display_id, cell_index)

    return StepClient


def _message_size(msg: dict[str, Any]) -> int:
    content = msg.get("content", {})
    if "text" in content:
        return len(content["text"])
    return sum(len(v) if isinstance(v, str) else len(json.dumps(v)) for v in content.get("data", {}).values())


def expression_results(reply: dict[str, Any] | None) -> dict[str, Any]:
    """The JSON each ``user_expression`` returned, or ``{"error": ...}`` for one that failed."""
    if reply is None:
        return {"nbflow": {"error": "the kernel sent no reply"}}
    results = {}
    for name, result in reply["content"].get("user_expressions", {}).items():
        if result.get("status") != "ok":
            results[name] = {"error": f"{result.get('ename')}: {result.get('evalue')}"}
        else:
            results[name] = json.loads(ast.literal_eval(result["data"]["text/plain"]))
    results.setdefault("nbflow", {"error": "the kernel did not evaluate the dump"})
    return results


def error_text_of(cell: Any) -> str:
    return error_text(cell.get("outputs", []))
