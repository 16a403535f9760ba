"""Python, the first ``Language``: everything delegated to the modules that were there first.

Analysis is ``analysis.analyse_cells`` (Python's ``ast`` after IPython's transforms),
parameters ``parameters.parse_parameters_cell``, values in the kernel
``executors/in_kernel.KernelSide`` (joblib/cloudpickle entries, run-time write
detection, background dumps, ``map:`` fan-out), parameters injected by papermill's
Python translator (with nbflow's tuples and sets, ``executors/kernel_client``).

This module must not grow Python-specific behaviour of its own: it only points at it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..analysis import KERNEL_NAMES, AnalysisError, Names, analyse_cells
from ..parameters import Parameter, parse_parameters_cell
from . import Language


class Python(Language):
    name = "Python"
    translator = "python"
    fan_out = True
    distributed = True
    verifiable = True

    @property
    def kernel_names(self) -> frozenset[str]:
        return KERNEL_NAMES

    def analyse(self, groups: Sequence[Sequence[str]], memo: Path | None = None) -> list[Names | AnalysisError]:
        found: list[Names | AnalysisError] = []
        modules: dict[str, str] = {}
        for index, sources in enumerate(groups):
            try:
                # the setup's imports (np = numpy) tell hidden-state calls apart in the steps
                names = analyse_cells(sources, modules)
            except AnalysisError as e:
                found.append(e)
                continue
            if index == 0:
                modules = dict(names.modules)
            found.append(names)
        return found

    def setup_statements(self, sources: Sequence[str]) -> tuple[Any, ...] | None:
        from ..analysis_setup import setup_statements

        try:
            return setup_statements(sources)
        except AnalysisError:
            return None  # the setup's own analysis names the cell

    def parameters(
        self, source: str, notebook: str | Path | None = None, cell: int | None = None, memo: Path | None = None
    ) -> dict[str, Parameter]:
        return parse_parameters_cell(source, notebook, cell)

    def helper_code(self, cache_root: str, by_reference: list[str], output_limit: int | None) -> str:
        return (
            "import nbflow.executors.in_kernel as __nbflow_runtime\n"
            f"__nbflow__ = __nbflow_runtime.KernelSide({cache_root!r}, {by_reference!r}, "
            f"output_limit={output_limit!r})\n"
            "del __nbflow_runtime\n"
        )

    def watch_code(self, names: list[str], reads: list[str]) -> str | None:
        return f"__nbflow__.watch({names!r}, {reads!r})"

    def watch_setup(self, names: list[str]) -> str | None:
        return f"__nbflow__.watch_on_request({names!r})"

    def watch_metadata(self, reads: list[str]) -> dict[str, Any]:
        return {"nbflow_watch": reads}

    def forget_code(self, names: list[str]) -> str | None:
        return f"for __nbflow_n in {names!r}:\n    globals().pop(__nbflow_n, None)\ndel __nbflow_n\n"

    def dump_expression(self, staging: str, names: list[str], required: list[str]) -> str | None:
        return f"__nbflow__.dump({staging!r}, {names!r}, {required!r})"

    def restore_code(self, cache: Any, specs: list[list[Any]]) -> str:
        return f"__nbflow__.restore({specs!r})"


PYTHON = Python()
