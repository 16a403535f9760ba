"""Serving the studio: which address, which websocket origins, which authentication.

``panel serve`` listens on every interface by default while printing "localhost", and
a client that is not a browser can forge the websocket ``Origin`` (RELIABILITY.md). So
the studio listens on 127.0.0.1 unless told otherwise, always passes an explicit
websocket-origin list, and refuses a non-loopback address unless Panel's basic
authentication is configured (a password, or a JSON file of users and passwords),
with a cookie secret to sign the login cookie.

Run reports are served over HTTP beside the app, at ``report/<run id>?notebook=<path
relative to the folder>`` (``report_url``), so a multi-megabyte page never travels
through the Bokeh websocket: the app only points a sandboxed iframe there. The handler
is behind the studio's login when one is configured (``tornado.web.authenticated`` on
Bokeh's ``AuthRequestHandler``), resolves the notebook strictly inside the folder
(``folder.confine_notebook``: ``..``, absolute paths, symlinks out, sibling folders are all a
bare 404), finds the file by run id in that notebook's run store
(``report.recorded_report``), reads it off the IO loop, and serves it with
``Content-Security-Policy: sandbox`` so its scripts run in an opaque origin.

Behind the Jupyter server (``proxy.py``) the studio listens on a Unix socket in a private
folder instead of a port (``unix_socket``), under the Jupyter route's ``prefix``: only
processes of this user can open the socket, and browsers reach it only through the Jupyter
server, which checks the login and the websocket origin itself, so any origin is accepted.

``check_address`` and ``websocket_origins`` are pure (tested without a server, as are
``folder.confine_notebook`` and ``folder.report_url``, re-exported here); ``serve`` imports Panel and blocks until the server
stops. It must not build the UI (that is ``app.py``).
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import os
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import NbflowError
from .folder import confine_notebook, report_url

__all__ = [
    "DEFAULT_PORT",
    "StudioError",
    "check_address",
    "confine_notebook",
    "is_loopback",
    "report_route",
    "report_url",
    "resolve_target",
    "serve",
    "websocket_origins",
]

DEFAULT_PORT = 5006
#: The largest run id a run store holds (SQLite's INTEGER); larger ids are a plain 404.
MAX_RUN_ID = 2**63 - 1


class StudioError(NbflowError):
    """The studio cannot be served as asked (an unsafe address, a missing folder)."""


def is_loopback(address: str) -> bool:
    """Whether ``address`` only accepts connections from this machine."""
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False


def check_address(address: str, basic_auth: str | None) -> None:
    """``StudioError`` unless ``address`` is loopback or authentication is configured."""
    if not is_loopback(address) and not basic_auth:
        raise StudioError(
            f"refusing to serve the studio on {address}: anyone who can reach this machine could "
            "edit and run your notebooks. Listen on 127.0.0.1 (the default), or require a login "
            "with --basic-auth PASSWORD (or a JSON file of users and passwords) and give the "
            "addresses browsers will use with --allow-websocket-origin HOST:PORT"
        )


def websocket_origins(address: str, port: int, extra: Sequence[str] = ()) -> list[str]:
    """The explicit websocket-origin list: this address and port, loopback names, ``extra``."""
    origins = [f"127.0.0.1:{port}", f"localhost:{port}"]
    if not is_loopback(address) and address not in ("0.0.0.0", "::"):
        origins.append(f"{address}:{port}")
    for origin in extra:
        origins.append(origin if ":" in origin else f"{origin}:{port}")
    return list(dict.fromkeys(origins))


def resolve_target(target: str | Path | None) -> tuple[Path, str | None]:
    """(folder, notebook to open first) from ``nbflow studio [FOLDER|NOTEBOOK]``."""
    path = Path(target or ".").resolve()
    if path.is_file() and path.suffix == ".ipynb":
        return path.parent, path.name
    if not path.is_dir():
        raise StudioError(f"{path}: no such folder")
    return path, None


def report_route(folder: Path) -> tuple[str, type, dict[str, Any]]:
    """The tornado route of the report handler, for ``pn.serve(extra_patterns=...)``."""
    return (r"/report/([0-9]+)", report_handler(), {"folder": folder.resolve()})


@functools.cache
def report_handler() -> type:
    """The handler class (defined on first use: importing tornado and Bokeh is not free)."""
    from bokeh.server.views.auth_request_handler import AuthRequestHandler
    from tornado.web import HTTPError, authenticated

    from ..report import recorded_report

    class ReportHandler(AuthRequestHandler):
        """``GET report/<run id>?notebook=<relative path>``: the run's recorded report."""

        def initialize(self, folder: Path) -> None:
            self.folder = folder

        @authenticated
        async def get(self, run_id: str) -> None:
            notebook = confine_notebook(self.folder, self.get_query_argument("notebook", None))
            if notebook is None or len(run_id) > len(str(MAX_RUN_ID)) or int(run_id) > MAX_RUN_ID:
                raise HTTPError(404)
            report = await asyncio.to_thread(recorded_report, notebook, int(run_id))
            if report is None:
                raise HTTPError(404)
            try:
                body = await asyncio.to_thread(report.read_bytes)
            except OSError:  # removed since the lookup (nbflow clean)
                raise HTTPError(404) from None
            # An opaque origin: the report's scripts (its plots) run but cannot reach the
            # studio's cookies, page or websocket.
            self.set_header("Content-Security-Policy", "sandbox allow-scripts")
            self.set_header("X-Content-Type-Options", "nosniff")
            self.set_header("Cache-Control", "no-store")
            self.set_header("Content-Type", "text/html; charset=utf-8")
            self.finish(body)

    return ReportHandler


