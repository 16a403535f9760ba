"""The studio against a real ``nbflow studio`` server, driven by headless Chromium.

One server for the module (start-ups are the slow part); each test works on its own
notebook of the served folder, opened with ``?notebook=NAME``. Every test checks that
the page asked nothing of any host but 127.0.0.1 (``page.outside``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from playwright.sync_api import expect

import nbflow

from ..conftest import NOTEBOOKS, code, md, step, write_notebook
from .conftest import ARTIFACTS, assert_no_server_errors, free_port, screenshot, studio_server, wait_for_http

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def chain(path: Path, delay: float = 0.0, extra: list | None = None, gate: str = "") -> Path:
    """load -> square -> total, plus ``other`` that depends on nothing. With ``gate``,
    ``load`` waits until a file of that name is next to the notebook (the test decides
    when the run goes on, instead of a fixed delay)."""
    wait = f"import os\nwhile not os.path.exists({gate!r}):\n    time.sleep(0.05)\n" if gate else ""
    return write_notebook(
        path,
        [
            md("# Squares\n\nA small pipeline for the studio's tests."),
            code("import time"),
            code(f"n = 3\ndelay = {delay}", "parameters"),
            md("## Load\n\nMake the numbers."),
            step("load", f"{wait}time.sleep(delay)\ndata = list(range(n))"),
            step("square", "time.sleep(delay)\nsq = [x * x for x in data]"),
            step("total", "time.sleep(delay)\ntotal = sum(sq)\nprint(total)"),
            step("other", "time.sleep(delay)\nz = n + 1"),
            *(extra or []),
        ],
    )


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    folder = tmp_path_factory.mktemp("studio")
    for name in ("drag", "connect", "add", "report", "rename", "clicks", "watch", "publish"):
        chain(folder / f"{name}.ipynb")
    chain(folder / "run.ipynb", delay=0.8)
    chain(folder / "live.ipynb", delay=0.5, gate="live.go")
    chain(folder / "cancel.ipynb", extra=[step("slow", "time.sleep(120)\nw = total")])
    (folder / "wine").mkdir()
    (folder / "wine" / "wine_classifier.ipynb").write_bytes((NOTEBOOKS / "wine_classifier.ipynb").read_bytes())
    with studio_server(folder) as server:
        yield server
    lines = (folder / "server.log").read_text().splitlines()
    text = "\n".join(
        line for line in lines if "Refusing websocket connection from Origin 'http://evil.example'" not in line
    )
    assert_no_server_errors(text)


def open_notebook(page, studio, name: str, nodes: int = 4) -> None:
    page.goto(f"{studio.url}?notebook={name}")
    page.wait_for_function(f"window.nbflowCanvas && window.nbflowCanvas.cy.nodes().length === {nodes}", timeout=60_000)
    page.locator("code", has_text=name).first.wait_for()


def center(page, node: str) -> dict:
    return page.evaluate(f"window.nbflowCanvas.nodeCenter({json.dumps(node)})")


def drag(page, start: dict, end: dict) -> None:
    page.mouse.move(start["x"], start["y"])
    page.mouse.down()
    page.mouse.move(end["x"], end["y"], steps=20)
    page.wait_for_timeout(200)  # edgehandles picks the target after a short hover
    page.mouse.up()


def save(page, name: str) -> None:
    page.get_by_role("button", name="Save *").wait_for()
    page.get_by_role("button", name="Save *").click()
    page.get_by_text(f"saved {name}").wait_for()


def test_the_notebook_selector_names_the_open_notebook(page, studio):
    page.goto(studio.url)  # no ?notebook=: the folder's first pipeline opens
    page.wait_for_function("window.nbflowCanvas && window.nbflowCanvas.cy.nodes().length > 0", timeout=60_000)
    shown = page.locator("select").first.input_value()  # the option's label: "add.ipynb (4 steps)"
    assert shown.startswith("add.ipynb ("), f"the selector must name the open notebook, not {shown!r}"
    page.locator("code", has_text="add.ipynb").first.wait_for()
    open_notebook(page, studio, "wine/wine_classifier.ipynb", nodes=5)
    assert page.locator("select").first.input_value().startswith("wine/wine_classifier.ipynb (")


def test_drag_a_node_and_save_its_position(page, studio):
    path = studio.folder / "drag.ipynb"
    before = path.read_bytes()
    open_notebook(page, studio, "drag.ipynb")
    # Saving without an edit leaves the file as it was.
    page.get_by_role("button", name="Save", exact=True).click()
    page.get_by_text("nothing to save").wait_for()
    assert path.read_bytes() == before
    start = center(page, "other")
    drag(page, start, {"x": start["x"] + 140, "y": start["y"] + 90})
    page.get_by_text("moved other").wait_for()
    drawn = page.evaluate("window.nbflowCanvas.cy.getElementById('other').position()")
    save(page, "drag.ipynb")
    layout = nbflow.load_pipeline(path).source.layout
    assert set(layout) == {"other"}
    assert layout["other"] == pytest.approx(drawn, abs=0.1)
    # Only the notebook's metadata changed: every cell is byte-for-byte as it was.
    assert path.read_bytes().split(b'\n "metadata": ')[0] == before.split(b'\n "metadata": ')[0]
    # Reloading the page draws the node where it was saved.
    open_notebook(page, studio, "drag.ipynb")
    assert page.evaluate("window.nbflowCanvas.cy.getElementById('other').position()") == pytest.approx(
        layout["other"], abs=0.1
    )
    assert page.outside == []


def test_connect_two_nodes_and_save_the_dependency(page, studio):
    path = studio.folder / "connect.ipynb"
    open_notebook(page, studio, "connect.ipynb")
    page.get_by_role("button", name="Connect").click()

    # An edge the code already implies changes nothing.
    drag(page, center(page, "load"), center(page, "square"))
    page.get_by_text("square already depends on load").wait_for()

    drag(page, center(page, "load"), center(page, "other"))
    page.get_by_text("other now runs after load").wait_for()
    page.wait_for_function("window.nbflowCanvas.cy.getElementById('load->other').nonempty()")
    screenshot(page, "studio-connect")

    # An edge that would close a cycle is refused, and the notebook is left as it was.
    drag(page, center(page, "total"), center(page, "load"))
    page.get_by_text("not changed").wait_for()
    assert "cycle" in page.get_by_text("not changed").first.text_content()

    save(page, "connect.ipynb")
    pipeline = nbflow.load_pipeline(path)
    assert "load" in pipeline.deps["other"]
    assert pipeline.steps["other"].after == ("load",)
    assert pipeline.steps["load"].after == ()

    # Select the drawn edge and remove it again.
    page.get_by_role("button", name="Move", exact=True).click()
    middle = page.evaluate("window.nbflowCanvas.edgeMiddle('load->other')")
    page.mouse.click(middle["x"], middle["y"])
    page.get_by_text("explicit: other is tagged").wait_for()
    page.get_by_role("button", name="Remove after: tag").click()
    page.get_by_text("removed after:load from other").wait_for()
    save(page, "connect.ipynb")
    assert nbflow.load_pipeline(path).steps["other"].after == ()
    assert page.outside == []


def test_add_a_step_and_find_it_with_load_pipeline(page, studio):
    path = studio.folder / "add.ipynb"
    open_notebook(page, studio, "add.ipynb")
    page.get_by_placeholder("new step name").fill("cube")
    page.get_by_placeholder("## What it does").fill("## Cube\n\nThe third powers.")
    page.locator(".ace_content").first.click()
    page.keyboard.type("cubes = [x ** 3 for x in data")
    page.get_by_role("button", name="Add step").click()
    page.get_by_text("added step cube").wait_for()
    page.wait_for_function("window.nbflowCanvas.cy.nodes().length === 5")
    save(page, "add.ipynb")

    pipeline = nbflow.load_pipeline(path)
    assert "cube" in pipeline.steps
    assert pipeline.steps["cube"].source == "cubes = [x ** 3 for x in data]"
    assert pipeline.steps["cube"].docs == "## Cube\n\nThe third powers."
    assert pipeline.deps["cube"] == ("load",)
    nbformat.validate(nbformat.read(path, as_version=4))

    # Edit it in the step editor: the selection opened it after adding.
    page.get_by_text("writes:").first.wait_for()
    page.get_by_label("Tags").fill("keep:cubes")
    page.get_by_role("button", name="Apply").click()
    page.get_by_text("updated step cube").wait_for()
    save(page, "add.ipynb")
    assert nbflow.load_pipeline(path).steps["cube"].keep == ("cubes",)
    assert page.outside == []


def test_rename_delete_and_undo_in_the_step_editor(page, studio):
    path = studio.folder / "rename.ipynb"
    open_notebook(page, studio, "rename.ipynb")
    load = center(page, "load")
    page.mouse.click(load["x"], load["y"])
    name = page.get_by_label("Name", exact=True).last
    name.wait_for()
    name.fill("fetch")
    page.get_by_role("button", name="Rename").click()
    page.get_by_text("renamed load to fetch").wait_for()
    page.wait_for_function("window.nbflowCanvas.cy.getElementById('fetch').nonempty()")
    renamed = page.get_by_label("Name", exact=True).last
    assert renamed.is_visible() and renamed.input_value() == "fetch"  # still open in the editor

    other = center(page, "other")
    page.mouse.click(other["x"], other["y"])
    page.get_by_role("button", name="Delete step").click()
    page.get_by_text("deleted step other").wait_for()
    page.wait_for_function("window.nbflowCanvas.cy.nodes().length === 3")
    page.get_by_role("button", name="Undo").click()
    page.wait_for_function("window.nbflowCanvas.cy.nodes().length === 4")
    save(page, "rename.ipynb")

    pipeline = nbflow.load_pipeline(path)
    assert pipeline.order == ("fetch", "square", "total", "other")
    assert pipeline.steps["fetch"].docs == "## Load\n\nMake the numbers."
    assert pipeline.deps["square"] == ("fetch",)
    assert page.outside == []


def watch_states(page) -> None:
    """Record in the page every state each node shows, polled every 20 ms."""
    page.evaluate(
        """() => {
        window.seenStates = {};
        window.recordStates = () => {
          for (const [node, state] of Object.entries(window.nbflowCanvas.states())) {
            (window.seenStates[node] = window.seenStates[node] || []).includes(state)
              || window.seenStates[node].push(state);
          }
          return window.seenStates;
        };
        setInterval(window.recordStates, 20);
      }"""
    )


def test_run_shows_live_states_and_history(page, studio):
    open_notebook(page, studio, "run.ipynb")
    watch_states(page)
    page.get_by_role("button", name="Run", exact=True).click()
    page.wait_for_function(
        "Object.values(window.nbflowCanvas.states()).includes('running')", timeout=120_000, polling=50
    )
    screenshot(page, "studio-running")
    page.wait_for_function(
        "Object.values(window.nbflowCanvas.states()).every(s => s === 'done')", timeout=180_000, polling=100
    )
    # (a timer under load may not have fired since the last change: record once more)
    seen = page.evaluate("window.recordStates()")
    for node in ("load", "square", "total", "other"):
        assert seen[node][0] == "stale" and seen[node][-1] == "done"
        assert "running" in seen[node], seen
    page.get_by_text("done (4 done)").wait_for()

    page.locator(".bk-tab", has_text="Runs").click()
    page.locator(".tabulator-row").first.wait_for()
    assert "done" in page.locator(".tabulator-row").first.text_content()

    # A second run restores every step from the cache.
    page.locator(".bk-tab", has_text="Pipeline").click()
    page.get_by_role("button", name="Run", exact=True).click()
    page.wait_for_function(
        "Object.values(window.nbflowCanvas.states()).every(s => s === 'cached')", timeout=60_000, polling=100
    )
    runs = nbflow.Config.for_notebook(studio.folder / "run.ipynb")
    from nbflow.store import RunStore

    store = RunStore(runs.store_path)
    assert [r["status"] for r in store.runs(studio.folder / "run.ipynb")] == ["done", "done"]
    store.close()
    assert page.outside == []


def test_cancel_a_run(page, studio):
    open_notebook(page, studio, "cancel.ipynb", nodes=5)
    page.get_by_role("button", name="Run", exact=True).click()
    page.wait_for_function("window.nbflowCanvas.states().slow === 'running'", timeout=120_000, polling=100)
    page.get_by_role("button", name="Cancel").click()
    page.wait_for_function("window.nbflowCanvas.states().slow === 'cancelled'", timeout=60_000, polling=100)
    page.get_by_text("cancelled").first.wait_for()
    states = page.evaluate("window.nbflowCanvas.states()")
    assert states["total"] == "done"
    assert page.outside == []


def test_open_and_download_a_report(page, studio, tmp_path):
    pytest.importorskip("nbflow.report")
    path = studio.folder / "report.ipynb"
    env = {k: v for k, v in os.environ.items() if not k.startswith("NBFLOW_")}
    subprocess.run(
        [str(Path(sys.executable).parent / "nbflow"), "run", str(path), "-q"], check=True, env=env, timeout=300
    )
    open_notebook(page, studio, "report.ipynb")
    page.locator(".bk-tab", has_text="Runs").click()
    page.locator(".tabulator-row").first.click()
    # the selection travels to the server and back before the button is enabled
    expect(page.get_by_role("button", name="Open report")).to_be_enabled(timeout=30_000)
    page.get_by_role("button", name="Open report").click()
    frame = page.frame_locator("iframe[title^='report of run']")
    frame.get_by_text("square").first.wait_for(timeout=60_000)
    # Sandboxed: the report cannot reach the studio's page.
    iframe = page.locator("iframe[title^='report of run']")
    assert iframe.get_attribute("sandbox") == "allow-scripts"
    # Loaded over HTTP from the studio (not pushed through the websocket), by a relative address.
    src = iframe.get_attribute("src")
    assert src.startswith("report/") and "notebook=report.ipynb" in src
    assert iframe.get_attribute("srcdoc") is None
    served = page.request.get(studio.url + src)
    assert served.ok and served.headers["content-security-policy"] == "sandbox allow-scripts"
    screenshot(page, "studio-report")
    with page.expect_download() as download:
        page.get_by_role("button", name="Download report").click()
    saved = tmp_path / "report.html"
    download.value.save_as(saved)
    text = saved.read_text()
    assert "square" in text and "total" in text
    assert page.outside == []


def test_the_first_click_on_a_new_run_enables_open_report(page, studio):
    """#15 item 18: switching to the Runs tab replaces its rows when a run was added; a click
    on a row at that moment was undone by Tabulator clearing its selection in the browser.

    #23: the tab is left and shown again as fast as a person clicks. Two quick clicks can
    reach the server as no change of the active tab; the new run's row appears anyway."""
    path = studio.folder / "clicks.ipynb"
    env = {k: v for k, v in os.environ.items() if not k.startswith("NBFLOW_")}
    nbflow = str(Path(sys.executable).parent / "nbflow")
    open_notebook(page, studio, "clicks.ipynb")
    button = page.get_by_role("button", name="Open report")
    for attempt in range(3):
        # a run the studio has not listed yet: the tab switch below replaces the table's rows
        subprocess.run([nbflow, "run", str(path), "-q", "-p", "n", str(attempt + 4)], check=True, env=env, timeout=300)
        # no wait between the clicks: the server may see them as no change of the active tab
        page.locator(".bk-tab", has_text="Pipeline").click()
        page.locator(".bk-tab", has_text="Runs").click()
        # the row a person clicks is one they see: the new run's, once the switch has listed it
        expect(page.locator(".tabulator-row")).to_have_count(attempt + 1, timeout=60_000)
        page.wait_for_timeout(1000)  # a person sees the row, then clicks (a click while Tabulator redraws is lost)
        page.locator(".tabulator-row").first.click()
        expect(button).to_be_enabled(timeout=20_000)
        page.wait_for_timeout(1500)  # the rows replaced, the browser's selection cleared and sent back
        expect(button).to_be_enabled()
        assert page.locator(".tabulator-row").count() == attempt + 1


