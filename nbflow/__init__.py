"""nbflow: the notebook is the pipeline.

Tag code cells ``step:<name>`` in JupyterLab; nbflow works out the dependencies, runs
the steps with papermill, memoises their results with joblib and re-runs only what
changed::

    import nbflow
    pipeline = nbflow.load_pipeline("pipeline.ipynb")
    print(pipeline.plan({"lr": 0.1}).table())
    run = pipeline.run({"lr": 0.1})
    nbflow.result("pipeline.ipynb", "train", "model")

The data path, one module each: ``notebook`` -> ``analysis`` -> ``graph`` -> ``plan``
-> ``executors`` -> ``store`` -> ``widget`` / ``studio`` / ``report`` / ``server``.

Attributes are imported on first use so ``import nbflow`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__

_EXPORTS = {
    "load_pipeline": "api",
    "Pipeline": "api",
    "Plan": "plan",
    "PipelineError": "errors",
    "ParameterError": "errors",
    "StepFailed": "errors",
    "CacheCorrupt": "errors",
    "Config": "config",
    "result": "results",
    "Run": "api",
    "show": "widget",
}

__all__ = [
    "CacheCorrupt",
    "Config",
    "ParameterError",
    "Pipeline",
    "PipelineError",
    "Plan",
    "StepFailed",
    "__version__",
    "load_pipeline",
    "result",
    "Run",
    "show",
]

if TYPE_CHECKING:
    from .api import Pipeline, Run, load_pipeline
    from .config import Config
    from .errors import CacheCorrupt, ParameterError, PipelineError, StepFailed
    from .plan import Plan
    from .results import result
    from .widget import show


def load_ipython_extension(ip: Any) -> None:
    """``%load_ext nbflow``: the ``%nbflow`` magics in this kernel (``nbflow.live``, imported now)."""
    from .live import load_ipython_extension as load

    load(ip)


def unload_ipython_extension(ip: Any) -> None:
    from .live import unload_ipython_extension as unload

    unload(ip)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'nbflow' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
