"""Hidden kernel state: the registry of state kinds outside the namespace that steps change.

A plain papermill run carries more from cell to cell than variables: Python's and NumPy's
global random generators, the working folder, ``sys.path``, environment variables,
pandas options, matplotlib ``rcParams``, warnings filters, logging configuration and
pyplot's current figure. nbflow names each such *kind* with a **pseudo-name** --
``<numpy.random>``, ``<cwd>``, ``<pyplot>``... -- never a valid identifier, so it can be
read and written like a variable without clashing with one. Analysis reports, for
example::

    np.random.seed(0)            writes <numpy.random>
    x = np.random.rand()         reads and writes <numpy.random>
    os.chdir("sub")              writes <cwd>
    pd.set_option("display.precision", 2)   writes <pandas.options>
    plt.plot(x)                  reads and writes <pyplot>
    mymodule.cache = {}          writes <module:mymodule> (a module nbflow has no rule for)

so the graph gets an edge from the nearest step above that writes a kind a step reads,
and keys chain through it like through a value. Some kinds are *ambient* (read by every
step: any step may print a frame, write a relative file or plot): ``<cwd>``,
``<sys.path>``, ``<environ>``, ``<pandas.options>``, ``<matplotlib.rcParams>``,
``<warnings>``, ``<logging>``. Reading costs nothing while no step writes the kind.

The analysis rules (which call reads or writes which kind) live in ``hidden_rules``.
This module owns the registry of kinds:

* ``KINDS`` (kernel side): for each kind, its display text, whether it is ambient, and
  how to capture and restore it. A kind without ``capture`` (``<pyplot>``,
  ``<logging>``, ``<tensorflow.random>``, ``<module:...>``) cannot be captured: the plan
  re-executes the step that wrote it before a dependent step runs, never fakes it.
  ``register`` extends it; a kind whose ``module`` was never imported in the process
  captures as ``None`` (nothing to put back), so torch's generator costs nothing
  without torch.

Snapshots are taken relative to a ``Baseline`` (the process's working folder,
``sys.path``, environment and warnings filters before the notebook's code ran), so a
snapshot taken in a kernel can be put back on a Dask worker: ``<cwd>`` is stored
relative to the notebook's folder, ``<environ>`` as the variables changed.

Standard library only at import time (analysis runs on the no-op path); the kernel-side
functions import numpy, pandas or matplotlib only when the process already has them or
a snapshot needs them. This module must not know about steps, the cache or executors.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

PSEUDO = re.compile(r"^<[A-Za-z_][\w.:-]*>$")
MODULE_PREFIX = "<module:"


def is_pseudo(name: str) -> bool:
    """Whether ``name`` is a hidden-state pseudo-name (``<numpy.random>``), not a variable."""
    return name.startswith("<") and bool(PSEUDO.match(name))


def module_kind(module: str) -> str:
    """The pseudo-name of the state of a module nbflow has no rule for."""
    return f"{MODULE_PREFIX}{module.split('.')[0]}>"


# ------------------------------------------------------------------ baseline


@dataclass
class Baseline:
    """What the process looked like before the notebook's code ran (see module docstring)."""

    cwd: str
    path: list[str]
    environ: dict[str, str]
    warnings: list[Any]

    @classmethod
    def capture(cls) -> Baseline:
        import warnings

        return cls(os.getcwd(), list(sys.path), dict(os.environ), list(warnings.filters))


# --------------------------------------------------------------------- kinds


@dataclass(frozen=True)
class Kind:
    """One kind of hidden state (see module docstring)."""

    name: str
    #: What changed, for reasons: ``random state changed (numpy)``.
    changed: str
    #: Short label for edges in graphs: ``numpy random``.
    label: str
    ambient: bool = False
    #: The module that must be imported for this state to exist (``None``: always there).
    module: str | None = None
    capture: Callable[[Baseline], Any] | None = None
    restore: Callable[[Any, Baseline], None] | None = None
    #: Kinds put back first (others may import modules: ``sys.path`` and cwd come first).
    order: int = 10

    @property
    def capturable(self) -> bool:
        return self.capture is not None


KINDS: dict[str, Kind] = {}


def register(kind: Kind) -> Kind:
    """Add (or replace) a kind of hidden state."""
    KINDS[kind.name] = kind
    return kind


