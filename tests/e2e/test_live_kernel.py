"""``%nbflow`` and the live driver in a real kernel (jupyter_client, as a console or
JupyterLab drives it): restores equal the run's values, runs in the kernel are runs of the
run store, interrupts cancel cleanly, bad input is one line, hand runs are cached only
when proven."""

from __future__ import annotations

import json
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest

import nbflow
from nbflow import load_pipeline
from nbflow.config import Config

from ..conftest import code, step, write_notebook
from .live import Kernel, text_of


def pipeline_notebook(folder: Path, square: str = "sq = data ** 2\nnoise = np.random.rand(2)") -> Path:
    return write_notebook(
        folder / "p.ipynb",
        [
            code("import numpy as np"),
            code("n = 4", "parameters"),
            step(
                "load",
                "data = np.arange(n) * 1.5\nbig = np.ones(300_000)\nnp.random.seed(7)\nprint('loaded', len(data))",
            ),
            step("square", square),
            step("report", "total = float(sq.sum()) + n\nprint(total)"),
        ],
    )


def edit(path: Path, index: int, source: str) -> None:
    nb = nbformat.read(path, 4)
    nb.cells[index].source = source
    nbformat.write(nb, path)


@pytest.fixture
def kernel(tmp_path):
    k = Kernel(tmp_path)
    try:
        assert k.text("%load_ext nbflow") == ""
        yield k
    finally:
        k.close()


def run_record(path: Path, run_id: int) -> tuple[dict, dict[str, str]]:
    store = Config.for_notebook(path).open_store()
    try:
        return store.run(run_id), {s["step"]: s["status"] for s in store.steps(run_id)}
    finally:
        store.close()


def test_restore_after_a_cli_run_gives_the_runs_values(tmp_path, kernel):
    path = pipeline_notebook(tmp_path)
    first = load_pipeline(path).run()
    assert first.status == "done", first.error

    shown = kernel.text("%nbflow restore --notebook p.ipynb")
    assert f"restored from load (run {first.id}): big, data" in shown
    assert f"restored from square (run {first.id}): noise, sq" in shown
    assert f"restored from report (run {first.id}): total" in shown
    for step_name, name in [("load", "data"), ("square", "sq"), ("square", "noise"), ("report", "total")]:
        expected = nbflow.result(path, step_name, name, run=first.id)
        assert np.array_equal(np.asarray(kernel.value(f"np.asarray({name}).tolist()")), np.asarray(expected))
    assert kernel.value("n") == 4
    assert kernel.value("type(big).__name__") == "memmap"  # large arrays are memory-mapped
    # hidden state: numpy's generator is where the plain run left it after "report"
    np.random.seed(7)
    np.random.rand(2)
    assert kernel.value("np.random.rand(2).tolist()") == np.random.rand(2).tolist()
    # without a step: only what the kernel does not hold yet
    again = kernel.text("%nbflow restore")
    assert "restored from" not in again and "nothing restored" in again

    # STEP: the values it reads, from the steps that provide them
    kernel.text("del sq")
    assert kernel.text("%nbflow restore report") == f"restored from square (run {first.id}): sq\n"


