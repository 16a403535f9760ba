"""Warming the user's kernel for a restore: what ``%load_ext nbflow`` starts in a daemon thread.

A restore into a fresh kernel spends nearly all its time importing: the setup cell's
libraries and the modules unpickling the cached values imports (scikit-learn, pandas).
The extension loads when the kernel starts (JupyterLab's extension loads it silently) and
the person restores later, so ``start`` imports them meanwhile, in a daemon thread:

* nbflow's own modules a restore uses (planning, the run store, joblib's loader);
* the notebook's (the kernel's session's, ``JPY_SESSION_NAME``, set by Jupyter) setup-cell
  imports, found by parsing its code, and the modules each step's newest cache entry
  records as needed to load its values (``manifest["modules"]``, written by
  ``Cache.dump_values``) -- read from the manifests, never by unpickling, and only from
  entries a restore would trust (``fsutil.check_private``: folders no one else can write).

Only installed libraries are imported (the standard library and site-packages, never a
module of the notebook's folder: importing one runs the user's code), and never a module
that selects a GUI or plotting backend, talks to the kernel or needs the main thread
(``MAIN_THREAD_ONLY``: ``matplotlib.pyplot`` and the like). An import guard on
``sys.meta_path`` (the documented hook) stops such an import even when a library pulls it
in: that library's import is abandoned and left to the main thread (Python removes the
modules whose import failed, ``forget_partial`` the submodules of a package whose own
import failed, which would otherwise point at the half-made package). A package whose
``__init__`` itself pulls in such a module (seaborn) is listed, so its import is never
started. The warm-up writes nothing and keeps nothing (no pipeline, no
plan: a restore plans again). A failure is logged at debug (logger ``nbflow.live.warm``)
and kept in ``Warmup.failed``; the restore then imports what it needs itself.

Two threads importing at once can deadlock or see half-initialised modules, so nothing of
the user's races an import of the warm-up, and the warm-up yields to the user:

* every ``%nbflow`` magic and every driver call waits for the whole warm-up (``wait``: it
  would import the same modules itself), which goes on even while a cell runs;
* every other cell (IPython's ``pre_run_cell``/``post_run_cell``: ``pause``/``resume``)
  waits only for the import under way, if any, and the warm-up starts no new import until
  the cell ends: a first ``1+1`` does not wait for scikit-learn to be imported.

Waits are interruptible; past ``WAIT_LIMIT`` seconds of the warm-up's running (paused time
not counted) one line says so and nothing waits any more.
``[tool.nbflow] warm_kernel = false`` turns it off: no thread, nothing imported.

Must not: unpickle, write files, import outside the allow rules above, or import anything
heavy at module level (it is imported when the extension loads).
"""

from __future__ import annotations

import ast
import importlib
import importlib.abc
import importlib.util
import logging
import os
import site
import sys
import sysconfig
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: Modules (and their submodules) the warm-up thread never imports: they select a GUI or
#: plotting backend, register with the kernel, or need the main thread.
MAIN_THREAD_ONLY = (
    "matplotlib.pyplot",
    "matplotlib_inline",
    "seaborn",
    "pylab",
    "matplotlib.pylab",
    "tkinter",
    "_tkinter",
    "turtle",
    "PyQt4",
    "PyQt5",
    "PyQt6",
    "PySide",
    "PySide2",
    "PySide6",
    "qtpy",
    "wx",
    "gi",
    "pygame",
    "ipykernel",
    "IPython",
    "ipywidgets",
    "ipympl",
    "panel",
    "bokeh.io",
    "holoviews",
    "plotly.io",
)
#: Name prefixes of the same: matplotlib's backends (``matplotlib.backends`` itself is
#: only their registry, which ``matplotlib`` imports).
MAIN_THREAD_ONLY_PREFIXES = ("matplotlib.backends.backend_",)

#: Seconds of running (time paused for the user's cells not counted) past which nothing
#: waits for the warm-up any more (an import that hangs -- a stalled network folder --
#: must not hang every cell).
WAIT_LIMIT = 60.0

#: nbflow's side of a restore: imported first.
OWN_MODULES = (
    "nbflow.api",
    "nbflow.run",
    "nbflow.executors.in_kernel",
    "nbflow.executors.outcome",
    "joblib",
    "joblib.numpy_pickle",
)


