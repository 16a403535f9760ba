"""Valid notebooks that ran wrongly: reached through a symbolic link, written without
language metadata, or ending in an error nbflow did not expect."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from nbflow.store import RunStore

from ..conftest import code, step, write_notebook
from .conftest import check_invariants, nbflow_cli
from .test_faults import inject

pytestmark = pytest.mark.slow


def test_notebook_run_through_a_symlink_uses_the_real_folder_for_everything(folder):
    real = folder / "real"
    link = folder / "link"
    real.mkdir()
    link.mkdir()
    (real / "data.txt").write_text("1 2 3")
    cells = [
        step("read", "nums = [int(x) for x in open('data.txt').read().split()]", "in:data.txt"),
        step("write", "open('result.txt', 'w').write(str(sum(nums)))", "out:result.txt"),
    ]
    path = write_notebook(real / "pipeline.ipynb", cells)
    (link / "pipeline.ipynb").symlink_to(path)
    proc = nbflow_cli("run", str(link / "pipeline.ipynb"), cwd=folder)
    assert proc.returncode == 0, proc.stderr
    assert (real / "result.txt").read_text() == "6"
    assert sorted(p.name for p in link.iterdir()) == ["pipeline.ipynb"]  # nothing next to the link
    assert (real / ".nbflow" / "runs.db").exists()
    (real / "data.txt").write_text("1 2 3 4")  # an edit of the real input is seen through the link
    plan = nbflow_cli("plan", str(link / "pipeline.ipynb"))
    assert "2 of 2 steps would run" in plan.stdout, plan.stdout + plan.stderr
    assert nbflow_cli("run", str(link / "pipeline.ipynb")).returncode == 0
    assert (real / "result.txt").read_text() == "10"
    (real / "result.txt").unlink()  # a cached run restores the out: file in the real folder
    again = nbflow_cli("run", str(link / "pipeline.ipynb"))
    assert again.returncode == 0 and (real / "result.txt").read_text() == "10", again.stderr
    check_invariants(real)


def notebook_without_language(path: Path) -> Path:
    nb = nbformat.v4.new_notebook()  # no kernelspec, no language_info: what generators write
    nb.cells = [code("n = 2", "parameters"), step("double", "twice = n * 2")]
    nbformat.write(nb, path)
    assert "kernelspec" not in json.loads(path.read_text())["metadata"]
    return path


def test_notebook_without_language_metadata_runs_with_parameters_and_in_a_sweep(folder):
    path = notebook_without_language(folder / "pipeline.ipynb")
    proc = nbflow_cli("run", str(path), "-p", "n", "5")
    assert proc.returncode == 0, proc.stderr
    from nbflow import result

    assert result(path, "double", "twice", run=1) == 10
    sweep = nbflow_cli("sweep", str(path), "-p", "n", "1", "3")
    assert sweep.returncode == 0, sweep.stderr
    assert "failed unexpectedly" not in sweep.stderr
    assert "kernelspec" not in json.loads(path.read_text())["metadata"]  # the source is not rewritten
    check_invariants(folder)


def test_unexpected_failure_is_one_line_and_the_details_are_in_show(folder):
    path = write_notebook(folder / "pipeline.ipynb", [step("a", "x = 1")])
    env = inject(
        folder,
        """
        import nbflow.compare
        def broken(*args, **kwargs):
            raise RuntimeError("the snapshot disk fell off")
        nbflow.compare.save_snapshot = broken
        import nbflow.run
        nbflow.run.save_snapshot = broken
        """,
    )
    proc = nbflow_cli("run", str(path), env=env)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr, proc.stderr
    message = "pipeline.ipynb: RuntimeError: the snapshot disk fell off"
    assert f"run 1 failed unexpectedly: {message}; details: nbflow show 1" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == f"nbflow: error: {message}"
    shown = nbflow_cli("show", "1", cwd=folder)
    assert "Traceback" in shown.stdout and "the snapshot disk fell off" in shown.stdout
    assert RunStore(folder / ".nbflow" / "runs.db").run(1)["status"] == "failed"
    check_invariants(folder, proc)
