"""``nbflow verify NB``: does the cache say what a plain run from scratch would say?

``verify_cache(pipeline, params)`` runs the whole notebook once more, from scratch, with
plain papermill in a kernel of its own, and compares every *cached* step (a step whose
entry exists for the key the plan computes now) with the fresh run:

* every value the entry holds, structurally (arrays element by element, frames with
  ``equals``, objects by their state);
* the hidden state the entry holds (``<numpy.random>``, ``<cwd>``...), by digest;
* the step's text outputs: standard output and the ``text/plain`` of results and
  displays, memory addresses masked (``<object at 0x...>``). Standard error is not
  compared: a warning shows once per process, and a Dask worker runs many steps.

How: a copy of the notebook gets one cell at the top (the hidden-state baseline) and one
after each cached step that writes the step's values (cloudpickle) and hidden-state
digests to a private temporary folder; papermill runs it in the notebook's folder with
the run's parameters. A ``map:`` step's cells are run once per element by a generated
cell, as nbflow runs them, and its values compared as lists (not its outputs).

The fresh run executes the notebook's code like any run would (it writes the files the
notebook writes); nothing else is written outside the temporary folder, which is
removed. This module must not change the cache or the run store.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import CacheCorrupt, CacheRefused, NbflowError
from .hidden_state import is_pseudo

if TYPE_CHECKING:
    from .cache import Cache, Entry
    from .graph import Pipeline

_ADDRESS = re.compile(r"0x[0-9a-fA-F]{6,}")

BASELINE = "import nbflow.hidden_state as _nbflow_hs\n_nbflow_baseline = _nbflow_hs.Baseline.capture()"
SNAPSHOT = """\
import cloudpickle as _nbflow_cp
_nbflow_found = {{}}
for _nbflow_name in {names!r}:
    if _nbflow_name in globals():
        try:
            _nbflow_found[_nbflow_name] = _nbflow_cp.dumps(globals()[_nbflow_name])
        except Exception as _nbflow_e:
            _nbflow_found[_nbflow_name] = None
_nbflow_state = {{n: _nbflow_hs.digest(v) for n, v in _nbflow_hs.capture({states!r}, _nbflow_baseline).items()}}
with open({path!r}, "wb") as _nbflow_f:
    _nbflow_cp.dump({{"values": _nbflow_found, "state": _nbflow_state}}, _nbflow_f)
del _nbflow_cp, _nbflow_found, _nbflow_state, _nbflow_f"""
FAN_OUT = """\
_nbflow_items = list({iterable})
_nbflow_lists = {{n: [] for n in {names!r}}}
for _nbflow_item in _nbflow_items:
    {element} = _nbflow_item
    for _nbflow_cell in {cells!r}:
        _nbflow_result = get_ipython().run_cell(_nbflow_cell, silent=True)
        _nbflow_result.raise_error()
    for _nbflow_name in _nbflow_lists:
        _nbflow_lists[_nbflow_name].append(globals().get(_nbflow_name))
