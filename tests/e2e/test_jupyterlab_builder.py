"""Building a pipeline by dragging in JupyterLab's side panel, in a real JupyterLab 4.

Every gesture edits the notebook model, never the file: a dragged node lands in
``metadata.nbflow.layout`` and the notebook becomes dirty; Connect adds an ``after:`` tag
(an edge the code implies is explained, a cycle refused with its path); Ctrl-Z in the
notebook undoes it; Add step makes a tagged cell with docs; Rename carries the ``after:``
tags of dependants along; Delete removes the cells. The file on disk changes only on Save.
"""

from __future__ import annotations

import json

import pytest

from ..conftest import code, md, step, write_notebook
from .conftest import screenshot
from .jupyterlab import lab_server, wait_until  # noqa: F401 - fixture


def model(page) -> dict:
    """The current notebook's model as JupyterLab holds it (not the file)."""
    return page.evaluate("() => { const m = window.nbflowLab.notebook(); return {json: m.toJSON(), dirty: m.dirty}; }")


def tags_of(page, name: str) -> list[str] | None:
    for cell in model(page)["json"]["cells"]:
        tags = cell["metadata"].get("tags", [])
        if f"step:{name}" in tags:
            return tags
    return None


def center(page, node: str) -> dict:
    return page.evaluate(f"window.nbflowLab.canvas.nodeCenter({json.dumps(node)})")


def drag(page, start: dict, end: dict) -> None:
    page.mouse.move(start["x"], start["y"])
    page.mouse.down()
    page.mouse.move(end["x"], end["y"], steps=20)
    page.wait_for_timeout(200)  # edgehandles picks the target after a short hover
    page.mouse.up()


def nodes(page) -> list[str]:
    return page.evaluate("window.nbflowLab.canvas.cy.nodes('[display]').map(n => n.id())")


def message(page) -> str:
    return page.inner_text("#nbflow-graph-panel .nbflow-Panel-message")


def wait_message(page, text: str) -> str:
    try:
        wait_until(lambda: text in message(page), 20, page=page)
    except AssertionError:
        raise AssertionError(f"the panel says {message(page)!r}, not {text!r}") from None
    return message(page)


def click_node(page, name: str) -> None:
    point = center(page, name)
    page.mouse.click(point["x"], point["y"])
    page.wait_for_function(f"window.nbflowLab.panel.selected === {json.dumps(name)}", timeout=10_000)


def panel_button(page, label: str):
    return page.locator(f"#nbflow-graph-panel .nbflow-Panel-actions button:text-is('{label}')")


def canvas_button(page, label: str):
    return page.locator(f"#nbflow-graph-panel .nbflow-canvas .toolbar button:text-is('{label}')")


def undo_in_notebook(page) -> None:
    """Ctrl-Z in the notebook's command mode: the notebook's own undo history."""
    page.locator(".jp-Notebook .jp-Cell .jp-InputPrompt").first.click()
    page.keyboard.press("Escape")
    page.keyboard.press("Control+z")


