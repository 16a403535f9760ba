"""Digests and fingerprints of values, computed where the values live (kernel, worker).

Two jobs, both cheap enough to run around every step:

* ``value_digests(values)``: the digests recorded in an entry's manifest, which the
  keys of the steps reading those values use (early cut-off, ``cutoff.py``). A digest
  exists only when equal digests mean equal values: a module is ``module:numpy``; a
  function or class defined in the notebook is the digest of its code (bytecode,
  constants, names, defaults); any other value up to ``DIGEST_BYTES`` is the SHA-256 of
  its pickle (a value that refers to notebook code, or cannot be pickled, gets none).
  Larger values get none either: their readers' keys keep using the upstream key, so
  a big array is never hashed byte by byte on the hot path.
* ``fingerprints(values)`` before and ``changed(before, values)`` after a step: which
  of the pipeline's values the step changed, whatever way it did (an alias such as a
  NumPy view or a shared pandas ``Index``, a function changing its argument, a method
  the analysis cannot classify). A fingerprint is identity plus, for arrays, shape,
  strides, dtype, data pointer and a sample of at most ``SAMPLE`` elements; for pandas
  objects, shape, index and column names and a sample of rows; small values are
  digested whole.

What is not detected: a change to a large array or frame outside the sampled elements
or rows (the sample is spread evenly, so a change to a whole row, column or block is
seen; a single element of a big array may not be), and changes to objects only reachable
through attributes of an unpicklable large object.

Two helpers serve restores: ``alias_groups`` records which of a step's values share
memory or an index (restored together, they share again), and ``in_namespace`` makes
restored notebook functions read the namespace as their globals, as a function defined
in the notebook does (``eval(name)`` in a helper sees the kernel's names).

Hidden-state pseudo-names (``<numpy.random>``...) have no value in the namespace: a
module may register a function returning a snapshot of that state in ``SNAPSHOTS``;
its digest is taken like any value's.

Must not: import nbflow's executors, write files, or talk to the store.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import sys
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any

#: Values up to this size (estimated, bytes) get a digest: hashing 1 MiB costs about a
#: millisecond; a 100 MB array would cost a tenth of a second per step, so larger values
#: stand for themselves by their step's key.
DIGEST_BYTES = 1 << 20
#: Values up to this size are fingerprinted whole (digest); larger ones by a sample.
WHOLE_BYTES = 64 << 10
#: Elements (arrays) or rows (frames) sampled in the fingerprint of a large value.
SAMPLE = 4096
#: Pseudo-name -> function returning a snapshot of the hidden state it stands for.
SNAPSHOTS: dict[str, Callable[[], Any]] = {}


class _Interactive(Exception):
    """The value refers to code defined in the notebook: its pickle names it, not its content."""


class _HashSink(io.RawIOBase):
    def __init__(self) -> None:
        self.sha = hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self.sha.update(view)
        return view.nbytes


class _DigestPickler(pickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, types.FunctionType | type) and getattr(obj, "__module__", None) == "__main__":
            raise _Interactive
        return NotImplemented


def pickle_digest(value: Any) -> str | None:
    """SHA-256 of ``value``'s pickle; ``None`` if it cannot be pickled or names notebook code."""
    sink = _HashSink()
    try:
        _DigestPickler(sink, protocol=4).dump(value)
    except Exception:  # noqa: BLE001 - no digest: the key falls back to the upstream key
        return None
    return sink.sha.hexdigest()


