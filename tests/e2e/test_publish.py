"""``nbflow publish`` and ``nbflow run --report`` on real runs, the site opened in Chromium.

Two notebooks, several runs (one failed) and a sweep, run with real kernels; the site is
opened from ``file://`` with every request leaving the machine aborted and recorded
(``page.outside``). Then one more run and a second publish, which must write only the
new and changed pages.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from nbflow import load_pipeline
from nbflow.publish import MANIFEST, publish_site
from nbflow.store import RunStore
from nbflow.sweep import run_sweep

from ..conftest import code, md, step, write_notebook
from .conftest import screenshot

pytestmark = pytest.mark.slow

NBFLOW = str(Path(sys.executable).with_name("nbflow"))

ALPHA = [
    md("# Alpha\nSums numbers."),
    code("n = 3", "parameters"),
    step("load", "data = list(range(n))"),
    step("total", "total = float(sum(data))\ncount = len(data)"),
    step("check", "assert total < 100, 'too big'"),
]
BETA = [
    code("k = 2", "parameters"),
    step("square", "sq = k * k"),
    step("score", "score = sq / 10"),
]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """alpha: runs 1-3 (n=3, n=5, n=20 fails); beta: sweep over k=1,2 (runs 4, 5), then k=3 (run 6)."""
    folder = tmp_path_factory.mktemp("project")
    alpha = load_pipeline(write_notebook(folder / "alpha.ipynb", ALPHA))
    beta = load_pipeline(write_notebook(folder / "beta.ipynb", BETA))
    (folder / "notes.md").write_text("notes\n")
    git(folder, "init", "-q")
    git(folder, "add", "alpha.ipynb", "beta.ipynb", "notes.md")
    git(folder, "commit", "-q", "-m", "the pipelines")
    statuses = [alpha.run({}).status, alpha.run({"n": 5}).status, alpha.run({"n": 20}).status]
    assert statuses == ["done", "done", "failed"]
    sweep = run_sweep(beta, {"k": [1, 2]})
    assert sweep.status == "done" and [r.id for r in sweep.runs] == [4, 5]
    assert beta.run({"k": 3}).status == "done"
    site = folder / "site"
    first = publish_site([folder], site)
    return folder, alpha, site, first


def git(folder: Path, *args: str) -> str:
    identity = ["-c", "user.name=nbflow tests", "-c", "user.email=tests@nbflow.invalid"]
    return subprocess.run(
        ["git", "-C", str(folder), *identity, *args], check=True, capture_output=True, text=True
    ).stdout


def local_links(page) -> list[str]:
    return page.eval_on_selector_all("a[href]", "els => els.map(a => a.href).filter(h => h.startsWith('file:'))")


def open_page(page, path: Path) -> None:
    page.goto(path.as_uri())
    page.wait_for_load_state("load")


def visible_runs(page) -> list[str]:
    return page.eval_on_selector_all(
        "table.nbflow-runs tbody tr", "rows => rows.filter(r => !r.hidden).map(r => r.dataset.run)"
    )


def test_first_publish_writes_every_page(project):
    folder, _, site, first = project
    assert first.failed == {} and first.updated == [] and first.unchanged == []
    assert sorted(first.written) == sorted(
        ["index.html"]
        + [f"alpha/runs/{i}.html" for i in (1, 2, 3)]
        + ["alpha/compare/1-2.html", "alpha/compare/2-3.html", "alpha/history.html", "alpha/index.html"]
        + [f"beta/runs/{i}.html" for i in (4, 5, 6)]
        + ["beta/compare/4-5.html", "beta/compare/5-6.html", "beta/history.html", "beta/index.html"]
        + ["beta/sweeps/1.html"]
    )
    manifest = json.loads((site / MANIFEST).read_text())
    assert set(manifest["pages"]) == set(first.written)


@pytest.mark.browser
def test_the_site_works_offline_from_file_urls(project, page):
    folder, _, site, _ = project
    open_page(page, site / "index.html")
    assert sorted(visible_runs(page), key=int) == ["1", "2", "3", "4", "5", "6"]
    assert page.locator("#nbflow-shown").inner_text() == "6"
    row = page.locator("table.nbflow-runs tr[data-run='3']")
    assert "failed" in row.inner_text() and "n=20" in row.inner_text() and "alpha" in row.inner_text()
    commit = git(folder, "rev-parse", "HEAD").strip()
    assert commit[:10] in row.inner_text() and "dirty" not in row.inner_text()

    # filtering: words from any column, and the status
    page.fill("#nbflow-filter", "n=5")
    assert visible_runs(page) == ["2"]
    page.fill("#nbflow-filter", "beta")
    assert sorted(visible_runs(page)) == ["4", "5", "6"]
    page.fill("#nbflow-filter", "")
    page.select_option("#nbflow-status-filter", "failed")
    assert visible_runs(page) == ["3"] and page.locator("#nbflow-shown").inner_text() == "1"
    page.select_option("#nbflow-status-filter", "")
    # sorting: by run, both ways
    page.click("table.nbflow-runs th:has-text('run')")
    assert visible_runs(page) == ["1", "2", "3", "4", "5", "6"]
    page.click("table.nbflow-runs th:has-text('run')")
    assert visible_runs(page) == ["6", "5", "4", "3", "2", "1"]
    screenshot(page, "publish-index")

    # each report says how to run it again, copyable
    open_page(page, site / "alpha" / "runs" / "3.html")
    command = page.inner_text("#nbflow-reproduce-command")
    assert command.splitlines() == [f"cd {folder}", f"git checkout {commit}", "nbflow run alpha.ipynb -p n 20"]
    assert page.locator(".nbflow-dirty").count() == 0
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.click("#nbflow-copy-command")
    page.wait_for_function("document.getElementById('nbflow-copy-command').textContent === 'Copied'")
    assert page.evaluate("navigator.clipboard.readText()") == command

    # every link of every page resolves to a file of the site; every page opens cleanly
    seen, queue = set(), [(site / "index.html").resolve()]
    while queue:
        path = queue.pop()
        if path in seen:
            continue
        seen.add(path)
        open_page(page, path)
        if path.name == "history.html" or "/sweeps/" in str(path):
            page.wait_for_selector(".bk-Canvas, canvas", state="attached")
        for href in local_links(page):
            target = Path(unquote(urlparse(href).path))
            assert target.is_file(), f"{path.relative_to(site)} links to a missing {target}"
            assert target.is_relative_to(site), f"{path.relative_to(site)} links outside the site: {target}"
            queue.append(target.resolve())
    assert page.outside == []
    assert page.console_errors == []
    published = {p.relative_to(site).as_posix() for p in site.rglob("*.html")}
    assert {p.relative_to(site).as_posix() for p in seen} == published


@pytest.mark.browser
def test_history_and_sweep_pages_show_bokeh_charts(project, page):
    _, _, site, _ = project
    open_page(page, site / "alpha" / "history.html")
    page.wait_for_selector("#nbflow-durations canvas", state="attached")
    assert page.locator(".nbflow-metric[data-metric='total.total']").count() == 1
    assert "load" in page.locator("table.nbflow-history").inner_text()
    screenshot(page, "publish-history")
    open_page(page, site / "beta" / "sweeps" / "1.html")
    page.wait_for_selector("canvas", state="attached")
    assert page.locator("tr[data-run='4']").count() == 1 and page.locator("tr[data-run='5']").count() == 1
    open_page(page, site / "beta" / "index.html")
    assert page.locator("a.sweep-link").get_attribute("href") == "sweeps/1.html"
    assert page.outside == [] and page.console_errors == []


def test_publishing_again_writes_only_what_is_new_or_changed(project):
    folder, alpha, site, _ = project
    again = publish_site([folder], site)
    assert again.written == [] and again.updated == [] and again.failed == {}
    stamps = {p: p.stat().st_mtime_ns for p in site.rglob("*.html")}

    (folder / "notes.md").write_text("notes, edited\n")  # run 7 starts in a dirty tree
    assert alpha.run({"n": 4}).status == "done"  # run 7
    third = publish_site([folder], site)
    assert sorted(third.written) == ["alpha/compare/3-7.html", "alpha/runs/7.html"]
    assert sorted(third.updated) == ["alpha/history.html", "alpha/index.html", "index.html"]
    assert third.removed == [] and third.failed == {}
    changed = {p for p, stamp in stamps.items() if p.stat().st_mtime_ns != stamp}
    assert {p.relative_to(site).as_posix() for p in changed} == set(third.updated)
    index = (site / "index.html").read_text()
    assert 'data-run="7"' in index and "(dirty)" in index
    report = (site / "alpha" / "runs" / "7.html").read_text()
    assert "The working tree had uncommitted changes" in report
    assert "nbflow run alpha.ipynb -p n 4</pre>" in report


def test_cli_publish_refuses_a_folder_it_did_not_write(project, tmp_path):
    folder, _, _, _ = project
    (tmp_path / "mine.txt").write_text("do not touch")
    proc = subprocess.run([NBFLOW, "publish", str(folder), "-o", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"nbflow: error: nbflow publish: {tmp_path} is not empty and is not a site nbflow published "
        f"(no {MANIFEST}); choose a new or empty folder"
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["mine.txt"]


# ---------------------------------------------------------------------- run --report


def recorded_report(folder: Path, run_id: int) -> Path:
    store = RunStore(folder / ".nbflow" / "runs.db")
    try:
        return Path(store.artifacts(run_id)["report"])
    finally:
        store.close()


def test_run_with_report_leaves_the_report_at_the_recorded_path_failed_run_too(tmp_path):
    nb = write_notebook(tmp_path / "alpha.ipynb", ALPHA)
    proc = subprocess.run([NBFLOW, "run", str(nb), "-p", "n", "20", "--report", "-q"], capture_output=True, text=True)
    assert proc.returncode == 1, proc.stderr
    path = recorded_report(tmp_path, 1)
    assert path == tmp_path / ".nbflow" / "runs" / "1" / "report.html"
    assert f"report: {path}" in proc.stderr.splitlines()
    html = path.read_text()
    assert "AssertionError" in html and "too big" in html and ">failed<" in html
    # report = true in [tool.nbflow] does the same without the flag
    (tmp_path / "pyproject.toml").write_text("[tool.nbflow]\nreport = true\n")
    proc = subprocess.run([NBFLOW, "run", str(nb), "-q"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert f"report: {recorded_report(tmp_path, 2)}" in proc.stderr.splitlines()
    assert recorded_report(tmp_path, 2).is_file()


def test_a_cancelled_run_with_report_still_gets_its_report(tmp_path):
    nb = write_notebook(
        tmp_path / "slow.ipynb", [step("first", "a = 1"), step("wait", "import time\ntime.sleep(120)\nb = a")]
    )
    proc = subprocess.Popen([NBFLOW, "run", str(nb), "--report"], stderr=subprocess.PIPE, text=True)
    db = tmp_path / ".nbflow" / "runs.db"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if db.exists():
            store = RunStore(db, reconcile=False)
            steps = {s["step"]: s["status"] for s in store.steps(1)} if store.run(1) else {}
            store.close()
            if steps.get("wait") == "running":
                break
        time.sleep(0.3)
    else:
        proc.kill()
        pytest.fail("the slow step never started")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    path = recorded_report(tmp_path, 1)
    assert f"report: {path}" in err.splitlines() and path.is_file()
    assert ">cancelled<" in path.read_text()


HEAVY = """
import json, sys
from nbflow.publish import publish_site
result = publish_site([sys.argv[1]], sys.argv[2], trusted=sys.argv[3] == "trusted", jobs=int(sys.argv[4]) or None)
heavy = sorted(m for m in ("bokeh", "nbconvert", "nbformat") if m in sys.modules)
print(json.dumps({"written": result.written, "updated": result.updated, "heavy": heavy}))
"""


def publish_in_a_process(folder: Path, site: Path, trusted: bool = False, jobs: int = 1) -> dict:
    """``publish_site`` in a new process: what it wrote, and which heavy libraries it imported (``jobs=0``: the
    default, where a forked worker renders the reports' cells)."""
    args = [sys.executable, "-c", HEAVY, str(folder), str(site), "trusted" if trusted else "sanitized", str(jobs)]
    return json.loads(subprocess.run(args, check=True, capture_output=True, text=True).stdout)


def test_publish_takes_a_current_report_as_it_is_and_imports_only_what_stale_pages_need(tmp_path):
    from nbflow.report import build_report

    gamma = load_pipeline(write_notebook(tmp_path / "gamma.ipynb", BETA))
    assert gamma.run({"k": 2}).status == "done"
    report = build_report(gamma.config, 1)  # what `nbflow run --report` writes at the end of the run
    site = tmp_path / "site"

    first = publish_in_a_process(tmp_path, site)
    assert sorted(first["written"]) == ["gamma/history.html", "gamma/index.html", "gamma/runs/1.html", "index.html"]
    assert (site / "gamma" / "runs" / "1.html").read_bytes() == report.read_bytes()  # not rendered again
    assert first["heavy"] == ["bokeh"]  # the history chart; no report to render, so no nbconvert

    again = publish_in_a_process(tmp_path, site)
    assert again == {"written": [], "updated": [], "heavy": []}

    trusted = publish_in_a_process(tmp_path, site, trusted=True)  # the recorded report is sanitized: not that page
    assert trusted["updated"] == ["gamma/runs/1.html"] and trusted["heavy"] == ["bokeh", "nbconvert", "nbformat"]
    assert '<meta name="nbflow-trusted" content="yes">' in (site / "gamma" / "runs" / "1.html").read_text()

    assert gamma.run({"k": 3}).status == "done"  # run 2, with its report: compared with run 1, nothing else rendered
    second = build_report(gamma.config, 2)
    reported = publish_in_a_process(tmp_path, site)
    assert sorted(reported["written"]) == ["gamma/compare/1-2.html", "gamma/runs/2.html"]
    assert (site / "gamma" / "runs" / "2.html").read_bytes() == second.read_bytes()
    assert reported["heavy"] == ["bokeh"]  # the comparison reads the notebook snapshot without nbformat

    assert gamma.run({"k": 4}).status == "done"  # run 3, no report of its own: rendered here
    third = publish_in_a_process(tmp_path, site)
    assert sorted(third["written"]) == ["gamma/compare/2-3.html", "gamma/runs/3.html"]
    assert third["heavy"] == ["bokeh", "nbconvert", "nbformat"]

    assert gamma.run({"k": 5}).status == "done"  # run 4, by default: its cells are rendered by a forked worker
    fourth = publish_in_a_process(tmp_path, site, jobs=0)
    assert sorted(fourth["written"]) == ["gamma/compare/3-4.html", "gamma/runs/4.html"]
    assert fourth["heavy"] == ["bokeh"]  # nbconvert was imported by the worker only
    page = (site / "gamma" / "runs" / "4.html").read_text()
    assert "jp-CodeCell" in page and '<span class="n">sq</span>' in page  # the cells are on the page all the same
