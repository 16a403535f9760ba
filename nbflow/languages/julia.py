"""Julia (IJulia): the same interface as R, written and documented, not yet tested on a Julia.

No Julia is installed where nbflow is tested, so the tests of this module skip, saying
so; the R implementation it mirrors is tested end to end with a real IRkernel.

**Analysis** (``parsed.ExternalParser``) runs ``julia_analysis.jl`` in one ``julia``
process for every cell not seen before, remembered by content in
``<memo>/julia-analysis.json``. Julia's own parser (``Meta.parseall``) gives each cell's
expressions -- the same parser the kernel uses, without starting a kernel to plan. The walk:

* ``x = v``, ``a, b = v``, ``x += v`` write; ``x[i] = v``, ``x.a = v`` and a call of a
  function whose name ends in ``!`` (``push!(x, 1)``, Julia's convention for functions
  that change their first argument) change ``x`` in place;
* ``f(x) = ...`` and ``function f(x) ... end`` define ``f`` (a step calling it reads what
  its body reads); ``x -> ...`` reads its free names where it is written;
* ``using P``/``import P`` load a package (a module name; ``using`` brings names no cell
  defines, like a star import); ``if``/``for``/``while`` bodies may not run;
* the key's code is the expressions printed without line numbers.

The parameters cell holds ``name = literal`` lines (``10``, ``0.5``, ``"text"``,
``true``, ``nothing``, ``[1, 2]``, ``Dict("a" => 1)``); papermill's Julia translator
injects them.

**Values** are cached one ``.jls`` file per name (``Serialization.serialize``,
``julia_kernel.jl``), hashed with SHA-256 in the kernel and committed through
``executors/outcome.commit_entry``; a restore ``deserialize``\\ s them into ``Main``.
Serialization's format is tied to the Julia version: an entry written by another Julia
fails to load and the step is recomputed. ``map:`` steps, the Dask executor and
``nbflow verify`` are Python's only.

Starts ``julia`` (analysis only); never a kernel.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import PipelineError
from .parsed import ExternalParser

HERE = Path(__file__).parent


def julia_string(text: str) -> str:
    """``text`` as a Julia string literal (``$`` would interpolate)."""
    escaped = (
        text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$").replace("\n", "\\n").replace("\r", "\\r")
    )
    return f'"{escaped}"'


def julia_strings(texts: Iterable[str]) -> str:
    """A ``Vector{String}`` of ``texts`` in Julia."""
    return f"String[{', '.join(julia_string(t) for t in texts)}]"


class Julia(ExternalParser):
    name = "Julia"
    translator = "julia"
    fan_out = False
    distributed = False
    verifiable = False
    memo_name = "julia-analysis.json"
    assignment_example = "lr = 0.1"
    literal_examples = '0.1, "text", [1, 2] or nothing'

    def run_parser(self, sources: list[str], parameters: str | None) -> dict[str, Any]:
        return _run_julia(sources, parameters)

    # ------------------------------------------------------- in the kernel
    def helper_code(self, cache_root: str, by_reference: list[str], output_limit: int | None) -> str:
        return (HERE / "julia_kernel.jl").read_text("utf-8")

    def dump_code(self, staging: str, names: list[str], required: list[str]) -> str:
        return f"__Nbflow.dump({julia_string(staging)}, {julia_strings(names)}, {julia_strings(required)})"

    def restore_code(self, cache: Any, specs: list[list[Any]]) -> str:
        items = []
        for step, key, names in specs:
            entry = cache.lookup(step, key)
            if entry is None:
                return f"error({julia_string(f'nbflow: no cache entry for step {step!r} (key {key[:12]})')})"
            for name in names:
                path = julia_string(str(entry.path / entry.names[name]["file"]))
                items.append(f"({julia_string(name)}, {path})")
        return f"__Nbflow.restore([{', '.join(items)}])"


def _run_julia(sources: list[str], parameters: str | None) -> dict[str, Any]:
    """Analyse ``sources`` (and the parameters cell) in one ``julia`` process."""
    julia = shutil.which("julia")
    if julia is None:
        raise PipelineError(
            "this notebook's kernel runs Julia: nbflow analyses Julia code with Julia's own parser, and "
            "julia is not on PATH"
        )
    with tempfile.TemporaryDirectory(prefix="nbflow-julia-") as folder:
        for index, source in enumerate(sources):
            (Path(folder) / f"cell-{index}.jl").write_text(source, "utf-8")
        if parameters is not None:
            (Path(folder) / "parameters.jl").write_text(parameters, "utf-8")
        done = subprocess.run(
            [julia, "--startup-file=no", "--history-file=no", str(HERE / "julia_analysis.jl"), folder],
            capture_output=True,
            text=True,
            timeout=300,
        )
        answer = Path(folder) / "out.json"
        if done.returncode != 0 or not answer.exists():
            last = (done.stderr.strip().splitlines() or ["no message"])[-1]
            raise PipelineError(f"Julia could not analyse this notebook's code ({last})")
        return json.loads(answer.read_text("utf-8"))


JULIA = Julia()
