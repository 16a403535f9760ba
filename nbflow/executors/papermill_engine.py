"""The ``nbflow`` papermill engine (entry point ``papermill.engine``).

papermill calls it with the parameterised notebook; it hands the work to the kernel
executor's ``Session``. It lives in its own module because papermill imports its
engines while papermill itself is being imported, and because the kernel executor must
not import papermill before it has started the kernel.
"""

from __future__ import annotations

import asyncio
from typing import Any

from papermill.engines import Engine
from papermill.exceptions import PapermillException


class NbflowEngine(Engine):
    """Runs a pipeline's steps for ``nbflow run``; it needs the run context nbflow passes."""

    @classmethod
    def execute_managed_notebook(cls, nb_man: Any, kernel_name: str, **kwargs: Any) -> Any:
        ctx = kwargs.get("nbflow_context")
        if ctx is None:
            raise PapermillException("the nbflow engine runs pipelines for `nbflow run`; use it through nbflow")
        from .kernel import Session

        session = Session(nb_man, ctx, kwargs.get("nbflow_kernel"), kwargs.get("nbflow_verifier"))
        asyncio.run(session.run())
        return nb_man.nb
