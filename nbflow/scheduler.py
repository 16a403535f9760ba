"""Jupyter Scheduler's jobs run through nbflow (extra ``scheduler``).

jupyter-scheduler (the "Create a notebook job" dialog of JupyterLab, its job definitions
and their cron schedules) is extended through the two classes it documents as its
extension points, chosen with traitlets::

    jupyter lab --SchedulerApp.scheduler_class=nbflow.scheduler.NbflowScheduler \\
                --Scheduler.execution_manager_class=nbflow.scheduler.NbflowExecutionManager \\
                --SchedulerApp.job_files_manager_class=nbflow.scheduler.NbflowJobFilesManager

``NbflowScheduler`` is jupyter-scheduler's ``Scheduler``; when it copies a notebook into
the staging area (for a job, a job definition, or a job a definition's schedule starts)
it also notes which notebook the copy came from, and leaves nbflow's own folder
(``.nbflow``) out of a packaged input folder. ``NbflowExecutionManager`` is its default
execution manager with ``execute`` replaced: the staged notebook runs as a papermill run
with the ``nbflow`` engine, so the job's parameters are the run's parameters, cached steps
are restored from -- and new results stored in -- the cache of the notebook the job was
made from (the ``.nbflow`` next to it, where ``nbflow run`` and the JupyterLab panel keep
theirs), and the run is recorded in that notebook's run store. The job's output formats
are made from the executed notebook, and the run's HTML report -- every job's run writes
one at its end (``run_end``, as ``report = true`` asks for every run), recorded on the run
-- is copied next to them (``<notebook>-nbflow-report.html``); ``NbflowJobFilesManager``
(jupyter-scheduler's files manager) downloads it into the job's folder with them.

The job runs in its staging folder like any jupyter-scheduler job: steps that read files
need "Run job with input folder". This module must not change how jupyter-scheduler
stores, lists or schedules jobs.
"""

from __future__ import annotations

import ast
import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from jupyter_scheduler.executors import DefaultExecutionManager
from jupyter_scheduler.job_files_manager import JobFilesManager
from jupyter_scheduler.scheduler import Scheduler

log = logging.getLogger(__name__)

#: Next to a staged notebook: the notebook it was copied from (``{"notebook": path}``).
SOURCE = ".nbflow-source.json"


class NbflowScheduler(Scheduler):
    """jupyter-scheduler's ``Scheduler``, remembering where each staged notebook came from."""

    def copy_input_file(self, input_uri: str, copy_to_path: str) -> None:
        super().copy_input_file(input_uri, copy_to_path)
        self._note_source(input_uri, copy_to_path)

    def copy_input_folder(self, input_uri: str, nb_copy_to_path: str) -> list[str]:
        import shutil

        copied = super().copy_input_folder(input_uri, nb_copy_to_path)
        shutil.rmtree(os.path.join(os.path.dirname(nb_copy_to_path), ".nbflow"), ignore_errors=True)
        self._note_source(input_uri, nb_copy_to_path)
        return [f for f in copied if f.split(os.sep)[0] != ".nbflow"]

    def _note_source(self, input_uri: str, copy_to_path: str) -> None:
        source = Path(self.root_dir, input_uri)
        # a job of a job definition is copied from the definition's staged copy: follow it back
        noted = source.parent / SOURCE
        if noted.is_file():
            with contextlib.suppress(ValueError, OSError, KeyError):
                source = Path(json.loads(noted.read_text())["notebook"])
        Path(copy_to_path).parent.joinpath(SOURCE).write_text(json.dumps({"notebook": str(source.resolve())}))


class NbflowExecutionManager(DefaultExecutionManager):
    """Runs a job's notebook as an nbflow run (see the module docstring)."""

    def execute(self) -> None:
        import nbformat
        import papermill
        from papermill.exceptions import PapermillExecutionError

        job = self.model
        staged = Path(self.staging_paths["input"])
        staging_dir = staged.parent
        origin = _source_notebook(staged)
        params = job_parameters(job.parameters or {})
        executed_path = staging_dir / f".{staged.stem}-nbflow-executed.ipynb"
        failure: Exception | None = None
        try:
            try:
                papermill.execute_notebook(
                    str(staged),
                    str(executed_path),
                    parameters=params,
                    engine_name="nbflow",
                    progress_bar=False,
                    nbflow_config_from=str(origin),
                    nbflow_report=True,
                )
            except PapermillExecutionError as e:
                failure = e
            executed = nbformat.read(executed_path, as_version=4) if executed_path.exists() else None
        finally:
            with contextlib.suppress(FileNotFoundError):
                executed_path.unlink()
        if executed is not None:
            self._report(executed, origin, staging_dir / f"{staged.stem}-nbflow-report.html")
            self.add_side_effects_files(str(staging_dir))
            self.create_output_files(job, executed)
        if failure is not None:
            raise failure

    def _report(self, executed: Any, origin: Path, path: Path) -> None:
        """The report the job's run wrote at its end, copied next to the job's outputs
        (skipped, with a warning, when the run has none: no report extra, or it failed)."""
        import shutil

        from .config import Config

        run_id = executed.metadata.get("nbflow", {}).get("run")
        if run_id is None:
            return
        store = Config.for_notebook(origin).open_store(reconcile=False)
        try:
            written = store.artifacts(int(run_id)).get("report")  # the run's notebook is the staged copy
        finally:
            store.close()
        if not written or not Path(written).is_file():
            log.warning("nbflow: run %s has no report (nbflow show %s says why)", run_id, run_id)
            return
        try:
            shutil.copyfile(written, path)
        except OSError as e:
            log.warning("nbflow: the report of run %s was not copied to %s: %s", run_id, path, e)


class NbflowJobFilesManager(JobFilesManager):
    """jupyter-scheduler's job files manager; it also brings the run's report down with the job's files."""

    async def copy_from_staging(self, job_id: str, redownload: bool | None = False) -> None:
        import shutil

        from jupyter_server.utils import ensure_async

        await super().copy_from_staging(job_id, redownload)
        job = await ensure_async(self.scheduler.get_job(job_id, False))
        staging = await ensure_async(self.scheduler.get_staging_paths(job))
        if not staging or "input" not in staging:
            return
        staged = Path(staging["input"])
        report = staged.with_name(f"{staged.stem}-nbflow-report.html")
        folder = Path(self.scheduler.root_dir, self.scheduler.get_local_output_path(job, root_dir_relative=True))
        target = folder / report.name
        if report.is_file() and (redownload or not target.exists()):
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(report, target)


def job_parameters(parameters: dict[str, Any]) -> dict[str, Any]:
    """The values of a job's parameters: jupyter-scheduler pastes each text as code
    (``n = 3``), so a text is read as a Python literal, or taken as text when it is not one."""
    values = {}
    for name, text in parameters.items():
        if isinstance(text, str):
            try:
                values[name] = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                values[name] = text
        else:
            values[name] = text
    return values


def _source_notebook(staged: Path) -> Path:
    """The notebook the job was made from (its ``.nbflow`` holds the cache), else the staged copy."""
    noted = staged.parent / SOURCE
    try:
        source = Path(json.loads(noted.read_text())["notebook"])
        noted.unlink()  # not one of the job's files
    except (OSError, ValueError, KeyError):
        return staged
    return source if source.parent.is_dir() else staged
