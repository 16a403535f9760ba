"""nbflow in the user's own kernel: ``%load_ext nbflow``, the ``%nbflow`` magics and the
driver the JupyterLab extension calls (LIVE-PROTOCOL.md).

* ``driver``: ``begin``/``restore``/``step_started``/``step_finished``/``finish``/``status``,
  JSON in and out (``driver.call``), for silent execute requests from the frontend;
* ``magics``: ``%nbflow restore``, ``%nbflow run``, ``%nbflow status`` on the same code;
* ``ledger``: IPython's ``pre_run_cell``/``post_run_cell`` hooks that follow what the
  person runs by hand, so a hand-run step is cached only when its key is proven;
* ``warm``: the daemon thread loading the extension starts, importing what a restore of
  the session's notebook will import (``warm_kernel = false`` turns it off).

The work itself (restores, running steps, committing entries) is the ``live`` executor's
(``executors.user_kernel``). Imported only inside an IPython kernel; ``import nbflow``
does not import it.
"""

from __future__ import annotations

from typing import Any


def load_ipython_extension(ip: Any) -> None:
    """``%load_ext nbflow``: register the ``%nbflow`` magic and the run-cell hooks (once)."""
    from . import ledger, magics, warm

    if getattr(ip, "_nbflow_live_loaded", False):
        return
    ip._nbflow_live_loaded = True
    ledger.install(ip)
    ip.register_magics(magics.NbflowMagics)
    warm.start(ip)  # last: the main thread imports nothing more here while it runs


def unload_ipython_extension(ip: Any) -> None:
    from . import ledger, warm

    warm.stop(ip)
    ledger.uninstall(ip)
    ip._nbflow_live_loaded = False


__all__ = ["load_ipython_extension", "unload_ipython_extension"]
