"""The exceptions nbflow raises, one type per failure family.

Every message names where the problem is: the notebook, the cell number (1-based, as
JupyterLab counts cells) and the step, then what went wrong and, where we can tell,
what to do about it::

    pipeline.ipynb, cell 7 (step "train"): after:lod names no step; did you mean "load"?

This module must not import anything heavier than the standard library: it is
imported on the no-op path of ``nbflow run``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path


def where(
    notebook: str | Path | None, cell: int | None = None, step: str | None = None, line: int | None = None
) -> str:
    """The location prefix of a message: ``nb.ipynb, cell 3 (step "load")``; a notebook kept
    as text (Jupytext) is located by line instead: ``steps.py, line 12 (step "load")``."""
    parts = []
    if notebook is not None:
        parts.append(Path(notebook).name)
    if line is not None:
        parts.append(f"line {line}")
    elif cell is not None:
        parts.append(f"cell {cell}")
    text = ", ".join(parts)
    if step is not None:
        text = f'{text} (step "{step}")' if text else f'step "{step}"'
    return text


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``; did you mean "load"?`` when a close match exists, else the empty string."""
    matches = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f'; did you mean "{matches[0]}"?' if matches else ""


class NbflowError(Exception):
    """Base class of every error nbflow raises on purpose."""


class PipelineError(NbflowError):
    """The notebook cannot be turned into a pipeline, or a run was asked for wrongly.

    Nothing has run and nothing has been written when this is raised.
    """

    def __init__(
        self,
        message: str,
        notebook: str | Path | None = None,
        cell: int | None = None,
        step: str | None = None,
        line: int | None = None,
    ) -> None:
        self.message = message
        self.notebook = str(notebook) if notebook is not None else None
        self.cell = cell
        self.step = step
        self.line = line
        prefix = where(notebook, cell, step, line)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class ParameterError(PipelineError):
    """A parameter given for a run is unknown, badly named or of the wrong type."""


class StepFailed(NbflowError):
    """A step raised, timed out, or its kernel or worker died."""

    def __init__(
        self,
        message: str,
        notebook: str | Path | None = None,
        cell: int | None = None,
        step: str | None = None,
        traceback: str = "",
    ) -> None:
        self.message = message
        self.notebook = str(notebook) if notebook is not None else None
        self.cell = cell
        self.step = step
        self.traceback = traceback
        prefix = where(notebook, cell, step)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class CacheCorrupt(NbflowError):
    """A cache entry is incomplete, fails its checksum or cannot be loaded.

    The entry is never used; the step is recomputed.
    """

    def __init__(self, step: str, key: str, path: str | Path, detail: str) -> None:
        self.step = step
        self.key = key
        self.path = str(path)
        self.detail = detail
        super().__init__(f'step "{step}": cache entry corrupt (key {key[:12]}, {path}): {detail}')


class CacheRefused(NbflowError):
    """The cache folder or an entry is not safe to load pickles from."""
