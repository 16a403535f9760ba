"""The content of the files steps declare ``in:``: what part of a step key they are.

A step's key includes the SHA-256 of each external ``in:`` file (a folder, or a glob
such as ``in:raw/*.csv``: of its files' relative names and contents, so a file added,
removed or changed changes the key). Hashing a big file on every plan is what a fully cached
run would spend its time on (1 GB: 0.7 s, paid again by every studio parameter change),
so hashes are remembered in ``<home>/input-hashes.json`` by path together with the
file's size, modification time, inode and status-change time; a file whose four
stamps are unchanged is not read again, any change re-hashes it. The status-change
time (``st_ctime_ns``) cannot be set by a program, so a tool that restores the old
modification time after rewriting a file (``rsync -t``, ``touch -r``) still re-hashes.

Only regular files and folders are inputs: reading a FIFO or a device (``in:/dev/zero``)
never ends, so such a path is refused naming the cell, before anything is opened.

Paths are relative to the notebook's folder (``pipeline.path.parent``, the real file's
folder when the notebook was reached through a symbolic link). Standard library only;
this module never writes anywhere but the memo file, and a memo it cannot write only
costs time.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import PipelineError
from .fsutil import atomic_write_text
from .outfiles import expand, kind

if TYPE_CHECKING:
    from .graph import Pipeline
    from .notebook import Step

MEMO = "input-hashes.json"
#: Files remembered at most (the oldest are forgotten first).
MEMO_SIZE = 10_000


class HashMemo:
    """SHA-256 of files, remembered by (size, mtime_ns, inode, ctime_ns)."""

    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path) if path is not None else None
        self.known: dict[str, list[Any]] = {}
        self.changed = False
        if self.path is not None:
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
                if isinstance(data, dict):
                    self.known = {k: v for k, v in data.items() if isinstance(v, list) and len(v) == 5}
            except (OSError, ValueError):
                pass  # no memo yet, or a damaged one: hashing again is always correct

    def sha256(self, path: Path, st: os.stat_result) -> str:
        """The file's SHA-256, read only when its stamps differ from the remembered ones."""
        name = str(path.absolute())
        stamps = [st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns]
        known = self.known.get(name)
        if known is not None and known[:4] == stamps:
            return str(known[4])
        from .cache import file_sha256

        digest = file_sha256(path)
        self.known.pop(name, None)
        self.known[name] = [*stamps, digest]
        self.changed = True
        return digest

    def save(self) -> None:
        if self.path is None or not self.changed:
            return
        kept = dict(list(self.known.items())[-MEMO_SIZE:])
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            atomic_write_text(self.path, json.dumps(kept))
        except OSError:
            pass  # a read-only folder: the next plan hashes again
        self.changed = False


def input_file_hashes(pipeline: Pipeline) -> dict[str, str]:
    """SHA-256 of every external ``in:`` file (relative to the notebook's folder), or ``missing``.

    Files another step produces (``out:``) are not hashed: that step's key stands for them.
    ``PipelineError`` naming the cell for an input that is neither a file nor a folder.
    """
    hashes: dict[str, str] = {}
    folder = pipeline.path.parent
    memo = HashMemo(pipeline.config.home / MEMO)
    for step in pipeline.steps.values():
        for name in step.in_files:
            if (
                name not in hashes
                and name not in step.file_inputs
                and name not in pipeline.foreign_files.get(step.name, ())
            ):
                if kind(name) == "glob":
                    hashes[name] = glob_digest(folder, name, memo)
                else:
                    hashes[name] = path_digest(folder / name, memo, step=step, notebook=pipeline.path)
    memo.save()
    return hashes


def path_digest(
    path: Path, memo: HashMemo | None = None, *, step: Step | None = None, notebook: Path | None = None
) -> str:
    """SHA-256 of a file; for a folder, of its regular files' relative names and contents.

    ``missing`` when there is nothing at ``path`` (or it cannot be read).
    """
    memo = memo or HashMemo(None)
    try:
        st = path.stat()
        if stat.S_ISDIR(st.st_mode):
            digest = hashlib.sha256()
            for item in sorted(path.rglob("*")):
                try:
                    item_st = item.stat()
                except OSError:
                    continue
                if stat.S_ISREG(item_st.st_mode):  # a FIFO or device inside is never opened
                    digest.update(f"{item.relative_to(path).as_posix()}\0{memo.sha256(item, item_st)}\n".encode())
            return digest.hexdigest()
        if not stat.S_ISREG(st.st_mode):
            raise _not_a_file(path, st, step, notebook)
        return memo.sha256(path, st)
    except PipelineError:
        raise
    except OSError:
        return "missing"


def glob_digest(folder: Path, pattern: str, memo: HashMemo | None = None) -> str:
    """SHA-256 of the relative names and contents of the files ``pattern`` matches (none: ``missing``)."""
    memo = memo or HashMemo(None)
    names = expand(folder, pattern)
    if not names:
        return "missing"
    digest = hashlib.sha256()
    for name in names:
        try:
            path = folder / name
            digest.update(f"{name}\0{memo.sha256(path, path.stat())}\n".encode())
        except OSError:
            continue
    return digest.hexdigest()


def _not_a_file(path: Path, st: os.stat_result, step: Step | None, notebook: Path | None) -> PipelineError:
    kinds = {
        stat.S_ISFIFO: "a named pipe (FIFO)",
        stat.S_ISCHR: "a character device",
        stat.S_ISBLK: "a block device",
        stat.S_ISSOCK: "a socket",
    }
    kind = next((text for test, text in kinds.items() if test(st.st_mode)), "not a regular file")
    cell = None
    tag = str(path)
    if step is not None:
        for c in step.cells:
            for t in c.tags:
                if t.startswith("in:") and (Path(notebook).parent / t[3:].strip() if notebook else None) == path:
                    cell, tag = c.number, t
        cell = cell or step.cell.number
    return PipelineError(
        f"{tag} is {kind}, not a file or folder; reading it may never end. in: names regular files and folders",
        notebook=notebook,
        cell=cell,
        step=step.name if step is not None else None,
    )