globals().update(_nbflow_lists)
{restore}del _nbflow_items, _nbflow_lists, _nbflow_item, _nbflow_cell, _nbflow_result"""


@dataclass(frozen=True)
class Difference:
    """One thing the cache says differently from the fresh run."""

    step: str
    name: str
    #: ``value``, ``state`` (hidden state), ``output`` (text outputs), ``missing``
    #: (the fresh run did not make the value) or ``entry`` (the entry cannot be read).
    kind: str
    detail: str = ""

    @property
    def text(self) -> str:
        what = {"value": "value", "state": "hidden state", "output": "outputs of cell", "missing": "value"}
        head = f"{self.step}: {what.get(self.kind, 'entry')} {self.name}".rstrip()
        return f"{head}: {self.detail}" if self.detail else head


@dataclass(frozen=True)
class Verification:
    """What ``verify_cache`` compared and found."""

    notebook: str
    steps: tuple[str, ...]
    values: int
    differences: tuple[Difference, ...] = ()
    #: Steps that are not cached for the current keys (nothing to compare).
    uncached: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.differences

    def summary(self) -> str:
        if self.ok:
            return f"cache verified: {len(self.steps)} steps, {self.values} values"
        lines = [f"cache differs from a fresh run in {len({d.step for d in self.differences})} steps:"]
        lines += [f"  {d.text}" for d in self.differences]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "notebook": self.notebook,
            "ok": self.ok,
            "steps": list(self.steps),
            "values": self.values,
            "uncached": list(self.uncached),
            "differences": [
                {"step": d.step, "name": d.name, "kind": d.kind, "detail": d.detail} for d in self.differences
            ],
        }


def verify_cache(
    pipeline: Pipeline, params: Mapping[str, Any] | None = None, *, raw: Mapping[str, str] | None = None
) -> Verification:
    """Run ``pipeline`` from scratch with papermill and compare its cached steps (see module docstring)."""
    from .run import pipeline_cache, plan_pipeline

    if not pipeline.language.verifiable:
        raise NbflowError(
            f"{pipeline.path.name}: nbflow verify compares Python values; this notebook's kernel runs "
            f"{pipeline.language.name} (its entries are checked by their SHA-256 on every run)"
        )
    cache = pipeline_cache(pipeline)
    plan = plan_pipeline(pipeline, params, raw=raw, cache=cache)
    cached = [e.step for e in plan if e.state == "fresh"]
    entries: dict[str, Entry] = {}
    differences: list[Difference] = []
    for name in cached:
        try:
            entry = cache.lookup(name, plan[name].key)
            if entry is None:
                raise CacheCorrupt(name, plan[name].key, cache.entry_dir(name, plan[name].key), "disappeared")
            cache.verify(entry)
            entries[name] = entry
        except (CacheCorrupt, CacheRefused) as e:
            differences.append(Difference(name, "", "entry", str(e)))
    folder = Path(tempfile.mkdtemp(prefix="nbflow-verify-"))
    try:
        nb = _instrumented(pipeline, entries, folder)
        _run_papermill(pipeline, nb, folder, dict(plan.params))
        compared = _compare(pipeline, cache, entries, folder, differences)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return Verification(
        notebook=str(pipeline.path),
        steps=tuple(entries),
        values=compared,
        differences=tuple(differences),
        uncached=tuple(s for s in pipeline.order if s not in cached),
    )


def _instrumented(pipeline: Pipeline, entries: Mapping[str, Entry], folder: Path) -> Any:
    """The notebook with the baseline cell and a snapshot cell after each cached step."""
    import nbformat

    data = json.loads(json.dumps(pipeline.source.data))
    cells = data["cells"]
    for index, cell in enumerate(cells):
        cell.setdefault("metadata", {})["nbflow_verify"] = {"cell": index}
    inserts: list[tuple[int, dict[str, Any]]] = [(0, nbformat.v4.new_code_cell(BASELINE))]
    for name in pipeline.order:
        step = pipeline.steps[name]
        if step.map_over:
            sources = [c.source for c in step.cells]
            writes = sorted(n for n in step.writes if not is_pseudo(n) and n != step.map_as)
            restore = f"{step.map_over} = _nbflow_items\n" if step.map_as == step.map_over else ""
            fan = FAN_OUT.format(
                iterable=step.map_over, names=writes, element=step.map_as, cells=sources, restore=restore
            )
            for c in step.cells:
                cells[c.index]["source"] = ""
            cells[step.cells[0].index]["source"] = fan
        if name not in entries:
            continue
        stored = list(entries[name].names)
        snapshot = SNAPSHOT.format(
            names=[n for n in stored if not is_pseudo(n)],
            states=[n for n in stored if is_pseudo(n)],
            path=str(folder / f"{name}.pkl"),
        )
        inserts.append((step.cells[-1].index + 1, nbformat.v4.new_code_cell(snapshot)))
    for position, cell in sorted(inserts, key=lambda item: -item[0]):
        cells.insert(position, cell)
    return nbformat.from_dict(data)


def _run_papermill(pipeline: Pipeline, nb: Any, folder: Path, params: dict[str, Any]) -> None:
    import papermill
    from papermill.exceptions import PapermillExecutionError

    from .executors.kernel_client import register_translator

    register_translator()
    out = folder / "fresh.ipynb"
    try:
        papermill.execute_notebook(
            nb,
            str(out),
            parameters=params,
            cwd=str(pipeline.path.resolve().parent),
            kernel_name=pipeline.source.kernel_name,
            progress_bar=False,
            log_output=False,
        )
    except PapermillExecutionError as e:
        raise NbflowError(
            f"{pipeline.path.name}: the fresh run failed (cell {e.exec_count}: {e.ename}: {e.evalue}); "
            "the cache cannot be compared with it"
        ) from None
    import nbformat

    executed = nbformat.read(out, 4)
    fresh: dict[int, list[Any]] = {}
    for cell in executed.cells:
        marker = cell.metadata.get("nbflow_verify")
        if marker is not None and cell.cell_type == "code":
            fresh[marker["cell"]] = list(cell.get("outputs", []))
    (folder / "outputs.json").write_text(json.dumps({str(k): v for k, v in fresh.items()}))


def _compare(
    pipeline: Pipeline, cache: Cache, entries: Mapping[str, Entry], folder: Path, differences: list[Difference]
) -> int:
    import cloudpickle

    from .hidden_state import digest

    fresh_outputs = {int(k): v for k, v in json.loads((folder / "outputs.json").read_text()).items()}
    compared = 0
    for name, entry in entries.items():
        step = pipeline.steps[name]
        with open(folder / f"{name}.pkl", "rb") as f:
            fresh = cloudpickle.load(f)
        plain = [n for n in entry.names if not is_pseudo(n)]
        cached = cache.load_values(entry, entry.names, mmap=False)
        for value_name in sorted(plain):
            data = fresh["values"].get(value_name, False)
            if data is False:
                differences.append(Difference(name, value_name, "missing", "the fresh run did not make it"))
                continue
            if data is None:
                continue  # not picklable in the fresh run: nothing to compare it with
            compared += 1
            if not same(cached[value_name], cloudpickle.loads(data)):
                differences.append(Difference(name, value_name, "value", "differs from the fresh run's"))
        for state in sorted(n for n in entry.names if is_pseudo(n)):
            compared += 1
            if digest(cached[state]) != fresh["state"].get(state):
                differences.append(Difference(name, state, "state", "differs from the fresh run's"))
        if step.map_over:
            continue
        outputs = cache.load_outputs(entry)
        for i, cell in enumerate(step.cells):
            mine = text_outputs(outputs[i] if i < len(outputs) else [])
            theirs = text_outputs(fresh_outputs.get(cell.index, []))
            if mine != theirs:
                differences.append(Difference(name, str(cell.number), "output", _first_difference(mine, theirs)))
    return compared


def text_outputs(outputs: list[Mapping[str, Any]]) -> list[str]:
    """The text a reader compares: standard output and the ``text/plain`` of results
    and displays (memory addresses masked, consecutive stream text joined)."""
    texts: list[str] = []
    stream = False
    for output in outputs:
        kind = output.get("output_type")
        if kind == "stream" and output.get("name") == "stdout":
            text = _ADDRESS.sub("0x…", "".join(output.get("text", "")))
            if stream:
                texts[-1] += text
            else:
                texts.append(text)
            stream = True
            continue
        if kind in ("execute_result", "display_data"):
            plain = output.get("data", {}).get("text/plain")
            if plain is not None:
                texts.append(_ADDRESS.sub("0x…", "".join(plain)))
        elif kind == "error":
            texts.append(f"{output.get('ename')}: {output.get('evalue')}")
        stream = False
    return texts


def _first_difference(mine: list[str], theirs: list[str]) -> str:
    for a, b in zip(mine, theirs, strict=False):
        if a != b:
            return f"cached {_short(a)!r}, fresh {_short(b)!r}"
    return f"cached {len(mine)} outputs, fresh {len(theirs)}"


def _short(text: str) -> str:
    text = text.strip()
    return text if len(text) <= 60 else text[:57] + "..."


def same(a: Any, b: Any, depth: int = 0) -> bool:
    """Structural equality: arrays element by element (padding bytes ignored), frames with ``equals``,
    classes by name and methods' code, functions by code, other objects by state."""
    if depth > 20:
        return True
    import numpy as np

    if type(a).__module__.startswith("matplotlib"):
        return type(a) is type(b)
    if isinstance(a, types.ModuleType):
        return isinstance(b, types.ModuleType) and a.__name__ == b.__name__
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape:
            return False
        if a.dtype.names:
            return a.dtype == b.dtype and all(same(a[f], b[f], depth + 1) for f in a.dtype.names)
        if a.dtype == object:
            return all(same(x, y, depth + 1) for x, y in zip(a.ravel(), b.ravel(), strict=True))
        return bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
    try:
        return bool(a.equals(b)) if callable(getattr(a, "equals", None)) else _state_equal(a, b, depth)
    except Exception:  # noqa: BLE001 - an equals that cannot compare these: look at the state
        return _state_equal(a, b, depth)


