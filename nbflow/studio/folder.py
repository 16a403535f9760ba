"""What the studio may open in its folder, and at which address a run's report is served.

``find_notebooks`` lists the notebooks of the folder (hidden folders and symlinks out
skipped); ``find_sources`` the other things the studio opens, read-only
(``studio/projects.py``): pipelines of notebooks (a folder's ``nbflow.toml``, or a folder
whose pipeline notebooks are linked by files or ``after:NB:STEP``; listed as ``sub/`` or
``sub/nbflow.toml``) and notebooks kept as text (percent ``.py``, MyST ``.md``, read by
``sources.py``); ``confine_notebook`` resolves a notebook named by a browser strictly inside
the folder; ``report_url`` is the report handler's address for a run. Pure: no Panel,
no server; shared by ``app`` (the UI) and ``serve`` (the server), which must not import
each other's modules for it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import urlencode

_SKIP_DIRS = {"node_modules", "__pycache__", "site-packages"}
_MAX_NOTEBOOKS = 500


def find_notebooks(folder: Path) -> list[tuple[str, int | None]]:
    """``(relative path, number of steps)`` of the notebooks under ``folder``, pipelines first.

    Hidden folders (``.nbflow``, checkpoints, virtualenvs), and notebooks whose real
    path leaves ``folder`` through a symlink, are not listed. The step count is
    ``None`` for a file that is not readable notebook JSON.
    """
    root = folder.resolve()
    found: list[tuple[str, int | None]] = []
    for parent, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIP_DIRS)
        for name in sorted(files):
            if not name.endswith(".ipynb") or name.startswith("."):
                continue
            path = Path(parent) / name
            if not path.resolve().is_relative_to(root):
                continue
            try:
                cells = json.loads(path.read_bytes()).get("cells", [])
                steps = sum(
                    1
                    for c in cells
                    if isinstance(c, dict)
                    and any(str(t).strip().startswith("step:") for t in (c.get("metadata") or {}).get("tags") or [])
                )
            except (OSError, ValueError, AttributeError):
                steps = None
            found.append((path.relative_to(root).as_posix(), steps))
            if len(found) >= _MAX_NOTEBOOKS:
                break
    return sorted(found, key=lambda item: (not item[1], item[0]))


def find_sources(folder: Path) -> list[tuple[str, str]]:
    """``(entry, label)`` of the pipelines of notebooks and text notebooks under ``folder``:
    pipelines first, then text notebooks (a text file paired with an ``.ipynb`` is that
    notebook, not listed twice). A folder or file that does not load is listed as unreadable."""
    from ..errors import NbflowError
    from ..project import PROJECT_FILE, load_project
    from ..project import find_notebooks as pipeline_notebooks

    root = folder.resolve()
    projects: list[tuple[str, str]] = []
    texts: list[tuple[str, str]] = []
    for parent, dirs, _files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIP_DIRS)
        here = Path(parent)
        if not here.resolve().is_relative_to(root):
            continue
        rel = here.relative_to(root).as_posix()
        prefix = "" if rel == "." else rel + "/"
        found = [p for p in pipeline_notebooks(here) if p.resolve().is_relative_to(root)]
        toml = here / PROJECT_FILE
        entry = prefix + PROJECT_FILE if toml.is_file() else (prefix or "./")
        if toml.is_file() or len(found) >= 2:
            try:
                project = load_project(toml if toml.is_file() else here)
                linked = toml.is_file() or bool(project.links)
                label = f"{entry} (pipeline of {len(project.order)} notebooks)"
            except NbflowError:
                linked, label = toml.is_file(), f"{entry} (pipeline of notebooks, unreadable)"
            if linked:
                projects.append((entry, label))
        for path in found:
            if path.suffix.lower() != ".ipynb":
                texts.append((prefix + path.name, _text_label(prefix + path.name, path)))
        if len(projects) + len(texts) >= _MAX_NOTEBOOKS:
            break
    return projects + texts


def _text_label(rel: str, path: Path) -> str:
    from ..errors import NbflowError
    from ..sources import read_source

    try:
        steps = len(read_source(path).steps)
    except (NbflowError, OSError):
        return notebook_label(rel, None)
    return notebook_label(rel, steps)


def is_source_entry(rel: str) -> bool:
    """Whether a listing entry is one of ``find_sources``' (opened read-only), not an ``.ipynb``."""
    return not rel.endswith(".ipynb")


def notebook_label(rel: str, steps: int | None) -> str:
    if steps is None:
        return f"{rel} (unreadable)"
    if steps == 0:
        return f"{rel} (no steps yet)"
    return f"{rel} ({steps} step{'s' if steps != 1 else ''})"


def confine_notebook(folder: Path, raw: str | None) -> Path | None:
    """The notebook ``raw`` (relative to ``folder``) resolved inside ``folder``, else ``None``.

    ``None`` for an absolute path, a path leaving the folder (``..``, a symlink to
    elsewhere, a sibling folder sharing the folder's name as a prefix), or anything that
    is not an existing ``.ipynb`` file.
    """
    if not raw or "\x00" in raw or Path(raw).is_absolute():
        return None
    root = folder.resolve()
    try:
        path = (root / raw).resolve()
    except (OSError, RuntimeError, ValueError):
        return None
    # is_relative_to compares whole path parts: /x/studio-other is not inside /x/studio
    if not path.is_relative_to(root) or path.suffix != ".ipynb" or not path.is_file():
        return None
    return path


def report_url(run_id: int, notebook: str, version: int | float | None = None) -> str:
    """The report's address relative to the studio page (so a prefix or a proxy keeps working).

    ``version`` (the file's modification time) makes a rebuilt report a new address,
    so the frame reloads it.
    """
    query = {"notebook": notebook, **({"v": str(version)} if version is not None else {})}
    return f"report/{int(run_id)}?{urlencode(query)}"
