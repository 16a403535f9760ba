"""Executors run the steps a plan says to run; one module per executor.

Like papermill's engines, the registry is a small dict of names to classes; an
executor object can also be passed directly (``Pipeline.run(executor=...)``).

==========  ==============================================================
``kernel``  one Jupyter kernel, steps in order, through papermill (default)
``dask``    steps as tasks on a Dask cluster, independent steps in parallel
``live``    the user's own IPython kernel, in its namespace (``%nbflow run``)
==========  ==============================================================
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .base import Executor, RunContext

EXECUTORS = {
    "kernel": "nbflow.executors.kernel:KernelExecutor",
    "dask": "nbflow.executors.dask:DaskExecutor",
    "live": "nbflow.executors.user_kernel:UserKernelExecutor",
}

__all__ = ["EXECUTORS", "Executor", "RunContext", "get_executor"]


def __getattr__(name: str) -> Any:
    # ``Executor`` and ``RunContext`` on first use: the kernel and Dask workers import this
    # package for ``in_kernel``/``on_worker`` and must not pay for ``base`` (plan, events).
    if name in ("Executor", "RunContext"):
        from . import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def get_executor(executor: str | Executor | None = None, **options: Any) -> Executor:
    """The executor named ``executor`` (default ``kernel``), or ``executor`` itself."""
    if executor is None:
        executor = "kernel"
    if not isinstance(executor, str):
        return executor
    try:
        module, _, cls = EXECUTORS[executor].partition(":")
    except KeyError:
        from ..errors import PipelineError

        raise PipelineError(f"unknown executor {executor!r} (choose from {', '.join(EXECUTORS)})") from None
    return getattr(importlib.import_module(module), cls)(**options)