def test_run_stale_runs_the_edited_step_and_its_dependants_as_a_recorded_run(tmp_path, kernel):
    path = pipeline_notebook(tmp_path)
    first = load_pipeline(path).run()
    kernel.text("%nbflow restore --notebook p.ipynb")
    status = kernel.text("%nbflow status")
    assert status.splitlines() == [
        f"load    current values (restored, run {first.id})",
        f"square  current values (restored, run {first.id})",
        f"report  current values (restored, run {first.id})",
    ]

    edit(path, 3, "sq = data ** 3\nnoise = np.random.rand(2)\nsq.sum()")
    assert kernel.text("%nbflow status").splitlines()[1].startswith("square  older values (stale")
    shown = kernel.text("%nbflow run --stale")
    assert "[nbflow] load: running" not in shown
    assert "[nbflow] square: running (code changed)" in shown
    assert "[nbflow] report: running (upstream square changed)" in shown
    assert "np.float64(" in shown  # the step's displayed value is shown in the magic's cell
    run_id = first.id + 1
    assert f"run {run_id}: done (1 cached, 2 done)" in shown
    record, steps = run_record(path, run_id)
    assert record["executor"] == "live" and record["status"] == "done"
    assert steps == {"load": "cached", "square": "done", "report": "done"}
    # cached as the kernel executor caches: a CLI run now has nothing to do, same values
    pipeline = load_pipeline(path)
    assert pipeline.plan().to_run == []
    assert kernel.value("sq.tolist()") == nbflow.result(path, "square", "sq").tolist()
    assert (
        kernel.value("total") == nbflow.result(path, "report", "total") == float(((np.arange(4) * 1.5) ** 3).sum()) + 4
    )
    entry = pipeline.config.cache().lookup("square", pipeline.plan()["square"].key)
    assert entry.manifest["executor"] == "live" and entry.manifest["run_id"] == run_id
    outputs = pipeline.config.cache().load_outputs(entry)
    assert outputs[0][-1]["output_type"] == "execute_result"
    listed = nbflow_runs(path)
    assert f"{run_id}    p.ipynb   done" in listed and "1 cached, 2 done" in listed

    assert kernel.text("%nbflow status").splitlines()[1] == f"square  current values (run, run {run_id})"
    kernel.text("sq = 0")  # a scratch cell: sq is no step's value any more
    assert kernel.text("%nbflow status").splitlines()[1] == "square  not in this kernel"


def nbflow_runs(path: Path) -> str:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "nbflow", "runs", str(path)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_interrupt_cancels_a_run_in_the_kernel_cleanly(tmp_path, kernel):
    path = write_notebook(
        tmp_path / "p.ipynb",
        [
            step("fast", "a = 1"),
            step("slow", "import time\nfor _ in range(600):\n    time.sleep(0.1)\nb = a + 1"),
            step("after", "c = b + 1"),
        ],
    )
    msg_id = kernel.send("%nbflow run --notebook p.ipynb")
    kernel.outputs(msg_id, until="[nbflow] slow: running")
    time.sleep(0.5)
    kernel.km.interrupt_kernel()
    shown = text_of(kernel.outputs(msg_id))
    assert "run 1: cancelled" in shown
    record, steps = run_record(path, 1)
    assert record["status"] == "cancelled"
    assert steps == {"fast": "done", "slow": "cancelled", "after": "cancelled"}
    pipeline = load_pipeline(path)
    plan = pipeline.plan()
    assert plan["fast"].state == "fresh"  # committed before the interrupt
    assert plan["slow"].state == "stale" and plan["after"].state == "stale"
    staging = (
        [p for p in (pipeline.config.cache_dir / "slow").glob(".staging-*")]
        if (pipeline.config.cache_dir / "slow").exists()
        else []
    )
    assert staging == []
    assert kernel.value("1 + 1") == 2  # the kernel goes on
    assert kernel.text("%nbflow status").splitlines()[1] == "slow   not in this kernel"


def test_bad_input_is_one_clear_line(tmp_path, kernel):
    pipeline_notebook(tmp_path)
    for line, expected in [
        ("%nbflow run --to nope --notebook p.ipynb", "p.ipynb: --to nope: no such step (steps: load, square, report)"),
        ("%nbflow restore nope --notebook p.ipynb", "p.ipynb: restore nope: no such step"),
        ("%nbflow run -p nope 3 --notebook p.ipynb", "nope"),
        ("%nbflow frobnicate", "usage: %nbflow restore"),
        ("%nbflow run --to", "expected one argument"),
        ("%nbflow status --notebook missing.ipynb", "missing.ipynb: no such notebook"),
    ]:
        outputs = kernel.run(line)
        # IPython shows a UsageError as one line on stderr, without a traceback
        assert len(outputs) == 1 and outputs[0]["name"] == "stderr", outputs
        text = outputs[0]["text"]
        assert text.startswith("UsageError: ") and expected in text and text.count("\n") == 1, text


