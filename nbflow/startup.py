"""What the ``nbflow`` command does before anything else, so a run starts sooner.

``skip_unused_imports``: importing nbformat (which papermill and nbclient need) imports
jsonschema, whose ``_format`` module imports the optional ``rfc3987_syntax`` when it
is installed (Jupyter's ``jsonschema[format-nongpl]`` brings it); that module builds a
Lark grammar at import: 0.5 s of CPU on an idle machine, several seconds on a loaded
one, on every run. nbflow never checks string formats with jsonschema (nbformat's
schema has no ``format`` keyword; nbflow validates notebooks with fastjsonschema,
``nbschema.py``), so the ``nbflow`` process marks that module as absent, which
jsonschema handles as documented (the ``iri`` formats are then not checked). Only the
command's own process: never a kernel, a worker or a library user's process.

This module must stay standard-library only and must not start anything.
"""

from __future__ import annotations

import sys

#: Optional imports of nbflow's dependencies that cost time and are never used by nbflow.
UNUSED_OPTIONAL_IMPORTS = ("rfc3987_syntax",)


def skip_unused_imports() -> None:
    """Make the optional imports nbflow never uses fail fast (as if not installed)."""
    for name in UNUSED_OPTIONAL_IMPORTS:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type] # None: "not installed" to the import system