def serve(
    target: str | Path | None = None,
    *,
    port: int = DEFAULT_PORT,
    address: str = "127.0.0.1",
    basic_auth: str | None = None,
    cookie_secret: str | None = None,
    allow_websocket_origin: Sequence[str] = (),
    show: bool = False,
    start: bool = True,
    unix_socket: str | None = None,
    prefix: str = "",
) -> Any:
    """Serve the studio for the notebooks of ``target`` (a folder or a notebook).

    Blocks until interrupted when ``start`` (the CLI); otherwise returns the Bokeh
    server unstarted. ``unix_socket`` and ``prefix``: see the module docstring.
    """
    if unix_socket is None:
        check_address(address, basic_auth)
    folder, first = resolve_target(target)
    if unix_socket is None and start:
        check_port(address, port)  # before Panel's import (seconds): a taken port is said at once

    import panel as pn

    from .app import studio_app
    from .canvas import CanvasNotBuilt, check_bundle

    try:
        check_bundle()
    except CanvasNotBuilt as e:
        raise StudioError(str(e)) from None
    # Only the Jupyter server's proxy can reach a Unix socket; it checks origins itself.
    origins = ["*"] if unix_socket else websocket_origins(address, port, allow_websocket_origin)
    if basic_auth:
        # A fresh secret per server: logins end with the process, which is what we want.
        cookie_secret = cookie_secret or os.environ.get("NBFLOW_STUDIO_COOKIE_SECRET") or secrets.token_hex(32)
    where = (
        f"unix:{unix_socket}" if unix_socket else f"http://{address if address != '0.0.0.0' else '127.0.0.1'}:{port}"
    )
    print(f"nbflow studio: {folder} at {where}/{prefix.strip('/')}", flush=True)
    extra: dict[str, Any] = {"unix_socket": unix_socket, "prefix": prefix} if unix_socket else {"prefix": prefix}
    try:
        return pn.serve(
            {"/": lambda: studio_app(folder, first)},
            port=port,
            address=address,
            websocket_origin=origins,
            basic_auth=basic_auth,
            cookie_secret=cookie_secret,
            show=show,
            start=start,
            extra_patterns=[report_route(folder)],
            title="nbflow studio",
            verbose=False,
            **extra,
        )
    except OSError as e:
        raise cannot_listen(address, port, e) from None
    finally:
        if start:
            _cancel_runs()


def check_port(address: str, port: int) -> None:
    """Refuse a port another process listens on, as the server's own bind would (the same
    ``SO_REUSEADDR`` as Tornado's, so a port left in TIME_WAIT is accepted by both)."""
    import socket

    if not port:
        return
    try:
        infos = socket.getaddrinfo(address or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError:
        return  # the server's bind says what is wrong with the address
    for family, kind, proto, _, where in infos:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                probe.bind(where)
            except OSError as e:
                raise cannot_listen(address, port, e) from None


def cannot_listen(address: str, port: int, error: OSError) -> StudioError:
    """The one line for a port the studio cannot listen on."""
    return StudioError(f"cannot listen on {address}:{port} ({error.strerror}); choose another --port")


def _cancel_runs(grace: float = 30.0) -> None:
    """Runs started from the studio end with it: cancel them and wait (their kernels stop)."""
    from ..run import ACTIVE_RUNS

    runs = list(ACTIVE_RUNS.values())
    for run in runs:
        run.cancel()
    for run in runs:
        run.wait(grace)