def main_thread_only(name: str) -> bool:
    """Whether module ``name`` is one of ``MAIN_THREAD_ONLY`` or inside one."""
    return name.startswith(MAIN_THREAD_ONLY_PREFIXES) or any(
        name == m or name.startswith(m + ".") for m in MAIN_THREAD_ONLY
    )


class Refused(BaseException):
    """Raised by the guard in the warm-up thread for a ``MAIN_THREAD_ONLY`` module.

    A ``BaseException``, so a library's ``except ImportError`` around an optional import
    does not conclude that the module is missing: the whole import is abandoned instead.
    """


class _Guard(importlib.abc.MetaPathFinder):
    """Refuses ``MAIN_THREAD_ONLY`` modules to the warm-up thread while one runs; every
    other import goes on. Installed once per process, by the main thread, and never
    removed: removing a finder while another thread walks ``sys.meta_path`` could make it
    skip the next one."""

    def __init__(self) -> None:
        self.thread_id: int | None = None

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        if self.thread_id is not None and threading.get_ident() == self.thread_id and main_thread_only(fullname):
            raise Refused(fullname)
        return None


_GUARD = _Guard()


def _install_guard() -> None:
    if _GUARD not in sys.meta_path:
        sys.meta_path.insert(0, _GUARD)


@dataclass
class Warmup:
    """One warm-up of one kernel (``start``); ``done`` is set when it ended, however."""

    #: the session's notebook (``None``: only nbflow's own modules are warmed)
    notebook: Path | None
    done: threading.Event = field(default_factory=threading.Event)
    #: modules the warm-up imported, in order
    imported: list[str] = field(default_factory=list)
    #: modules it left to the main thread: ``{module: the MAIN_THREAD_ONLY one it pulled in}``
    left: dict[str, str] = field(default_factory=dict)
    #: what failed: ``{module, "cache of step S" or "warm-up": "ErrorType: message"}``
    failed: dict[str, str] = field(default_factory=dict)
    #: wall time the warm-up took (``None`` until done)
    seconds: float | None = None

    #: the module being imported now (``None`` between imports)
    importing: str | None = None
    #: when the warm-up started (``time.monotonic``), moved on by the time it was paused
    started: float = field(default_factory=time.monotonic)
    #: set when a wait gave up (``WAIT_LIMIT``): nothing waits for this warm-up any more
    abandoned: bool = False
    #: cells of the user's running now (``pause``/``resume``): no new import meanwhile
    held: int = 0
    #: callers waiting for the whole warm-up (``wait``): it goes on even while a cell runs
    urgent: int = 0
    #: when the warm-up began waiting for a cell to end (``None``: not paused)
    paused_at: float | None = None
    turn: threading.Condition = field(default_factory=threading.Condition)

    def wait(self) -> None:
        """Block until the warm-up ended (the kernel's interrupt still works); past
        ``WAIT_LIMIT`` seconds of its running, say so in one line and stop waiting."""
        with self.turn:
            self.urgent += 1
            self.turn.notify_all()
        try:
            self._wait_until(self.done.is_set)
        finally:
            with self.turn:
                self.urgent -= 1

    def pause(self) -> None:
        """A cell of the user's is about to run: wait for the import under way (if any);
        no new one starts until ``resume``."""
        with self.turn:
            self.held += 1
        self._wait_until(lambda: self.importing is None or self.done.is_set())

    def resume(self) -> None:
        """The cell ``pause`` was called for ended."""
        with self.turn:
            self.held = max(0, self.held - 1)
            self.turn.notify_all()

    def _wait_until(self, ready: Any) -> None:
        while not self.abandoned and not ready():
            with self.turn:
                self.turn.wait(0.05)
                paused = self.paused_at is not None
            if not paused and time.monotonic() - self.started > WAIT_LIMIT:
                self.abandoned = True
                message = (
                    f"nbflow: the kernel's warm-up has been importing {self.importing or 'modules'} for over "
                    f"{WAIT_LIMIT:.0f} s; going on without waiting for it ([tool.nbflow] warm_kernel = false "
                    "turns it off)"
                )
                log.debug(message)
                print(message, file=sys.stderr)

    def _take_turn(self, what: str) -> None:
        """In the thread, before ``what`` (an import): wait while a cell of the user's runs
        (unless someone waits for the whole warm-up), then mark ``what`` under way."""
        with self.turn:
            while self.held and not self.urgent:
                if self.paused_at is None:
                    self.paused_at = time.monotonic()
                self.turn.wait()
            if self.paused_at is not None:
                self.started += time.monotonic() - self.paused_at  # paused time is not running time
                self.paused_at = None
            self.importing = what

    def _end_turn(self) -> None:
        with self.turn:
            self.importing = None
            self.turn.notify_all()

    def run(self) -> None:
        start = time.perf_counter()
        _GUARD.thread_id = threading.get_ident()
        try:
            self._import(OWN_MODULES)
            if self.notebook is not None:
                self._take_turn("the notebook's modules")  # reading it imports too
                try:
                    wanted = sorted(wanted_modules(self.notebook, self.failed))
                finally:
                    self._end_turn()
                self._import(wanted)
        except BaseException as e:  # noqa: BLE001 - logged and kept: the restore imports what it needs
            self._failed("warm-up", e)
        finally:
            _GUARD.thread_id = None
            self.seconds = time.perf_counter() - start  # paused time included
            log.debug(
                "nbflow warm-up: %.3f s, imported %d modules, left %s to the main thread, failed %s",
                self.seconds,
                len(self.imported),
                sorted(self.left),
                self.failed,
            )
            self.done.set()

    def _import(self, names: Iterable[str]) -> None:
        for name in names:
            if name in sys.modules:
                continue
            self._take_turn(name)
            if name in sys.modules:  # the user's cell imported it meanwhile
                self._end_turn()
                continue
            before = set(sys.modules)
            try:
                importlib.import_module(name)
            except Refused as refused:
                self.left[name] = str(refused)
                forgotten = forget_partial(before)
                log.debug(
                    "nbflow warm-up: %s imports %s: left to the main thread (%s forgotten)", name, refused, forgotten
                )
            except BaseException as e:  # noqa: BLE001 - e.g. a module an old entry recorded is gone, a sys.exit
                self._failed(name, e)
            else:
                self.imported.append(name)
            finally:
                self._end_turn()

    def _failed(self, what: str, e: BaseException) -> None:
        self.failed[what] = f"{type(e).__name__}: {e}"
        log.debug("nbflow warm-up: %s failed", what, exc_info=e)