def _state_equal(a: Any, b: Any, depth: int) -> bool:
    if isinstance(a, types.FunctionType):
        return isinstance(b, types.FunctionType) and a.__code__.co_code == b.__code__.co_code
    if isinstance(a, type):  # a class defined in a step: the same name and the same methods
        methods = [k for k, v in vars(a).items() if isinstance(v, types.FunctionType)]
        return (
            isinstance(b, type)
            and a.__qualname__ == b.__qualname__
            and all(same(vars(a)[k], vars(b).get(k), depth + 1) for k in methods)
        )
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k], depth + 1) for k in a)
    if isinstance(a, list | tuple):  # a subclass counts as its base (IPython's SList from `x = !ls` is a list)
        kind = list if isinstance(a, list) else tuple
        return (
            isinstance(b, kind) and len(a) == len(b) and all(same(x, y, depth + 1) for x, y in zip(a, b, strict=True))
        )
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True  # both NaN
    if isinstance(a, int | float | complex | str | bytes | bool | type(None)):
        return type(a) is type(b) and a == b
    if type(a).__qualname__ != type(b).__qualname__:
        return False
    state = getattr(a, "__getstate__", None)
    if state is not None:
        try:
            return same(a.__getstate__(), b.__getstate__(), depth + 1)
        except TypeError:
            pass
    import joblib

    return joblib.hash(a) == joblib.hash(b)
