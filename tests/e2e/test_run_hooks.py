"""``nbflow run`` with hooks (``cli_hooks.py``) on both executors: real kernels, a real
Dask LocalCluster, a real local HTTP server for ``--notify``."""

from __future__ import annotations

import pytest

from nbflow.cli import main

from ..conftest import step
from ..test_hooks import serve_webhook

pytestmark = pytest.mark.slow


@pytest.fixture
def webhook():
    with serve_webhook() as server:
        yield server


FAILING = [step("load", "x = 1"), step("train", "raise ValueError('no convergence')")]


@pytest.mark.parametrize("executor", ["kernel", "dask"])
def test_run_calls_hooks_and_keeps_its_status(make_notebook, tmp_path, webhook, capsys, executor):
    """A real run that fails: the on-failure hook sees it, the webhook gets it, a failing
    on-success never runs; a hanging hook is stopped and the exit status is the run's."""
    path = make_notebook(FAILING)
    seen = tmp_path / "seen.txt"
    hook = f'echo "$NBFLOW_RUN_ID|$NBFLOW_STATUS|$NBFLOW_FAILED_STEP|$NBFLOW_REPORT" > {seen}; sleep 60'
    extra = ["--executor", "dask", "--workers", "1"] if executor == "dask" else []
    code = main(
        [
            "run",
            str(path),
            "-q",
            "--report",
            "--on-failure",
            hook,
            "--on-success",
            "exit 1",
            "--notify",
            webhook.url,
            "--hook-timeout",
            "3",
            *extra,
        ]
    )
    assert code == 1  # the run's own failure, neither better nor worse because of the hooks
    run_id, status, failed, report = seen.read_text().strip().split("|")
    assert (status, failed) == ("failed", "train")
    assert report.endswith(f"runs/{run_id}/report.html")
    assert webhook.received[0][1]["failed_step"] == "train"
    assert webhook.received[0][1]["run_id"] == int(run_id)
    err = capsys.readouterr().err
    assert "on-failure hook" in err and "did not finish within 3 s and was stopped" in err
    main(["show", run_id, "-C", str(path)])
    assert "did not finish within 3 s" in capsys.readouterr().out


def test_run_success_hook_from_pyproject(make_notebook, tmp_path, capsys):
    (tmp_path / "pyproject.toml").write_text(
        '[tool.nbflow]\non-success = "echo $NBFLOW_STATUS > done.txt"\non-failure = "exit 9"\n'
    )
    path = make_notebook([step("load", "x = 1")])
    assert main(["run", str(path), "-q"]) == 0
    assert (tmp_path / "done.txt").read_text() == "done\n"  # hooks run in the notebook's folder
    (tmp_path / "pyproject.toml").write_text("[tool.nbflow]\nnotify = 3\n")
    assert main(["run", str(path), "-q"]) == 2
    assert "notify = 3: write a string" in capsys.readouterr().err
