"""The browser fixture itself: Debian Chromium starts headless and nothing leaves the machine."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser


def test_chromium_renders_a_local_page_and_blocks_outside_requests(page, tmp_path):
    html = tmp_path / "p.html"
    html.write_text(
        "<html><body><h1 id='t'>hello</h1>"
        "<img src='https://example.com/tracker.png'>"
        "<script>document.getElementById('t').textContent = 'ran'</script></body></html>"
    )
    page.goto(html.as_uri())
    assert page.text_content("#t") == "ran"
    page.wait_for_timeout(200)
    assert page.outside == ["https://example.com/tracker.png"]
