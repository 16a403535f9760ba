"""The report's sanitizing and page policy (nbflow/report/), with the real nbconvert.

End-to-end reports of real runs, opened in Chromium, are in tests/e2e/test_report.py.
"""

from __future__ import annotations

import base64
import hashlib

import nbformat
import pytest

from nbflow.report import CellRenderer, content_policy, sanitizer, unsafe_parts

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="


def cell_with(*outputs: dict) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell("x = 1")
    cell.outputs = [nbformat.from_dict(o) for o in outputs]
    return nbformat.v4.new_notebook(cells=[cell])


def display(data: dict) -> dict:
    return {"output_type": "display_data", "data": data, "metadata": {}}


def cleaned(*outputs: dict) -> list:
    nb, _ = sanitizer().preprocess(cell_with(*outputs), {})
    return nb.cells[0].outputs


def test_scripts_handlers_and_javascript_links_are_removed():
    html = (
        '<b>bold</b><script>window.PWNED = 1</script><img src="x" onerror="window.PWNED = 2">'
        '<a href="javascript:window.PWNED = 3">bad link</a><a href="https://example.org/doc">doc</a>'
        '<svg onload="window.PWNED = 4"></svg><div id="PWNED" onclick="x()">clobber</div>'
    )
    out = cleaned(display({"text/html": html}))[0].data["text/html"]
    assert "<b>bold</b>" in out
    assert 'href="https://example.org/doc"' in out  # a link is only followed when clicked
    for gone in ("<script", "window.PWNED", "onerror", "onload", "onclick", "javascript:", "<svg", 'id="PWNED"'):
        assert gone not in out, gone
    assert ">bad link</a>" in out and "clobber" in out  # the text stays, without its behaviour


def test_nothing_outside_the_file_can_load():
    html = (
        '<img src="https://example.com/tracker.png"><link rel="stylesheet" href="https://example.com/s.css">'
        '<iframe src="https://example.com/frame"></iframe><span style="cursor: url(https://example.com/c.cur), auto;'
        ' color: red">styled</span><style>@import url(https://example.com/i.css);</style>'
        '<video src="https://example.com/v.mp4"></video><object data="https://example.com/o"></object>'
    )
    out = cleaned(display({"text/html": html}))[0].data["text/html"]
    assert "example.com" not in out
    assert "color: red" in out and "cursor" not in out


def test_tables_and_embedded_images_are_kept():
    frame = (
        "<div><style scoped>.dataframe tbody tr th { vertical-align: top; }</style>"
        '<table border="1" class="dataframe"><thead><tr style="text-align: right;"><th></th><th>x</th></tr></thead>'
        "<tbody><tr><th>0</th><td>1</td></tr></tbody></table></div>"
        f'<img src="data:image/png;base64,{PNG}" alt="dot">'
    )
    out = cleaned(display({"text/html": frame, "text/plain": "   x\n0  1"}))[0].data["text/html"]
    assert '<table border="1" class="dataframe">' in out and "<th>x</th>" in out and "<td>1</td>" in out
    assert f'src="data:image/png;base64,{PNG}"' in out
    assert "vertical-align: top" not in out  # a stylesheet is removed whole, not shown as text


def test_javascript_outputs_are_dropped_and_scripted_html_falls_back_to_text():
    js, widget = cleaned(
        {
            "output_type": "display_data",
            "data": {"application/javascript": "window.PWNED = 1", "text/plain": "<Javascript>"},
            "metadata": {},
        },
        display({"text/html": "<div>diagram</div><script>draw()</script>", "text/plain": "Model(depth=3)"}),
    )
    assert dict(js.data) == {"text/plain": "<Javascript>"}
    assert dict(widget.data) == {"text/plain": "Model(depth=3)"}


@pytest.fixture(scope="module")
def sanitized() -> CellRenderer:
    return CellRenderer(trusted=False)


def test_rendered_cells_show_images_inline_and_svg_as_an_image(sanitized):
    svg = '<svg xmlns="http://www.w3.org/2000/svg" onload="window.PWNED=1"><circle r="4"/></svg>'
    html = sanitized.cells(
        [
            {
                "cell_type": "code",
                "source": "plot()",
                "outputs": [display({"image/png": PNG}), display({"image/svg+xml": svg})],
            }
        ],
        {},
    )
    assert f'src="data:image/png;base64,{PNG}"' in html
    assert 'src="data:image/svg+xml;base64,' in html  # in an <img>, an SVG's scripts never run
    assert "<svg" not in html
    assert "plot" in html  # the code, highlighted


