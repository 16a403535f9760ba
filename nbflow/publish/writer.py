"""The site folder: which pages nbflow wrote there, from which inputs, and writing them only when they change.

``SiteWriter`` keeps ``SITE/.nbflow-site.json`` (per page: the fingerprint of its inputs,
its size and SHA-256). ``fresh`` says whether a page is already what its inputs make (then
nothing is rendered), ``put`` writes a rendered page atomically unless the file holds
the same bytes, ``finish`` removes pages nbflow wrote that are gone and saves the
manifest. It never touches a file nbflow did not write, and refuses a non-empty folder
that is not an nbflow site. It renders nothing and reads no store.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import NbflowError
from ..fsutil import atomic_write_bytes, atomic_write_text

MANIFEST = ".nbflow-site.json"
#: The manifest's format (the pages' own is ``report.fingerprints.PAGES_FORMAT``).
SITE_FORMAT = 1


class PublishError(NbflowError):
    """The site cannot be written where asked (a folder nbflow did not create, nothing to publish)."""


@dataclass
class PublishResult:
    """What a publish did, page by page (paths relative to the site)."""

    site: Path
    written: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    #: page -> why it could not be rendered
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def index(self) -> Path:
        return self.site / "index.html"

    def summary(self) -> str:
        text = (
            f"{len(self.written)} new, {len(self.updated)} updated, {len(self.unchanged)} unchanged"
            f"{f', {len(self.removed)} removed' if self.removed else ''} pages"
        )
        return text + (f"; {len(self.failed)} could not be written" if self.failed else "")


class SiteWriter:
    """Writes pages into a site folder only when they changed, and keeps its manifest."""

    def __init__(self, site: Path) -> None:
        self.site = site
        self.result = PublishResult(site)
        manifest = site / MANIFEST
        self.previous: dict[str, dict[str, Any]] = {}
        if manifest.is_file():
            try:
                self.previous = dict(json.loads(manifest.read_text(encoding="utf-8"))["pages"])
            except (ValueError, KeyError, TypeError, OSError):
                raise PublishError(f"nbflow publish: {manifest} is damaged; publish into a new folder") from None
        elif site.is_dir() and any(site.iterdir()):
            raise PublishError(
                f"nbflow publish: {site} is not empty and is not a site nbflow published (no {MANIFEST}); "
                "choose a new or empty folder"
            )
        self.pages: dict[str, dict[str, Any]] = {}

    def fresh(self, rel: str, inputs: str) -> bool:
        """Whether ``rel`` already holds the page made from ``inputs`` (then it is kept as it is)."""
        before = self.previous.get(rel)
        if before and before.get("inputs") == inputs and _size(self.site / rel) == before.get("size"):
            self.pages[rel] = before
            self.result.unchanged.append(rel)
            return True
        return False

    def put(self, rel: str, inputs: str, html: str | None, error: str = "") -> None:
        """Write ``html`` as ``rel`` unless the file holds it already; ``None``: it could not be made (``error``)."""
        path = self.site / rel
        if html is None:
            self.result.failed[rel] = error
            if rel in self.previous:  # keep the page it had rather than lose it
                self.pages[rel] = self.previous[rel]
            return
        data = html.encode("utf-8")
        digest = hashlib.sha256(data).hexdigest()
        self.pages[rel] = {"inputs": inputs, "size": len(data), "sha256": digest}
        if _size(path) == len(data) and hashlib.sha256(path.read_bytes()).hexdigest() == digest:
            self.result.unchanged.append(rel)
            return
        (self.result.updated if path.exists() else self.result.written).append(rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, data, perms=0o644)

    def page(self, rel: str, inputs: str, render: Callable[[], str]) -> None:
        """Make ``rel`` hold what ``render()`` returns for ``inputs`` (not rendered if it already does)."""
        if self.fresh(rel, inputs):
            return
        try:
            html = render()
        except NbflowError as e:
            self.put(rel, inputs, None, str(e))
            return
        self.put(rel, inputs, html)

    def finish(self) -> PublishResult:
        """Remove the pages nbflow wrote before that are gone now; write the manifest."""
        for rel in sorted(set(self.previous) - set(self.pages)):
            path = self.site / rel
            if path.is_file():
                path.unlink()
                self.result.removed.append(rel)
        manifest = json.dumps({"format": SITE_FORMAT, "pages": self.pages}, indent=1, sort_keys=True)
        target = self.site / MANIFEST
        if not target.is_file() or target.read_text(encoding="utf-8") != manifest:
            self.site.mkdir(parents=True, exist_ok=True)
            atomic_write_text(target, manifest, perms=0o644)
        return self.result


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None
