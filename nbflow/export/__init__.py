"""``nbflow export``: the pipeline in forms that run without nbflow.

``script`` writes a plain Python module (one function per step, ``main(**parameters)``);
``cwl`` writes a CWL v1.2 workflow whose steps call that module's functions, passing
values as files. Exporters read a ``Pipeline`` and write text; they never run it.
"""

from __future__ import annotations

from .cwl import write_cwl
from .script import export_script, step_functions, write_script

__all__ = ["write_cwl", "export_script", "step_functions", "write_script"]
