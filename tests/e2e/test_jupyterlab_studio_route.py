"""The studio through the Jupyter server: ``<base_url>nbflow/studio/``, behind Jupyter's login.

A real JupyterLab server (``lab_server``) starts the studio on first use through
jupyter-server-proxy (nbflow/studio/proxy.py): without the token the route sends the
browser to JupyterLab's login page and the studio never answers; with it the studio
opens on the notebook named in the URL, its canvas fed through the proxied websocket.
The launcher tile *nbflow studio* and *Open in nbflow studio* in the file browser's
context menu open it in a new tab.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from ..conftest import step, write_notebook
from .conftest import screenshot
from .jupyterlab import lab_server  # noqa: F401 - fixture

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def status_of(url: str) -> tuple[int, str]:
    """The status and Location of a GET that does not follow redirects."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(url, timeout=180) as response:
            return response.status, response.headers.get("Location", "")
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Location", "")


def test_the_studio_route_refuses_without_the_token(lab_server, page):  # noqa: F811
    # No studio process is started for a request that is not logged in.
    code, location = status_of(f"{lab_server.url}nbflow/studio/")
    assert code == 302 and "/login" in location, (code, location)
    code, _ = status_of(f"{lab_server.url}nbflow/studio/?token=wrong")
    assert code == 302
    page.goto(f"{lab_server.url}nbflow/studio/?notebook=wine_classifier.ipynb")
    page.wait_for_selector("input[type='password']", timeout=30_000)
    assert "/login" in page.url
    assert "nbflow studio" not in page.title()
    assert "nbflow studio:" not in lab_server.log.read_text()  # the studio was never started


def test_the_studio_opens_through_jupyter_with_the_token(lab_server, page):  # noqa: F811
    write_notebook(
        lab_server.root / "routed.ipynb",
        [step("load", "data = [1, 2, 3]"), step("total", "t = sum(data)")],
    )
    # The first request starts the studio (Panel's import on a busy machine is slow).
    page.goto(f"{lab_server.url}nbflow/studio/?notebook=routed.ipynb&token={lab_server.token}", timeout=180_000)
    page.wait_for_function(
        "window.nbflowCanvas && window.nbflowCanvas.cy.nodes('[display]').length === 2", timeout=180_000
    )
    assert page.title() == "nbflow studio"
    assert sorted(page.evaluate("window.nbflowCanvas.cy.nodes('[display]').map(n => n.id())")) == ["load", "total"]
    page.locator("code", has_text="routed.ipynb").first.wait_for()
    screenshot(page, "studio-through-jupyter")
    # The Bokeh websocket runs through the proxy: a click on a node reaches the Python app,
    # which opens the step in its editor.
    load = page.evaluate("window.nbflowCanvas.nodeCenter('load')")
    page.mouse.click(load["x"], load["y"])
    name = page.get_by_label("Name", exact=True).last
    name.wait_for(timeout=60_000)
    assert name.input_value() == "load"
    assert page.outside == []
    assert not [e for e in page.console_errors if "websocket" in e.lower()], page.console_errors


def test_launcher_tile_and_file_browser_menu_open_the_studio(lab_server, page):  # noqa: F811
    page.goto(f"{lab_server.url}lab?token={lab_server.token}")
    page.wait_for_selector(".jp-LauncherCard", timeout=90_000)
    tile = page.locator(".jp-LauncherCard", has_text="nbflow studio")
    assert tile.count() == 1 and tile.get_attribute("title").startswith("Build, run and browse pipelines")
    with page.context.expect_page(timeout=180_000) as opened:
        tile.click()
    studio = opened.value
    studio.wait_for_load_state(timeout=180_000)
    assert studio.url.startswith(f"{lab_server.url}nbflow/studio/"), studio.url
    studio.close()

    item = page.locator(".jp-DirListing-item[data-file-type='notebook']", has_text="wine_classifier.ipynb")
    item.click(button="right")
    entry = page.locator(".lm-Menu-item[data-command='nbflow:open-in-studio']")
    assert entry.inner_text().strip() == "Open in nbflow studio"
    with page.context.expect_page() as opened:
        entry.click()
    studio = opened.value
    studio.wait_for_load_state(timeout=180_000)
    assert studio.url == f"{lab_server.url}nbflow/studio/?notebook=wine_classifier.ipynb", studio.url
    studio.wait_for_function(
        "window.nbflowCanvas && window.nbflowCanvas.cy.nodes('[display]').length > 3", timeout=180_000
    )
    assert json.dumps(studio.evaluate("document.title")) == '"nbflow studio"'
    studio.close()
