"""Addresses inside the studio page, shared by the app (which links) and the server
(which serves what is linked): a module of its own so neither imports the other.

Standard library only; it must not import panel, the app or the server.
"""

from __future__ import annotations

from urllib.parse import urlencode


def report_url(run_id: int, notebook: str, version: int | float | None = None) -> str:
    """The report's address relative to the studio page (so a prefix or a proxy keeps working).

    ``version`` (the file's modification time) makes a rebuilt report a new address,
    so the frame reloads it.
    """
    query = {"notebook": notebook, **({"v": str(version)} if version is not None else {})}
    return f"report/{int(run_id)}?{urlencode(query)}"