def test_the_frontend_driver_over_silent_requests(tmp_path, kernel):
    path = pipeline_notebook(tmp_path)
    first = load_pipeline(path).run()
    editor = json.loads(path.read_text())
    for cell in editor["cells"]:
        cell["source"] = "".join(cell["source"])
        if cell["cell_type"] == "code":
            cell["outputs"] = []
    editor["cells"][3]["source"] = "sq = data ** 3\nnoise = np.random.rand(2)"  # an unsaved edit

    begun = kernel.driver("begin", path="p.ipynb", notebook=editor, mode="stale")
    assert begun["run_id"] == first.id + 1
    actions = {s["name"]: (s["action"], s["reason"]) for s in begun["steps"]}
    assert actions == {
        "load": ("restore", "fresh"),
        "square": ("run", "code changed"),
        "report": ("run", "upstream square changed"),
    }
    load_step = begun["steps"][0]
    assert load_step["cell_ids"] == [editor["cells"][2]["id"]] and load_step["cell_indexes"] == [2]
    assert load_step["outputs"][editor["cells"][2]["id"]][0]["text"] == "loaded 4\n"
    restored = kernel.driver("restore", step="load")
    assert restored == {
        "restored": {"big": {"step": "load", "run_id": first.id}, "data": {"step": "load", "run_id": first.id}},
        "missing": {},
    }
    for name in ("square", "report"):
        cell = next(
            c
            for c in editor["cells"]
            if c["id"] == begun["steps"][[s["name"] for s in begun["steps"]].index(name)]["cell_ids"][0]
        )
        assert kernel.driver("step_started", step=name) == {}
        outputs = kernel.run(cell["source"], cell["id"])
        finished = kernel.driver("step_finished", step=name, outputs={cell["id"]: outputs}, error=None)
        assert finished["status"] == "done"
    ended = kernel.driver("finish", status="done")
    assert ended == {"run_id": first.id + 1, "status": "done", "counts": {"cached": 1, "done": 2}}
    record, steps = run_record(path, first.id + 1)
    assert record["executor"] == "live" and steps == {"load": "cached", "square": "done", "report": "done"}
    # the entry holds the editor's code's values and the outputs the frontend sent
    edit(path, 3, editor["cells"][3]["source"])
    pipeline = load_pipeline(path)
    assert pipeline.plan().to_run == []
    assert nbflow.result(path, "square", "sq").tolist() == ((np.arange(4) * 1.5) ** 3).tolist()
    entry = pipeline.config.cache().lookup("report", pipeline.plan()["report"].key)
    assert (
        pipeline.config.cache().load_outputs(entry)[0][0]["text"] == f"{float(((np.arange(4) * 1.5) ** 3).sum()) + 4}\n"
    )
    status = kernel.driver("status", path="p.ipynb", notebook=editor)
    assert status == {"steps": {"load": "current", "square": "current", "report": "current"}, "why": {}}

    # problems come back as one line, never as an exception
    assert kernel.driver("restore", step="load") == {"error": "no live run in this kernel: call begin first"}
    assert "no such step" in kernel.driver("begin", path="p.ipynb", mode="to", step="nope")["error"]
    assert kernel.driver("begin", path="p.ipynb", mode="sideways")["error"].startswith("p.ipynb: unknown mode")
    assert kernel.driver("nope")["error"].startswith("no driver function 'nope'")
    assert "no such notebook" in kernel.driver("status", path="gone.ipynb")["error"]


