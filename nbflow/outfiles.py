"""What an ``out:`` tag names: one file, a folder of files, or a glob -- and which files that is.

==========================  ===============================================================
``out:model.pkl``           one file; the step fails if it does not write it
``out:parts/``              a folder (trailing ``/``): every regular file under it, at any
                            depth; the folder must exist (it may be empty)
``out:plots/*.png``         a glob (``*``, ``?``, ``[...]``; ``**`` crosses folders): any
                            number of files, at least one
``out?:<any of the above>`` optional: the step may write nothing there
==========================  ===============================================================

``expand`` turns a pattern into the files it stands for now (relative POSIX paths,
sorted): what the cache stages after the step ran, and what an entry's manifest lists
under the pattern. ``problem`` says why a step's declared outputs are not there.
Symbolic links are never followed nor listed: a restore must only ever write inside the
notebook's folder.

Standard library only: this runs in the kernel's host process and on Dask workers. It
never writes or deletes anything (``cache.Cache.restore_files`` does).
"""

from __future__ import annotations

import glob
import os
import stat
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Literal

_GLOB = frozenset("*?[")

Kind = Literal["file", "folder", "glob"]


def kind(pattern: str) -> Kind:
    """Whether ``pattern`` names a file, a folder (ends with ``/``) or a glob."""
    if pattern.endswith("/"):
        return "folder"
    if _GLOB & set(pattern):
        return "glob"
    return "file"


def same_path(pattern: str) -> str:
    """``pattern`` as an ``in:`` tag names it (``in:parts`` reads ``out:parts/``)."""
    return pattern.rstrip("/") if kind(pattern) == "folder" else pattern


def _regular(path: str) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def expand(folder: str | Path, pattern: str) -> list[str]:
    """The regular files ``pattern`` stands for under ``folder`` now, relative and sorted."""
    root = os.fspath(folder)
    what = kind(pattern)
    if what == "file":
        return [pattern] if _regular(os.path.join(root, pattern)) else []
    if what == "folder":
        base = os.path.join(root, pattern)
        if os.path.islink(base.rstrip("/")):
            return []
        found = []
        for parent, dirs, files in os.walk(base, followlinks=False):
            dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(parent, d))]
            for name in files:
                full = os.path.join(parent, name)
                if _regular(full):
                    found.append(Path(os.path.relpath(full, root)).as_posix())
        return sorted(found)
    matches = glob.glob(pattern, root_dir=root, recursive=True)
    return sorted(Path(m).as_posix() for m in matches if _regular(os.path.join(root, m)) and _inside(root, m))


def _inside(root: str, name: str) -> bool:
    """Whether ``name`` reaches its file without passing through a symbolic link."""
    parts = Path(name).parts[:-1]
    current = root
    for part in parts:
        current = os.path.join(current, part)
        if os.path.islink(current):
            return False
    return True


def expand_all(folder: str | Path, patterns: Iterable[str]) -> dict[str, list[str]]:
    """``{pattern: files}`` for each of ``patterns``."""
    return {p: expand(folder, p) for p in patterns}


def problem(folder: str | Path, patterns: Iterable[str], optional: Collection[str] = ()) -> str:
    """Why the outputs ``patterns`` are not all there after the step ran (``""``: they are).

    ``optional`` patterns (``out?:``) may stand for nothing.
    """
    root = Path(folder)
    for pattern in patterns:
        if pattern in optional:
            continue
        what = kind(pattern)
        if what == "file" and not _regular(os.fspath(root / pattern)):
            return f"out:{pattern} was not produced (no file {root / pattern})"
        if what == "folder" and not (root / pattern).is_dir():
            return f"out:{pattern} was not produced (no folder {root / pattern})"
        if what == "glob" and not expand(root, pattern):
            return f"out:{pattern} matched no file in {root} (write at least one, or tag out?:{pattern})"
    return ""


__all__ = ["Kind", "expand", "expand_all", "kind", "problem", "same_path"]
