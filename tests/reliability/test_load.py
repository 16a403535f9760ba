"""Load: a 1000-step notebook plans, runs, lists and is reported; 50 runs are recorded and listed."""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import pytest

import nbflow
from nbflow import load_pipeline
from nbflow.report import recorded_report
from nbflow.store import RunStore

from .conftest import check_invariants, nbflow_cli

pytestmark = pytest.mark.slow

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from common import chain_notebook  # noqa: E402


def test_a_1000_step_notebook_plans_runs_lists_and_reports(folder):
    path = chain_notebook(folder / "big.ipynb", 1000)
    plan = nbflow_cli("plan", str(path))
    assert plan.returncode == 0 and "1000 of 1000 steps would run" in plan.stdout
    started = time.monotonic()
    run = nbflow_cli("run", str(path), "--quiet", timeout=900)
    print(f"1000 trivial steps ran in {time.monotonic() - started:.1f} s")
    assert run.returncode == 0, run.stderr[-2000:]
    assert nbflow.result(path, "s999", "v999") == 1000
    assert load_pipeline(path).plan().to_run == []
    listing = nbflow_cli("runs", str(path))
    assert "1000 done" in listing.stdout
    started = time.monotonic()
    report = nbflow_cli("report", "1", "-C", str(path), timeout=900)
    print(f"the report of 1000 steps was written in {time.monotonic() - started:.1f} s")
    assert report.returncode == 0, report.stderr[-2000:]
    written = Path(report.stdout.strip().splitlines()[-1])
    html = written.read_text(encoding="utf-8")
    print(f"report size: {len(html) / 1e6:.1f} MB")
    assert written.resolve() == (folder / ".nbflow" / "runs" / "1" / "report.html").resolve()
    assert_self_contained(html)
    assert re.search(r'<section class="nbflow-step" id="nbflow-step-s999" data-step="s999" data-status="done"', html)
    assert "v999 = v998 + 1" in re.sub(r"<[^>]+>", "", html)  # the last step's code, highlighted
    assert recorded_report(path, 1) == written.resolve()
    check_invariants(folder)


def assert_self_contained(page: str) -> None:
    """Nothing in the page is fetched: no script, stylesheet, import or CSS url() from a URL."""
    import html

    fetched = re.findall(r"<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)\s*=\s*[\"']?\s*(?:https?:)?//", page, re.I)
    fetched += re.findall(r"(?:@import|url\()\s*[\"']?\s*(?:https?:)?//", page, re.I)
    assert fetched == [], fetched[:5]
    # and the page's own policy forbids fetching anything (the sanitized, default report)
    policy = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]*)"', page)
    assert policy and "default-src 'none'" in html.unescape(policy.group(1)), "no Content-Security-Policy"


def test_fifty_runs_are_recorded_and_listed(folder):
    path = chain_notebook(folder / "small.ipynb", 5)
    pipeline = load_pipeline(path)
    for _ in range(50):  # the first run executes; the others are recorded fully cached runs
        assert pipeline.run().status == "done"
    assert len(RunStore(pipeline.config.store_path).runs(limit=100)) == 50
    started = time.monotonic()
    listing = nbflow_cli("runs", str(path), "--limit", "100")
    print(f"listed 50 runs in {time.monotonic() - started:.2f} s")
    rows = [line.split() for line in listing.stdout.splitlines()[2:]]
    assert listing.returncode == 0 and len(rows) == 50 and {row[2] for row in rows} == {"done"}
    check_invariants(folder)
