"""Kernel languages behind one interface: what nbflow must know to run a pipeline in R or Julia.

A notebook's language is its kernel's (``metadata.kernelspec.language``, else
``metadata.language_info.name``; a notebook that names neither runs in Python, as
before). ``language_of(data, path)`` returns the ``Language`` for it, or raises one
``PipelineError`` line naming the kernel and the languages nbflow supports.

A ``Language`` owns, for its kernels:

* **analysis**: ``prefetch`` (every cell the next calls ask about, to batch them),
  ``analyse(groups)`` -- the names each group of cells (the setup, each
  step) reads and writes, as ``analysis.Names``; ``parameters(source)`` -- the
  parameters cell's defaults, as ``parameters.Parameter``; ``kernel_names`` -- names
  defined before any code runs (never reported as undefined);
* **values in the kernel**: the code the kernel executor runs there -- ``helper_code``
  (once, after the kernel starts), ``watch_code`` (before a step; may be ``None``) or,
  with no round trip of its own, ``watch_setup`` + ``watch_metadata`` (the watch rides
  on the step's first execute request and runs in the kernel just before its code),
  ``dump_expression`` (a ``user_expression`` riding on a step's last cell) or, for a
  kernel without user expressions, ``dump_code`` run after it with ``read_dump``
  reading its answer, and ``restore_code`` (before a step, the cached values it needs);
* **parameters**: ``translator``, the name of papermill's translator that injects them;
* what it supports beyond that: ``fan_out`` (``map:`` steps), ``distributed`` (the
  Dask executor) and ``verifiable`` (``nbflow verify``).

The core never branches on a language's name: it asks the pipeline's ``Language``.
Python (``python.py``) delegates to ``analysis.py``, ``parameters.py`` and
``executors/in_kernel.py``; R (``r.py``) runs R's own parser in an ``Rscript`` process
and caches values with ``saveRDS``; Julia (``julia.py``) is written to the same
interface, without a Julia on the machines nbflow is tested on.

This module must not import a language's modules before it is asked for one, nor
start processes.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..analysis import AnalysisError, Names
from ..errors import PipelineError
from ..parameters import Parameter

#: kernelspec language (lower case) -> "module:attribute" of its ``Language``.
LANGUAGES = {
    "python": "nbflow.languages.python:PYTHON",
    "r": "nbflow.languages.r:R_LANGUAGE",
    "julia": "nbflow.languages.julia:JULIA",
}


class Language:
    """The interface every kernel language implements (see module docstring)."""

    #: How a person names the language ("Python", "R").
    name: str = ""
    #: papermill's translator for the parameters (``papermill.translators``).
    translator: str = ""
    #: Whether ``map:`` steps work in this language's kernels.
    fan_out: bool = False
    #: Whether the Dask executor can run this language's steps.
    distributed: bool = False
    #: Whether ``nbflow verify`` can compare this language's cached values with a fresh run.
    verifiable: bool = False

    # ------------------------------------------------------------ analysis
    @property
    def kernel_names(self) -> frozenset[str]:
        """Names every kernel of the language defines before any code runs."""
        return frozenset()

    def prefetch(self, sources: Sequence[str], parameters: str | None, memo: Path | None = None) -> None:
        """A hint: ``analyse`` and ``parameters`` will be asked about these cells (a language
        whose analysis starts a process analyses them all in one go)."""

    def analyse(self, groups: Sequence[Sequence[str]], memo: Path | None = None) -> list[Names | AnalysisError]:
        """Per group of cell sources, its ``Names`` or the ``AnalysisError`` of a cell
        that does not parse (``.cell`` is the index in the group). ``memo``: a folder
        where results may be remembered by content."""
        raise NotImplementedError

    def parameters(
        self, source: str, notebook: str | Path | None = None, cell: int | None = None, memo: Path | None = None
    ) -> dict[str, Parameter]:
        """The parameters cell's defaults; ``PipelineError`` unless they are literals."""
        raise NotImplementedError

    def setup_statements(self, sources: Sequence[str]) -> tuple[Any, ...] | None:
        """The setup's top-level statements (``analysis_setup.SetupStatement``), so a step's
        key holds only the ones it reaches; ``None`` (the default): the whole setup is part
        of every step's key."""
        return None

    # ------------------------------------------------------- in the kernel
    def helper_code(self, cache_root: str, by_reference: list[str], output_limit: int | None) -> str:
        """Code that prepares the kernel (run once, silently, before the setup)."""
        raise NotImplementedError

    def watch_code(self, names: list[str], reads: list[str]) -> str | None:
        """Code run before a step to notice values it changes at run time, if any."""
        return None

    def watch_setup(self, names: list[str]) -> str | None:
        """An expression (JSON text: true or false) telling the kernel the pipeline's
        ``names`` and whether it can watch a step from its execute request's metadata
        (``watch_metadata``) instead of a separate ``watch_code`` round trip; ``None``: it cannot."""
        return None

    def watch_metadata(self, reads: list[str]) -> dict[str, Any]:
        """The execute request metadata asking the kernel to watch ``reads`` just before
        the cell runs (only after ``watch_setup`` answered true)."""
        raise NotImplementedError

    def forget_code(self, names: list[str]) -> str | None:
        """Code removing ``names`` from the kernel (before a retry: what the failed attempt
        assigned), if the language has it."""
        return None

    def dump_expression(self, staging: str, names: list[str], required: list[str]) -> str | None:
        """A ``user_expression`` writing the step's values into ``staging`` and returning
        ``Cache.dump_values``' answer as JSON text; ``None`` when the kernel has none
        (then ``dump_code`` runs after the step and ``read_dump`` reads the answer)."""
        return None

    def dump_code(self, staging: str, names: list[str], required: list[str]) -> str:
        """Code writing the step's values into ``staging``, its answer beside them."""
        raise NotImplementedError

    def read_dump(self, staging: Path) -> dict[str, Any]:
        """The answer ``dump_code`` left in ``staging`` (``Cache.dump_values``' format)."""
        raise NotImplementedError

    def restore_code(self, cache: Any, specs: list[list[Any]]) -> str:
        """Code loading ``[[step, key, [names]], ...]`` from ``cache`` into the kernel."""
        raise NotImplementedError


def kernel_language(data: dict[str, Any]) -> str:
    """The language a notebook's kernel runs, lower case (``python`` when it does not say)."""
    metadata = data.get("metadata") or {}
    spec = metadata.get("kernelspec") or {}
    info = metadata.get("language_info") or {}
    return str(spec.get("language") or info.get("name") or "python").lower()


def language_of(data: dict[str, Any], path: str | Path | None = None) -> Language:
    """The ``Language`` of the notebook ``data``; ``PipelineError`` when nbflow has none."""
    language = kernel_language(data)
    target = LANGUAGES.get(language)
    if target is None:
        spec = (data.get("metadata") or {}).get("kernelspec") or {}
        kernel = spec.get("display_name") or spec.get("name") or language
        supported = ", ".join(sorted(LANGUAGES))
        raise PipelineError(
            f"the notebook's kernel {kernel!r} runs {language!r}, which nbflow cannot analyse; "
            f"nbflow supports kernels in {supported}",
            notebook=path,
        )
    module, attribute = target.split(":")
    return getattr(importlib.import_module(module), attribute)