def test_a_run_made_while_the_runs_tab_is_shown_appears_without_a_click(page, studio):
    """#23: the table does not wait for a tab switch (which the server may not see) to list a new run."""
    path = studio.folder / "watch.ipynb"
    env = {k: v for k, v in os.environ.items() if not k.startswith("NBFLOW_")}
    nbflow = str(Path(sys.executable).parent / "nbflow")
    open_notebook(page, studio, "watch.ipynb")
    page.locator(".bk-tab", has_text="Runs").click()
    page.get_by_role("button", name="Refresh").wait_for()
    assert page.locator(".tabulator-row").count() == 0
    for count in (1, 2):
        subprocess.run([nbflow, "run", str(path), "-q", "-p", "n", str(count + 6)], check=True, env=env, timeout=300)
        # no click at all: the session's look at the run store lists it, and follows it to its end
        expect(page.locator(".tabulator-row")).to_have_count(count, timeout=30_000)
        expect(page.locator(".tabulator-row").first).to_contain_text("done", timeout=30_000)
        assert f"n={count + 6}" in page.locator(".tabulator-row").first.text_content()
    assert page.outside == []


def select_row(page, text: str) -> None:
    """Click the run history row showing ``text`` until the server has the selection (Open report enabled).

    The first click can race with the refresh that showing the Runs tab asks for.
    """
    button = page.get_by_role("button", name="Open report")
    for _ in range(10):
        page.locator(".tabulator-row", has_text=text).first.click()
        try:
            expect(button).to_be_enabled(timeout=5_000)
            return
        except AssertionError:
            continue
    expect(button).to_be_enabled(timeout=1)


