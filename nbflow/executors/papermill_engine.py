"""The ``nbflow`` papermill engine (entry point ``papermill.engine``).

Two callers:

- ``nbflow run`` (the kernel executor) passes its run context; the engine hands the
  work to the kernel executor's ``Session``.
- Anything else that drives papermill -- ``papermill IN OUT --engine nbflow -p n 3``,
  ``papermill.execute_notebook(..., engine_name="nbflow")``, Airflow's
  ``PapermillOperator(engine_name="nbflow")``, Jupyter Scheduler -- gets a whole nbflow
  run of the input notebook: the parameters papermill injected are the run's
  parameters, cached steps are restored, stale ones run, the run is recorded in the
  notebook's ``.nbflow``, and the executed cells come back to papermill, which writes
  OUT (and marks a failing cell) as it does for any engine.

It lives in its own module because papermill imports its engines while papermill itself
is being imported, and because the kernel executor must not import papermill before it
has started the kernel. It must not grow an execution path of its own: a run started
here is ``run.start_run``'s run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from papermill.engines import Engine
from papermill.exceptions import PapermillException

log = logging.getLogger("papermill")


class NbflowEngine(Engine):
    """Runs a notebook's pipeline through nbflow, for ``nbflow run`` or for papermill itself."""

    @classmethod
    def execute_managed_notebook(cls, nb_man: Any, kernel_name: str, **kwargs: Any) -> Any:
        ctx = kwargs.get("nbflow_context")
        if ctx is None:
            return run_for_papermill(nb_man, **kwargs)
        from .kernel_session import Session

        session = Session(nb_man, ctx, kwargs.get("nbflow_kernel"), kwargs.get("nbflow_verifier"))
        asyncio.run(session.run())
        return nb_man.nb


def notebook_path(nb: Any, input_path: Any) -> Path:
    """The local notebook file papermill read (its pipeline, cache and run store are next to it)."""
    path = input_path or nb.metadata.get("papermill", {}).get("input_path")
    if not isinstance(path, str | os.PathLike) or "://" in str(path) or str(path) == "-":
        raise PapermillException(
            f"the nbflow engine runs a notebook file on this machine (its cache is next to it), not {path!r}"
        )
    path = Path(path)
    if not path.is_file():
        raise PapermillException(f"the nbflow engine cannot find the notebook {str(path)!r}")
    return path


def run_for_papermill(nb_man: Any, **kwargs: Any) -> Any:
    """Run the notebook papermill is executing as an nbflow run; return the executed notebook.

    ``nbflow_config_from`` (a notebook path) takes the configuration -- cache, run store --
    of that notebook instead (Jupyter Scheduler runs a copy of the notebook it was made from).
    ``nbflow_report`` (``True``/``False``) overrides ``[tool.nbflow] report``. The run's end
    (its report, its hooks: ``run_end``) is over when this returns, so the caller finds the
    report recorded on the run.
    """
    import nbformat

    from ..config import Config
    from ..errors import NbflowError
    from ..graph import load_pipeline
    from ..progress import ProgressPrinter
    from ..project_context import in_project
    from ..run import start_run

    nb = nb_man.nb
    path = notebook_path(nb, kwargs.get("input_path"))
    params = dict(nb.metadata.get("papermill", {}).get("parameters") or {})
    fd, tmp = tempfile.mkstemp(prefix=".nbflow-papermill-", suffix=".ipynb", dir=path.resolve().parent)
    os.close(fd)
    try:
        try:
            # keyed in its pipeline of notebooks, as nbflow run NB keys it
            pipeline = in_project(load_pipeline(path, Config.for_notebook(kwargs.get("nbflow_config_from") or path)))
            run = start_run(
                pipeline,
                params,
                output=tmp,
                timeout=kwargs.get("execution_timeout"),
                listeners=[ProgressPrinter()] if kwargs.get("log_output") else [],
                report=kwargs.get("nbflow_report"),
            )
        except NbflowError as e:
            raise PapermillException(str(e)) from None
        try:
            run.wait()
        except KeyboardInterrupt:
            run.cancel()
            run.wait()
            raise
        for problem in run.wait_end():
            log.warning("nbflow: run %s: %s (the run's status is unchanged)", run.id, problem)
        log.info("nbflow: run %s %s (%s)", run.id, run.status, _summary(run))
        nb_man.nb.metadata["nbflow"] = nbformat.from_dict({**nb_man.nb.metadata.get("nbflow", {}), "run": run.id})
        if run.exception is not None or not os.path.getsize(tmp):
            raise PapermillException(f"nbflow run {run.id} of {path.name} failed: {run.error}")
        executed = nbformat.read(tmp, as_version=4)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    nb_man.nb.cells = [_plain_cell(cell) for cell in executed.cells if not _is_error_marker(cell)]
    return nb_man.nb


def _summary(run: Any) -> str:
    counts: dict[str, int] = {}
    for state in run.steps.values():
        counts[state["status"]] = counts.get(state["status"], 0) + 1
    return ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))


def _plain_cell(cell: Any) -> Any:
    """A cell without the index mark nbflow's own papermill run adds."""
    cell.metadata.pop("nbflow", None)
    return cell


def _is_error_marker(cell: Any) -> bool:
    """papermill's "An Exception was encountered" cell: papermill adds its own to OUT."""
    return "papermill-error-cell-tag" in cell.metadata.get("tags", [])
