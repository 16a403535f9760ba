"""Cells and markdown of a report as HTML, and what is removed from untrusted ones.

``sanitizer()`` is nbconvert's ``SanitizeHTML`` configured for reports (tables, images
as data URIs and text formatting kept; scripts, styles, handlers, external resources
removed); ``CellRenderer`` renders groups of cells with nbconvert's JupyterLab template
in one export. It renders strings; it reads no store and writes no file.
"""

from __future__ import annotations

import copy
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from .templating import TEMPLATES, template_cache

_SAFE_TAGS = (
    "a abbr acronym b blockquote br caption center cite code col colgroup dd del details div dl dt em "
    "figcaption figure h1 h2 h3 h4 h5 h6 hr i img ins kbd li mark ol p pre q s samp small span strong "
    "sub summary sup table tbody td tfoot th thead tr tt u ul var"
).split()
_SAFE_ATTRIBUTES = {"class", "title", "align", "valign", "colspan", "rowspan", "width", "height", "border", "alt"}
#: bleach's CSS allow-list minus ``cursor``, the one property in it that takes a url().
_UNSAFE_CSS = {"cursor"}
_SCRIPT = re.compile(r"<script\b", re.IGNORECASE)
_DROPPED_WITH_CONTENT = re.compile(r"<(script|style)\b[^>]*>.*?</\1\s*>", re.IGNORECASE | re.DOTALL)


def _allowed_attribute(tag: str, name: str, value: str) -> bool:
    # No id or name: an output must not be able to shadow globals (window.<id>) or our anchors.
    if name in _SAFE_ATTRIBUTES or name == "style":
        return True
    if tag == "a" and name == "href":
        return not value.strip().lower().startswith("data:")
    if tag == "img" and name == "src":
        # Only images inside the file: a remote image is a request leaving the page.
        return value.strip().lower().startswith("data:image/")
    return False


def sanitizer() -> Any:
    """nbconvert's ``SanitizeHTML`` preprocessor, configured for reports.

    It drops every output type it does not know to be safe (JavaScript, widgets) and
    cleans HTML and Markdown outputs with bleach, keeping tables, images embedded as
    data URIs and text formatting. The content of ``<script>`` and ``<style>`` is
    removed rather than shown as text (as JupyterLab's sanitizer does).
    """
    import bleach
    from bleach.css_sanitizer import ALLOWED_CSS_PROPERTIES, CSSSanitizer
    from nbconvert.preprocessors.sanitize import SanitizeHTML

    class ReportSanitizer(SanitizeHTML):
        def sanitize_code_outputs(self, outputs: Any) -> Any:
            # HTML that carries scripts (widgets, interactive plots, estimator diagrams)
            # is blank or misleading without them: show its plain-text form instead.
            for output in outputs:
                data = output.get("data") or {}
                html = data.get("text/html")
                if html is not None and "text/plain" in data and _SCRIPT.search(_text(html)):
                    del data["text/html"]
            return super().sanitize_code_outputs(outputs)

        def sanitize_html_tags(self, html_str: str) -> str:
            # The same bleach call as SanitizeHTML's, plus data: among the protocols
            # (images in outputs are data URIs; _allowed_attribute limits it to <img>).
            # One Cleaner for every call: building its parser costs more than cleaning an output.
            cleaner = self.__dict__.get("_nbflow_cleaner")
            if cleaner is None:
                cleaner = self.__dict__["_nbflow_cleaner"] = bleach.Cleaner(
                    tags=self.tags,
                    attributes=self.attributes,
                    protocols=["http", "https", "mailto", "data"],
                    strip=self.strip,
                    strip_comments=self.strip_comments,
                    css_sanitizer=CSSSanitizer(allowed_css_properties=self.styles),
                )
            return cleaner.clean(_DROPPED_WITH_CONTENT.sub("", html_str))

    return ReportSanitizer(
        tags=_SAFE_TAGS,
        attributes=_allowed_attribute,
        styles=sorted(set(ALLOWED_CSS_PROPERTIES) - _UNSAFE_CSS),
        strip=True,
        # SVG is shown as <img src="data:image/svg+xml..."> where its scripts never run.
        safe_output_keys={
            "metadata",
            "text/plain",
            "text/latex",
            "application/json",
            "image/png",
            "image/jpeg",
            "image/svg+xml",
        },
    )