def test_the_report_tab_follows_a_run_as_steps_finish(page, studio):
    pytest.importorskip("nbflow.report")
    open_notebook(page, studio, "live.ipynb")
    page.get_by_role("button", name="Run", exact=True).click()
    page.wait_for_function("window.nbflowCanvas.states().load === 'running'", timeout=120_000, polling=100)
    page.locator(".bk-tab", has_text="Runs").click()
    select_row(page, "running")
    page.get_by_role("button", name="Open report").click()
    frame = page.frame_locator("iframe[title^='report of run']")
    badge = frame.locator(".nbflow-status .nbflow-badge")
    try:
        badge.wait_for(timeout=60_000)
        first = page.locator("iframe[title^='report of run']").get_attribute("src")
        assert badge.inner_text() == "running"  # opened while the run goes on (held at load's gate)
    finally:
        (studio.folder / "live.go").touch()  # the run goes on
    # no click: the tab rebuilds the report as steps finish, and once more when the run ends
    frame.locator(".nbflow-status .nbflow-badge", has_text="done").wait_for(timeout=180_000)
    assert page.locator("iframe[title^='report of run']").get_attribute("src") != first
    assert "4 done" in frame.locator(".nbflow-status").inner_text()
    assert page.outside == []


def test_publish_button_writes_the_site_of_the_folder(page, studio):
    pytest.importorskip("nbflow.report")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NBFLOW_")}
    path = studio.folder / "publish.ipynb"
    subprocess.run(
        [str(Path(sys.executable).parent / "nbflow"), "run", str(path), "-q"], check=True, env=env, timeout=300
    )
    open_notebook(page, studio, "publish.ipynb")
    page.locator(".bk-tab", has_text="Runs").click()
    page.get_by_role("button", name="Publish").click()
    page.get_by_text("site written:").wait_for(timeout=180_000)
    index = studio.folder / "nbflow-site" / "index.html"
    assert page.get_by_text(str(index)).count() == 1
    page.goto(index.as_uri())
    rows = page.locator("table.nbflow-runs tbody tr[data-pipeline='publish']")
    assert rows.count() == 1 and "done" in rows.first.inner_text()
    assert page.outside == []


