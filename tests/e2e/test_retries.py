"""Retries (``retry:N[:BACKOFF_S]`` tags, ``--retries N``) on both executors, with real
kernels and a real Dask LocalCluster: each attempt is an event, shown by ``nbflow show``
and the report, and starts from inputs restored from the cache."""

from __future__ import annotations

import pytest

import nbflow
from nbflow import load_pipeline
from nbflow.cli import main
from nbflow.events import StepRetried

from ..conftest import step

pytestmark = pytest.mark.slow


DASK_WORKERS = 1


@pytest.fixture(params=["kernel", "dask"])
def executor(request):
    """The executor under test: the kernel's name, or a Dask executor on the shared cluster."""
    if request.param == "kernel":
        return "kernel"
    from nbflow.executors.dask import DaskExecutor

    return DaskExecutor(request.getfixturevalue("client"), announce=False)


def flaky(marker, tags=("retry:2:0",)):
    """``load`` hands on a list; ``flaky`` changes it in place, then raises the first time."""
    return [
        step("load", "data = [1, 2, 3]"),
        step(
            "flaky",
            f"import pathlib\nm = pathlib.Path({str(marker)!r})\ndata.append(99)\n"
            "if not m.exists():\n    m.touch()\n    raise ConnectionError('network blip')\n"
            "total = sum(data)",
            *tags,
        ),
        step("after", "doubled = total * 2"),
    ]


def test_retry_restores_inputs_before_each_attempt(make_notebook, tmp_path, executor, capsys):
    path = make_notebook(flaky(tmp_path / "failed-once"))
    retried = []
    r = load_pipeline(path).run(
        executor=executor, listeners=[lambda e: retried.append(e) if isinstance(e, StepRetried) else None]
    )
    assert r.status == "done", r.error
    # 1+2+3+99: the failed attempt's append did not leak into the second one
    assert nbflow.result(path, "flaky", "total") == 105
    assert nbflow.result(path, "after", "doubled") == 210
    assert nbflow.result(path, "load", "data") == [1, 2, 3]
    assert [(e.step, e.attempt, e.attempts, e.delay) for e in retried] == [("flaky", 1, 3, 0.0)]
    assert "ConnectionError: network blip" in retried[0].error
    main(["show", str(r.id), "-C", str(path)])
    out = capsys.readouterr().out
    assert "warning: step flaky: attempt 1 of 3 failed" in out and "network blip" in out
    assert load_pipeline(path).plan()["flaky"].state == "fresh"


def test_retries_option_gives_up_after_n_plus_one_attempts(make_notebook, tmp_path, executor):
    counter = tmp_path / "attempts.txt"
    path = make_notebook(
        [
            step("load", "data = {'n': 0}"),
            step(
                "always",
                f"import pathlib\np = pathlib.Path({str(counter)!r})\n"
                "p.write_text(p.read_text() + 'x' if p.exists() else 'x')\n"
                "data['n'] += 1\nassert data['n'] == 1, data\nraise ValueError('still broken')",
            ),
            step("untagged", "y = 1", "retry:0"),
        ]
    )
    retried = []
    r = load_pipeline(path).run(
        executor=executor,
        retries=2,
        listeners=[lambda e: retried.append(e.attempt) if isinstance(e, StepRetried) else None],
    )
    assert r.status == "failed"
    assert counter.read_text() == "xxx"  # three attempts, each seeing n == 0 restored
    assert retried == [1, 2]
    assert "ValueError: still broken" in r.steps["always"]["error"]


def test_retry_tag_zero_turns_retries_off(make_notebook, tmp_path, executor):
    path = make_notebook(flaky(tmp_path / "failed-once", tags=("retry:0",)))
    r = load_pipeline(path).run(executor=executor, retries=3)
    assert r.status == "failed"
    assert "network blip" in r.steps["flaky"]["error"]


def test_retry_shows_in_the_report(make_notebook, tmp_path):
    from nbflow.report import build_report

    path = make_notebook(flaky(tmp_path / "failed-once"))
    r = load_pipeline(path).run()
    assert r.status == "done", r.error
    html = build_report(load_pipeline(path).config, r.id).read_text()
    assert "attempt 1 of 3 failed (cell 2: ConnectionError: network blip)" in html


def test_bad_retry_tag_and_option_are_one_line(make_notebook, capsys):
    path = make_notebook([step("a", "x = 1", "retry:two")])
    assert main(["plan", str(path)]) == 2
    err = capsys.readouterr().err
    assert "cell 1 (step \"a\"): tag 'retry:two' needs a number of retries" in err
    path = make_notebook([step("a", "x = 1")], name="ok.ipynb")
    assert main(["run", str(path), "--retries", "-1"]) == 2
    assert "--retries -1: must be 0 or more" in capsys.readouterr().err


def test_a_failing_map_element_is_retried(make_notebook, tmp_path, executor):
    marker = tmp_path / "element-failed-once"
    path = make_notebook(
        [
            step("load", "items = [1, 2, 3]"),
            step(
                "square",
                f"import pathlib\nm = pathlib.Path({str(marker)!r})\n"
                "if item == 2 and not m.exists():\n    m.touch()\n    raise TimeoutError('slow server')\n"
                "sq = item * item",
                "map:item=items",
                "retry:1:0",
            ),
        ]
    )
    retried = []
    r = load_pipeline(path).run(
        executor=executor, listeners=[lambda e: retried.append(e) if isinstance(e, StepRetried) else None]
    )
    assert r.status == "done", r.error
    assert nbflow.result(path, "square", "sq") == [1, 4, 9]
    assert len(retried) == 1 and "element 1" in retried[0].error and "slow server" in retried[0].error