def unsafe_parts(outputs: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """What the sanitizer removes from ``outputs``: scripts and JavaScript outputs, counted."""
    found = {"script": 0, "javascript": 0}
    for output in outputs:
        data = output.get("data") or {}
        for mime, value in data.items():
            if "javascript" in mime:
                found["javascript"] += 1
            elif mime in ("text/html", "text/markdown"):
                found["script"] += len(_SCRIPT.findall(_text(value)))
    return found


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def isolated(fragment: str) -> str:
    """``fragment`` as a browser reads it on its own, serialized again: every element it opens ends in it.

    JupyterLab renders each markdown cell and each HTML output into its own element
    (``innerHTML``), so an unclosed ``<style>``, ``<div>`` or comment ends with that cell.
    A report puts them all in one page, where it would swallow the rest: each fragment
    goes through the HTML5 fragment parser (html5lib, the algorithm browsers use) and is
    written back balanced. What it means does not change; scripts are kept (this is not
    a sanitizer).
    """
    import html5lib

    if "<" not in fragment:
        return fragment
    tree = html5lib.parseFragment(fragment, treebuilder="etree", namespaceHTMLElements=False)
    return html5lib.serialize(
        tree,
        tree="etree",
        quote_attr_values="always",
        omit_optional_tags=False,
        resolve_entities=False,
        alphabetical_attributes=False,
    )


#: The keys of an nbformat output; anything else (``svg_filename`` ...) is not the notebook's to set.
_OUTPUT_KEYS = {"output_type", "data", "metadata", "execution_count", "name", "text", "ename", "evalue", "traceback"}


def _dimension(value: Any) -> int | None:
    """A width or height as a whole number of pixels, or ``None`` (a string, a negative number ...)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if value != value or not 0 <= value < 100_000:  # NaN, negative, absurd
        return None
    return int(value)


def image_attributes(output: Mapping[str, Any], mime: str) -> Any:
    """`` width="W" height="H" class="..."`` of an image output, from its metadata, as markup.

    Only whole numbers are written as sizes, and only the two background classes
    JupyterLab knows: metadata is notebook data, never copied into the page as text.
    """
    import markupsafe

    metadata = output.get("metadata") or {}
    own = metadata.get(mime) if isinstance(metadata.get(mime), Mapping) else {}

    def get(key: str) -> Any:
        value = own.get(key)
        return metadata.get(key) if value is None else value

    parts = []
    for key in ("width", "height"):
        size = _dimension(get(key))
        if size is not None:
            parts.append(f' {key}="{size}"')
    classes = ["unconfined"] if get("unconfined") is True else []
    background = get("needs_background")
    if background in ("light", "dark"):
        classes.append(f"jp-needs-{background}-background")
    parts.append(f' class="{" ".join(classes)}"')
    return markupsafe.Markup("".join(parts))  # noqa: S704 - only numbers and fixed class names


def _clean_output(output: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in output.items() if k in _OUTPUT_KEYS}


# ======================================================================== rendering


class CellRenderer:
    """Cells and markdown to HTML with nbconvert's JupyterLab template."""

    def __init__(self, trusted: bool) -> None:
        from nbconvert import HTMLExporter

        self.trusted = trusted
        self.clean = None if trusted else sanitizer()
        # cells.html.j2 extends lab/base.html.j2, which renders cells only: the page is ours.
        self.exporter = HTMLExporter(
            template_name="lab",
            template_file="cells.html.j2",
            extra_template_paths=[str(TEMPLATES)],
            exclude_input_prompt=True,
            exclude_output_prompt=True,
        )
        self.exporter.register_filter("nbflow_isolate", isolated)
        self.exporter.register_filter("nbflow_image_attributes", image_attributes)
        cache = template_cache()
        if cache is not None:  # nbconvert's templates compiled once for every process (template_cache.py)
            self.exporter.environment.bytecode_cache = cache
        _, resources = self.exporter.from_notebook_node(_notebook([]))
        self.css = "\n".join(
            [
                str(resources["include_css"]("static/index.css")),
                str(resources["include_css"]("static/theme-light.css")),
                *(f"<style>{css}</style>" for css in resources["inlining"]["css"]),
            ]
        )
        # The Pygments CSS is in hand: do not recompute it for every step.
        for pre in self.exporter._preprocessors:
            if type(pre).__name__ == "CSSHTMLHeaderPreprocessor":
                pre.enabled = False

    def cells(self, cells: list[dict[str, Any]], metadata: Mapping[str, Any], hide_code: bool = False) -> str:
        """One group of cells (code and outputs) as HTML."""
        return self.sections([(cells, hide_code)], metadata)[0]

    def sections(self, groups: Iterable[tuple[list[dict[str, Any]], bool]], metadata: Mapping[str, Any]) -> list[str]:
        """Groups of ``(cells, hide_code)`` as HTML, one string per group.

        All cells go through nbconvert in one export (one template render, one pass of
        its post-processing), cut apart again at markers no output can forge.
        """
        import secrets

        import nbformat
        from nbformat.v4 import rwbase

        marker = f"nbflow-{secrets.token_hex(8)}-"
        prepared = []
        count = 0
        for index, (cells, hide_code) in enumerate(groups):
            count += 1
            for cell in cells:
                cell = copy.deepcopy(dict(cell))
                cell.pop("id", None)  # nbformat 4.4 cells: no ids to keep unique across sections
                cell["metadata"] = {"nbflow_marker": f"{marker}{index}"}
                cell["outputs"] = [_clean_output(o) for o in cell.get("outputs") or []]
                cell.setdefault("execution_count", None)
                if hide_code:
                    cell["metadata"]["transient"] = {"remove_source": True}
                prepared.append(cell)
        html = [""] * count
        if not prepared:
            return html
        # Notebook JSON keeps multi-line text as lists of lines; nbconvert wants strings.
        nb = rwbase.rejoin_lines(nbformat.from_dict(_notebook(prepared, metadata)))
        if self.clean is not None:
            nb, _ = self.clean.preprocess(nb, {})
        body, _ = self.exporter.from_notebook_node(nb)
        pieces = re.split(rf"<!--{re.escape(marker)}(\d+)-->", body)
        for index, piece in zip(pieces[1::2], pieces[2::2], strict=True):
            html[int(index)] += piece
        return html

    def markdown(self, text: str) -> str:
        from nbconvert.filters import markdown2html

        if not text.strip():
            return ""
        html = markdown2html(text)
        return isolated(html) if self.clean is None else isolated(self.clean.sanitize_html_tags(html))


_RENDERERS = threading.local()


def shared_renderer(trusted: bool) -> CellRenderer:
    """A ``CellRenderer`` kept for this thread: building one (nbconvert's exporter and CSS)
    costs more than rendering a small run's cells, and a publish renders many reports."""
    renderers = getattr(_RENDERERS, "by_trust", None)
    if renderers is None:
        renderers = _RENDERERS.by_trust = {}
    if trusted not in renderers:
        renderers[trusted] = CellRenderer(trusted)
    return renderers[trusted]


def _notebook(cells: list[dict[str, Any]], metadata: Mapping[str, Any] | None = None) -> Any:
    import nbformat

    meta = dict(metadata or {})
    meta.setdefault("language_info", {"name": "python", "pygments_lexer": "ipython3"})
    return nbformat.from_dict({"nbformat": 4, "nbformat_minor": 4, "metadata": meta, "cells": cells})


def _ansi_html(text: str) -> str:
    from nbconvert.filters import ansi2html

    return ansi2html(text)
