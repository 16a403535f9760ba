"""Editing a pipeline notebook as JSON: steps, docs, tags, ``after:`` edges and layout.

``NotebookEditor`` holds a notebook's JSON exactly as ``json.loads`` read it and changes
only what an edit names, so the cells, outputs and metadata the studio does not touch
stay as they were. It writes in nbformat's own layout (``json.dumps`` with ``indent=1``,
sorted keys, ``ensure_ascii=False``, a trailing newline; new sources split into lines),
which is how JupyterLab and ``nbformat.write`` save: a notebook saved by either comes
back byte-for-byte for everything not edited, and unchanged when nothing was edited
(the original bytes are written back as they were read, or not at all).

Worked example::

    editor = NotebookEditor.open("pipeline.ipynb")
    editor.add_step("report", "print(accuracy)", docs="## Report")
    editor.add_after("report", "train")              # tag after:train on step report
    editor.set_layout({"report": {"x": 200, "y": 400}})
    editor.save()                                   # atomic; refuses if the file changed on disk

Which cells belong to a step follows ``notebook.py`` (read through
``notebook_from_data``), so the editor and the reader can never disagree. The markdown
cells directly above a step are its docs; the notebook's first markdown cell is its
description.

Pure JSON manipulation plus one atomic write (``fsutil``); standard library only. It
must not build graphs or decide whether an edit makes sense for the pipeline (a cycle,
an edge already inferred): the app checks that by building the pipeline of the result.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import stat
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..errors import PipelineError, did_you_mean
from ..fsutil import atomic_write_bytes
from ..notebook import STEP_NAME, NotebookSource, notebook_from_data, validate_notebook

#: Undo steps kept per notebook.
UNDO_LIMIT = 50


def serialize(data: Mapping[str, Any]) -> bytes:
    """The notebook JSON as nbformat writes it (JupyterLab saves the same way)."""
    text = json.dumps(data, indent=1, sort_keys=True, separators=(",", ": "), ensure_ascii=False)
    return (text + "\n").encode("utf-8")


def _lines(text: str) -> list[str]:
    return text.splitlines(True)


def _text(source: Any) -> str:
    return "".join(source) if isinstance(source, list) else str(source or "")


def _tags(cell: Mapping[str, Any]) -> list[str]:
    return list((cell.get("metadata") or {}).get("tags") or [])


def _set_tags(cell: dict[str, Any], tags: list[str]) -> None:
    metadata = cell.setdefault("metadata", {})
    if tags:
        metadata["tags"] = tags
    else:
        metadata.pop("tags", None)


def _is_skip(cell: Mapping[str, Any]) -> bool:
    return "skip" in (t.strip() for t in _tags(cell))


class NotebookEditor:
    """A pipeline notebook open for editing; see the module docstring."""

    def __init__(self, raw: bytes, path: str | Path) -> None:
        self.path = Path(path)
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise PipelineError(f"not a readable notebook ({e})", notebook=self.path) from None
        if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
            raise PipelineError("not a Jupyter notebook (JSON without a 'cells' list)", notebook=self.path)
        self.data: dict[str, Any] = data
        self._raw = raw
        self._saved: dict[str, Any] = copy.deepcopy(data)
        self._disk_hash = hashlib.sha256(raw).hexdigest()
        self._undo: list[dict[str, Any]] = []

    @classmethod
    def open(cls, path: str | Path) -> NotebookEditor:
        """Read ``path`` for editing."""
        path = Path(path)
        try:
            return cls(path.read_bytes(), path)
        except OSError as e:
            raise PipelineError(f"cannot read the notebook: {e.strerror}", notebook=path) from None

    # ----------------------------------------------------------------- state
    @property
    def dirty(self) -> bool:
        """Whether there are edits not written to disk."""
        return self.data != self._saved

    def source(self) -> NotebookSource:
        """The notebook as ``notebook.py`` reads it (steps, docs, parameters)."""
        return notebook_from_data(self.data, self.path)

    def to_bytes(self) -> bytes:
        """What ``save`` writes: the original bytes when nothing was edited."""
        return self._raw if not self.dirty else serialize(self.data)

    def checkpoint(self) -> None:
        """Remember the current content so ``undo`` can return to it."""
        self._undo.append(copy.deepcopy(self.data))
        del self._undo[:-UNDO_LIMIT]

    def undo(self) -> bool:
        """Go back to the last checkpoint; ``False`` when there is none."""
        if not self._undo:
            return False
        self.data = self._undo.pop()
        return True

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    def changed_on_disk(self) -> bool:
        """Whether the file differs from what was read or last saved (another editor wrote it)."""
        try:
            return hashlib.sha256(self.path.read_bytes()).hexdigest() != self._disk_hash
        except OSError:
            return True

    def save(self, force: bool = False) -> bool:
        """Write the edits atomically; ``False`` when there was nothing to write.

        Refuses (``PipelineError``) when the file changed on disk since it was read,
        unless ``force``, and when the result is not a valid notebook.
        """
        if not self.dirty:
            return False
        if not force and self.changed_on_disk():
            raise PipelineError(
                "the notebook changed on disk since the studio read it (saved from JupyterLab?); "
                "reload it to see those changes, or save again to overwrite them",
                notebook=self.path,
            )
        validate_notebook(self.data, self.path)
        raw = serialize(self.data)
        # Write through a symlink to the real file, and keep the file's permissions.
        target = self.path.resolve()
        try:
            perms = stat.S_IMODE(os.stat(target).st_mode)
        except FileNotFoundError:
            perms = 0o644
        atomic_write_bytes(target, raw, perms=perms)
        self._raw = raw
        self._saved = copy.deepcopy(self.data)
        self._disk_hash = hashlib.sha256(raw).hexdigest()
        return True

    # --------------------------------------------------------------- finding
    def step_names(self) -> list[str]:
        return [s.name for s in self.source().steps]

    def _step(self, name: str) -> Any:
        source = self.source()
        for step in source.steps:
            if step.name == name:
                return step
        raise PipelineError(f"no step {name!r}{did_you_mean(name, [s.name for s in source.steps])}", notebook=self.path)

    def _description_index(self) -> int | None:
        for index, cell in enumerate(self.data["cells"]):
            if cell.get("cell_type") == "markdown" and not _is_skip(cell):
                return index
        return None

    def _docs_indexes(self, index: int) -> list[int]:
        """The markdown cells that document the code cell at ``index`` (as ``notebook.py`` reads docs)."""
        description = self._description_index()
        found = []
        cells = self.data["cells"]
        for j in range(index - 1, -1, -1):
            cell = cells[j]
            if _is_skip(cell):
                continue
            if cell.get("cell_type") == "code":
                break
            if cell.get("cell_type") == "markdown" and j != description:
                found.append(j)
        return sorted(found)

    def step_cells(self, name: str) -> list[dict[str, Any]]:
        """The JSON of the code cells of step ``name``, first the one tagged ``step:<name>``."""
        return [self.data["cells"][c.index] for c in self._step(name).cells]

    def step_code(self, name: str) -> list[str]:
        """The source of each code cell of step ``name``."""
        return [_text(cell.get("source")) for cell in self.step_cells(name)]

    def step_docs(self, name: str) -> str:
        return self._step(name).docs

    def step_tags(self, name: str) -> list[str]:
        """The tags of the step's first cell other than ``step:<name>``."""
        return [t for t in _tags(self.step_cells(name)[0]) if t.strip() != f"step:{name}"]

    # ----------------------------------------------------------------- edits
    def set_layout(self, positions: Mapping[str, Mapping[str, float]]) -> None:
        """Save node positions in ``metadata.nbflow.layout`` (other steps keep theirs)."""
        names = set(self.step_names())
        unknown = sorted(set(positions) - names)
        if unknown:
            raise PipelineError(f"no step {unknown[0]!r} to place", notebook=self.path)
        metadata = self.data.setdefault("metadata", {})
        nbflow = metadata.setdefault("nbflow", {})
        layout = nbflow.setdefault("layout", {})
        for name, pos in positions.items():
            layout[name] = {"x": round(float(pos["x"]), 1), "y": round(float(pos["y"]), 1)}

    def add_after(self, step: str, upstream: str) -> bool:
        """Tag ``step`` with ``after:<upstream>``; ``False`` when the tag is already there."""
        cell = self.step_cells(step)[0]
        self._step(upstream)
        if f"after:{upstream}" in self._after_tags(step):
            return False
        _set_tags(cell, [*_tags(cell), f"after:{upstream}"])
        return True

    def remove_after(self, step: str, upstream: str) -> bool:
        """Remove every ``after:<upstream>`` tag of ``step``; ``False`` when it had none."""
        removed = False
        for cell in self.step_cells(step):
            tags = _tags(cell)
            kept = [t for t in tags if t.strip() != f"after:{upstream}"]
            if kept != tags:
                _set_tags(cell, kept)
                removed = True
        return removed

    def _after_tags(self, step: str) -> set[str]:
        return {t.strip() for cell in self.step_cells(step) for t in _tags(cell) if t.strip().startswith("after:")}

    def _check_new_name(self, name: str) -> None:
        if not STEP_NAME.match(name):
            raise PipelineError(
                f"invalid step name {name!r}: a name starts with a letter or _ and has only letters, digits, _ and -",
                notebook=self.path,
            )
        if name in self.step_names():
            raise PipelineError(f'there is already a step "{name}"', notebook=self.path, step=name)

    def _new_id(self) -> str | None:
        if (self.data.get("nbformat"), self.data.get("nbformat_minor", 0)) < (4, 5):
            return None  # cell ids arrived in nbformat 4.5; older notebooks must not have them
        taken = {c.get("id") for c in self.data["cells"]}
        while True:
            new = uuid.uuid4().hex[:8]
            if new not in taken:
                return new

    def _new_cell(self, cell_type: str, source: str, tags: Iterable[str] = ()) -> dict[str, Any]:
        cell: dict[str, Any] = {"cell_type": cell_type, "metadata": {}, "source": _lines(source)}
        if cell_type == "code":
            cell.update(execution_count=None, outputs=[])
        _set_tags(cell, list(tags))
        new_id = self._new_id()
        if new_id is not None:
            cell["id"] = new_id
        return cell

    def add_step(self, name: str, code: str, docs: str = "", tags: Iterable[str] = ()) -> None:
        """Add step ``name`` after the last step (or after the setup), with its docs above it."""
        self._check_new_name(name)
        cells = self.data["cells"]
        last_code = max(
            (i for i, c in enumerate(cells) if c.get("cell_type") == "code" and not _is_skip(c)), default=None
        )
        # After the last code cell, so no untagged code cell below it joins the new step,
        # and markdown that closes the notebook stays below it.
        at = len(cells) if last_code is None else last_code + 1
        new = [self._new_cell("code", code, [f"step:{name}", *tags])]
        if docs.strip():
            new.insert(0, self._new_cell("markdown", docs.strip()))
            at = self._ensure_description_before(at)
        cells[at:at] = new

    def _ensure_description_before(self, at: int) -> int:
        """The first markdown cell is the description, so docs need one above them.

        When none exists, insert a title (what the notebook's title already defaulted
        to) and return the shifted position.
        """
        description = self._description_index()
        if description is not None and description < at:
            return at
        self.data["cells"].insert(0, self._new_cell("markdown", f"# {self.path.stem}"))
        return at + 1

    def delete_step(self, name: str) -> None:
        """Remove the step's cells and docs, ``after:<name>`` tags and its saved position."""
        step = self._step(name)
        first = step.cells[0].index
        docs = self._docs_indexes(first)
        start = docs[0] if docs else first
        end = step.cells[-1].index
        del self.data["cells"][start : end + 1]
        self._retag_after(name, None)
        self._forget_layout(name)

    def _retag_after(self, old: str, new: str | None) -> None:
        """Point every ``after:<old>`` tag at ``new``, or drop it when ``new`` is None.

        One pass over the cells: ``after:`` tags only mean something on step cells, and
        ``notebook.py`` rejects them elsewhere, so no cell needs to be told apart here.
        """
        for cell in self.data["cells"]:
            tags = _tags(cell)
            if not any(t.strip() == f"after:{old}" for t in tags):
                continue
            if new is None:
                _set_tags(cell, [t for t in tags if t.strip() != f"after:{old}"])
            else:
                _set_tags(cell, [f"after:{new}" if t.strip() == f"after:{old}" else t for t in tags])

    def rename_step(self, old: str, new: str) -> None:
        """Rename a step: its tag, ``after:`` tags naming it, and its saved position."""
        if old == new:
            return
        cell = self.step_cells(old)[0]
        self._check_new_name(new)
        _set_tags(cell, [f"step:{new}" if t.strip() == f"step:{old}" else t for t in _tags(cell)])
        self._retag_after(old, new)
        layout = (self.data.get("metadata", {}).get("nbflow") or {}).get("layout")
        if isinstance(layout, dict) and old in layout:
            layout[new] = layout.pop(old)

    def _forget_layout(self, name: str) -> None:
        layout = (self.data.get("metadata", {}).get("nbflow") or {}).get("layout")
        if isinstance(layout, dict):
            layout.pop(name, None)

    def set_code(self, name: str, code: str, cell: int = 0) -> bool:
        """Set the source of the step's ``cell``-th code cell; ``False`` when unchanged."""
        cells = self.step_cells(name)
        if not 0 <= cell < len(cells):
            raise PipelineError(f"step {name!r} has {len(cells)} cells, not {cell + 1}", notebook=self.path)
        if _text(cells[cell].get("source")) == code:
            return False
        cells[cell]["source"] = _lines(code)
        return True

    def set_docs(self, name: str, docs: str) -> bool:
        """Set the markdown above the step (one cell; empty removes it); ``False`` when unchanged."""
        docs = docs.strip()
        if self.step_docs(name) == docs:
            return False
        first = self._step(name).cell.index
        indexes = self._docs_indexes(first)
        cells = self.data["cells"]
        if indexes:
            for j in reversed(indexes[1:]):
                del cells[j]
            if docs:
                cells[indexes[0]]["source"] = _lines(docs)
            else:
                del cells[indexes[0]]
        elif docs:
            at = self._ensure_description_before(first)
            cells.insert(at, self._new_cell("markdown", docs))
        return True

    def set_tags(self, name: str, tags: Iterable[str]) -> bool:
        """Replace the tags of the step's first cell other than ``step:<name>``."""
        cell = self.step_cells(name)[0]
        wanted = [t.strip() for t in tags if t.strip()]
        for tag in wanted:
            if tag.startswith("step:"):
                raise PipelineError(
                    f"tag {tag!r}: rename the step instead of adding a second step tag", notebook=self.path, step=name
                )
            if "," in tag:
                raise PipelineError(f"tag {tag!r}: tags cannot contain commas", notebook=self.path, step=name)
        if wanted == [t.strip() for t in self.step_tags(name)]:
            return False
        current = _tags(cell)
        step_tag = next(t for t in current if t.strip() == f"step:{name}")
        _set_tags(cell, [step_tag, *dict.fromkeys(wanted)])
        return True
