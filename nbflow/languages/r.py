"""R (IRkernel), the second ``Language``: R's own parser for analysis, ``saveRDS`` for values.

**Analysis** runs ``r_analysis.R`` in one ``Rscript`` process for every cell not seen
before (``prefetch`` batches a whole notebook), and remembers each cell's result by the
SHA-256 of its source in ``<memo>/r-analysis.json``, so planning a notebook analysed
once starts no R at all. R's parser (``parse``) gives each cell's expressions; the walk:

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
steps, the Dask executor and ``nbflow verify``; run-time write detection, early cut-off
on unchanged values and the output limit are Python's only.

Starts ``Rscript`` (analysis only); never a kernel.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..analysis import AnalysisError, FunctionNames, Names
from ..errors import PipelineError
from ..fsutil import atomic_write_text, private_dir
from ..parameters import Parameter
from . import Language

HERE = Path(__file__).parent
MEMO = "r-analysis.json"
#: Cells remembered in the memo (the oldest are forgotten first).
MEMO_SIZE = 4096
_INT = re.compile(r"-?(0[xX][0-9a-fA-F]+|[0-9]+)L?\Z")


def r_string(text: str) -> str:
    """``text`` as an R string literal."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return f'"{escaped}"'


def r_strings(texts: Iterable[str]) -> str:
    """A character vector of ``texts`` in R."""
    items = [r_string(t) for t in texts]
    return f"c({', '.join(items)})" if items else "character(0)"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class R(Language):
    name = "R"
    translator = "R"
    fan_out = False
    distributed = False
    verifiable = False

    def __init__(self) -> None:
        self._cells: dict[str, dict[str, Any]] = {}
        self._parameters: dict[str, dict[str, Any]] = {}
        self._builtins: frozenset[str] = frozenset()

    # ------------------------------------------------------------ analysis
    @property
    def kernel_names(self) -> frozenset[str]:
        return self._builtins

    def prefetch(self, sources: Sequence[str], parameters: str | None, memo: Path | None = None) -> None:
        self._load_memo(memo)
        todo = sorted({_digest(s): s for s in sources if _digest(s) not in self._cells}.items())
        wanted = parameters is not None and _digest(parameters) not in self._parameters
        if not todo and not wanted and self._builtins:
            return
        answer = _run_rscript([s for _, s in todo], parameters if wanted else None)
        for (digest, _), cell in zip(todo, answer["cells"], strict=True):
            self._cells[digest] = cell
        if wanted:
            assert parameters is not None
            self._parameters[_digest(parameters)] = answer["parameters"]
        self._builtins = frozenset(answer["builtins"])
        self._save_memo(memo)

    def analyse(self, groups: Sequence[Sequence[str]], memo: Path | None = None) -> list[Names | AnalysisError]:
        self.prefetch([s for g in groups for s in g], None, memo)
        return [_names(self._cells, sources) for sources in groups]

    def parameters(
        self, source: str, notebook: str | Path | None = None, cell: int | None = None, memo: Path | None = None
    ) -> dict[str, Parameter]:
        self.prefetch([], source, memo)
        found = self._parameters[_digest(source)]
        error = found.get("error")
        if error == "assignment":
            raise PipelineError(
                f"the parameters cell must hold only plain assignments like lr <- 0.1; line "
                f"{found['line']} is {found['text'][:80]!r}",
                notebook=notebook,
                cell=cell,
            )
        if error == "literal":
            raise PipelineError(
                f"parameter {found['name']!r} (line {found['line']}) must have a literal default such as "
                f'0.1, "text", c(1, 2) or NULL, not {found["text"][:80]!r}: papermill replaces this cell\'s '
                "values and nbflow must know them without running code",
                notebook=notebook,
                cell=cell,
            )
        if error:
            raise PipelineError(
                f"the parameters cell is not valid R ({error}); it must hold plain assignments such as lr <- 0.1",
                notebook=notebook,
                cell=cell,
            )
        return {p["name"]: Parameter(p["name"], _python_value(p["value"])) for p in found["parameters"]}

    def _load_memo(self, memo: Path | None) -> None:
        if memo is None or self._cells:
            return
        try:
            data = json.loads((memo / MEMO).read_text("utf-8"))
            self._cells = dict(data["cells"])
            self._parameters = dict(data["parameters"])
            self._builtins = frozenset(data["builtins"])
        except (OSError, ValueError, KeyError, TypeError):
            return  # no memo yet, or an unreadable one: analysed again

    def _save_memo(self, memo: Path | None) -> None:
        if memo is None:
            return
        cells = dict(list(self._cells.items())[-MEMO_SIZE:])
        parameters = dict(list(self._parameters.items())[-MEMO_SIZE:])
        data = {"cells": cells, "parameters": parameters, "builtins": sorted(self._builtins)}
        try:
            private_dir(memo)
            atomic_write_text(memo / MEMO, json.dumps(data))
        except OSError:
            return  # a memo that cannot be written costs time, not correctness

    # ------------------------------------------------------- in the kernel
    def helper_code(self, cache_root: str, by_reference: list[str], output_limit: int | None) -> str:
        return (HERE / "r_kernel.R").read_text("utf-8")

    def dump_code(self, staging: str, names: list[str], required: list[str]) -> str:
        return f".nbflow$dump({r_string(staging)}, {r_strings(names)}, {r_strings(required)})"

    def read_dump(self, staging: Path) -> dict[str, Any]:
        path = staging / "dump.json"
        answer = json.loads(path.read_text("utf-8"))
        path.unlink()
        # jsonlite writes an empty named list as []
        return {key: value or {} for key, value in answer.items()}

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


