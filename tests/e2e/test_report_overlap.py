"""Reports whose nbconvert half a forked worker renders (``report/overlap.py``) are the serial path's pages.

Real runs with real kernels; the pages are compared byte for byte once Bokeh's own ids
(random UUIDs and a per-process counter, different on every render, serial or not) are
replaced by their order of appearance, and the time of writing and the page policy's
script hashes are blanked.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from nbflow import load_pipeline

from ..conftest import code, md, step, write_notebook

pytestmark = pytest.mark.slow

NOTEBOOK = [
    md("# Overlap\nA report with *markdown*, outputs and an error."),
    code("n = 4", "parameters"),
    step("load", "data = list(range(n))\nprint('loaded', len(data))"),
    md("Totals, as **HTML**."),
    step(
        "total",
        "from IPython.display import HTML, display\ntotal = sum(data)\n"
        "display(HTML(f'<table><tr><td>{total}</td></tr></table><script>window.x = 1</script>'))",
    ),
    step("check", "assert total < 5, f'total {total} too big'"),
]

_IDS = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|\bp\d{4,}\b")
_GENERATED = re.compile(r" on \d{4}-\d\d-\d\d \d\d:\d\d:\d\d [^.<]*\. This file")
_HASHES = re.compile(r"sha256-[A-Za-z0-9+/]{43}=")


def canonical(html: str) -> str:
    """``html`` with Bokeh's ids numbered by first appearance; the generation time and the policy's script
    hashes (the embed script holds the ids; the scripts themselves are compared) blanked."""
    seen: dict[str, str] = {}
    html = _IDS.sub(lambda m: seen.setdefault(m.group(0), f"ID{len(seen)}"), html)
    return _HASHES.sub("sha256-", _GENERATED.sub(" on (time). This file", html))


@pytest.fixture(scope="module")
def failed_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("overlap")
    pipeline = load_pipeline(write_notebook(folder / "overlap.ipynb", NOTEBOOK))
    assert pipeline.run({}).status == "failed"  # run 1: total 6, the check fails
    return folder, pipeline


# In a new process: this one has the threads its runs left, and a process with threads never forks.
IN_A_PROCESS = """
import json, sys
from pathlib import Path
from nbflow.config import Config
from nbflow.report import build_report, collect_run, open_store, overlap, report_cells
from nbflow.publish import publish_site

what, folder, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
config = Config.for_folder(folder)
found = {}
if what == "cells":
    store = open_store(config)
    record = collect_run(config, 1, store, config.cache())
    store.close()
    with overlap.CellsElsewhere({t: (record, t) for t in (False, True)}) as elsewhere:
        theirs = {t: elsewhere.get(t) for t in (False, True)}
    found["nbconvert"] = "nbconvert" in sys.modules
    for t in (False, True):
        found[str(t)] = {"forked": theirs[t] is not None, "same": theirs[t] == report_cells(record, t)}
elif what in ("report", "broken worker"):
    if what == "broken worker":
        def broken(key):
            raise RuntimeError("the worker fails")
        overlap._cells_of = broken  # inherited by the forked worker: it raises there
    build_report(config, 1, output=out / "overlapped.html", jobs=2)
    found["nbconvert"] = "nbconvert" in sys.modules
    build_report(config, 1, output=out / "serial.html", jobs=1)
else:
    written = publish_site([folder], out / "overlapped").written
    found["nbconvert"] = "nbconvert" in sys.modules
    found["written"] = sorted(written)
    assert sorted(publish_site([folder], out / "serial", jobs=1).written) == found["written"]
print(json.dumps(found))
"""


def in_a_process(what: str, folder: Path, out: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", IN_A_PROCESS, what, str(folder), str(out)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_worker_renders_the_same_cells_as_this_process(failed_run, tmp_path):
    folder, _ = failed_run
    found = in_a_process("cells", folder, tmp_path)
    assert found == {
        "nbconvert": False,
        "False": {"forked": True, "same": True},
        "True": {"forked": True, "same": True},
    }


def test_build_report_with_a_worker_writes_the_serial_page(failed_run, tmp_path):
    folder, _ = failed_run
    assert in_a_process("report", folder, tmp_path) == {"nbconvert": False}  # the worker rendered the cells
    serial, overlapped = (tmp_path / "serial.html").read_text(), (tmp_path / "overlapped.html").read_text()
    assert "too big" in serial and "Totals, as <strong>HTML</strong>" in serial and "<script>window.x" not in serial
    assert canonical(overlapped) == canonical(serial)


def test_a_worker_that_fails_leaves_the_page_to_this_process(failed_run, tmp_path):
    folder, _ = failed_run
    assert in_a_process("broken worker", folder, tmp_path) == {"nbconvert": True}  # rendered here instead
    serial, fallback = (tmp_path / "serial.html").read_text(), (tmp_path / "overlapped.html").read_text()
    assert canonical(fallback) == canonical(serial)


def test_publish_with_a_worker_writes_the_serial_site(failed_run, tmp_path):
    folder, pipeline = failed_run
    assert pipeline.run({"n": 2}).status == "done"  # run 2: the site has 2 reports (below PARALLEL_FROM pages)
    found = in_a_process("publish", folder, tmp_path)
    assert found["nbconvert"] is False  # the reports' cells were rendered by the worker
    assert len(found["written"]) == 6 and "overlap/runs/1.html" in found["written"]
    for rel in found["written"]:
        serial, overlapped = (tmp_path / "serial" / rel).read_text(), (tmp_path / "overlapped" / rel).read_text()
        assert canonical(overlapped) == canonical(serial), rel


def test_cli_report_of_a_run(failed_run, tmp_path):
    folder, _ = failed_run
    out = tmp_path / "cli.html"
    nbflow = str(Path(sys.executable).with_name("nbflow"))
    done = subprocess.run(
        [nbflow, "report", "-C", str(folder), "1", "-o", str(out)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert "too big" in out.read_text() and "jp-CodeCell" in out.read_text()