def size_within(value: Any, budget: int, depth: int = 3) -> int:
    """What is left of ``budget`` (bytes) after ``value``; negative when it is larger."""
    nbytes = getattr(value, "nbytes", None)
    if isinstance(nbytes, int) and not isinstance(value, type):
        if getattr(getattr(value, "dtype", None), "hasobject", False):
            return budget - nbytes * 8
        return budget - nbytes
    usage = getattr(value, "memory_usage", None)
    if callable(usage) and hasattr(value, "shape") and not isinstance(value, type):
        try:
            used = usage(deep=False)
            used = int(used.sum()) if hasattr(used, "sum") else int(used)
        except Exception:  # noqa: BLE001 - an estimate only
            return -1
        return budget - used * 4  # object columns hold more than their pointers
    if isinstance(value, str | bytes | bytearray):
        return budget - len(value)
    if isinstance(value, int | float | complex | bool | type(None)):
        return budget - 32
    if isinstance(value, list | tuple | set | frozenset | dict):
        budget -= 8 * len(value)
        if budget < 0 or depth == 0:
            return budget
        items = value.items() if isinstance(value, dict) else value
        for item in items:
            budget = size_within(item, budget, depth - 1)
            if budget < 0:
                return budget
        return budget
    state = getattr(value, "__dict__", None)
    if isinstance(state, dict) and depth:
        return size_within(state, budget - 64, depth - 1)
    return budget - sys.getsizeof(value, 64)


def _code_digest(code: types.CodeType, sha: Any) -> None:
    sha.update(code.co_code)
    sha.update(repr((code.co_names, code.co_varnames, code.co_freevars, code.co_argcount)).encode())
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _code_digest(const, sha)
        else:
            sha.update(repr(const).encode())


def code_digest(obj: Any) -> str | None:
    """The digest of a function's or class's code (not of the globals it reads)."""
    sha = hashlib.sha256()
    if isinstance(obj, types.FunctionType):
        _code_digest(obj.__code__, sha)
        for extra in (obj.__defaults__, obj.__kwdefaults__):
            if extra:
                digest = pickle_digest(extra)
                if digest is None:
                    return None
                sha.update(digest.encode())
        for cell in obj.__closure__ or ():
            try:
                content = cell.cell_contents
            except ValueError:
                continue
            digest = value_digest(content)
            if digest is None:
                return None
            sha.update(digest.encode())
        return "function:" + sha.hexdigest()
    if isinstance(obj, type):
        sha.update(repr([b.__qualname__ for b in obj.__mro__]).encode())
        for name, member in sorted(vars(obj).items()):
            if name in ("__dict__", "__weakref__", "__doc__", "__module__", "__qualname__"):
                continue
            inner = member.__func__ if isinstance(member, classmethod | staticmethod) else member
            digest = code_digest(inner) if isinstance(inner, types.FunctionType) else value_digest(inner)
            if digest is None:
                return None
            sha.update(f"{name}={digest};".encode())
        return "class:" + sha.hexdigest()
    return None


def value_digest(value: Any) -> str | None:
    """A digest of ``value`` such that equal digests mean equal values; ``None`` if there
    is none (too large, unpicklable, or refers to code defined in the notebook)."""
    if isinstance(value, types.ModuleType):
        return "module:" + value.__name__
    if isinstance(value, types.FunctionType | type) and getattr(value, "__module__", None) == "__main__":
        return code_digest(value)
    if size_within(value, DIGEST_BYTES) < 0:
        return None
    digest = pickle_digest(value)
    return None if digest is None else "value:" + digest


def value_digests(values: Mapping[str, Any], names: Iterable[str] = ()) -> dict[str, str]:
    """Digests of ``values`` (and of the registered snapshots among ``names``) that have one."""
    digests = {}
    for name, value in values.items():
        digest = value_digest(value)
        if digest is not None:
            digests[name] = digest
    for name in names:
        if name not in values and name in SNAPSHOTS:
            try:
                digest = value_digest(SNAPSHOTS[name]())
            except Exception:  # noqa: BLE001 - no snapshot, no digest: the upstream key stands for it
                digest = None
            if digest is not None:
                digests[name] = digest
    return digests


# ---------------------------------------------------------------- run-time writes