def kind_of(name: str) -> Kind:
    """The ``Kind`` of a pseudo-name (``<module:x>`` kinds are made on demand)."""
    kind = KINDS.get(name)
    if kind is not None:
        return kind
    module = name[len(MODULE_PREFIX) : -1] if name.startswith(MODULE_PREFIX) else name.strip("<>")
    return Kind(name, f"module {module} state changed", f"{module} state", module=module)


def capturable(name: str) -> bool:
    """Whether ``name`` (a variable, or the state a pseudo-name stands for) can be
    stored and put back; state that cannot is re-executed."""
    return not is_pseudo(name) or kind_of(name).capturable


def ambient_kinds() -> frozenset[str]:
    """The kinds every step reads."""
    return frozenset(k.name for k in KINDS.values() if k.ambient)


def describe_change(name: str, step: str) -> str:
    """The reason a reader of ``name`` is stale after ``step`` changed it."""
    return f"{kind_of(name).changed} after step {step}"


def edge_label(names: Iterable[str]) -> str:
    """``numpy random, working folder`` for the pseudo-names among ``names``."""
    return ", ".join(kind_of(n).label for n in sorted(names) if is_pseudo(n))


def hidden_only(names: Iterable[str]) -> bool:
    """Whether an edge passes only hidden state (views draw it dotted)."""
    names = list(names)
    return bool(names) and all(is_pseudo(n) for n in names)


# ------------------------------------------------------------------ capture


def _loaded(module: str | None) -> Any:
    return sys.modules.get(module) if module else None


def _capture_random(baseline: Baseline) -> Any:
    import random

    return random.getstate()


def _restore_random(snapshot: Any, baseline: Baseline) -> None:
    import random

    random.setstate(snapshot)


def _capture_numpy(baseline: Baseline) -> Any:
    np = _loaded("numpy")
    return None if np is None else np.random.get_state(legacy=True)


def _restore_numpy(snapshot: Any, baseline: Baseline) -> None:
    if snapshot is not None:
        import numpy as np

        np.random.set_state(snapshot)


def _capture_torch(baseline: Baseline) -> Any:
    torch = _loaded("torch")
    if torch is None:
        return None
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    return {"cpu": torch.random.get_rng_state(), "cuda": cuda}


