"""Run reports of real runs (Jupyter kernel, papermill, SQLite, cache), opened in Chromium.

The browser is Debian's Chromium with every request that would leave the machine
aborted and recorded (``page.outside``): a report must show everything with the network
cut, and a sanitized one must not run a single script from a cell output.
"""

from __future__ import annotations

import re
import shutil
import stat
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlparse

import nbformat
import pytest

from nbflow import load_pipeline
from nbflow.cache import Cache
from nbflow.report import build_comparison, build_report, collect_run, timeline_figure
from nbflow.run import start_run
from nbflow.store import RunStore

from ..conftest import NOTEBOOKS, code, md, step, write_notebook
from .conftest import screenshot

pytestmark = pytest.mark.slow

NBFLOW = str(Path(sys.executable).with_name("nbflow"))

HOSTILE = r"""
display(HTML(
    '<b>bold</b><script>window.PWNED = "script"</script>'
    '<img src="x" onerror="window.PWNED = \'onerror\'">'
    '<a id="hostile-link" href="javascript:window.PWNED = \'link\'">click me</a>'
    '<img src="https://example.com/tracker.png">'
    '<link rel="stylesheet" href="https://example.com/style.css">'
    '<span style="cursor: url(https://example.com/c.cur), auto">cursor</span>'
    '<iframe src="https://example.com/frame"></iframe>'
))
display(Javascript('window.PWNED = "javascript output"'))
hostile_done = True
"""

