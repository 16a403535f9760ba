"""Fingerprints of what a page is made from, so a page is rendered again only when that changed.

``run_fingerprint`` digests everything a run's report shows that can change: the run's
and its steps' store rows (not the heartbeat), items, messages and artifacts (not the
report itself), and the size and time of its executed notebook (of the notebook, when
there is none). ``fingerprint`` adds the page format, nbflow's version and the content
of the templates. A report carries the fingerprint it was made from in a
``<meta name="nbflow-made-from">`` tag, so ``nbflow publish`` can take a report that
``nbflow run --report`` already wrote instead of rendering it again
(``current_report``).

It reads the run store (SQLite rows) and file sizes and times; it imports nothing heavy,
renders nothing and writes nothing.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .templating import TEMPLATES

if TYPE_CHECKING:
    from ..config import Config
    from ..store import RunStore

#: Bump when the pages' layout changes in code (not in the templates), so old pages are rendered again.
PAGES_FORMAT = 2
#: The name of the meta tag that holds what a report was made from.
MADE_FROM = "nbflow-made-from"
_MADE_FROM = re.compile(rf'<meta name="{MADE_FROM}" content="([0-9a-f]{{64}})">')


@functools.cache
def _templates_digest() -> str:
    # Pages change with their templates and scripts, not only with nbflow's version.
    digest = hashlib.sha256()
    for path in sorted(TEMPLATES.iterdir()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def fingerprint(*parts: Any) -> str:
    """A digest of ``parts`` (as JSON), the page format, nbflow's version and the templates."""
    from .._version import __version__

    text = json.dumps([PAGES_FORMAT, __version__, _templates_digest(), *parts], sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _file_state(path: str | None) -> list[Any] | None:
    if not path:
        return None
    try:
        st = Path(path).stat()
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


def run_fingerprint(
    config: Config, store: RunStore, run: Mapping[str, Any], steps: list[dict[str, Any]] | None = None
) -> str:
    """The fingerprint of what run ``run`` (its store row) shows in its report; ``steps``: its step rows if read."""
    run_id = int(run["id"])
    steps = store.steps(run_id) if steps is None else steps
    artifacts = {k: v for k, v in store.artifacts(run_id).items() if k != "report"}
    output = artifacts.get("output_notebook") or str(config.runs_dir / str(run_id) / "output.ipynb")
    items = {s["step"]: store.items(run_id, s["step"]) for s in steps}
    notebook = _file_state(run["notebook"]) if not _file_state(output) else None
    return fingerprint(
        dict(run, heartbeat=None), steps, items, store.messages(run_id), artifacts, _file_state(output), notebook
    )


def report_inputs(run_print: str, trusted: bool) -> str:
    """The fingerprint of a run's report page, from its run's fingerprint and the trust mode."""
    return fingerprint("report", run_print, trusted)


def current_report(config: Config, run_id: int, inputs: str) -> str | None:
    """The report nbflow wrote at the run's default place, if it was made from ``inputs``; else ``None``.

    Only ``<runs>/<id>/report.html`` is considered (nbflow's own folder; a report written
    elsewhere with ``-o`` may have been edited since).
    """
    path = config.runs_dir / str(int(run_id)) / "report.html"
    try:
        with path.open(encoding="utf-8") as f:
            head = f.read(4096)
            found = _MADE_FROM.search(head)
            if found is None or found.group(1) != inputs:
                return None
            return head + f.read()
    except (OSError, UnicodeDecodeError):
        return None