def _names(cells: dict[str, dict[str, Any]], sources: Sequence[str]) -> Names | AnalysisError:
    """Combine the cells' events in order (see the module docstring)."""
    assigned: set[str] = set()
    reads: set[str] = set()
    writes: set[str] = set()
    mutated: set[str] = set()
    refs: set[str] = set()
    late: set[str] = set()
    imports: set[str] = set()
    functions: dict[str, FunctionNames] = {}
    code = []
    for index, source in enumerate(sources):
        cell = cells[_digest(source)]
        if "error" in cell:
            line = cell.get("line")
            where = f" (line {line})" if line else ""
            return AnalysisError(f"R syntax error: {cell['error']}{where}", index, line)
        for kind, name in cell.get("events") or ():
            if kind in ("read", "mutate"):
                refs.add(name)
                if name not in assigned:
                    reads.add(name)
            if kind == "mutate":
                mutated.add(name)
            elif kind == "late":
                late.add(name)
                refs.add(name)
            elif kind == "write":
                writes.add(name)
                assigned.add(name)
            elif kind in ("cwrite", "global"):
                writes.add(name)
            elif kind == "import":
                imports.add(name)
        for fname, info in (cell.get("functions") or {}).items():
            functions[fname] = FunctionNames(frozenset(info.get("reads") or ()), frozenset(info.get("writes") or ()))
        code.append(cell.get("code", ""))
    return Names(
        reads=frozenset(reads),
        writes=frozenset(writes),
        mutated=frozenset(mutated),
        refs=frozenset(refs),
        imports=frozenset(imports),
        late_reads=frozenset(late - reads),
        functions=functions,
        star_import=bool(imports),
        code="\n".join(code),
        modules={p: p for p in imports},
    )


def _python_value(value: dict[str, Any]) -> Any:
    """A parameter's default as the Python value papermill's R translator writes back."""
    kind = value["t"]
    if kind == "null":
        return None
    if kind in ("int", "num"):
        text = value["text"]
        if kind == "int" or _INT.match(text):
            return int(text.rstrip("L"), 0) if "x" in text.lower() else int(text.rstrip("L"))
        return float(text)
    if kind == "list":
        return [_python_value(v) for v in value["v"]]
    if kind == "dict":
        return {k: _python_value(v) for k, v in value["v"]}
    return value["v"]


R_LANGUAGE = R()
