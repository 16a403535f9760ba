"""R (IRkernel), the second ``Language``: R's own parser for analysis, ``saveRDS`` for values.

**Analysis** (``parsed.ExternalParser``) runs ``r_analysis.R`` in one ``Rscript`` process
for every cell not seen before, remembered by content in ``<memo>/r-analysis.json``, so
planning a notebook analysed once starts no R at all. R's parser (``parse``, whose parse
data ``getParseData`` exposes) gives each cell's expressions; the walk:

* ``x <- v``, ``x = v``, ``v -> x``, ``assign("x", v)`` write ``x``; ``x <<- v`` too;
* ``x$a <- v``, ``x[i] <- v``, ``names(x) <- v``, ``attr(x, "a") <- v`` (replacement
  functions) read and change ``x`` in place: a write, like Python's ``x.a = v``;
* an assignment inside ``if``/``for``/``while``/``repeat`` may not happen (a later read
  still reads the earlier value); ``for (i in s)`` writes ``i``;
* ``f <- function(...) body`` defines ``f``: a step that calls ``f`` reads the names its
  body reads from outside (``analysis.used_function_names``); an anonymous function's
  free names are read where it is written;
* ``library(p)``/``require(p)`` load a package: ``p`` is a module name, not a value, and
  like a star import it makes names appear that no cell defines (no "undefined" warning);
* formulas (``y ~ x``), ``quote``/``bquote``/``substitute`` and ``pkg::name`` read nothing;
* the key's code is the expressions deparsed: comments and layout do not change it.

The parameters cell must hold ``name <- literal`` lines (numbers, strings, ``TRUE``/
``FALSE``, ``NULL``, ``c(...)``/``list(...)`` of them): ``10`` is an int and ``10.0`` a
float, as in Python, so ``-p`` values are checked the same way; papermill's R translator
injects them.

**Values** are cached one ``.rds`` file per name (``saveRDS``, ``r_kernel.R``), hashed
with SHA-256 in the kernel and committed through ``executors/outcome.commit_entry`` like
every entry; a restore runs ``readRDS`` after attaching the packages that were attached
when the value was saved. IRkernel evaluates no ``user_expressions``: the dump runs as a
silent execution after the step and leaves its answer in ``dump.json`` in the staging
folder. Not supported (``fan_out``/``distributed``/``verifiable`` are false): ``map:``
steps, the Dask executor and ``nbflow verify``; run-time write detection and the output
limit are Python's only. Early cut-off works as in Python: a value's digest is the SHA-256
of its ``.rds`` file, so a step that re-runs and saves the same values leaves the steps
reading them cached.

Starts ``Rscript`` (analysis only); never a kernel.
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


def r_string(text: str) -> str:
    """``text`` as an R string literal."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return f'"{escaped}"'


def r_strings(texts: Iterable[str]) -> str:
    """A character vector of ``texts`` in R."""
    items = [r_string(t) for t in texts]
    return f"c({', '.join(items)})" if items else "character(0)"


class R(ExternalParser):
    name = "R"
    translator = "R"
    fan_out = False
    distributed = False
    verifiable = False
    memo_name = "r-analysis.json"
    assignment_example = "lr <- 0.1"
    literal_examples = '0.1, "text", c(1, 2) or NULL'

    def run_parser(self, sources: list[str], parameters: str | None) -> dict[str, Any]:
        return _run_rscript(sources, parameters)

    # ------------------------------------------------------- in the kernel
    def helper_code(self, cache_root: str, by_reference: list[str], output_limit: int | None) -> str:
        return (HERE / "r_kernel.R").read_text("utf-8")

    def dump_code(self, staging: str, names: list[str], required: list[str]) -> str:
        return f".nbflow$dump({r_string(staging)}, {r_strings(names)}, {r_strings(required)})"

    def restore_code(self, cache: Any, specs: list[list[Any]]) -> str:
        items = []
        for step, key, names in specs:
            entry = cache.lookup(step, key)
            if entry is None:
                return f"stop({r_string(f'nbflow: no cache entry for step {step!r} (key {key[:12]})')})"
            for name in names:
                info = entry.names[name]
                path = r_string(str(entry.path / info["file"]))
                items.append(f"list({r_string(name)}, {path}, {r_strings(info.get('packages', ()))})")
        return f".nbflow$restore(list({', '.join(items)}))"


def _run_rscript(sources: list[str], parameters: str | None) -> dict[str, Any]:
    """Analyse ``sources`` (and the parameters cell) in one ``Rscript`` process."""
    rscript = shutil.which("Rscript")
    if rscript is None:
        raise PipelineError(
            "this notebook's kernel runs R: nbflow analyses R code with R's own parser, and Rscript "
            "is not on PATH (install R, e.g. Debian's r-base-core)"
        )
    with tempfile.TemporaryDirectory(prefix="nbflow-r-") as folder:
        request = Path(folder) / "in.json"
        answer = Path(folder) / "out.json"
        request.write_text(json.dumps({"cells": sources, "parameters": parameters}), "utf-8")
        done = subprocess.run(
            [rscript, "--vanilla", str(HERE / "r_analysis.R"), str(request), str(answer)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0 or not answer.exists():
            last = (done.stderr.strip().splitlines() or ["no message"])[-1]
            raise PipelineError(f"R could not analyse this notebook's code ({last})")
        data = json.loads(answer.read_text("utf-8"))
    data["cells"] = data.get("cells") or []
    return data


R_LANGUAGE = R()
