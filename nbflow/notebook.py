"""Reading a tagged notebook into cells and steps: the first stop of the data path.

A pipeline is one ``.ipynb`` whose code cells carry JupyterLab's ordinary cell tags:

==================  ===========================================================
``step:<name>``     this code cell starts step ``<name>``; the untagged code cells
                    after it continue the step, up to the next ``step:`` cell
``after:<name>``    an explicit dependency on step ``<name>`` (repeatable)
``parameters``      papermill's parameters cell
``skip``            scratch work: not part of the pipeline
``map:<name>``      fan-out: the step runs once per element of ``<name>`` (inside the
                    step ``<name>`` is the element; ``map:item=<name>`` calls it ``item``);
                    afterwards each value the step wrote is a list, one per element
``in:<path>``       a file the step reads (its content is part of the step key)
``out:<path>``      a file the step must produce; ``out:parts/`` a folder (every file
                    under it), ``out:plots/*.png`` a glob (at least one file);
                    ``out?:<path>`` an optional output (``outfiles.py``)
``timeout:<secs>``  per-step timeout
``retry:<n>``       run the step again up to ``n`` times if it raises (``retry:3:10``:
                    wait 10 s before the first retry, doubling each time)
``keep:<name>``     always cache this value of the step
``resources:k=v``   a resource hint for distributed executors (``resources:gpu=1``),
                    one per tag (the notebook schema forbids commas in tags)
``check:<step>``    a data check: assertions on ``<step>``'s values (placed anywhere after
                    it); a failed check fails the run (``check-warn:<step>`` only warns)
==================  ===========================================================

Code cells before the first step (other than the parameters cell) are the *setup*.
Markdown cells directly above a step are its documentation; the first markdown cell of
the notebook is the pipeline's description.

This module reads JSON with the standard library: importing nbformat costs more than
the whole no-op run is allowed to take. A notebook is checked against nbformat's schema
once per distinct content (the hashes already validated are remembered in a memo file):
with fastjsonschema when it is valid (``nbschema.py``), with ``nbformat.validate`` for
the verdict and the message otherwise.
It must not analyse code or build graphs: that is ``analysis.py`` and ``graph.py``.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import PipelineError, did_you_mean
from .fsutil import atomic_write_text
from .nbschema import quick_accept

STEP_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")
#: Longest step name: a step names a cache folder, and file systems allow 255 bytes per name.
MAX_STEP_NAME = 100

# Tags with a value after the colon, and what they mean on a step.
_VALUE_TAGS = (
    "step",
    "after",
    "map",
    "in",
    "out",
    "out?",
    "timeout",
    "retry",
    "keep",
    "resources",
    "check",
    "check-warn",
)
_MEMO_SIZE = 256
#: Notebooks kept as text, read through Jupytext (``sources.py``).
TEXT_SUFFIXES = (".py", ".md", ".myst")


@dataclass(frozen=True)
class Cell:
    """One cell of the notebook, with its position kept for error messages."""

    index: int
    id: str | None
    cell_type: str
    source: str
    tags: tuple[str, ...]

    @property
    def number(self) -> int:
        """The 1-based cell number a person counts in JupyterLab."""
        return self.index + 1


@dataclass(frozen=True)
class Step:
    """A named step: its cells, docs and the options its tags declare.

    The ``reads``/``writes``/``params``/``inputs`` fields are filled in by
    ``graph.load_pipeline`` from the static analysis of the step's code.
    """

    name: str
    cells: tuple[Cell, ...]
    docs: str = ""
    after: tuple[str, ...] = ()
    #: ``after:OTHER.ipynb:STEP`` tags: steps of other notebooks of a pipeline of notebooks (``project.py``).
    after_notebooks: tuple[str, ...] = ()
    map_over: str | None = None
    #: The name the current element has inside a ``map:`` step (``map:path=files``).
    map_as: str | None = None
    in_files: tuple[str, ...] = ()
    #: ``out:``/``out?:`` patterns: a file, a folder (``parts/``) or a glob (``plots/*.png``).
    out_files: tuple[str, ...] = ()
    #: The ``out_files`` declared ``out?:`` (the step may write nothing there).
    optional_outs: tuple[str, ...] = ()
    timeout: float | None = None
    #: ``retry:N[:BACKOFF_S]``: (retries, seconds before the first retry or ``None``: the default).
    retry: tuple[int, float | None] | None = None
    keep: tuple[str, ...] = ()
    resources: Mapping[str, str] = field(default_factory=dict)
    # Filled in by the graph builder.
    reads: frozenset[str] = frozenset()
    writes: frozenset[str] = frozenset()
    params: tuple[str, ...] = ()
    inputs: Mapping[str, str] = field(default_factory=dict)
    #: ``in:`` files another step of the pipeline declares ``out:``: path -> that step.
    file_inputs: Mapping[str, str] = field(default_factory=dict)
    code: str = ""

    @property
    def cell(self) -> Cell:
        """The cell tagged ``step:<name>``."""
        return self.cells[0]

    @property
    def source(self) -> str:
        """The code of all the step's cells, in order."""
        return "\n".join(c.source for c in self.cells)


