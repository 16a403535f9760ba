"""The invalidation matrix: after a real run, each kind of edit re-runs exactly these steps."""

from __future__ import annotations

import json
import shutil

import nbformat
import pytest

from ..conftest import code, step, write_notebook
from .conftest import nbflow_cli

pytestmark = pytest.mark.slow

SETUP = (
    "import math\nimport random\nSCALE = 3\n\ndef helper(v):\n    return v * SCALE\n\n"
    "class Box:\n    def size(self):\n        return 2\n\nrandom.seed(0)"
)
CELLS = [
    code(SETUP),
    code("n = 5", "parameters"),
    step("a", "data = list(range(n))\nOFFSET = 1"),
    step("b", "def plus_one(v):\n    return v + 1\n\ndoubled = [2 * x for x in data]"),
    step("c", "shifted = [plus_one(x) for x in doubled]"),
    step("d", "scaled = [helper(x) + OFFSET for x in shifted]"),
    step("e", "other = math.pi"),
    step("f", "total = sum(scaled)"),
    step("g", "box = Box().size()"),
]
ALL = {"a", "b", "c", "d", "e", "f", "g"}

# (what changes, cell index, new source, steps that must re-run)
MATRIX = [
    ("step body", 4, "shifted = [plus_one(x) - 1 for x in doubled]", {"c", "d", "f"}),
    (
        "helper function in an earlier step",
        3,
        "def plus_one(v):\n    return v + 2\n\ndoubled = [2 * x for x in data]",
        {"b", "c", "d", "f"},
    ),
    # setup precision: a setup definition invalidates the steps reaching it, and their dependants
    ("helper function in the setup", 0, SETUP.replace("v * SCALE", "v * SCALE + 0"), {"d", "f"}),
    ("constant a setup helper reads", 0, SETUP.replace("SCALE = 3", "SCALE = 4"), {"d", "f"}),
    ("method of a setup class", 0, SETUP.replace("return 2", "return 3"), {"g"}),
    ("import in the setup", 0, SETUP.replace("import math", "import cmath as math"), {"e"}),
    ("bare call in the setup", 0, SETUP.replace("random.seed(0)", "random.seed(1)"), ALL),
    ("setup definition no step reaches", 0, SETUP + "\n\ndef unused():\n    return 1", set()),
    ("constant defined in a step", 2, "data = list(range(n))\nOFFSET = 2", {"a", "b", "c", "d", "f"}),
    ("parameter default", 1, "n = 6", {"a", "b", "c", "d", "f"}),
    ("upstream step", 2, "data = list(range(n + 1))\nOFFSET = 1", {"a", "b", "c", "d", "f"}),
    (
        "whitespace and comments only",
        4,
        "# shift every value\nshifted = [ plus_one( x )  for x in doubled ]  # ok\n",
        set(),
    ),
]


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    folder = tmp_path_factory.mktemp("matrix")
    path = write_notebook(folder / "pipeline.ipynb", CELLS)
    proc = nbflow_cli("run", str(path))
    assert proc.returncode == 0, proc.stderr
    return path


@pytest.mark.parametrize("change, cell, source, expected", MATRIX, ids=[m[0] for m in MATRIX])
def test_invalidation_matrix(ran, tmp_path, change, cell, source, expected):
    edited = ran.parent / f"edited-{abs(hash(change))}.ipynb"
    shutil.copy(ran, edited)
    nb = nbformat.read(edited, 4)
    nb.cells[cell].source = source
    nbformat.write(nb, edited)
    proc = nbflow_cli("plan", str(edited), "--json")
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)
    assert {s["step"] for s in plan["steps"] if s["action"] == "run"} == expected, change
    edited.unlink()
