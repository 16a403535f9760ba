"""The Dask executor's pure parts: how deaths are told, resources, options, the CLI's
choice of executor. (Runs on a real cluster are in tests/e2e/test_dask_executor.py.)"""

from __future__ import annotations

import pytest

from nbflow import load_pipeline
from nbflow.cli import _executor_from_args, build_parser
from nbflow.errors import PipelineError
from nbflow.executors.dask import DaskExecutor, resource_amounts
from nbflow.executors.dask_cluster import _loopback, _record_death, death_text

from .conftest import step


def test_death_text_names_the_signal_and_the_likely_cause():
    assert death_text(-9) == "worker died (signal 9; possibly out of memory)"
    assert death_text(-15) == "worker died (signal 15, SIGTERM)"
    assert death_text(3) == "worker died (exit code 3)"


def test_deaths_are_read_from_the_nannys_log_lines():
    deaths: dict[int, str] = {}
    _record_death("Worker process 4242 was killed by signal 9", deaths)
    _record_death("Worker process 17 exited with status 1", deaths)
    _record_death("Worker tcp://127.0.0.1:1234 (pid=99) exceeded 95% memory budget. Restarting...", deaths)
    _record_death("Nanny asking worker to close", deaths)
    assert deaths == {
        4242: "worker died (signal 9; possibly out of memory)",
        17: "worker died (exit code 1)",
        99: "worker died (it used more than 95% of its memory limit)",
    }


def test_resource_tags_become_dask_amounts(make_notebook):
    path = make_notebook([step("train", "x = 1", "resources:memory=4GB", "resources:gpu=1")])
    pipeline = load_pipeline(path)
    assert resource_amounts(pipeline.steps["train"]) == {"memory": 4e9, "gpu": 1.0}


def test_a_bad_resource_amount_names_the_cell_and_step(make_notebook):
    path = make_notebook([step("train", "x = 1", "resources:gpu=lots")])
    pipeline = load_pipeline(path)
    with pytest.raises(PipelineError, match=r'cell 1 \(step "train"\): resources:gpu=lots is not a number'):
        resource_amounts(pipeline.steps["train"], path)


def test_loopback_addresses():
    assert _loopback("tcp://127.0.0.1:8786") and _loopback("localhost:8786") and _loopback("tcp://[::1]:8786")
    assert not _loopback("tcp://10.0.0.5:8786") and not _loopback("scheduler.example:8786")


def test_executor_options_are_checked():
    with pytest.raises(PipelineError, match="--workers 0: need at least one worker"):
        DaskExecutor(workers=0)
    with pytest.raises(PipelineError, match="cannot resize a given cluster"):
        DaskExecutor(scheduler="tcp://127.0.0.1:8786", workers=2)
    with pytest.raises(PipelineError, match="--retries -1"):
        DaskExecutor(retries=-1)


def _args(*argv: str):
    return build_parser().parse_args(["run", "nb.ipynb", *argv])


def test_dask_flags_choose_the_dask_executor():
    assert _executor_from_args(_args()) is None
    assert _executor_from_args(_args("--executor", "kernel")) == "kernel"
    executor = _executor_from_args(_args("--workers", "2", "--no-shared-cache"))
    assert isinstance(executor, DaskExecutor)
    assert (executor.workers, executor.shared_cache) == (2, False)
    # --retries is every executor's (start_run's), no longer a Dask flag
    assert _executor_from_args(_args("--executor", "kernel", "--retries", "1")) == "kernel"
    assert _executor_from_args(_args("--scheduler", "tcp://127.0.0.1:8786")).scheduler == "tcp://127.0.0.1:8786"
    with pytest.raises(PipelineError, match="--workers only apply to --executor dask"):
        _executor_from_args(_args("--executor", "kernel", "--workers", "2"))