@dataclass(frozen=True)
class CheckCell:
    """A cell tagged ``check:<step>`` (or ``check-warn:<step>``): assertions on ``step``'s values."""

    step: str
    cell: Cell
    warn: bool = False


@dataclass(frozen=True)
class NotebookSource:
    """What ``read_notebook`` found: the cells, split into setup, parameters and steps."""

    path: Path
    data: dict[str, Any]
    content_hash: str
    cells: tuple[Cell, ...]
    setup: tuple[Cell, ...]
    parameters: Cell | None
    steps: tuple[Step, ...]
    description: str
    title: str
    #: Tags that mean nothing where they are (``step:`` on a markdown cell), one line each.
    warnings: tuple[str, ...] = ()
    #: Data checks (cells tagged ``check:<step>``/``check-warn:<step>``), in notebook order.
    checks: tuple[CheckCell, ...] = ()
    #: For a notebook kept as text (Jupytext): the line of each cell's marker (``None`` where unknown).
    lines: tuple[int | None, ...] = ()

    def line_of(self, cell: int | None) -> int | None:
        """The line of the 1-based ``cell`` in a text notebook (``None`` for an ``.ipynb``)."""
        if cell is None or not 0 < cell <= len(self.lines):
            return None
        return self.lines[cell - 1]

    @property
    def kernel_name(self) -> str:
        """The kernel the notebook asks for (``python3`` when it does not say)."""
        spec = self.data.get("metadata", {}).get("kernelspec") or {}
        return spec.get("name") or "python3"

    @property
    def layout(self) -> dict[str, dict[str, float]]:
        """Node positions saved by the studio (``metadata.nbflow.layout``)."""
        return dict((self.data.get("metadata", {}).get("nbflow") or {}).get("layout") or {})


def read_notebook(path: str | Path, memo: str | Path | None = None) -> NotebookSource:
    """Read and check ``path``; raise ``PipelineError`` naming the cell for any problem.

    ``memo`` is a file remembering notebook hashes that passed ``nbformat.validate``;
    without it every call validates. A notebook reached through a symbolic link is read
    as the real file: its folder is the one the kernel runs in and ``in:``/``out:``
    paths are relative to.
    """
    path = Path(path)
    if path.is_symlink():
        path = path.resolve()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise PipelineError("no such notebook", notebook=path) from None
    except IsADirectoryError:
        raise PipelineError("is a folder, not a notebook", notebook=path) from None
    data = _parse_json(raw, path)
    digest = hashlib.sha256(raw).hexdigest()
    source = notebook_from_data(data, path, digest)
    if not _memo_has(memo, digest):
        _validate(data, path)
        _memo_add(memo, digest)
    return source


def notebook_from_data(data: dict[str, Any], path: str | Path, content_hash: str = "") -> NotebookSource:
    """Split notebook JSON already in memory as if read from ``path`` (no schema validation).

    For notebooks being edited (the studio; ``validate_notebook`` checks the schema before
    one is written) and notebooks nbflow or papermill wrote (a run's executed copy, for
    reports). Without ``content_hash``, the SHA-256 of the canonical JSON is used.
    """
    path = Path(path)
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        raise PipelineError("not a Jupyter notebook ('cells' is not a list)", notebook=path)
    if not content_hash:
        content_hash = hashlib.sha256(json.dumps(data, sort_keys=True).encode("utf-8")).hexdigest()
    cells = _cells(data, path)
    _check_unique_ids(cells, path)
    return _split(path, data, content_hash, cells)


