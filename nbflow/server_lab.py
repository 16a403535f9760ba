"""REST routes for working in JupyterLab's own notebook (issue 17), beside ``server.py``'s.

=====================================  =============================================
``POST   runs/{id}/outputs``           a finished run's outputs for the cells of the
                                       notebook as edited (body ``{path, notebook}``;
                                       ``run_outputs.cell_outputs``): what the
                                       JupyterLab command writes into the open notebook
=====================================  =============================================

Same rules as ``server.py`` (whose ``NbflowHandler`` these handlers share): behind
jupyter_server's authentication and, being POSTs, its XSRF check; ``path`` confined to
the server's root; bad requests a 4xx with one line. The route reads and answers: it
never writes the notebook (the editor's model is the frontend's to change) nor anything
else.

This module owns HTTP for these routes; the matching of outputs to cells is
``run_outputs``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from jupyter_server.utils import url_path_join
from tornado import web

from .errors import NbflowError
from .server import API, NbflowHandler, _json, run_id


def _load_jupyter_server_extension(serverapp: Any) -> None:
    """Loaded with ``nbflow.server`` (one of its extension points)."""
    base = url_path_join(serverapp.web_app.settings["base_url"], API)
    serverapp.web_app.add_handlers(".*$", lab_handlers(base))


def lab_handlers(base: str) -> list[tuple[str, type]]:
    """The routes of this module under ``base`` (``<base_url>nbflow/api``)."""
    return [(url_path_join(base, r"runs/(\d+)/outputs"), RunOutputsHandler)]


class RunOutputsHandler(NbflowHandler):
    @web.authenticated
    async def post(self, raw_id: str) -> None:
        number = run_id(raw_id)
        body = self.body()
        if not isinstance(body.get("path"), str) or not body["path"]:
            raise web.HTTPError(400, "missing path")
        notebook = self.confine(body["path"])
        data = body.get("notebook")
        if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
            raise web.HTTPError(400, "notebook must be notebook JSON (an object with a cells list)")
        record = await asyncio.to_thread(self.stored_run, number, notebook)  # 404 when unknown
        if record["status"] in ("pending", "running"):
            raise web.HTTPError(409, f"run {number} is still {record['status']}; its outputs are not all there yet")
        try:
            answer = await asyncio.to_thread(_outputs, notebook, number, data)
        except NbflowError as e:
            return self.fail(e)
        answer["status"] = record["status"]
        self.finish(_json(answer))


def _outputs(notebook: Path, number: int, data: dict[str, Any]) -> dict[str, Any]:
    from .config import Config
    from .run_outputs import cell_outputs

    return cell_outputs(Config.for_notebook(notebook), notebook, number, data)