@pytest.mark.browser
@pytest.mark.slow
def test_build_a_pipeline_by_dragging_in_the_side_panel(lab_server, page):  # noqa: F811
    nb_path = write_notebook(
        lab_server.root / "builder.ipynb",
        [
            md("# Builder"),
            code("n = 3", "parameters"),
            md("Make the numbers."),
            step("load", "data = list(range(n))"),
            step("square", "sq = [x * x for x in data]"),
            step("total", "t = sum(sq)\nprint(t)"),
            step("report", "print('report')"),
        ],
    )
    lab_server.open(page, "builder.ipynb")
    page.locator(".jp-SideBar [data-id='nbflow-graph-panel']").click()
    page.wait_for_function("window.nbflowLab && window.nbflowLab.canvas.cy.nodes('[display]').length === 4")
    # The kernel's language_info makes a fresh notebook dirty: save it to start clean.
    page.locator(".jp-NotebookPanel-toolbar [data-command='docmanager:save']").click()
    wait_until(lambda: not model(page)["dirty"], 30, page=page)
    on_disk = nb_path.read_bytes()

    # Drag a node: its position lands in the notebook model's metadata; the notebook is dirty.
    start = center(page, "report")
    drag(page, start, {"x": start["x"] - 90, "y": start["y"] + 110})
    wait_message(page, "moved report")
    state = model(page)
    layout = state["json"]["metadata"]["nbflow"]["layout"]
    drawn = page.evaluate("window.nbflowLab.canvas.cy.getElementById('report').position()")
    assert layout["report"] == pytest.approx(drawn, abs=0.1)
    assert state["dirty"] is True
    page.wait_for_selector(".jp-mod-current.jp-mod-dirty, .lm-TabBar-tab.jp-mod-dirty", timeout=10_000)

    # Connect two steps: the after: tag appears in the cell's tags, and the graph follows.
    canvas_button(page, "Connect").click()
    drag(page, center(page, "total"), center(page, "report"))
    wait_message(page, "report now runs after total")
    assert "after:total" in tags_of(page, "report")
    page.wait_for_function("window.nbflowLab.canvas.cy.getElementById('total->report').nonempty()", timeout=20_000)

    # An edge the code already implies: nothing changes, the panel says which variables.
    drag(page, center(page, "load"), center(page, "square"))
    assert "square already runs after load: it reads data from it" in wait_message(page, "already runs after")
    assert tags_of(page, "square") == ["step:square"]

    # A cycle is refused, with its path; the model is left as it was.
    drag(page, center(page, "report"), center(page, "load"))
    said = wait_message(page, "cycle")
    assert "report -> load -> square -> total -> report" in said, said
    assert tags_of(page, "load") == ["step:load"]
    page.wait_for_selector("#nbflow-graph-panel .nbflow-Panel-message[data-kind='error']")
    screenshot(page, "builder-cycle-refused")

    # Ctrl-Z in the notebook undoes the connection (the notebook's own history).
    undo_in_notebook(page)
    wait_until(lambda: "after:total" not in tags_of(page, "report"), 20, page=page)
    page.wait_for_function("window.nbflowLab.canvas.cy.getElementById('total->report').empty()", timeout=20_000)

    # Connect again, then rename total: report's after: tag follows, and its saved position.
    page.locator("#nbflow-graph-panel .nbflow-canvas").scroll_into_view_if_needed()
    drag(page, center(page, "total"), center(page, "report"))
    wait_message(page, "report now runs after total")
    canvas_button(page, "Move").click()
    click_node(page, "total")
    panel_button(page, "Rename").click()
    page.locator(".jp-Dialog input").fill("summary")
    page.locator(".jp-Dialog .jp-mod-accept").click()
    wait_message(page, "renamed total to summary")
    assert tags_of(page, "summary") == ["step:summary"]
    assert tags_of(page, "report") == ["step:report", "after:summary"]
    page.wait_for_function("window.nbflowLab.canvas.cy.getElementById('summary->report').nonempty()", timeout=20_000)
    assert model(page)["json"]["metadata"]["nbflow"]["layout"]["report"] == pytest.approx(drawn, abs=0.1)

    # Add a step below square: a new cell tagged step:plot, with its docs above it.
    click_node(page, "square")
    panel_button(page, "Add step").click()
    page.locator(".jp-Dialog input").fill("plot")
    page.locator(".jp-Dialog .jp-mod-accept").click()
    wait_message(page, "added step plot")
    cells = model(page)["json"]["cells"]
    index = next(i for i, c in enumerate(cells) if "step:plot" in c["metadata"].get("tags", []))
    assert cells[index]["cell_type"] == "code"
    assert "### plot" in "".join(cells[index - 1]["source"]) and cells[index - 1]["cell_type"] == "markdown"
    assert "step:square" in cells[index - 2]["metadata"].get("tags", [])  # below square, where data exists
    page.wait_for_function("window.nbflowLab.canvas.cy.getElementById('plot').nonempty()", timeout=20_000)
    screenshot(page, "builder-added-step", docs="jupyterlab-builder.png")

    # Find a step by name, collapse a fan-out.
    page.locator("#nbflow-graph-panel .nbflow-canvas input.search").fill("squ")
    page.locator("#nbflow-graph-panel .nbflow-canvas input.search").press("Enter")
    page.wait_for_function("window.nbflowLab.canvas.selectedStep() === 'square'", timeout=10_000)
    page.wait_for_function("!window.nbflowLab.canvas.cy.animated()", timeout=10_000)  # centred on it
    click_node(page, "load")
    canvas_button(page, "Collapse").click()
    hidden = page.evaluate("window.nbflowLab.canvas.cy.nodes('.hidden').map(n => n.id()).sort()")
    assert hidden == ["report", "square", "summary"]  # plot has no code yet: no edge
    canvas_button(page, "Expand").click()
    assert page.evaluate("window.nbflowLab.canvas.cy.nodes('.hidden').length") == 0

    # Delete a step with its cells.
    click_node(page, "plot")
    panel_button(page, "Delete").click()
    page.locator(".jp-Dialog button:has-text('Delete cells')").click()
    wait_message(page, "deleted step plot")
    cells = model(page)["json"]["cells"]
    assert not any("step:plot" in c["metadata"].get("tags", []) for c in cells)
    assert not any("### plot" in "".join(c["source"]) for c in cells)
    wait_until(lambda: sorted(nodes(page)) == ["load", "report", "square", "summary"], 20, page=page)

    # None of it touched the file; Save writes it, and nbflow reads what was built.
    assert nb_path.read_bytes() == on_disk
    page.locator(".jp-NotebookPanel-toolbar [data-command='docmanager:save']").click()
    wait_until(lambda: nb_path.read_bytes() != on_disk, 30, page=page)
    import nbflow

    pipeline = nbflow.load_pipeline(nb_path)
    assert list(pipeline.steps) == ["load", "square", "summary", "report"]
    assert pipeline.steps["report"].after == ("summary",)
    assert pipeline.source.layout["report"] == pytest.approx(drawn, abs=0.1)
    assert page.outside == []
    assert not [e for e in page.console_errors if "nbflow" in e.lower()], page.console_errors