def validate_notebook(data: dict[str, Any], path: str | Path) -> None:
    """``PipelineError`` naming the cell if ``data`` breaks the nbformat schema."""
    _validate(data, Path(path))


def _parse_json(raw: bytes, path: Path) -> dict[str, Any]:
    if not raw.strip():
        raise PipelineError("the file is empty; it is not a notebook", notebook=path)
    try:
        data = json.loads(raw)
    except UnicodeDecodeError as e:
        raise PipelineError(_not_utf8(raw, e), notebook=path) from None
    except json.JSONDecodeError as e:
        raise PipelineError(
            f"malformed notebook JSON ({e.msg} at line {e.lineno}, column {e.colno}); the file may be truncated",
            notebook=path,
        ) from None
    if not isinstance(data, dict) or "cells" not in data and "worksheets" not in data:
        raise PipelineError("not a Jupyter notebook (JSON without a 'cells' list)", notebook=path)
    major = data.get("nbformat")
    if major != 4:
        if isinstance(major, int) and major < 4:
            raise PipelineError(
                f"nbformat {major} notebook; nbflow reads nbformat 4. Convert it with "
                f"`jupyter nbconvert --to notebook --nbformat 4 {path.name}`",
                notebook=path,
            )
        raise PipelineError(f"unsupported nbformat {major!r} (nbflow reads 4)", notebook=path)
    if not isinstance(data.get("cells"), list):
        raise PipelineError("not a Jupyter notebook ('cells' is not a list)", notebook=path)
    return data


def _not_utf8(raw: bytes, e: UnicodeDecodeError) -> str:
    """Say which byte is not UTF-8 and where, or that the file is binary."""
    if b"\0" in raw[:8192] or raw[:8].startswith(b"\x89PNG"):
        return "not a text file; it is not a notebook"
    line = raw.count(b"\n", 0, e.start) + 1
    column = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
    return (
        f"not UTF-8: byte 0x{raw[e.start]:02x} at line {line}, column {column} (offset {e.start}); "
        "notebooks are UTF-8 (re-save it from JupyterLab, or convert it with iconv -f latin1 -t utf-8)"
    )


_SURROGATE = re.compile("[\ud800-\udfff]")


def _check_text(text: str, path: Path, cell: int, what: str) -> str:
    """Refuse a lone surrogate (JupyterLab's broken emoji): it cannot be written as UTF-8."""
    found = _SURROGATE.search(text)
    if found is None:
        return text
    line = text.count("\n", 0, found.start()) + 1
    column = found.start() - (text.rfind("\n", 0, found.start()) + 1) + 1
    raise PipelineError(
        f"{what} has a broken character (lone surrogate U+{ord(found.group()):04X}) at line {line}, "
        f"column {column}; delete it and type it again",
        notebook=path,
        cell=cell,
    )


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value or "")


def _cells(data: dict[str, Any], path: Path) -> tuple[Cell, ...]:
    cells = []
    for index, cell in enumerate(data["cells"]):
        if not isinstance(cell, dict) or "cell_type" not in cell:
            raise PipelineError("not a notebook cell (no cell_type)", notebook=path, cell=index + 1)
        tags = (cell.get("metadata") or {}).get("tags") or []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise PipelineError("metadata.tags must be a list of strings", notebook=path, cell=index + 1)
        tags = [
            _check_text(t, path, index + 1, f"tag {t.encode('utf-8', 'backslashreplace').decode()!r}") for t in tags
        ]
        what = "the code" if cell["cell_type"] == "code" else "the text"
        text = _check_text(_text(cell.get("source")), path, index + 1, what)
        cells.append(
            Cell(
                index=index,
                id=cell.get("id"),
                cell_type=cell["cell_type"],
                source=text,
                tags=tuple(t.strip() for t in tags),
            )
        )
    return tuple(cells)


def _check_unique_ids(cells: tuple[Cell, ...], path: Path) -> None:
    # nbformat would silently rename a duplicate; a person should fix it knowingly.
    seen: dict[str, Cell] = {}
    for cell in cells:
        if cell.id is None:
            continue
        if cell.id in seen:
            raise PipelineError(
                f"cells {seen[cell.id].number} and {cell.number} have the same id {cell.id!r}; "
                "cell ids must be unique (re-save the notebook in JupyterLab to renumber them)",
                notebook=path,
                cell=cell.number,
            )
        seen[cell.id] = cell


