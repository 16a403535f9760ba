"""Languages whose analysis runs their own parser in a separate process (R, Julia).

``ExternalParser`` is the analysis half of such a ``Language``: ``prefetch`` sends every
cell not seen before (and the parameters cell) to one process of the language
(``run_parser``), which answers per cell with *events* in execution order:

==========  ==============================================================
``read``    a name loaded before the code assigned it (a read unless assigned above)
``write``   a name bound for sure; ``cwrite``: bound inside a branch or loop (may not
            happen); ``global``: bound from inside a function (``<<-``, ``global``)
``mutate``  a name changed in place (R's ``x$a <- v``, Julia's ``push!(x, 1)``)
``late``    read when a function defined here runs (an anonymous function's free names)
``import``  a package loaded (``library(p)``, ``using P``): a module name, and like a star
            import it brings names no cell defines
==========  ==============================================================

plus ``functions`` (the free names a named function's body reads and writes) and ``code``
(the expressions as the parser printed them: comments and layout do not change keys).
Results are remembered by the SHA-256 of each cell's source in ``<memo>/<memo_name>``, so
a notebook analysed once is planned without starting the language at all. The
parameters cell answers ``name = literal`` lines as ``{"t": type, "v": value}`` (numbers
keep their source text: ``10`` is an int, ``10.0`` a float, as a Python reader expects).

Starts the language's parser process; never a kernel.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..analysis import AnalysisError, FunctionNames, Names
from ..errors import PipelineError
from ..fsutil import atomic_write_text, private_dir
from ..parameters import Parameter
from . import Language

#: Cells remembered in the memo (the oldest are forgotten first).
MEMO_SIZE = 4096
_INT = re.compile(r"-?(0[xX][0-9a-fA-F]+|[0-9]+)L?\Z")


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class ExternalParser(Language):
    """The analysis of a language parsed by its own process (see module docstring)."""

    #: The memo's file name in the memo folder.
    memo_name = ""
    #: How the parameters cell's lines look in this language (for error messages).
    assignment_example = "lr = 0.1"
    literal_examples = '0.1, "text"'

    def __init__(self) -> None:
        self._cells: dict[str, dict[str, Any]] = {}
        self._parameters: dict[str, dict[str, Any]] = {}
        self._builtins: frozenset[str] = frozenset()

    def run_parser(self, sources: list[str], parameters: str | None) -> dict[str, Any]:
        """``{"cells": [...], "builtins": [...], "parameters": ...}`` from the language."""
        raise NotImplementedError

    # ------------------------------------------------------------ analysis
    @property
    def kernel_names(self) -> frozenset[str]:
        return self._builtins

    def prefetch(self, sources: Sequence[str], parameters: str | None, memo: Path | None = None) -> None:
        self._load_memo(memo)
        todo = sorted({digest(s): s for s in sources if digest(s) not in self._cells}.items())
        wanted = parameters is not None and digest(parameters) not in self._parameters
        if not todo and not wanted and self._builtins:
            return
        answer = self.run_parser([s for _, s in todo], parameters if wanted else None)
        for (known, _), cell in zip(todo, answer["cells"], strict=True):
            self._cells[known] = cell
        if wanted:
            assert parameters is not None
            self._parameters[digest(parameters)] = answer["parameters"]
        self._builtins = frozenset(answer["builtins"])
        self._save_memo(memo)

    def analyse(self, groups: Sequence[Sequence[str]], memo: Path | None = None) -> list[Names | AnalysisError]:
        self.prefetch([s for g in groups for s in g], None, memo)
        return [names_of(self.name, self._cells, sources) for sources in groups]

    def parameters(
        self, source: str, notebook: str | Path | None = None, cell: int | None = None, memo: Path | None = None
    ) -> dict[str, Parameter]:
        self.prefetch([], source, memo)
        found = self._parameters[digest(source)]
        error = found.get("error")
        if error == "assignment":
            raise PipelineError(
                f"the parameters cell must hold only plain assignments like {self.assignment_example}; line "
                f"{found['line']} is {found['text'][:80]!r}",
                notebook=notebook,
                cell=cell,
            )
        if error == "literal":
            raise PipelineError(
                f"parameter {found['name']!r} (line {found['line']}) must have a literal default such as "
                f"{self.literal_examples}, not {found['text'][:80]!r}: papermill replaces this cell's "
                "values and nbflow must know them without running code",
                notebook=notebook,
                cell=cell,
            )
        if error:
            raise PipelineError(
                f"the parameters cell is not valid {self.name} ({error}); it must hold plain assignments "
                f"such as {self.assignment_example}",
                notebook=notebook,
                cell=cell,
            )
        return {p["name"]: Parameter(p["name"], python_value(p["value"])) for p in found["parameters"]}

    def read_dump(self, staging: Path) -> dict[str, Any]:
        """The answer the kernel-side helper left in ``staging/dump.json`` (R and Julia
        kernels evaluate no ``user_expressions``), removed before the entry is committed."""
        path = staging / "dump.json"
        answer = json.loads(path.read_text("utf-8"))
        path.unlink()
        # R's jsonlite writes an empty named list as []
        answer = {key: value or {} for key, value in answer.items()}
        # Early cut-off: a value's serialized bytes are its digest (equal files, equal values),
        # so a step re-run that leaves the same values leaves its readers' keys alone.
        files = answer.get("files", {})
        answer["learnt"] = {
            "digests": {
                name: f"{self.name.lower()}-serialized:{files[info['file']]['sha256']}"
                for name, info in answer.get("values", {}).items()
                if info.get("file") in files
            }
        }
        return answer

    def _load_memo(self, memo: Path | None) -> None:
        if memo is None or self._cells:
            return
        try:
            data = json.loads((memo / self.memo_name).read_text("utf-8"))
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
            atomic_write_text(memo / self.memo_name, json.dumps(data))
        except OSError:
            return  # a memo that cannot be written costs time, not correctness


def names_of(language: str, cells: dict[str, dict[str, Any]], sources: Sequence[str]) -> Names | AnalysisError:
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
        cell = cells[digest(source)]
        if "error" in cell:
            line = cell.get("line")
            where = f" (line {line})" if line else ""
            return AnalysisError(f"{language} syntax error: {cell['error']}{where}", index, line)
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


def python_value(value: dict[str, Any]) -> Any:
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
        return [python_value(v) for v in value["v"]]
    if kind == "dict":
        return {k: python_value(v) for k, v in value["v"]}
    return value["v"]
