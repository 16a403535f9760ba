"""nbflow's configuration: one home for every setting, passed down explicitly.

Settings come, lowest priority first, from the defaults here, ``[tool.nbflow]`` in the
nearest ``pyproject.toml`` above the notebook, ``NBFLOW_*`` environment variables, and
keyword overrides (the CLI's flags).

=====================  ========================  ==========================================
setting                environment               meaning
=====================  ========================  ==========================================
``home``               ``NBFLOW_HOME``           folder for the run store, runs and cache
                                                 (default: ``.nbflow`` next to the notebook)
``cache_dir``          ``NBFLOW_CACHE``          step results (default: ``<home>/cache``)
``timeout``            ``NBFLOW_TIMEOUT``        default per-step timeout in seconds
``executor``           ``NBFLOW_EXECUTOR``       ``kernel`` (default) or ``dask``
``output_limit``       ``NBFLOW_OUTPUT_LIMIT``   bytes of outputs kept per step
``report``             (pyproject only)          every run writes its report at its end (``run_end.py``)
``on_failure``         (pyproject only)          command run when any run fails (``hooks.py``, ``run_end.py``)
``on_success``         (pyproject only)          command run when any run succeeds
``notify``             (pyproject only)          URL the run's outcome is POSTed to as JSON
``hook_timeout``       (pyproject only)          seconds a hook may take (default 30)
``warm_kernel``        (pyproject only)          ``%load_ext nbflow`` imports, in a daemon
                                                 thread, what restoring the notebook's cached
                                                 values needs (default true; ``live/warm.py``)
=====================  ========================  ==========================================

Standard library only (``tomllib`` is read only when a pyproject mentions nbflow).
``Config.open_store()`` and ``Config.cache()`` are the one way to the run store and the
cache (imported when called).
"""

from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import PipelineError

if TYPE_CHECKING:
    from .cache import Cache
    from .store import RunStore


@dataclass(frozen=True)
class Config:
    """Where nbflow keeps its files and the defaults of a run."""

    home: Path
    cache_dir: Path
    timeout: float | None = None
    executor: str = "kernel"
    kernel_start_timeout: float = 60.0
    output_limit: int = 20 * 1024 * 1024
    heartbeat_interval: float = 5.0
    kill_grace: float = 5.0
    report: bool = False
    on_failure: str | None = None
    on_success: str | None = None
    notify: str | None = None
    hook_timeout: float = 30.0
    warm_kernel: bool = True

    @property
    def store_path(self) -> Path:
        """The SQLite run store."""
        return self.home / "runs.db"

    @property
    def runs_dir(self) -> Path:
        """Output notebooks and reports, one folder per run id."""
        return self.home / "runs"

    def open_store(self, **options: Any) -> RunStore:
        """The run store, opened with this configuration's heartbeat interval (the one way
        to a ``RunStore``; ``options`` as ``RunStore``'s, e.g. ``reconcile=False``)."""
        from .store import RunStore

        return RunStore(self.store_path, heartbeat_interval=self.heartbeat_interval, **options)

    def cache(self) -> Cache:
        """The step-result cache of this configuration (the one way to a ``Cache``)."""
        from .cache import Cache

        return Cache(self.cache_dir)

    @classmethod
    def for_notebook(cls, notebook: str | Path, **overrides: Any) -> Config:
        """The configuration that applies to ``notebook``."""
        return cls.for_folder(Path(notebook).resolve().parent, **overrides)

    @classmethod
    def for_path(cls, path: str | Path | None = None, **overrides: Any) -> Config:
        """The configuration for a notebook or a folder (default: the current folder)."""
        path = Path(path) if path is not None else Path.cwd()
        if path.is_dir():
            return cls.for_folder(path, **overrides)
        return cls.for_notebook(path, **overrides)

    @classmethod
    def for_folder(cls, folder: str | Path, **overrides: Any) -> Config:
        """The configuration of notebooks in ``folder``."""
        folder = Path(folder).resolve()
        settings: dict[str, Any] = {}
        settings.update(_from_pyproject(folder))
        settings.update(_from_environment())
        settings.update({k: v for k, v in overrides.items() if v is not None})
        home = Path(settings.pop("home", folder / ".nbflow"))
        cache_dir = Path(settings.pop("cache_dir", home / "cache"))
        unknown = set(settings) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise PipelineError(f"unknown nbflow setting(s): {', '.join(sorted(unknown))}")
        for name in ("report", "warm_kernel"):
            if not isinstance(settings.get(name, False), bool):
                raise PipelineError(f"[tool.nbflow] {name.replace('_', '-')} = {settings[name]!r}: write true or false")
        for name in ("on_failure", "on_success", "notify"):
            if not isinstance(settings.get(name, ""), str):
                raise PipelineError(f"[tool.nbflow] {name.replace('_', '-')} = {settings[name]!r}: write a string")
        if not isinstance(settings.get("hook_timeout", 1.0), int | float) or settings.get("hook_timeout", 1.0) <= 0:
            raise PipelineError(f"[tool.nbflow] hook-timeout = {settings['hook_timeout']!r}: write a positive number")
        return cls(home=home, cache_dir=cache_dir, **settings)


_ENV = {
    "NBFLOW_HOME": ("home", Path),
    "NBFLOW_CACHE": ("cache_dir", Path),
    "NBFLOW_TIMEOUT": ("timeout", float),
    "NBFLOW_EXECUTOR": ("executor", str),
    "NBFLOW_OUTPUT_LIMIT": ("output_limit", int),
}


def _from_environment() -> dict[str, Any]:
    settings = {}
    for var, (name, kind) in _ENV.items():
        value = os.environ.get(var)
        if value:
            try:
                settings[name] = kind(value)
            except ValueError:
                raise PipelineError(f"{var}={value!r} is not a valid {kind.__name__}") from None
    return settings


def _from_pyproject(folder: Path) -> dict[str, Any]:
    for parent in (folder, *folder.parents):
        pyproject = parent / "pyproject.toml"
        if not pyproject.is_file():
            continue
        text = pyproject.read_text(encoding="utf-8")
        if "tool.nbflow" not in text:
            return {}
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover - Python 3.10
            import tomli as tomllib
        try:
            section = tomllib.loads(text).get("tool", {}).get("nbflow", {})
        except tomllib.TOMLDecodeError as e:
            raise PipelineError(f"{pyproject}: invalid TOML ({e})") from None
        settings = {k.replace("-", "_"): v for k, v in section.items()}
        for name in ("home", "cache_dir"):
            if name in settings:
                settings[name] = (parent / settings[name]).resolve()
        return settings
    return {}