def _validate(data: dict[str, Any], path: Path) -> None:
    if quick_accept(data):
        return  # nbformat's schema accepts it (nbschema.py); nbformat itself only describes errors
    import warnings

    import nbformat

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            nbformat.validate(json.loads(json.dumps(data)))
        except nbformat.ValidationError as e:
            where = "/".join(str(p) for p in e.absolute_path)
            cell = None
            parts = list(e.absolute_path)
            if len(parts) >= 2 and parts[0] == "cells" and isinstance(parts[1], int):
                cell = parts[1] + 1
            raise PipelineError(
                f"not a valid notebook: {e.message}" + (f" (at {where})" if where else ""),
                notebook=path,
                cell=cell,
            ) from None


def _memo_has(memo: str | Path | None, digest: str) -> bool:
    if memo is None:
        return False
    try:
        return digest in Path(memo).read_text().split()
    except OSError:
        return False


def _memo_add(memo: str | Path | None, digest: str) -> None:
    if memo is None:
        return
    memo = Path(memo)
    try:
        known = memo.read_text().split()
    except OSError:
        known = []
    known = [d for d in known if d != digest][-(_MEMO_SIZE - 1) :] + [digest]
    try:
        memo.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        atomic_write_text(memo, "\n".join(known) + "\n")
    except OSError:
        pass  # the memo only saves time; validating again next time is correct


def parse_tags(cell: Cell, path: Path) -> dict[str, list[str]]:
    """The nbflow tags of ``cell`` as ``{kind: [values]}``; flags map to ``[""]``."""
    found: dict[str, list[str]] = {}
    for tag in cell.tags:
        kind, sep, value = tag.partition(":")
        if sep and kind in _VALUE_TAGS:
            value = value.strip()
            if not value:
                raise PipelineError(f"tag {tag!r} has no value", notebook=path, cell=cell.number)
            found.setdefault(kind, []).append(value)
        elif tag in ("parameters", "skip", "injected-parameters"):
            found.setdefault(tag, []).append("")
    return found


def _step_name(value: str, cell: Cell, path: Path, tag: str = "step") -> str:
    if len(value) > MAX_STEP_NAME:
        raise PipelineError(
            f"step name in tag '{tag}:{value[:20]}...' is {len(value)} characters long; "
            f"a step name has at most {MAX_STEP_NAME} (it names a cache folder)",
            notebook=path,
            cell=cell.number,
        )
    if not STEP_NAME.match(value):
        raise PipelineError(
            f"invalid step name {value!r} in tag '{tag}:{value}': a name starts with a letter "
            "or _ and has only letters, digits, _ and -",
            notebook=path,
            cell=cell.number,
        )
    return value


def _split(path: Path, data: dict[str, Any], digest: str, cells: tuple[Cell, ...]) -> NotebookSource:
    setup: list[Cell] = []
    parameters: Cell | None = None
    steps: list[dict[str, Any]] = []
    docs: list[str] = []
    description_cell: Cell | None = None
    seen_steps: dict[str, Cell] = {}
    warnings: list[str] = []
    checks: list[CheckCell] = []

    for cell in cells:
        tags = parse_tags(cell, path)
        if "skip" in tags:
            continue
        if cell.cell_type != "code" and "step" in tags:
            warnings.append(
                f"{path.name}, cell {cell.number}: tag 'step:{tags['step'][0]}' is on a {cell.cell_type} cell "
                "and is ignored; only code cells are steps"
            )
        if cell.cell_type == "markdown":
            if description_cell is None:
                description_cell = cell
            else:
                docs.append(cell.source.strip())
            continue
        if cell.cell_type != "code":
            continue
        above, docs = docs, []
        if "injected-parameters" in tags:
            continue  # papermill's own cell from an earlier run: papermill replaces it
        if "parameters" in tags:
            if "step" in tags:
                raise PipelineError(
                    "a cell cannot be both the parameters cell and a step", notebook=path, cell=cell.number
                )
            if parameters is not None:
                raise PipelineError(
                    f"cells {parameters.number} and {cell.number} are both tagged 'parameters'; "
                    "papermill uses one parameters cell",
                    notebook=path,
                    cell=cell.number,
                )
            parameters = cell
            continue
        if "check" in tags or "check-warn" in tags:
            checks.append(_check_cell(cell, tags, path, seen_steps, cells))
            continue
        if "step" in tags:
            names = tags["step"]
            if len(names) > 1:
                raise PipelineError(
                    f"a cell starts one step, this one has {len(names)} step tags", notebook=path, cell=cell.number
                )
            name = _step_name(names[0], cell, path)
            if name in seen_steps:
                raise PipelineError(
                    f'duplicate step name "{name}": cells {seen_steps[name].number} and {cell.number} '
                    "both start it; step names must be unique",
                    notebook=path,
                    cell=cell.number,
                    step=name,
                )
            seen_steps[name] = cell
            steps.append({"name": name, "cells": [cell], "docs": "\n\n".join(d for d in above if d)})
        elif steps:
            steps[-1]["cells"].append(cell)
        else:
            _reject_step_tags(cell, tags, path)
            setup.append(cell)

    built = tuple(_build_step(s, path) for s in steps)
    description = description_cell.source.strip() if description_cell else ""
    return NotebookSource(
        path=path,
        data=data,
        content_hash=digest,
        cells=cells,
        setup=tuple(setup),
        parameters=parameters,
        steps=built,
        description=description,
        title=_title(description, path),
        warnings=tuple(warnings),
        checks=tuple(checks),
    )


