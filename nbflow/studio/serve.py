"""Serving the studio: which address, which websocket origins, which authentication.

``panel serve`` listens on every interface by default while printing "localhost", and
a client that is not a browser can forge the websocket ``Origin`` (RELIABILITY.md). So
the studio listens on 127.0.0.1 unless told otherwise, always passes an explicit
websocket-origin list, and refuses a non-loopback address unless Panel's basic
authentication is configured (a password, or a JSON file of users and passwords),
with a cookie secret to sign the login cookie.

``check_address`` and ``websocket_origins`` are pure (tested without a server);
``serve`` imports Panel and blocks until the server stops. It must not build the UI
(that is ``app.py``).
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import NbflowError

DEFAULT_PORT = 5006


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
) -> Any:
    """Serve the studio for the notebooks of ``target`` (a folder or a notebook).

    Blocks until interrupted when ``start`` (the CLI); otherwise returns the Bokeh
    server unstarted.
    """
    check_address(address, basic_auth)
    folder, first = resolve_target(target)

    import panel as pn

    from .app import studio_app
    from .canvas import CanvasNotBuilt, check_bundle

    try:
        check_bundle()
    except CanvasNotBuilt as e:
        raise StudioError(str(e)) from None
    origins = websocket_origins(address, port, allow_websocket_origin)
    if basic_auth:
        # A fresh secret per server: logins end with the process, which is what we want.
        cookie_secret = cookie_secret or os.environ.get("NBFLOW_STUDIO_COOKIE_SECRET") or secrets.token_hex(32)
    print(f"nbflow studio: {folder} at http://{address if address != '0.0.0.0' else '127.0.0.1'}:{port}/", flush=True)
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
            title="nbflow studio",
            verbose=False,
        )
    except OSError as e:
        raise StudioError(f"cannot listen on {address}:{port} ({e.strerror}); choose another --port") from None
    finally:
        if start:
            _cancel_runs()


def _cancel_runs(grace: float = 30.0) -> None:
    """Runs started from the studio end with it: cancel them and wait (their kernels stop)."""
    from ..run import ACTIVE_RUNS

    runs = list(ACTIVE_RUNS.values())
    for run in runs:
        run.cancel()
    for run in runs:
        run.wait(grace)
