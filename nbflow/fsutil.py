"""Writing to disk safely: the one atomic-write helper every part of nbflow uses.

A file at its final path is always complete: data goes to a temporary file in the same
folder, is flushed and fsynced, then renamed over the final path with ``os.replace``
(atomic on POSIX), and the folder is fsynced so the rename survives a crash.

Folders that hold pickles are private (0700) and nbflow refuses to read from one that
another user could write to (RELIABILITY.md: pickles run code when loaded).

Standard library only: imported on the no-op path.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from .errors import CacheRefused


def fsync_path(path: str | Path) -> None:
    """Make a written file's content durable, or for a folder, a rename or a new file in it."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str | Path) -> None:
    """Make a rename or a new file in ``path`` durable."""
    fsync_path(path)


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb", perms: int = 0o600, sync_dir: bool = True) -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success it replaces ``path`` atomically.

    On any exception the temporary file is removed and ``path`` is untouched.
    ``sync_dir=False``: the caller fsyncs the folder once after many files.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, perms)
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if sync_dir:
        fsync_dir(path.parent)


def atomic_write_bytes(path: str | Path, data: bytes, perms: int = 0o600) -> None:
    """Write ``data`` to ``path`` atomically (temp file, fsync, rename)."""
    with atomic_open(path, "wb", perms) as f:
        f.write(data)


def atomic_write_text(path: str | Path, text: str, perms: int = 0o600) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"), perms)


def private_dir(path: str | Path) -> Path:
    """Create ``path`` as a folder only its owner can use (parents too); return it."""
    path = Path(path)
    try:  # one system call for a new folder whose parent exists (a staging folder)
        os.mkdir(path, 0o700)
    except FileExistsError:
        if not path.is_dir():
            raise
    except FileNotFoundError:
        private_dir(path.parent)
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:  # made meanwhile by another process
            if not path.is_dir():
                raise
    return path


def check_private(path: str | Path) -> None:
    """Refuse a folder or file that another user owns or could write to."""
    st = os.stat(path)
    if st.st_uid != os.getuid():
        raise CacheRefused(
            f"{path} belongs to another user (uid {st.st_uid}); nbflow does not load pickles "
            "from places it does not own"
        )
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise CacheRefused(
            f"{path} is writable by other users (mode {stat.filemode(st.st_mode)}); "
            f"nbflow does not load pickles from it. Fix it with: chmod go-w {path}"
        )