def _check_cell(
    cell: Cell, tags: dict[str, list[str]], path: Path, seen: Mapping[str, Cell], cells: tuple[Cell, ...]
) -> CheckCell:
    """The check a cell tagged ``check:<step>`` declares; ``PipelineError`` if it cannot be one."""
    kinds = [(kind, value) for kind in ("check", "check-warn") for value in tags.get(kind, [])]
    tag = f"{kinds[0][0]}:{kinds[0][1]}"
    if len(kinds) > 1:
        raise PipelineError(
            f"a cell checks one step, this one has {len(kinds)} check tags", notebook=path, cell=cell.number
        )
    others = [k for k in ("step", "after", "map", "in", "out", "timeout", "keep", "resources") if k in tags]
    if others:
        raise PipelineError(
            f"tag '{tag}' makes this cell a check; it cannot also carry '{others[0]}:' tags",
            notebook=path,
            cell=cell.number,
        )
    if cell.cell_type != "code":
        raise PipelineError(
            f"tag '{tag}' is on a {cell.cell_type} cell; a check is a code cell", notebook=path, cell=cell.number
        )
    kind, target = kinds[0]
    target = _step_name(target, cell, path, kind)
    if target not in seen:
        later = [c for c in cells if c.index > cell.index and f"step:{target}" in c.tags]
        if later:
            raise PipelineError(
                f"tag '{tag}' checks step {target}, which starts below (cell {later[0].number}); "
                "a check goes after the step it checks",
                notebook=path,
                cell=cell.number,
            )
        raise PipelineError(
            f"tag '{tag}' names no step{did_you_mean(target, list(seen))}", notebook=path, cell=cell.number
        )
    return CheckCell(step=target, cell=cell, warn=kind == "check-warn")


def _reject_step_tags(cell: Cell, tags: dict[str, list[str]], path: Path) -> None:
    for kind in ("after", "map", "in", "out", "out?", "timeout", "retry", "keep", "resources"):
        if kind in tags:
            raise PipelineError(
                f"tag '{kind}:{tags[kind][0]}' is on a setup cell; it only means something on a step "
                "(add a 'step:<name>' tag to this cell)",
                notebook=path,
                cell=cell.number,
            )


