"""nbflow in the user's own kernel: ``%load_ext nbflow``, the ``%nbflow`` magics and the
driver the JupyterLab extension calls (LIVE-PROTOCOL.md).

* ``driver``: ``begin``/``restore``/``step_started``/``step_finished``/``finish``/``status``,
  JSON in and out (``driver.call``), for silent execute requests from the frontend;
* ``magics``: ``%nbflow restore``, ``%nbflow run``, ``%nbflow status`` on the same code;
* ``ledger``: IPython's ``pre_run_cell``/``post_run_cell`` hooks that follow what the
  person runs by hand, so a hand-run step is cached only when its key is proven.

The work itself (restores, running steps, committing entries) is the ``live`` executor's
(``executors.user_kernel``). Imported only inside an IPython kernel; ``import nbflow``
does not import it.
"""

from __future__ import annotations

from typing import Any


def load_ipython_extension(ip: Any) -> None:
    """``%load_ext nbflow``: register the ``%nbflow`` magic and the run-cell hooks (once)."""
    from . import ledger, magics

    if getattr(ip, "_nbflow_live_loaded", False):
        return
    ip._nbflow_live_loaded = True
    ledger.install(ip)
    ip.register_magics(magics.NbflowMagics)
    _warm_up()


def _warm_up() -> None:
    """Import now what a restore needs (the extension loads when the kernel starts, the
    person restores later): planning, the run store's module, joblib's loader."""
    import importlib

    for module in ("nbflow.api", "nbflow.run", "joblib"):
        try:
            importlib.import_module(module)
        except ImportError:  # joblib missing: the restore will say so
            pass


def unload_ipython_extension(ip: Any) -> None:
    from . import ledger

    ledger.uninstall(ip)
    ip._nbflow_live_loaded = False


__all__ = ["load_ipython_extension", "unload_ipython_extension"]