def _sample_digest(array: Any) -> str:
    import numpy as np

    flat = array.reshape(-1) if array.flags.c_contiguous or array.flags.f_contiguous else array.ravel(order="K")
    step = max(1, flat.size // SAMPLE)
    sample = np.ascontiguousarray(flat[::step][:SAMPLE])
    if sample.dtype.hasobject:
        return pickle_digest(sample.tolist()) or "?"
    return hashlib.sha256(sample.view(np.uint8)).hexdigest()


def fingerprint(value: Any) -> str:
    """A cheap fingerprint: equal before and after a step means "not seen changed"."""
    kind = type(value)
    module = kind.__module__.split(".")[0]
    if isinstance(value, types.ModuleType | types.FunctionType | type):
        return f"{id(value)}"
    if module == "numpy" and hasattr(value, "strides"):
        base = value.base
        head = f"{id(value)}:{value.shape}:{value.strides}:{value.dtype}:{value.ctypes.data}:{id(base)}"
        if value.nbytes <= WHOLE_BYTES and not value.dtype.hasobject:
            import numpy as np

            return head + ":" + hashlib.sha256(np.ascontiguousarray(value).view(np.uint8)).hexdigest()
        return head + ":" + _sample_digest(value)
    if module == "pandas" and hasattr(value, "index") and hasattr(value, "shape"):
        return _frame_fingerprint(value)
    if size_within(value, WHOLE_BYTES) >= 0:
        digest = pickle_digest(value)
        if digest is not None:
            return f"{id(value)}:{digest}"
    if isinstance(value, list | tuple | dict | set | frozenset):
        items = list(value.items() if isinstance(value, dict) else value)
        step = max(1, len(items) // 64)
        return f"{id(value)}:{len(items)}:" + ":".join(fingerprint(v) for v in items[::step][:64])
    frame = getattr(value, "gi_frame", None)
    if isinstance(value, types.GeneratorType):
        return f"{id(value)}:{frame.f_lasti if frame is not None else 'done'}"
    tell = getattr(value, "tell", None)
    if callable(tell) and hasattr(value, "read"):
        try:
            return f"{id(value)}:{tell()}"
        except Exception:  # noqa: BLE001 - a closed file
            return f"{id(value)}:closed"
    state = getattr(value, "__dict__", None)
    if isinstance(state, dict):
        return f"{id(value)}:" + ":".join(f"{k}={fingerprint(v)}" for k, v in sorted(state.items())[:64])
    return f"{id(value)}"


def _frame_fingerprint(value: Any) -> str:
    import pandas as pd

    index = value.index
    columns = getattr(value, "columns", None)
    parts = [
        str(id(value)),
        str(value.shape),
        str(id(index)),
        repr(list(index.names)),
        repr(getattr(value, "name", None)),
    ]
    if columns is not None:
        parts += [str(id(columns)), repr(list(columns.names)), repr(list(columns)[:200])]
    rows = len(value)
    step = max(1, rows // SAMPLE)
    sample = value.iloc[::step].iloc[:SAMPLE]
    try:
        hashed = pd.util.hash_pandas_object(sample, index=True).to_numpy()
        parts.append(hashlib.sha256(hashed.tobytes()).hexdigest())
    except (TypeError, ValueError):  # unhashable cells (lists, dicts)
        parts.append(pickle_digest(sample) or "?")
    return ":".join(parts)


def fingerprints(values: Mapping[str, Any]) -> dict[str, str]:
    """``fingerprint`` of every value (one that fails to fingerprint gets its identity)."""
    prints = {}
    for name, value in values.items():
        try:
            prints[name] = fingerprint(value)
        except Exception:  # noqa: BLE001 - an odd object: identity only
            prints[name] = f"{id(value)}"
    return prints


def changed(before: Mapping[str, str], values: Mapping[str, Any]) -> list[str]:
    """Names of ``before`` whose value is gone, rebound or seen changed in ``values``."""
    now = fingerprints({n: values[n] for n in before if n in values})
    return sorted(n for n, fp in before.items() if now.get(n) != fp)


class StepWatch:
    """Around one step where its values live: fingerprints before, what it left after.

    ``before(ns, names)`` fingerprints the pipeline's values ``names`` the namespace holds;
    ``learnt(ns, written)`` returns ``{"digests", "run_writes"}`` for the step's manifest:
    the digests of what it wrote and of the values it changed beyond ``written`` (its
    static writes), and the names of those values.
    """

    def __init__(self) -> None:
        self.prints: dict[str, str] = {}

    def before(self, ns: Mapping[str, Any], names: Iterable[str], reads: Iterable[str] | None = None) -> None:
        """Fingerprint ``names`` -- only those the step ``reads`` and those sharing memory
        or an index with them, when ``reads`` is given (a step changes nothing else)."""
        values = {n: ns[n] for n in names if n in ns and not n.startswith("_")}
        if reads is not None:
            read = {n for n in reads if n in values}
            shared: set[int] = set()
            for n in read:
                shared.update(_safe_parts(values[n]))
            if shared:
                values = {n: v for n, v in values.items() if n in read or shared.intersection(_safe_parts(v))}
            else:  # the reads share nothing (no array, no frame): no other value can alias them
                values = {n: values[n] for n in read}
        self.prints = fingerprints(values)

    def run_writes(self, ns: Mapping[str, Any], written: Iterable[str]) -> list[str]:
        written = set(written)
        found = [n for n in changed(self.prints, ns) if n not in written and n in ns]
        self.prints = {}
        return found

    @staticmethod
    def learnt(ns: Mapping[str, Any], names: Iterable[str], run_writes: Iterable[str]) -> dict[str, Any]:
        """What a step's manifest records: ``digests``, ``run_writes`` and ``aliases``."""
        names = list(names)
        values = {n: ns[n] for n in names if n in ns}
        return {
            "digests": value_digests(values, names),
            "run_writes": sorted(run_writes),
            "aliases": alias_groups(values),
        }


def _shared_parts(value: Any) -> list[int]:
    """Identities of the objects ``value`` shares with others: an array's memory owner,
    a pandas object's index and columns."""
    kind = type(value)
    module = kind.__module__.split(".")[0]
    if module == "numpy" and hasattr(value, "base"):
        root = value
        while getattr(root, "base", None) is not None:
            root = root.base
        return [id(root)]
    if module == "pandas" and hasattr(value, "index"):
        parts = [id(value.index)]
        if hasattr(value, "columns"):
            parts.append(id(value.columns))
        return parts
    return []


def _safe_parts(value: Any) -> list[int]:
    try:
        return _shared_parts(value)
    except Exception:  # noqa: BLE001 - an odd object shares nothing we know of
        return []


def alias_groups(values: Mapping[str, Any]) -> list[list[str]]:
    """Groups of names whose values share memory or an index (restored together, so a
    change through one is seen through the others, as in the notebook)."""
    owners: dict[int, set[str]] = {}
    for name, value in values.items():
        try:
            for part in _shared_parts(value):
                owners.setdefault(part, set()).add(name)
        except Exception:  # noqa: BLE001 - an odd object: not grouped
            continue
    groups: list[set[str]] = []
    for names in owners.values():
        if len(names) < 2:
            continue
        merged = [g for g in groups if g & names]
        for g in merged:
            groups.remove(g)
            names = names | g
        groups.append(set(names))
    return sorted(sorted(g) for g in groups)


def in_namespace(values: dict[str, Any], ns: dict[str, Any]) -> dict[str, Any]:
    """``values`` restored from the cache, their notebook functions and classes' methods
    made to read ``ns`` as their globals, as they do when defined in the notebook (a
    function unpickled by value otherwise reads a copy of the globals it had when cached)."""

    def rebound(fn: types.FunctionType) -> types.FunctionType:
        if fn.__globals__ is ns:
            return fn
        new = types.FunctionType(fn.__code__, ns, fn.__name__, fn.__defaults__, fn.__closure__)
        new.__kwdefaults__ = fn.__kwdefaults__
        new.__dict__.update(fn.__dict__)
        new.__qualname__ = fn.__qualname__
        new.__annotations__ = fn.__annotations__
        new.__module__ = fn.__module__
        new.__doc__ = fn.__doc__
        return new

    for name, value in list(values.items()):
        if isinstance(value, types.FunctionType) and value.__module__ == "__main__":
            values[name] = rebound(value)
        elif isinstance(value, type) and value.__module__ == "__main__":
            for attr, member in list(vars(value).items()):
                if isinstance(member, types.FunctionType) and member.__module__ == "__main__":
                    try:
                        setattr(value, attr, rebound(member))
                    except (AttributeError, TypeError):
                        continue
    return values
