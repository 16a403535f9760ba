"""How the cache pickles a step's values: which need cloudpickle, the modules loading them
will import (recorded in the manifest, so a kernel can import them ahead of a restore:
``live/warm.py``), and the pickler that writes notebook-defined functions and classes by
value (``Cache.dump_values`` uses these).

Must not: write files or know about entries (``cache.py`` does). cloudpickle is imported
only when a value needs it.
"""

from __future__ import annotations

import io
import pickle
import sys
import types
from typing import Any


class _Null(io.RawIOBase):
    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        return len(data)


class _Probe(pickle.Pickler):
    """Pickles into nothing to learn whether a value needs cloudpickle."""

    def __init__(self, modules: set[str] | None = None) -> None:
        super().__init__(_Null(), protocol=5, buffer_callback=lambda b: False)
        self.interactive = False
        self.modules = modules

    def reducer_override(self, obj: Any) -> Any:
        if self.modules is not None and isinstance(obj, _BY_NAME):
            module = getattr(obj, "__module__", None)
            if isinstance(module, str) and module not in _NOT_IMPORTED:
                self.modules.add(module)
        if isinstance(obj, types.FunctionType | type) and getattr(obj, "__module__", None) == "__main__":
            self.interactive = True
            # Stop early: we know the answer, and pickling __main__ code by name may fail.
            raise _Interactive
        return NotImplemented


#: What pickle writes by name (``GLOBAL``): loading it imports the object's module.
_BY_NAME = (type, types.FunctionType, types.BuiltinFunctionType)
#: Modules every kernel has (or that are the notebook's own): nothing to import ahead.
_NOT_IMPORTED = frozenset({"__main__", "builtins", "copyreg"})


class _Interactive(Exception):
    pass


def probe(value: Any, modules: set[str] | None = None) -> str:
    """``"plain"`` (joblib can store it) or ``"interactive"`` (needs cloudpickle).

    Raises when the value cannot be pickled at all. Large arrays cost nothing here:
    their buffers are passed out of band, not copied. ``modules``, when given, gets the
    modules of the classes and functions the value is pickled by name with (what loading
    it imports; for an interactive value, those seen before its first notebook-defined one).
    """
    try:
        _Probe(modules).dump(value)
    except _Interactive:
        import cloudpickle

        cloudpickle.dumps(value, protocol=5, buffer_callback=lambda b: False)
        return "interactive"
    return "plain"


def _main_attr(name: str) -> Any:
    """Unpickling helper: the setup's function or class ``name`` in the running kernel."""
    return getattr(sys.modules["__main__"], name)


def _code_pickler_base() -> type:
    import cloudpickle

    return cloudpickle.Pickler


class _CodePickler:
    """cloudpickle, except that the setup's own functions and classes go by name."""

    def __new__(cls, f: Any, by_reference: set[str]) -> Any:
        base = _code_pickler_base()

        class Pickler(base):  # type: ignore[misc, valid-type]
            def reducer_override(self, obj: Any) -> Any:
                if (
                    isinstance(obj, types.FunctionType | type)
                    and getattr(obj, "__module__", None) == "__main__"
                    and getattr(obj, "__qualname__", None) in by_reference
                    and getattr(sys.modules.get("__main__"), obj.__qualname__, None) is obj
                ):
                    return _main_attr, (obj.__qualname__,)
                return super().reducer_override(obj)

        return Pickler(f, protocol=5)