def _build_step(spec: dict[str, Any], path: Path) -> Step:
    name = spec["name"]
    after: list[str] = []
    after_notebooks: list[str] = []
    in_files: list[str] = []
    out_files: list[str] = []
    optional_outs: list[str] = []
    keep: list[str] = []
    resources: dict[str, str] = {}
    timeout: float | None = None
    retry: tuple[int, float | None] | None = None
    map_over: str | None = None
    map_as: str | None = None
    for cell in spec["cells"]:
        tags = parse_tags(cell, path)
        for value in tags.get("after", []):
            if ":" in value:
                after_notebooks.append(_notebook_step(value, cell, path, name))
            else:
                after.append(_step_name(value, cell, path, "after"))
        in_files += [posixpath.normpath(v) for v in tags.get("in", [])]
        out_files += [_inside_folder(v, cell, path, name) for v in tags.get("out", [])]
        optional = [_inside_folder(v, cell, path, name, "out?") for v in tags.get("out?", [])]
        out_files += optional
        optional_outs += optional
        keep += tags.get("keep", [])
        for value in tags.get("timeout", []):
            try:
                timeout = float(value)
                if timeout <= 0:
                    raise ValueError
            except ValueError:
                raise PipelineError(
                    f"tag 'timeout:{value}' needs a positive number of seconds",
                    notebook=path,
                    cell=cell.number,
                    step=name,
                ) from None
        for value in tags.get("retry", []):
            retry = _retry(value, cell, path, name)
        for value in tags.get("map", []):
            element, eq, iterable = value.partition("=")
            if not eq:
                element = iterable = value
            if not element.isidentifier() or not iterable.isidentifier():
                raise PipelineError(
                    f"tag 'map:{value}' must name a variable (map:files) or an element and a variable (map:path=files)",
                    notebook=path,
                    cell=cell.number,
                    step=name,
                )
            map_over, map_as = iterable, element
        for value in tags.get("resources", []):
            # One hint per tag: the notebook schema forbids commas in tags.
            key, eq, amount = value.partition("=")
            if not eq or not key.strip() or not amount.strip():
                raise PipelineError(
                    f"tag 'resources:{value}' must look like resources:gpu=1 (one resource per tag)",
                    notebook=path,
                    cell=cell.number,
                    step=name,
                )
            resources[key.strip()] = amount.strip()
        for value in keep:
            if not value.isidentifier():
                raise PipelineError(
                    f"tag 'keep:{value}' must name a variable", notebook=path, cell=cell.number, step=name
                )
    return Step(
        name=name,
        cells=tuple(spec["cells"]),
        docs=spec["docs"],
        after=tuple(dict.fromkeys(after)),
        after_notebooks=tuple(dict.fromkeys(after_notebooks)),
        map_over=map_over,
        map_as=map_as,
        in_files=tuple(dict.fromkeys(in_files)),
        out_files=tuple(dict.fromkeys(out_files)),
        optional_outs=tuple(dict.fromkeys(optional_outs)),
        timeout=timeout,
        retry=retry,
        keep=tuple(dict.fromkeys(keep)),
        resources=resources,
    )


def _retry(value: str, cell: Cell, path: Path, step: str) -> tuple[int, float | None]:
    """``retry:N`` or ``retry:N:BACKOFF_S`` as (N, backoff)."""
    count, _, backoff = value.partition(":")
    try:
        retries = int(count)
        wait = float(backoff) if backoff else None
        if retries < 0 or (wait is not None and not 0 <= wait < float("inf")):
            raise ValueError
    except ValueError:
        raise PipelineError(
            f"tag 'retry:{value}' needs a number of retries and optionally seconds to wait (retry:3 or retry:3:10)",
            notebook=path,
            cell=cell.number,
            step=step,
        ) from None
    return retries, wait


def _notebook_step(value: str, cell: Cell, path: Path, step: str) -> str:
    """An ``after:OTHER.ipynb:STEP`` value, checked: a notebook path and a step name."""
    notebook, _, target = value.rpartition(":")
    if not notebook or posixpath.splitext(notebook)[1].lower() not in (".ipynb", *TEXT_SUFFIXES):
        raise PipelineError(
            f"tag 'after:{value}' must name a step (after:load) or a notebook and one of its steps "
            "(after:ingest.ipynb:export)",
            notebook=path,
            cell=cell.number,
            step=step,
        )
    return f"{posixpath.normpath(notebook)}:{_step_name(target, cell, path, 'after')}"


def _inside_folder(value: str, cell: Cell, path: Path, step: str, tag: str = "out") -> str:
    """An ``out:`` path (a folder keeps its trailing ``/``), refused unless it stays inside
    the notebook's folder: a cached run restores ``out:`` files without running code, so
    one outside would let a cache entry write anywhere."""
    normal = posixpath.normpath(value)
    if posixpath.isabs(normal) or normal == ".." or normal.startswith("../") or normal == ".":
        raise PipelineError(
            f"tag '{tag}:{value}' names a path outside the notebook's folder; out: files must be inside it "
            "(write elsewhere from the step's code, without an out: tag)",
            notebook=path,
            cell=cell.number,
            step=step,
        )
    return normal + "/" if value.endswith("/") else normal


def _title(description: str, path: Path) -> str:
    for line in description.splitlines():
        if line.startswith("#"):
            return line.lstrip("#").strip()
    return path.stem