def test_markdown_is_sanitized_unless_trusted(sanitized):
    text = "## Step\nSome *emphasis* and `a < b`.\n\n<script>window.PWNED = 1</script>"
    safe = sanitized.markdown(text)
    assert "<em>emphasis</em>" in safe and "<code>a &lt; b</code>" in safe
    assert "<script" not in safe and "PWNED" not in safe
    assert "<script>window.PWNED = 1</script>" in CellRenderer(trusted=True).markdown(text)


def test_unsafe_parts_counts_what_a_sanitized_report_does_not_run():
    outputs = [
        display({"text/html": ["<p>a</p><script>1</script>", "<SCRIPT src=x></SCRIPT>"]}),
        display({"application/javascript": "2"}),
        {"output_type": "stream", "name": "stdout", "text": "<script> in text is only text"},
    ]
    assert unsafe_parts(outputs) == {"script": 2, "javascript": 1}


def test_the_page_policy_allows_exactly_the_given_scripts():
    policy = content_policy(["console.log(1)", "draw()"])
    digest = base64.b64encode(hashlib.sha256(b"console.log(1)").digest()).decode()
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["default-src"] == "'none'"
    assert f"'sha256-{digest}'" in directives["script-src"]
    assert "unsafe-inline" not in directives["script-src"] and "unsafe-eval" not in directives["script-src"]
    assert directives["img-src"] == "data:" and directives["connect-src"] == "'none'"


@pytest.mark.parametrize(
    ("fragment", "closed"),
    [
        ("<style>\n.x { color: red }\n", "<style>\n.x { color: red }\n</style>"),
        ('<div style="display:none"><b>hidden', '<div style="display:none"><b>hidden</b></div>'),
        ("<!-- never closed", "<!-- never closed-->"),
        ("text <textarea>", "text <textarea></textarea>"),
        ("<script>let a = 1", "<script>let a = 1</script>"),  # kept: isolation is not sanitizing
        ("a &amp; b, <br> plain", "a &amp; b, <br> plain"),
    ],
)
def test_each_fragment_is_parsed_on_its_own(fragment, closed):
    """#15 item 17: what a browser makes of a cell's markup alone, balanced again."""
    from nbflow.report.cells import isolated

    assert isolated(fragment) == closed


def test_trusted_markdown_and_html_outputs_end_with_their_cell():
    renderer = CellRenderer(trusted=True)
    assert renderer.markdown("Docs\n\n<style>\np { color: red }\n").rstrip().endswith("</style>")
    nb = cell_with(display({"text/html": "<div><style>.x{}", "text/plain": "h"}))
    html = renderer.cells([dict(c) for c in nb.cells], {})
    assert html.count("<style>") == html.count("</style>") == 1


@pytest.mark.parametrize("trusted", [False, True])
def test_image_metadata_reaches_the_page_only_as_numbers(trusted):
    """#15 item 16: lab's template wrote ``height={{ value }}`` unquoted, from the notebook."""
    import re

    nb = cell_with(
        {
            "output_type": "display_data",
            "data": {"image/png": PNG, "text/plain": "p"},
            "metadata": {
                "image/png": {"height": "1 onload=alert(1)", "width": 12.7, "needs_background": "light x"},
                "filenames": {"image/png": "https://example.com/p.png"},
                "unconfined": True,
            },
        },
        {"output_type": "display_data", "data": {"image/jpeg": PNG}, "metadata": {"height": -3, "width": True}},
    )
    nb.cells[0].outputs[0]["svg_filename"] = "https://example.com/s.svg"  # not an nbformat key
    html = CellRenderer(trusted).cells([dict(c) for c in nb.cells], {})
    images = re.findall(r"<img[^>]*>", html)
    assert len(images) == 2
    assert 'width="12"' in images[0] and "height" not in images[0] and 'class="unconfined"' in images[0]
    assert "onload" not in html and "example.com" not in html
    assert "width" not in images[1] and "height" not in images[1]
