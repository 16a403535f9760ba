"""Notebooks kept as text: percent-format ``.py`` scripts and MyST/Markdown notebooks, read
through the ``jupytext`` library (Jupytext's own reader, not a parser of nbflow's).

Tags live in the cell markers, as Jupytext writes them::

    # %% tags=["step:load", "in:data.csv"]          (percent .py)
    ```{code-cell} ipython3                           (MyST .md)
    :tags: [step:load]
    ```python tags=["step:load"]                      (Markdown .md)

``read_text_notebook`` returns the same ``NotebookSource`` as an ``.ipynb`` with the same
cells would give (same steps, same keys: a step's key never depends on the file's
format), plus the line of each cell's marker, so every error names the line a person
edits: ``steps.py, line 12 (step "load"): ...``. A marker whose metadata Jupytext
cannot read (``# %% tags=["step:load"`` without its ``]``) is refused naming its line:
Jupytext itself would keep it as an untagged cell and the step would silently vanish.

Reading Jupytext costs about a second of imports, so the converted notebook is
remembered under ``<home>/text-sources/`` (one file per text notebook, with the SHA-256 of
the text it came from): an unchanged text file is read back with the standard library on
the no-op path.

A text file paired with an ``.ipynb`` (Jupytext's ``formats: ipynb,py:percent``) is one
notebook: ``paired_ipynb`` finds its other half so a folder counts it once.

Must not: write the user's text file or its pair (an executed notebook goes to the run's
folder under ``.nbflow/``), or analyse code (``analysis.py``).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from .errors import PipelineError
from .fsutil import atomic_write_text
from .notebook import TEXT_SUFFIXES, NotebookSource, notebook_from_data, read_notebook

#: Format Jupytext reads each suffix with when the text does not say.
_FORMATS = {".py": "py:percent", ".md": "md", ".myst": "md:myst"}
_PERCENT = re.compile(r"^\s*#\s*%%")
_MYST_CODE = re.compile(r"^\s*```+\s*\{code-cell\}")
_FENCE = re.compile(r"^\s*```+\s*([A-Za-z0-9_+-]+)")
_PYTHON = {"python", "python3", "ipython", "ipython3", "py"}
_MEMO_VERSION = 1


def read_source(path: str | Path, memo: str | Path | None = None) -> NotebookSource:
    """Any pipeline source: an ``.ipynb`` through ``notebook.read_notebook``, a text
    notebook (``TEXT_SUFFIXES``) through Jupytext. A symbolic link is read as the real file."""
    path = Path(path)
    if path.is_symlink():
        path = path.resolve()
    if path.suffix.lower() in TEXT_SUFFIXES:
        return read_text_notebook(path, memo)
    return read_notebook(path, memo)


def read_text_notebook(path: Path, memo: str | Path | None = None) -> NotebookSource:
    """Read the text notebook at ``path`` through Jupytext; ``PipelineError`` naming the line."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise PipelineError("no such notebook", notebook=path) from None
    except IsADirectoryError:
        raise PipelineError("is a folder, not a notebook", notebook=path) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise PipelineError(f"not UTF-8 (byte 0x{raw[e.start]:02x})", notebook=path, line=line) from None
    digest = hashlib.sha256(raw).hexdigest()
    remembered = _memo_path(memo, path)
    data, lines = _recall(remembered, digest)
    if data is None:
        data, lines = _convert(text, path)
        _remember(remembered, digest, data, lines)
    try:
        source = notebook_from_data(data, path, digest)
    except PipelineError as e:
        raise with_line(e, lines) from None
    return _with_lines(source, lines)


def with_line(error: PipelineError, lines: tuple[int | None, ...]) -> PipelineError:
    """``error`` located by the line of its cell in a text notebook (unchanged without one)."""
    if (
        error.cell is None
        or error.line is not None
        or not 0 < error.cell <= len(lines)
        or lines[error.cell - 1] is None
    ):
        return error
    return type(error)(
        error.message, notebook=error.notebook, cell=error.cell, step=error.step, line=lines[error.cell - 1]
    )


def text_format(text: str, path: Path) -> str:
    """The Jupytext format of ``text`` (``py:percent``, ``md:myst``, ``md``), or a
    ``PipelineError`` when a ``.py`` file is not a percent-format notebook."""
    suffix = path.suffix.lower()
    if suffix == ".py":
        if not any(_PERCENT.match(line) for line in text.splitlines()):
            raise PipelineError(
                "not a percent-format notebook (no '# %%' cell markers); mark each cell with a line "
                '# %% tags=["step:NAME"] (Jupytext\'s percent format)',
                notebook=path,
            )
        return "py:percent"
    if suffix in (".md", ".myst"):
        if suffix == ".myst" or "{code-cell}" in text or re.search(r"format_name:\s*myst", text):
            return "md:myst"
        return "md"
    raise PipelineError(
        f"nbflow reads .ipynb, percent .py and MyST/Markdown .md notebooks, not {suffix}", notebook=path
    )


