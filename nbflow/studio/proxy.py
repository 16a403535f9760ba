"""The studio through the Jupyter server: ``<base_url>nbflow/studio/``, behind Jupyter's login.

The Jupyter server extension (``server.py``) adds this route. The first request starts
``nbflow studio <root_dir> --unix-socket ... --prefix <base_url>nbflow/studio`` (one
process, for the server's root folder) and jupyter-server-proxy forwards HTTP and the
Bokeh websocket to it, after jupyter_server's own authentication and origin checks. So
the studio works wherever JupyterLab does, Binder included, without a second port.

Why a proxied process and not the Bokeh app inside the Jupyter server (README, "The
studio through JupyterLab"): measured with ``benchmarks/bench_studio_route.py``, Panel
adds its import time and memory to every Jupyter server that has nbflow installed, and
the studio's synchronous work (opening a 200-step notebook, planning it) would hold the
Jupyter server's event loop, freezing every notebook's kernel messages meanwhile; a
separate process costs a cold start once, and then only the proxy hop.

The studio listens on a Unix socket in a fresh private folder (jupyter-server-proxy's
``unix_socket=True``), never on a TCP port: nothing but the Jupyter server can reach it.
When Panel or jupyter-server-proxy is not installed the route answers, behind the same
login, with one line saying what to install. This module must not build the studio's UI.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

ROUTE = "nbflow/studio"
INSTALL = 'the nbflow studio needs Panel and jupyter-server-proxy: pip install "nbflow[studio,jupyter]"'


def studio_handlers(serverapp: Any) -> list[tuple[Any, ...]]:
    """Tornado routes for ``<base_url>nbflow/studio/`` on ``serverapp``."""
    from jupyter_server.utils import url_path_join

    base_url = serverapp.web_app.settings["base_url"]
    missing = [m for m in ("panel", "jupyter_server_proxy") if importlib.util.find_spec(m) is None]
    if missing:
        serverapp.log.info("nbflow: no studio at %s (%s missing)", url_path_join(base_url, ROUTE), ", ".join(missing))
        return [(url_path_join(base_url, ROUTE, r"(.*)"), _missing_handler())]

    from jupyter_server_proxy.config import ServerProcess, make_handlers

    process = ServerProcess(
        name=ROUTE,
        command=[
            sys.executable,
            "-m",
            "nbflow",
            "studio",
            str(serverapp.root_dir),
            "--unix-socket",
            "{unix_socket}",
            "--prefix",
            "{base_url}" + ROUTE,
        ],
        unix_socket=True,
        absolute_url=True,  # the studio is served under the prefix: it sees the full path
        timeout=120.0,  # a cold start imports Panel and Bokeh
        launcher_entry={"enabled": False},  # the extension's launcher tile opens it
    )
    serverapp.log.info("nbflow: studio at %s", url_path_join(base_url, ROUTE, ""))
    return make_handlers(base_url, [process])


def _missing_handler() -> type:
    from jupyter_server.base.handlers import JupyterHandler
    from tornado import web

    class MissingStudioHandler(JupyterHandler):
        @web.authenticated
        def get(self, path: str = "") -> None:
            self.set_status(503)
            self.set_header("Content-Type", "text/plain; charset=utf-8")
            self.finish(INSTALL + "\n")

    return MissingStudioHandler