CELLS = [
    md("# Report demo\nA pipeline whose report is checked in a real browser."),
    code("import matplotlib.pyplot as plt\nimport pandas as pd\nfrom IPython.display import HTML, Javascript, display"),
    code("n = 4\nlabel = 'demo'", "parameters"),
    md("Load *n* numbers."),
    step("load", "data = list(range(n))\nprint('loaded', len(data))"),
    md("## Table\nSquares, as a DataFrame."),
    step("table", "frame = pd.DataFrame({'x': data, 'sq': [v * v for v in data]})\nframe"),
    step("plot", "fig, ax = plt.subplots(figsize=(3, 2))\nax.plot(frame['x'], frame['sq'])\nplt.show()"),
    step("hostile", HOSTILE),
    step("total", "total = float(frame['sq'].sum())\ntotal"),
    step("boom", "ratio = total / 0"),
    step("after_boom", "print(ratio)"),
    step("side", "other = len(label)"),
]
STEPS = ["load", "table", "plot", "hostile", "total", "boom", "after_boom", "side"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Run 1 (n=4) and run 2 (n=5: every step but ``side`` runs again)."""
    folder = tmp_path_factory.mktemp("report")
    path = write_notebook(folder / "demo.ipynb", CELLS)
    pipeline = load_pipeline(path)
    done = [pipeline.run({}), pipeline.run({"n": 5})]
    assert [r.status for r in done] == ["failed", "failed"]  # boom divides by zero
    return path, pipeline.config, done


class _Fetches(HTMLParser):
    """URLs a browser would fetch by itself: element sources and stylesheet url()/@import."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.in_style = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.in_style = tag == "style"
        for name, value in attrs:
            value = value or ""
            if name in ("src", "data", "poster", "background", "srcset") or (name == "href" and tag != "a"):
                self.urls += [value] if re.match(r"\s*(https?:)?//", value) else []
            elif name == "style":
                self.urls += _css_urls(value)

    def handle_data(self, data: str) -> None:
        if self.in_style:
            self.urls += _css_urls(data)

    def handle_endtag(self, tag: str) -> None:
        self.in_style = False


def _css_urls(css: str) -> list[str]:
    return re.findall(r"(?:url\(|@import)\s*['\"]?((?:https?:)?//[^'\")\s]+)", css, re.IGNORECASE)


def fetched_urls(html: str) -> list[str]:
    parser = _Fetches()
    parser.feed(html)
    return parser.urls


def report_page(page, path: Path):
    page.goto(path.resolve().as_uri())
    page.wait_for_selector("#nbflow-graph canvas", state="attached")
    page.wait_for_selector("#nbflow-timeline canvas", state="attached")
    page.wait_for_timeout(300)  # late errors or requests would show by now
    return page


@pytest.mark.browser
def test_sanitized_report_renders_offline_and_runs_no_output_script(runs, page):
    path, config, done = runs
    report = done[1].report()
    assert report == config.runs_dir / "2" / "report.html"
    report_page(page, report)
    assert page.outside == []
    assert page.console_errors == []
    assert page.locator("#nbflow-graph canvas").count() > 0
    assert page.locator("#nbflow-timeline canvas").count() > 0
    for name in STEPS:
        assert page.locator(f"section#nbflow-step-{name}").is_visible(), name
    assert page.evaluate("typeof window.PWNED") == "undefined"
    page.click("text=click me")  # its javascript: URL was removed
    assert page.evaluate("typeof window.PWNED") == "undefined"
    assert page.outside == []
    hostile = page.locator("section#nbflow-step-hostile")
    assert "bold" in hostile.inner_text()
    assert "Not run in this sanitized report: 1 script in HTML output, 1 JavaScript output." in hostile.inner_text()
    # outputs as they appeared: text, a table, an embedded plot, the error
    assert "loaded 5" in page.locator("section#nbflow-step-load").inner_text()
    assert page.locator("section#nbflow-step-table table.dataframe td").first.inner_text() == "0"
    assert page.locator("section#nbflow-step-plot img[src^='data:image/png']").count() == 1
    boom = page.locator("section#nbflow-step-boom").inner_text()
    assert "ZeroDivisionError" in boom and "failed" in boom
    assert "upstream boom failed" in page.locator("section#nbflow-step-after_boom").inner_text()
    assert "restored from the cache" in page.locator("section#nbflow-step-side").inner_text()
    # the table of contents links the sections
    page.click("nav a[href='#nbflow-step-side']")
    page.wait_for_timeout(800)  # smooth scrolling
    assert page.evaluate("location.hash") == "#nbflow-step-side"
    assert page.evaluate(
        "(() => { const r = document.getElementById('nbflow-step-side').getBoundingClientRect();"
        " return r.top >= 0 && r.top < window.innerHeight; })()"
    )
    screenshot(page, "report-sanitized")


@pytest.mark.browser
def test_trusted_report_runs_output_scripts(runs, page, tmp_path):
    path, _, done = runs
    report = tmp_path / "trusted.html"
    cli = [NBFLOW, "report", str(done[1].id), "--trusted", "-C", str(path), "-o", str(report)]
    assert subprocess.run(cli, capture_output=True).returncode == 0
    report_page(page, report)
    page.wait_for_function("window.PWNED !== undefined")
    assert page.evaluate("window.PWNED") in ("script", "onerror", "javascript output")
    # what left the page is only what the trusted outputs asked for
    assert {urlparse(u).hostname for u in page.outside} == {"example.com"}
    assert page.locator("meta[name='nbflow-trusted'][content='yes']").count() == 1


def test_report_file_artifact_and_layout(runs):
    path, config, done = runs
    report = build_report(config, done[0].id)
    html = report.read_text(encoding="utf-8")
    assert stat.S_IMODE(report.stat().st_mode) == 0o600  # inside .nbflow, like the executed notebook
    store = RunStore(config.store_path)
    assert store.artifacts(done[0].id)["report"] == str(report.resolve())
    store.close()
    # self-contained: no element or stylesheet names a URL to fetch (Bokeh's library code
    # holds a MathJax CDN address for TeX labels; there are none and the page policy forbids it)
    assert fetched_urls(html) == []
    assert "Content-Security-Policy" in html
    # the order a reader wants it
    marks = ["Report demo", 'id="nbflow-parameters"', 'id="nbflow-provenance"', 'id="nbflow-graph"',
             'id="nbflow-timeline"', *(f'id="nbflow-step-{s}"' for s in STEPS)]  # fmt: skip
    positions = [html.index(m) for m in marks]
    assert positions == sorted(positions)


def test_parameters_provenance_and_cached_steps(runs):
    path, config, done = runs
    store = RunStore(config.store_path)
    record = collect_run(config, done[1].id, store, Cache(config.cache_dir))
    store.close()
    assert record.origin == "output notebook"
    assert record.changed_parameters() == {"n"}
    assert record.defaults == {"n": 4, "label": "demo"}
    assert record.by_name["side"].status == "cached" and record.by_name["load"].status == "done"
    assert record.by_name["table"].docs == "## Table\nSquares, as a DataFrame."
    assert record.by_name["table"].deps == {"load": ["data"]}
    timeline = timeline_figure(record)
    cached = [r for r in timeline.renderers if "side" in r.data_source.data["step"]]
    assert len(cached) == 1 and cached[0].glyph.hatch_pattern == "/"  # cached steps are hatched
    html = build_report(config, done[1].id).read_text(encoding="utf-8")
    for text in ("demo.ipynb", "Python", "packages", "nbflow 0.1.0", record.run["notebook_hash"]):
        assert text in html, text


def test_comparison_shows_what_differs(runs, tmp_path):
    _, config, done = runs
    out = build_comparison(config, done[0].id, done[1].id, output=tmp_path / "cmp.html")
    html = out.read_text(encoding="utf-8")

    def row(pattern: str) -> str:
        found = re.search(rf"<tr[^>]*{pattern}[^>]*>.*?</tr>", html, re.DOTALL)
        assert found, pattern
        return found.group(0)

    assert "changed" in row(r'data-step="total" data-value="total"')
    assert "14.0" in row(r'data-step="total" data-value="total"')
    assert "30.0" in row(r'data-step="total" data-value="total"')
    assert "parameter n changed" in row(r'data-step="load"')
    assert "same" in row(r'data-step="side"') and 'class="changed"' not in row(r'data-step="side"')
    assert re.search(r"<code>n</code></td><td><code>4</code></td><td><code>5</code></td>", html)
    assert 'id="nbflow-durations"' in html


def test_cli(runs, tmp_path):
    path, config, done = runs
    target = tmp_path / "shared.html"
    proc = subprocess.run(
        [NBFLOW, "report", str(done[0].id), "-C", str(path), "-o", str(target)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(target)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644  # a file the user names is for sharing
    proc = subprocess.run(
        [NBFLOW, "report", "1", "2", "-C", str(path.parent)], capture_output=True, text=True, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert Path(proc.stdout.strip()) == config.runs_dir / "2" / "compare-1.html"
    proc = subprocess.run([NBFLOW, "report", "99", "-C", str(path)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "no run 99 in" in proc.stderr


def test_cached_runs_report_from_the_notebook_and_the_cache(tmp_path):
    path = write_notebook(
        tmp_path / "chain.ipynb",
        [
            code("n = 3", "parameters"),
            step("load", "data = list(range(n))\nprint('loaded', len(data))"),
            step("square", "sq = [x * x for x in data]\nprint(sq)"),
        ],
    )
    pipeline = load_pipeline(path)
    assert pipeline.run({}).status == "done"
    second = pipeline.run({})
    assert second.output_notebook is None  # nothing ran: no kernel, no executed notebook
    html = build_report(pipeline.config, second.id).read_text(encoding="utf-8")
    assert "No step ran in this run" in html
    assert "loaded 3" in html and "[0, 1, 4]" in html  # the cached steps' captured outputs
    # the notebook changes after the run: only code that still matches is shown
    nb = nbformat.read(path, 4)
    nb.cells[2].source = "sq = [x ** 2 for x in data]  # edited after the run\nprint(sq)"
    nb.cells[1].source = "# a comment does not change the code\ndata = list(range(n))\nprint('loaded', len(data))"
    nbformat.write(nb, path)
    html = build_report(pipeline.config, second.id).read_text(encoding="utf-8")
    load = html[html.index('id="nbflow-step-load"') : html.index('id="nbflow-step-square"')]
    square = html[html.index('id="nbflow-step-square"') :]
    assert "same code (comments and layout aside) as ran" in load and "range" in load
    assert "no longer matches; code is not shown" in square
    assert "edited after the run" not in square
    assert "[0, 1, 4]" in square  # its outputs, from the cache


@pytest.mark.browser
def test_readme_screenshots(tmp_path, page):
    """The README's pictures: the wine classifier re-run with a deeper forest."""
    shutil.copy(NOTEBOOKS / "wine_classifier.ipynb", tmp_path)
    pipeline = load_pipeline(tmp_path / "wine_classifier.ipynb")
    assert pipeline.run({}).status == "done"
    run = pipeline.run({"max_depth": 6})
    assert run.status == "done"
    report_page(page, run.report())
    assert page.outside == [] and page.console_errors == []
    screenshot(page, "report-top", docs="report-top.png")
    page.evaluate("document.getElementById('nbflow-graph').scrollIntoView()")
    page.wait_for_timeout(800)
    screenshot(page, "report-graph", docs="report-graph.png")
    page.evaluate("document.getElementById('nbflow-step-evaluate').scrollIntoView()")
    page.wait_for_timeout(800)
    screenshot(page, "report-step", docs="report-step.png")


def test_a_run_still_going_is_reported_as_it_stands(tmp_path):
    path = write_notebook(
        tmp_path / "live.ipynb",
        [
            code("n = 1", "parameters"),
            step("a", "x = n\nprint('a finished')"),
            # waits for the test to let it go: no timing in the test
            step("wait", "import pathlib, time\nwhile not pathlib.Path('go').exists():\n    time.sleep(0.05)\ny = x"),
            step("c", "z = y"),
        ],
    )
    pipeline = load_pipeline(path)
    run = start_run(pipeline, {})
    try:
        deadline = time.monotonic() + 120
        while run.steps["wait"]["status"] != "running":
            assert time.monotonic() < deadline and not run.done, run.steps
            time.sleep(0.05)
        html = build_report(pipeline.config, run.id).read_text(encoding="utf-8")
    finally:
        (tmp_path / "go").touch()
        run.wait()
    assert run.status == "done"
    assert "This run was still going" in html
    assert 'data-step="a" data-status="done"' in html and "a finished" in html
    assert 'data-step="wait" data-status="running"' in html
    assert 'data-step="c" data-status="pending"' in html


def test_fan_out_is_one_node_with_per_element_states(tmp_path):
    import shutil

    from nbflow import load_pipeline

    path = tmp_path / "sensor_files.ipynb"
    shutil.copy(Path(__file__).resolve().parents[2] / "notebooks" / "sensor_files.ipynb", path)
    load_pipeline(path).run()
    run = load_pipeline(path).run({"n_sensors": 5})
    html = build_report(load_pipeline(path).config, run.id).read_text()
    assert r"measure \\u00d75" in html  # the graph's one node carries the count (escaped in Bokeh's data)
    assert "Fan-out: 5 elements: 4 cached, 1 done" in html
    assert html.count('data-item="') == 5


PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
IMAGES = f"""
from IPython.display import display
png = {PNG!r}
display({{"image/png": png, "text/plain": "a pixel"}}, raw=True,
        metadata={{"image/png": {{"height": "1 onload=window.PWNED=1", "width": "2 onerror=window.PWNED=2"}}}})
display({{"image/jpeg": "bm90IGEganBlZw==", "text/plain": "not a jpeg"}}, raw=True,
        metadata={{"width": "1 onerror=window.PWNED=3", "height": 7,
                   "filenames": {{"image/jpeg": "https://example.com/x.jpg"}}}})
display({{"image/png": png, "text/plain": "sized"}}, raw=True, metadata={{"image/png": {{"width": 40, "height": 30}}}})
"""
UNCLOSED = [
    md("# Isolation\nEach cell's markup ends with the cell."),
    code("from IPython.display import HTML, Markdown, display"),
    md("## Styled\n\nDocs with a style that is never closed.\n\n<style>\n.nbflow-x { color: red }\n"),
    step("styled", "a = 1"),
    md("Docs of *images*, after the unclosed style."),
    step("images", IMAGES),
    step("hidden_html", "display(HTML('<div style=\"display:none\"><b>in the div'))\nb = a"),
    step("open_markdown", "display(Markdown('text <textarea>'))\nc = b"),
    md("The last step's docs."),
    step("last", "print('last step printed')\nd = c"),
]


@pytest.fixture(scope="module")
def isolation_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("isolation")
    pipeline = load_pipeline(write_notebook(folder / "iso.ipynb", UNCLOSED))
    run = pipeline.run({})
    assert run.status == "done", run.error
    return folder, run


def _img_attributes(html: str) -> list[dict[str, str]]:
    class Images(HTMLParser):
        found: list[dict[str, str]] = []

        def handle_starttag(self, tag: str, attrs: list) -> None:
            if tag == "img":
                self.found.append(dict(attrs))

    parser = Images()
    parser.found = []
    parser.feed(html)
    return parser.found


@pytest.mark.browser
def test_image_metadata_cannot_add_attributes_even_without_the_page_policy(isolation_run, page, tmp_path):
    """#15 item 16: ``height`` of an image/png output reached the page unquoted (``height=1 onload=...``)."""
    _, run = isolation_run
    html = run.report().read_text(encoding="utf-8")
    images = _img_attributes(html)
    assert len(images) == 3 and all(a["src"].startswith("data:image/") for a in images), images
    for attributes in images:
        assert set(attributes) <= {"src", "alt", "class", "width", "height"}, attributes
        assert all(attributes[k].isdigit() for k in ("width", "height") if k in attributes), attributes
    assert {"width": "40", "height": "30"}.items() <= images[2].items()
    assert images[1].get("height") == "7" and "width" not in images[1]
    # The page policy would stop a handler; the report must be safe without it (pasted into a wiki, a mail).
    policy = re.compile(r'<meta http-equiv="Content-Security-Policy"[^>]*>')
    assert policy.search(html)
    bare = tmp_path / "no-policy.html"
    bare.write_text(policy.sub("", html), encoding="utf-8")
    report_page(page, bare)
    page.wait_for_function("document.querySelectorAll('img').length >= 3")
    page.wait_for_timeout(500)  # image load and error events have fired
    assert page.evaluate("typeof window.PWNED") == "undefined"
    assert page.outside == []


@pytest.mark.browser
def test_an_unclosed_tag_in_a_trusted_report_ends_with_its_cell(isolation_run, page, tmp_path):
    """#15 item 17: an unclosed ``<style>`` in a markdown cell swallowed the rest of a trusted report."""
    folder, run = isolation_run
    report = run.report(trusted=True, output=tmp_path / "trusted.html")
    report_page(page, report)
    for name in ("styled", "images", "hidden_html", "open_markdown", "last"):
        assert page.locator(f"section#nbflow-step-{name}").is_visible(), name
    assert "Docs of images" in page.locator("section#nbflow-step-images").inner_text()
    assert "The last step's docs." in page.locator("section#nbflow-step-last").inner_text()
    assert "last step printed" in page.locator("section#nbflow-step-last").inner_text()
    assert page.locator(".nbflow-footer").is_visible()
    # the style still applies as it would in JupyterLab; the hidden div hides only its own content
    assert not page.get_by_text("in the div", exact=True).is_visible()
    assert page.outside == [] and page.console_errors == []