def paired_ipynb(path: Path) -> Path | None:
    """The ``.ipynb`` a text notebook is paired with by Jupytext (``formats: ipynb,py:percent``
    in either file), when it exists; ``None`` otherwise."""
    other = path.with_suffix(".ipynb")
    if path.suffix.lower() == ".ipynb" or not other.is_file():
        return None
    try:
        head = path.read_text(encoding="utf-8", errors="replace")[:4000]
    except OSError:
        return None
    if re.search(r"formats:\s*\S*ipynb", head):
        return other
    try:
        metadata = json.loads(other.read_text(encoding="utf-8")).get("metadata", {})
    except (OSError, ValueError, AttributeError):
        return None
    formats = str((metadata.get("jupytext") or {}).get("formats") or "")
    return other if path.suffix.lstrip(".").lower() in formats.replace(":", ",").split(",") else None


# ------------------------------------------------------------------ reading


def _convert(text: str, path: Path) -> tuple[dict[str, Any], tuple[int | None, ...]]:
    fmt = text_format(text, path)
    import jupytext

    try:
        notebook = jupytext.reads(text, fmt=fmt)
    except Exception as e:  # noqa: BLE001 - Jupytext raises many types; one line for the person
        raise PipelineError(f"Jupytext cannot read it as {fmt}: {type(e).__name__}: {e}", notebook=path) from None
    data = json.loads(json.dumps(notebook))
    lines = _cell_lines(text, fmt, data["cells"])
    for index, cell in enumerate(data["cells"]):
        # Jupytext gives random ids; ids never identify steps, but a stable text should give a stable notebook.
        cell["id"] = f"nbflow-{index}"
        bad = (cell.get("metadata") or {}).get("incorrectly_encoded_metadata")
        if bad is not None:
            line = lines[index]
            marker = text.splitlines()[line - 1].strip() if line else bad
            raise PipelineError(
                f"cell marker {marker!r} has metadata Jupytext cannot read ({bad!r}); "
                'write the tags as a JSON list: # %% tags=["step:load"]',
                notebook=path,
                cell=index + 1,
                line=line,
            )
    metadata = data.setdefault("metadata", {})
    if "kernelspec" not in metadata:
        metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return data, lines


def _cell_lines(text: str, fmt: str, cells: list[dict[str, Any]]) -> tuple[int | None, ...]:
    """The 1-based line of each cell's marker; ``None`` where it cannot be told."""
    rows = text.splitlines()
    found: list[int | None] = [None] * len(cells)
    if fmt == "py:percent":
        markers = [i + 1 for i, row in enumerate(rows) if _PERCENT.match(row)]
        extra = len(cells) - len(markers)
        if extra in (0, 1):
            for index in range(extra, len(cells)):
                found[index] = markers[index - extra]
            if extra == 1:
                found[0] = _first_content_line(rows)
        return tuple(found)
    if fmt == "md:myst":
        markers = [i + 1 for i, row in enumerate(rows) if _MYST_CODE.match(row)]
    else:
        markers = [i + 1 for i, row in enumerate(rows) if (m := _FENCE.match(row)) and m.group(1).lower() in _PYTHON]
    code = [i for i, cell in enumerate(cells) if cell.get("cell_type") == "code"]
    if len(code) == len(markers):
        for index, line in zip(code, markers, strict=True):
            found[index] = line
    return tuple(found)


def _first_content_line(rows: list[str]) -> int | None:
    """The first line after Jupytext's YAML header that is not blank."""
    start = 0
    if rows and rows[0].strip() == "# ---":
        end = next((i for i in range(1, len(rows)) if rows[i].strip() == "# ---"), None)
        start = end + 1 if end is not None else 0
    return next((i + 1 for i in range(start, len(rows)) if rows[i].strip()), None)


def _with_lines(source: NotebookSource, lines: tuple[int | None, ...]) -> NotebookSource:
    from dataclasses import replace

    return replace(source, lines=lines)


# ------------------------------------------------------------------ memo


def _memo_path(memo: str | Path | None, path: Path) -> Path | None:
    """One memo file per text notebook (by its absolute path), holding its latest conversion."""
    if memo is None:
        return None
    name = hashlib.sha256(str(path.absolute()).encode("utf-8")).hexdigest()[:32]
    return Path(memo).parent / "text-sources" / f"{name}.json"


def _recall(path: Path | None, digest: str) -> tuple[dict[str, Any] | None, tuple[int | None, ...]]:
    if path is None:
        return None, ()
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        if (
            saved.get("version") == _MEMO_VERSION
            and saved.get("digest") == digest
            and isinstance(saved.get("notebook"), dict)
        ):
            return saved["notebook"], tuple(saved.get("lines") or ())
    except (OSError, ValueError, AttributeError):
        pass  # no memo, or a damaged one: converting again is always correct
    return None, ()


def _remember(path: Path | None, digest: str, data: dict[str, Any], lines: tuple[int | None, ...]) -> None:
    if path is None:
        return
    saved = {"version": _MEMO_VERSION, "digest": digest, "notebook": data, "lines": list(lines)}
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(saved))
    except OSError:
        pass  # the memo only saves time