def _restore_torch(snapshot: Any, baseline: Baseline) -> None:
    if snapshot is not None:
        import torch

        torch.random.set_rng_state(snapshot["cpu"])
        if snapshot["cuda"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(snapshot["cuda"])


def _capture_cwd(baseline: Baseline) -> str:
    return os.path.relpath(os.getcwd(), baseline.cwd)


def _restore_cwd(snapshot: str, baseline: Baseline) -> None:
    target = os.path.normpath(os.path.join(baseline.cwd, snapshot))
    if os.path.normpath(os.getcwd()) != target:
        os.chdir(target)


def _capture_path(baseline: Baseline) -> dict[str, Any]:
    """``sys.path`` as entries added around the process's own (kept as one marker)."""
    base = set(baseline.path)
    entries: list[str | None] = []
    for item in sys.path:
        if item in base:
            if None not in entries:
                entries.append(None)
        else:
            entries.append(item)
    present = set(sys.path)
    return {"entries": entries, "removed": [p for p in baseline.path if p not in present]}


def _restore_path(snapshot: Mapping[str, Any], baseline: Baseline) -> None:
    removed = set(snapshot["removed"])
    result: list[str] = []
    for item in snapshot["entries"]:
        if item is None:
            result += [p for p in baseline.path if p not in removed]
        else:
            result.append(item)
    if None not in snapshot["entries"]:
        result += [p for p in baseline.path if p not in removed and p not in result]
    if sys.path != result:
        sys.path[:] = result


def _capture_environ(baseline: Baseline) -> dict[str, Any]:
    env = os.environ
    return {
        "set": {k: v for k, v in env.items() if baseline.environ.get(k) != v},
        "unset": sorted(k for k in baseline.environ if k not in env),
    }


def _restore_environ(snapshot: Mapping[str, Any], baseline: Baseline) -> None:
    target = dict(baseline.environ)
    target.update(snapshot["set"])
    for key in snapshot["unset"]:
        target.pop(key, None)
    for key in [k for k in os.environ if k not in target]:
        del os.environ[key]
    for key, value in target.items():
        if os.environ.get(key) != value:
            os.environ[key] = value


def _pandas_options() -> tuple[Any, dict[str, Any]]:
    """pandas' option registry and the current value of every option (read directly:
    ``pd.get_option`` costs 0.5 ms for all of them)."""
    from pandas._config import config as cf

    current: dict[str, Any] = {}
    for key in cf._registered_options:
        node: Any = cf._global_config
        for part in key.split("."):
            node = node[part]
        current[key] = node
    return cf, current


def _capture_pandas(baseline: Baseline) -> Any:
    if _loaded("pandas") is None:
        return None
    cf, current = _pandas_options()
    return {
        key: value
        for key, value in current.items()
        if key not in cf._deprecated_options and not _same(value, cf._registered_options[key].defval)
    }


def _restore_pandas(snapshot: Any, baseline: Baseline) -> None:
    if snapshot is None and _loaded("pandas") is None:
        return
    import pandas as pd

    cf, current = _pandas_options()
    snapshot = snapshot or {}
    for key, value in current.items():
        if key in cf._deprecated_options:
            continue
        target = snapshot.get(key, cf._registered_options[key].defval)
        if not _same(value, target):
            pd.set_option(key, target)


#: rcParams that belong to pyplot's figure manager, not to style.
_RC_SKIPPED = frozenset({"backend", "backend_fallback", "interactive"})


def _capture_rcparams(baseline: Baseline) -> Any:
    mpl = _loaded("matplotlib")
    if mpl is None:
        return None
    defaults = mpl.rcParamsDefault
    return {
        k: v
        for k, v in dict.items(mpl.rcParams)
        if k not in _RC_SKIPPED and not _same(v, dict.__getitem__(defaults, k))
    }


def _restore_rcparams(snapshot: Any, baseline: Baseline) -> None:
    if snapshot is None and _loaded("matplotlib") is None:
        return
    import matplotlib as mpl

    snapshot = snapshot or {}
    defaults = mpl.rcParamsDefault
    for key, value in list(dict.items(mpl.rcParams)):
        if key in _RC_SKIPPED:
            continue
        target = snapshot.get(key, dict.__getitem__(defaults, key))
        if not _same(value, target):
            mpl.rcParams[key] = target


def _capture_warnings(baseline: Baseline) -> list[Any]:
    import warnings

    return list(warnings.filters)


def _restore_warnings(snapshot: list[Any], baseline: Baseline) -> None:
    import warnings

    if warnings.filters != snapshot:
        warnings.filters[:] = [tuple(f) for f in snapshot]
        warnings._filters_mutated()  # type: ignore[attr-defined]


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - arrays and odd objects: compare what they show
        return repr(a) == repr(b)


for _kind in (
    Kind("<random>", "random state changed (random)", "random state", capture=_capture_random, restore=_restore_random),
    Kind(
        "<numpy.random>",
        "random state changed (numpy)",
        "numpy random state",
        module="numpy",
        capture=_capture_numpy,
        restore=_restore_numpy,
    ),
    Kind(
        "<torch.random>",
        "random state changed (torch)",
        "torch random state",
        module="torch",
        capture=_capture_torch,
        restore=_restore_torch,
    ),
    Kind("<tensorflow.random>", "random state changed (tensorflow)", "tensorflow random state", module="tensorflow"),
    Kind(
        "<cwd>",
        "working folder changed",
        "working folder",
        ambient=True,
        capture=_capture_cwd,
        restore=_restore_cwd,
        order=1,
    ),
    Kind(
        "<sys.path>",
        "sys.path changed",
        "sys.path",
        ambient=True,
        capture=_capture_path,
        restore=_restore_path,
        order=0,
    ),
    Kind(
        "<environ>",
        "environment changed",
        "environment",
        ambient=True,
        capture=_capture_environ,
        restore=_restore_environ,
        order=2,
    ),
    Kind(
        "<pandas.options>",
        "pandas options changed",
        "pandas options",
        ambient=True,
        module="pandas",
        capture=_capture_pandas,
        restore=_restore_pandas,
    ),
    Kind(
        "<matplotlib.rcParams>",
        "matplotlib rcParams changed",
        "matplotlib rcParams",
        ambient=True,
        module="matplotlib",
        capture=_capture_rcparams,
        restore=_restore_rcparams,
    ),
    Kind(
        "<warnings>",
        "warnings filters changed",
        "warnings filters",
        ambient=True,
        capture=_capture_warnings,
        restore=_restore_warnings,
    ),
    Kind("<logging>", "logging configuration changed", "logging configuration", ambient=True, module="logging"),
    Kind("<pyplot>", "pyplot state changed", "pyplot state", module="matplotlib"),
):
    register(_kind)


def capture(names: Iterable[str], baseline: Baseline) -> dict[str, Any]:
    """Snapshots of the capturable kinds among ``names`` (other names are ignored)."""
    snapshots = {}
    for name in names:
        if is_pseudo(name):
            kind = kind_of(name)
            if kind.capture is not None:
                snapshots[name] = kind.capture(baseline)
    return snapshots


def restore(snapshots: Mapping[str, Any], baseline: Baseline) -> None:
    """Put the snapshots back (``sys.path`` and the working folder first)."""
    for name in sorted(snapshots, key=lambda n: (kind_of(n).order, n)):
        kind = kind_of(name)
        if kind.restore is not None:
            kind.restore(snapshots[name], baseline)


def split(values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(variables, snapshots)``: the pseudo-names of ``values`` set apart."""
    plain, snapshots = {}, {}
    for name, value in values.items():
        (snapshots if is_pseudo(name) else plain)[name] = value
    return plain, snapshots


def reset(baseline: Baseline) -> None:
    """Put every kind back as it was at ``baseline`` (a Dask worker between steps):
    the environment, warnings filters, pandas options and rcParams to their defaults,
    pyplot's figures closed. Random generators are left: a step that reads one without
    seeding it reads entropy in a plain run too."""
    _restore_environ({"set": {}, "unset": []}, baseline)
    _restore_warnings(baseline.warnings, baseline)
    _restore_pandas(None, baseline)
    _restore_rcparams(None, baseline)
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is not None:
        plt.close("all")


#: The functions of the ``random`` module that use its global generator.
_RANDOM_FUNCTIONS = (
    "seed random uniform triangular randint choice randrange sample shuffle choices normalvariate lognormvariate "
    "expovariate vonmisesvariate gammavariate gauss betavariate paretovariate weibullvariate getstate setstate "
    "getrandbits randbytes binomialvariate"
).split()


@contextlib.contextmanager
def own_random_generator() -> Iterator[None]:
    """Give the calling thread a global ``random`` generator of its own while it runs.

    A Dask worker process shares ``random``'s generator with the worker's own threads
    (tornado's jittered callbacks draw from it), so a step reading it would see numbers
    go missing. Inside this block, ``random.*`` called from this thread use a private
    generator that starts from, and ends as, the global state; other threads keep the
    global one."""
    import random
    import threading

    mine = random.Random()
    mine.setstate(random.getstate())
    owner = threading.get_ident()
    originals = {name: getattr(random, name) for name in _RANDOM_FUNCTIONS if hasattr(random, name)}

    def dispatch(name: str) -> Callable[..., Any]:
        original, own = originals[name], getattr(mine, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            return (own if threading.get_ident() == owner else original)(*args, **kwargs)

        call.__name__ = call.__qualname__ = name
        call.__doc__ = original.__doc__
        return call

    for name in originals:
        setattr(random, name, dispatch(name))
    try:
        yield
    finally:
        for name, original in originals.items():
            setattr(random, name, original)
        random.setstate(mine.getstate())


def digest(snapshot: Any) -> str:
    """A stable SHA-256 of a snapshot (never of pickled bytes), for early cut-off."""
    return hashlib.sha256(json.dumps(_canonical(snapshot), sort_keys=True).encode()).hexdigest()


def _canonical(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, re.Pattern):
        return ["re", value.pattern, value.flags]
    if isinstance(value, type):
        return ["class", value.__module__, value.__qualname__]
    tobytes = getattr(value, "tobytes", None)
    if callable(tobytes):
        return ["bytes", str(getattr(value, "dtype", "")), hashlib.sha256(tobytes()).hexdigest()]
    return ["repr", repr(value)]
