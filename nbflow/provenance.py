"""Where a run came from: notebook, git state, Python and package versions, host, user.

Collected once per run and kept in the run store (``runs.provenance``). It runs on the
no-op path, so it is cheap: one ``git status`` call gives commit, branch and dirty
flag, and package versions are read from the ``*.dist-info`` folder names on
``sys.path`` rather than through ``importlib.metadata`` (which reads every package's
metadata file).
``reproduce_lines`` turns a recorded run back into the commands that run it again.
"""

from __future__ import annotations

import getpass
import os
import platform
import re
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: Packages whose versions a reader of a run needs (those installed are reported).
KEY_PACKAGES = (
    "nbflow",
    "papermill",
    "nbclient",
    "nbformat",
    "jupyter_client",
    "ipykernel",
    "ipython",
    "joblib",
    "cloudpickle",
    "networkx",
    "numpy",
    "pandas",
    "scikit_learn",
    "scipy",
    "matplotlib",
    "dask",
    "distributed",
    "panel",
    "bokeh",
)
_DIST = re.compile(r"^(?P<name>[A-Za-z0-9_.]+?)-(?P<version>[^-]+?)\.(dist|egg)-info$")


def git_state(folder: str | Path) -> dict[str, Any]:
    """``{"commit", "branch", "dirty"}`` of the repository holding ``folder`` (empty if none)."""
    try:
        proc = subprocess.run(
            ["git", "-C", str(folder), "status", "--porcelain=v2", "--branch", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return {}
    if proc.returncode != 0:
        return {}
    state: dict[str, Any] = {"dirty": False}
    for line in proc.stdout.splitlines():
        if line.startswith("# branch.oid "):
            commit = line.split()[2]
            state["commit"] = None if commit == "(initial)" else commit
        elif line.startswith("# branch.head "):
            branch = line.split()[2]
            state["branch"] = None if branch == "(detached)" else branch
        elif not line.startswith("#"):
            state["dirty"] = True
    return state


def package_versions(names: tuple[str, ...] = KEY_PACKAGES) -> dict[str, str]:
    """Installed versions of ``names`` (normalised like wheel names: ``scikit_learn``)."""
    wanted = {n.lower().replace("-", "_") for n in names}
    found: dict[str, str] = {}
    for entry in sys.path:
        try:
            items = os.scandir(entry or ".")
        except OSError:
            continue
        with items:
            for item in items:
                match = _DIST.match(item.name)
                if match:
                    name = match["name"].lower().replace("-", "_").replace(".", "_")
                    if name in wanted and name not in found:
                        found[name] = match["version"]
    return dict(sorted(found.items()))


def collect(notebook: str | Path, notebook_hash: str = "") -> dict[str, Any]:
    """The provenance record of a run of ``notebook``."""
    path = Path(notebook).resolve()
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return {
        "notebook": str(path),
        "notebook_hash": notebook_hash,
        "git": git_state(path.parent),
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "platform": platform.platform(),
        "packages": package_versions(),
        "host": socket.gethostname(),
        "user": user,
        "pid": os.getpid(),
        "cwd": os.getcwd(),
    }


def reproduce_lines(run: Mapping[str, Any]) -> list[str]:
    """Shell lines that run a recorded run again: its folder, git commit and parameters.

    ``run`` is a run store row (``notebook``, ``params``, ``provenance``). Parameters are
    written so that the CLI parses them back to the stored values: ``-p`` when papermill's
    parsing gives the value back, ``-r`` for text it would not, ``-y`` for lists and mappings.
    """
    import json
    import shlex

    from .parameters import parse_cli_value

    notebook = Path(run["notebook"])
    git = (run.get("provenance") or {}).get("git") or {}
    lines = [f"cd {shlex.quote(str(notebook.parent))}"]
    if git.get("commit"):
        lines.append(f"git checkout {git['commit']}")
    args = ["nbflow", "run", notebook.name]
    for name, value in (run.get("params") or {}).items():
        if isinstance(value, str):
            args += ["-p" if parse_cli_value(value) == value else "-r", name, value]
        elif value is None or isinstance(value, bool | int | float):
            args += ["-p", name, repr(value)]
        else:
            args += ["-y", f"{name}: {json.dumps(value)}"]
    lines.append(shlex.join(args))
    return lines