def test_the_drivers_answers_bring_the_runs_events_as_they_happen(tmp_path, kernel):
    """Each answer brings the events published since the last one, as the REST API's stream
    sends them: a failed check's ``CheckFailed`` comes with the check's ``step_finished``,
    before the run ends; the step that needs the checked one is skipped and the run goes on."""
    check = nbformat.v4.new_code_cell("assert len(x) == 4, f'x has {len(x)} rows'")
    check.metadata["tags"] = ["check:c"]
    path = write_notebook(
        tmp_path / "k.ipynb", [step("c", "x = list(range(3))"), check, step("d", "y = len(x)"), step("e", "z = 1")]
    )
    begun = kernel.driver("begin", path="k.ipynb", mode="stale")
    order = [s["name"] for s in begun["steps"] if s["action"] == "run"]
    assert order == ["c", "c.check1", "d", "e"]
    assert [(e["type"], e.get("step")) for e in kernel.events] == [("RunStarted", None)] + [
        ("StepQueued", name) for name in order
    ]
    cells = {s["name"]: s["cell_ids"][0] for s in begun["steps"]}
    sources = {c.id: c.source for c in nbformat.read(path, 4).cells}
    for name in ("c", "c.check1"):
        kernel.events.clear()
        assert kernel.driver("step_started", step=name) == {}
        outputs = kernel.run(sources[cells[name]], cells[name])
        error = "AssertionError: x has 3 rows" if name == "c.check1" else None
        finished = kernel.driver("step_finished", step=name, outputs={cells[name]: outputs}, error=error)
        assert finished["status"] == ("failed" if error else "done")
    said = 'k.ipynb, cell 2 (step "c"): check failed: AssertionError: x has 3 rows'
    assert [(e["type"], e["step"], e.get("status")) for e in kernel.events] == [
        ("StepStarted", "c.check1", None),
        ("StepFinished", "c.check1", "failed"),
        ("CheckFailed", "c", None),
    ]
    failed = {k: v for k, v in kernel.events[-1].items() if k != "time"}
    assert failed == {"type": "CheckFailed", "run_id": begun["run_id"], "step": "c", "check": "c.check1", "error": said}
    kernel.events.clear()
    assert kernel.driver("step_started", step="d") == {"status": "skipped"}
    assert [(e["type"], e["step"], e["status"]) for e in kernel.events] == [("StepFinished", "d", "skipped")]
    assert kernel.driver("step_started", step="e") == {}
    outputs = kernel.run(sources[cells["e"]], cells["e"])
    assert kernel.driver("step_finished", step="e", outputs={cells["e"]: outputs})["status"] == "done"
    kernel.events.clear()
    assert kernel.driver("finish", status="failed")["counts"] == {"done": 1, "failed": 2, "skipped": 1}
    assert kernel.events[-1]["type"] == "RunFinished" and kernel.events[-1]["status"] == "failed"
    _, steps = run_record(path, begun["run_id"])
    assert steps == {"c": "failed", "c.check1": "failed", "d": "skipped", "e": "done"}
    seen = len(kernel.events)
    assert kernel.driver("status", path="k.ipynb")["steps"]["e"] == "current"
    assert len(kernel.events) == seen  # no run open: an answer brings no events


