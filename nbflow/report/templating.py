"""The one Jinja2 environment of every nbflow page (reports, comparisons, sweeps, the published site).

``environment()`` loads the templates of ``nbflow/report_templates/`` with the filters
they share (``seconds``, ``when``, ``anchor``, ``colour``, ``short``, ``pretty``), so a
duration or a time reads the same on a report and on the site's index; it is built once
per process (Jinja2 compiles each template once, and a publish renders hundreds of
pages), and with ``use_template_cache`` compiled templates are kept for the next process
(``template_cache.py``). ``page_variables`` gives what ``base.html.j2`` needs: the scripts, the embed
script and the Content-Security-Policy that lets only those run.

It formats and renders strings; it imports neither Bokeh nor nbconvert (the site's index
pages are rendered without them), reads no store and writes no file.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..view import STATES

#: The Jinja2 templates of the pages (also nbconvert's extra template path).
TEMPLATES = Path(__file__).resolve().parent.parent / "report_templates"


def seconds(value: float | None) -> str:
    """A duration as people read it: ``350 ms``, ``4.20 s``, ``3 min 5 s``; ``""`` for none."""
    if value is None:
        return ""
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.2f} s"
    return f"{int(value // 60)} min {value % 60:.0f} s"


def when(timestamp: float | None) -> str:
    """A time stamp in local time with its zone; ``""`` for none."""
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(timestamp)) if timestamp else ""


def anchor(step: str) -> str:
    """The id of a step's section in a report."""
    return f"nbflow-step-{step}"


def style(status: str) -> Any:
    """The ``view.STATES`` style of a run or step status (a pending one is drawn as queued)."""
    return STATES.get("queued" if status == "pending" else status, STATES["stale"])


def markup(text: str) -> Any:
    """``text`` inserted into a page as it is: only for HTML nbflow rendered (nbconvert, Bokeh, its own scripts)."""
    import markupsafe

    return markupsafe.Markup(text)  # noqa: S704 - rendered by nbconvert/Bokeh (sanitized unless trusted) or ours


def content_policy(scripts: Iterable[str]) -> str:
    """A Content-Security-Policy that lets only ``scripts`` run and nothing be fetched.

    Defence in depth for sanitized pages: even markup the sanitizer missed can neither
    run (no inline handler, no ``javascript:`` URL, no other script) nor load anything
    (images and fonts only from data: URIs, no connections).
    """
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(js.encode('utf-8')).digest()).decode()}'" for js in scripts
    )
    return (
        f"default-src 'none'; script-src {hashes}; style-src 'unsafe-inline'; img-src data:; font-src data:; "
        "base-uri 'none'; form-action 'none'; frame-src 'none'; connect-src 'none'"
    )


def page_variables(
    scripts: Iterable[str], embed: str = "", *, trusted: bool = False, generated: float | None = None
) -> dict[str, Any]:
    """The variables of ``base.html.j2``: ``scripts`` inline, then ``embed`` at the end of the body.

    The policy (none when ``trusted``: trusted outputs run their own scripts) allows
    exactly these scripts, by hash. ``generated``: the time the footer names (now if ``None``).
    """
    from .._version import __version__

    own = [js.replace("</script", "<\\/script") for js in scripts]
    return {
        "version": __version__,
        "trusted": trusted,
        "csp": None if trusted else content_policy([*own, embed]),
        "scripts": [markup(js) for js in own],
        "embed_script": markup(embed),
        "generated": when(time.time() if generated is None else generated),
    }


_TEMPLATE_CACHE: list[Path] = []


def use_template_cache(home: Path) -> None:
    """Keep compiled templates (nbflow's and nbconvert's) in ``home/templates`` from now on (``home``: the
    ``.nbflow`` folder of the run store being reported; ``template_cache.py``)."""
    directory = Path(home) / "templates"
    if _TEMPLATE_CACHE != [directory]:
        _TEMPLATE_CACHE[:] = [directory]
        environment.cache_clear()  # the next page's environment uses it


def template_cache() -> Any:
    """The ``template_cache.SourceCache`` set by ``use_template_cache``, or ``None``."""
    if not _TEMPLATE_CACHE:
        return None
    from .template_cache import SourceCache

    return SourceCache(_TEMPLATE_CACHE[0])


@functools.cache
def environment() -> Any:
    """The Jinja2 environment of nbflow's pages (one per process, and one per template cache)."""
    import jinja2

    from ..jsonout import dumps

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["seconds"] = seconds
    env.filters["when"] = when
    env.filters["anchor"] = anchor
    env.filters["colour"] = lambda status: style(status).colour
    env.filters["short"] = lambda text, n=12: (text or "")[:n]
    env.filters["pretty"] = lambda value: dumps(value, default=repr)
    env.bytecode_cache = template_cache()
    return env


def render(template: str, **variables: Any) -> str:
    """``template`` of ``nbflow/report_templates/`` rendered with ``variables``."""
    return environment().get_template(template).render(**variables)