def forget_partial(before: set[str]) -> list[str]:
    """After an abandoned import: forget the submodules loaded under a package whose own
    import failed with it; the names forgotten.

    Python removes the modules whose import failed, but a package's submodules loaded
    before the failure stay and point at that half-made package object: the main
    thread's import of the package would then run with them and find its attributes
    missing. Only Python source modules are forgotten: an extension module cannot always
    be initialised twice in one process (pybind11's, numpy's), and it keeps no reference
    to the half-made package.
    """
    added = set(sys.modules) - before
    failed = {p for name in added for p in _parents(name) if p not in sys.modules}
    forgotten = []
    for name in sorted(added):
        module = sys.modules.get(name)
        if any(name.startswith(p + ".") for p in failed) and str(getattr(module, "__file__", "")).endswith(".py"):
            del sys.modules[name]
            forgotten.append(name)
    return forgotten


def _parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def wanted_modules(notebook: Path, failed: dict[str, str]) -> set[str]:
    """The installed modules a restore of ``notebook`` imports, as far as can be told
    without running or unpickling anything (see module docstring)."""
    from ..api import load_pipeline
    from ..config import Config
    from ..errors import NbflowError
    from ..fsutil import check_private

    pipeline = load_pipeline(notebook, Config.for_notebook(notebook))
    if not pipeline.order:  # not a pipeline: nothing to restore (and every cell would count as its setup)
        return set()
    names: set[str] = set()
    for cell in pipeline.source.setup:
        names |= imported_by(cell.source)
    cache = pipeline.config.cache()
    for step in pipeline.order:
        try:
            entry = cache.latest(step, notebook=pipeline.path.name)
        except Exception as e:  # noqa: BLE001 - an unreadable cache folder: its modules are not warmed
            failed[f"cache of step {step}"] = f"{type(e).__name__}: {e}"
            continue
        if entry is None:
            continue
        try:  # a manifest names modules to import: trusted only where a restore would trust it
            for folder in (cache.root, entry.path.parent, entry.path):
                check_private(folder)
        except (OSError, NbflowError) as e:
            failed[f"cache of step {step}"] = f"{type(e).__name__}: {e}"
            continue
        names |= {m for m in entry.manifest.get("modules", []) if isinstance(m, str)}
    return {n for n in names if not main_thread_only(n) and installed(n)}