def test_hand_runs_are_cached_only_when_their_key_is_proven(tmp_path, kernel):
    path = pipeline_notebook(tmp_path)
    load_pipeline(path).run(only=["load"])  # load cached; square and report never ran
    nb = nbformat.read(path, 4)
    square_cell, report_cell = nb.cells[3], nb.cells[4]

    kernel.text("%nbflow restore --notebook p.ipynb")
    # Shift-Enter on square: its inputs came from a restore of the current load: proven
    kernel.text(square_cell.source, square_cell.id)
    status = kernel.driver("status", path="p.ipynb")
    assert status["steps"]["square"] == "current"
    pipeline = load_pipeline(path)
    plan = pipeline.plan()
    assert plan["square"].state == "fresh"
    assert nbflow.result(path, "square", "sq").tolist() == ((np.arange(4) * 1.5) ** 2).tolist()

    # a scratch cell changes sq: report run by hand now is not cached, and says why
    kernel.text("sq = sq + 1")
    assert kernel.text(report_cell.source, report_cell.id) == f"{float(((np.arange(4) * 1.5) ** 2).sum()) + 4 + 4}\n"
    status = kernel.driver("status", path="p.ipynb")
    assert status["steps"]["report"] == "by-hand"
    assert (
        status["why"]["report"] == "sq was changed by a cell that is not step square (%nbflow restore report fixes it)"
    )
    assert "report  ran by hand, not cached: sq was changed" in kernel.text("%nbflow status")
    assert load_pipeline(path).plan()["report"].state == "stale"

    # restoring what report reads makes the next hand run provable again
    kernel.text("%nbflow restore report")
    kernel.text(report_cell.source, report_cell.id)
    assert kernel.driver("status", path="p.ipynb")["steps"]["report"] == "current"
    assert nbflow.result(path, "report", "total") == float(((np.arange(4) * 1.5) ** 2).sum()) + 4

    # code that is not the notebook's (same cell id, edited in the editor, not saved)
    kernel.text(square_cell.source.replace("** 2", "** 5"), square_cell.id)
    status = kernel.driver("status", path="p.ipynb")
    assert status["steps"]["square"] == "by-hand" and "not the notebook's" in status["why"]["square"]


def test_run_in_the_kernel_retries_a_tagged_step_with_its_inputs_restored(tmp_path, kernel):
    marker = tmp_path / "failed-once"
    path = write_notebook(
        tmp_path / "p.ipynb",
        [
            step("load", "data = [1, 2, 3]"),
            step(
                "flaky",
                f"import pathlib\nm = pathlib.Path({str(marker)!r})\ndata.append(99)\n"
                "if not m.exists():\n    m.touch()\n    raise ConnectionError('network blip')\n"
                "total = sum(data)",
                "retry:1:0",
            ),
        ],
    )
    shown = kernel.text("%nbflow run --notebook p.ipynb")
    run_id = 1
    assert f"run {run_id}: done" in shown, shown
    assert kernel.value("total") == 105  # 1+2+3+99: the failed attempt's append did not leak into the retry
    assert nbflow.result(path, "flaky", "total") == 105
    assert nbflow.result(path, "load", "data") == [1, 2, 3]
    record, steps = run_record(path, run_id)
    assert steps == {"load": "done", "flaky": "done"}
    assert "attempt 1 of 2 failed" in nbflow_runs_show(path, run_id)


def test_the_driver_retries_a_tagged_step_the_frontend_ran_through_the_same_loop(tmp_path, kernel):
    marker = tmp_path / "failed-once"
    flaky_code = (
        f"import pathlib\nm = pathlib.Path({str(marker)!r})\ndata.append(99)\nprint('attempt', len(data))\n"
        "if not m.exists():\n    m.touch()\n    raise ConnectionError('network blip')\ntotal = sum(data)"
    )
    path = write_notebook(
        tmp_path / "p.ipynb",
        [step("load", "data = [1, 2, 3]"), step("flaky", flaky_code, "retry:1:0"), step("never", "x = 1", "retry:1:0")],
    )
    nb = nbformat.read(path, 4)
    load_cell, flaky_cell = nb.cells[0], nb.cells[1]
    assert kernel.driver("begin", path="p.ipynb", mode="to", step="flaky")["run_id"] == 1
    assert kernel.driver("step_started", step="load") == {}
    outputs = kernel.run(load_cell.source, load_cell.id)
    assert kernel.driver("step_finished", step="load", outputs={load_cell.id: outputs})["status"] == "done"
    # The frontend runs flaky's cell: it raises; the driver runs it again here, inputs restored.
    assert kernel.driver("step_started", step="flaky") == {}
    outputs = kernel.run(flaky_cell.source, flaky_cell.id)
    assert "ConnectionError: network blip" in text_of(outputs)
    finished = kernel.driver(
        "step_finished", step="flaky", outputs={flaky_cell.id: outputs}, error="ConnectionError: network blip"
    )
    assert finished["status"] == "done" and finished["attempts"] == 2, finished
    assert [o.get("text") for o in finished["outputs"][flaky_cell.id]] == ["attempt 4\n"]
    assert kernel.value("total") == 105  # the failed attempt's append did not leak into the retry
    assert kernel.driver("finish", status="done")["counts"] == {"done": 2, "skipped": 1}  # never: not asked for
    assert nbflow.result(path, "flaky", "total") == 105
    assert "attempt 1 of 2 failed (ConnectionError: network blip)" in nbflow_runs_show(path, 1)

    # A step the user interrupted is not retried, retry: or not.
    kernel.driver("begin", path="p.ipynb", mode="only", step="never")
    assert kernel.driver("step_started", step="never") == {}
    finished = kernel.driver("step_finished", step="never", outputs={}, error="cancelled", interrupted=True)
    assert finished == {"status": "cancelled", "key": finished["key"], "step_error": "interrupted (KeyboardInterrupt)"}
    assert kernel.driver("finish", status="cancelled")["status"] == "cancelled"
    assert run_record(path, 2)[1] == {"never": "cancelled", "load": "cached", "flaky": "cached"}


