"""What the studio may open in its folder, and at which address a run's report is served.

``find_notebooks`` lists the notebooks of the folder (hidden folders and symlinks out
skipped); ``confine_notebook`` resolves a notebook named by a browser strictly inside
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