def imported_by(source: str) -> set[str]:
    """The modules the top-level ``import`` statements of cell ``source`` name."""
    from IPython.core.inputtransformer2 import TransformerManager

    try:
        tree = ast.parse(TransformerManager().transform_cell(source))
    except SyntaxError:  # the restore reports it, naming the cell
        return set()
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def _library_folders() -> tuple[Path, ...]:
    paths = {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    paths |= set(site.getsitepackages())
    paths.add(site.getusersitepackages())
    return tuple(Path(p).resolve() for p in paths if p)


def installed(name: str) -> bool:
    """Whether module ``name``'s top-level package is the standard library's or an
    installed one (not the notebook's folder's, not on a ``PYTHONPATH`` of the user's)."""
    top = name.partition(".")[0]
    if top in sys.builtin_module_names:
        return True
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return False
    if spec is None:
        return False
    where = (
        spec.origin
        if spec.origin not in (None, "namespace")
        else next(iter(spec.submodule_search_locations or []), None)
    )
    if where is None or where in ("built-in", "frozen"):
        return where is not None
    path = Path(where).resolve()
    return any(path.is_relative_to(folder) for folder in _library_folders())


# ------------------------------------------------------------ the kernel's side


def session_notebook() -> Path | None:
    """The notebook the kernel's Jupyter session runs (``JPY_SESSION_NAME``), if a file."""
    session = os.environ.get("JPY_SESSION_NAME")
    if not session or not session.endswith(".ipynb"):
        return None
    for option in (Path(session), Path(Path(session).name)):
        if option.is_file():
            return option.resolve()
    return None


def start(ip: Any) -> Warmup | None:
    """Start warming kernel ``ip`` (unless ``warm_kernel = false``); ``None`` when not."""
    from ..config import Config
    from ..errors import NbflowError

    notebook = session_notebook()
    folder = notebook.parent if notebook is not None else Path.cwd()
    try:
        enabled = Config.for_folder(folder).warm_kernel
    except NbflowError as e:  # a broken pyproject: the first magic names it
        log.debug("nbflow warm-up: not started: %s", e)
        return None
    if not enabled:
        return None
    warmup = Warmup(notebook)
    _install_guard()
    ip._nbflow_warmup = warmup
    ip.events.register("pre_run_cell", _pause_for_cell)
    ip.events.register("post_run_cell", _resume_after_cell)
    threading.Thread(target=warmup.run, name="nbflow-warm-up", daemon=True).start()
    return warmup


def current(ip: Any = None) -> Warmup | None:
    """The warm-up of kernel ``ip`` (default: the running IPython), if one was started."""
    if ip is None:
        from IPython import get_ipython

        ip = get_ipython()
    return getattr(ip, "_nbflow_warmup", None)


def wait(ip: Any = None) -> None:
    """Wait until the warm-up of kernel ``ip`` ended (at once when there is none)."""
    warmup = current(ip)
    if warmup is not None:
        warmup.wait()


def _pause_for_cell(info: Any = None) -> None:
    warmup = current()
    if warmup is not None:
        warmup.pause()


def _resume_after_cell(result: Any = None) -> None:
    warmup = current()
    if warmup is not None:
        warmup.resume()


def stop(ip: Any) -> None:
    """``%unload_ext nbflow``: wait for the warm-up, then forget it."""
    warmup = current(ip)
    if warmup is None:
        return
    warmup.wait()
    ip.events.unregister("pre_run_cell", _pause_for_cell)
    ip.events.unregister("post_run_cell", _resume_after_cell)
    ip._nbflow_warmup = None