def nbflow_runs_show(path: Path, run_id: int) -> str:
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "nbflow", "show", str(run_id), "-C", str(path)],
        capture_output=True,
        text=True,
        cwd=path.parent,
        check=True,
    ).stdout


def test_restore_an_older_run_and_run_to_only_and_with_parameters(tmp_path, kernel):
    path = pipeline_notebook(tmp_path)
    first = load_pipeline(path).run()
    edit(path, 3, "sq = data ** 3\nnoise = np.random.rand(2)")
    second = load_pipeline(path).run()
    assert second.status == "done", second.error

    # --run N: an older run's values, named as such; status says they are not current
    shown = kernel.text(f"%nbflow restore --run {first.id} --notebook p.ipynb")
    assert f"restored from square (run {first.id}): noise, sq" in shown, shown
    assert kernel.value("sq.tolist()") == ((np.arange(4) * 1.5) ** 2).tolist()
    assert kernel.text("%nbflow status").splitlines()[1].startswith("square  older values (stale")

    # --to STEP: nothing is stale up to square: its current values are restored, nothing runs
    shown = kernel.text("%nbflow run --to square")
    assert shown.splitlines()[0] == "nothing to run: the steps asked for are fresh", shown
    assert f"restored from square (run {second.id}): noise, sq" in shown
    assert kernel.value("sq.tolist()") == ((np.arange(4) * 1.5) ** 3).tolist()

    # --only STEP: that step runs again (forced), what it reads comes from the cache
    shown = kernel.text("%nbflow run --only report")
    assert "[nbflow] report: running" in shown and "[nbflow] square: running" not in shown, shown
    assert f"run {second.id + 1}: done (2 cached, 1 done)" in shown, shown
    assert run_record(path, second.id + 1)[1]["report"] == "done"

    # -p NAME VALUE: parameters as the CLI's -p; every step reading n is stale under them
    shown = kernel.text("%nbflow run --to square -p n 5")
    assert "[nbflow] load: running" in shown and "[nbflow] square: running" in shown, shown
    assert "[nbflow] report: running" not in shown
    assert kernel.value("n") == 5 and kernel.value("data.tolist()") == (np.arange(5) * 1.5).tolist()
    assert kernel.value("sq.tolist()") == ((np.arange(5) * 1.5) ** 3).tolist()
    record, steps = run_record(path, second.id + 2)
    assert record["executor"] == "live" and steps["load"] == "done" and steps["square"] == "done", steps
    assert nbflow.result(path, "square", "sq", run=second.id + 2).tolist() == ((np.arange(5) * 1.5) ** 3).tolist()