def websocket_handshake(url: str, origin: str) -> int:
    """The HTTP status of a websocket upgrade of the studio's /ws with this Origin."""
    import base64
    import http.client
    from urllib.parse import urlparse

    where = urlparse(url)
    conn = http.client.HTTPConnection(where.hostname, where.port, timeout=10)
    conn.request(
        "GET",
        "/ws",
        headers={
            "Connection": "Upgrade",
            "Upgrade": "websocket",
            "Origin": origin,
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
        },
    )
    status = conn.getresponse().status
    conn.close()
    return status


def test_only_listed_origins_may_open_the_websocket(studio):
    # (The other tests' pages are the allowed origin at work.)
    assert websocket_handshake(studio.url, "http://evil.example") == 403


def test_basic_auth_guards_the_studio(tmp_path):
    import http.cookiejar
    import urllib.parse
    import urllib.request

    chain(tmp_path / "p.ipynb")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NBFLOW_")}
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "nbflow"), "studio", str(tmp_path), "--port", str(port)]
        + ["--basic-auth", "correct horse battery"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_for_http(url, proc, timeout=120)
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        with opener.open(url) as page:
            assert page.url.startswith(f"{url}login")  # redirected to the login form
        wrong = urllib.parse.urlencode({"username": "me", "password": "wrong"}).encode()
        with opener.open(f"{url}login", data=wrong) as page:
            assert "/login" in page.url  # back to the login form
        with opener.open(url) as page:
            assert page.url.startswith(f"{url}login")
        right = urllib.parse.urlencode({"username": "me", "password": "correct horse battery"}).encode()
        with opener.open(f"{url}login", data=right) as page:
            assert page.url == url
            assert b"nbflow studio" in page.read()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)


def test_readme_screenshots(page, studio):
    """The example pipeline in the studio, run, with a step open (docs/studio*.png)."""
    open_notebook(page, studio, "wine/wine_classifier.ipynb", nodes=5)
    page.get_by_role("button", name="Run", exact=True).click()
    page.wait_for_function(
        "Object.values(window.nbflowCanvas.states()).every(s => s === 'done')", timeout=300_000, polling=200
    )
    train = center(page, "train")
    page.mouse.click(train["x"], train["y"])
    page.get_by_text("n_estimators").first.wait_for()
    page.wait_for_timeout(500)
    shot = screenshot(page, "studio", docs="studio.png")
    page.locator(".bk-tab", has_text="Runs").click()
    page.locator(".tabulator-row").first.click()
    page.wait_for_timeout(500)
    screenshot(page, "studio-runs", docs="studio-runs.png")
    assert shot.parent == ARTIFACTS
    assert page.outside == []
