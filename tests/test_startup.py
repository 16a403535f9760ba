"""The ``nbflow`` command's own process skips optional imports nbflow never uses."""

from __future__ import annotations

import subprocess
import sys

import nbformat
from nbformat.v4 import new_code_cell, new_notebook


def test_the_command_runs_papermill_without_the_unused_format_checker(tmp_path):
    cell = new_code_cell("x = 1")
    cell.metadata["tags"] = ["step:a"]
    path = tmp_path / "pipeline.ipynb"
    nbformat.write(new_notebook(cells=[cell]), path)
    script = (
        "import sys\nfrom nbflow.cli import main\n"
        f"assert main(['graph', {str(path)!r}]) == 0\n"
        "import papermill, nbformat\n"
        f"nbformat.validate(nbformat.read({str(path)!r}, 4))\n"
        "print('rfc3987_syntax' in sys.modules and sys.modules['rfc3987_syntax'] is not None)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "False"


def test_a_library_user_keeps_every_import(tmp_path):
    script = "import sys\nimport nbflow, nbflow.run\nprint('rfc3987_syntax' in sys.modules)\n"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"  # nothing marked absent: importing nbflow changes nothing
