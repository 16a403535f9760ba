"""What a step produced, in a few words: ``describe`` a value where it is dumped (type,
rows x columns, shape, bytes) and ``output_summary`` for an entry's manifest and the views
("df: 1,000 rows x 3 columns · 24.1 kB").

Must not: import pandas or numpy at module level (it looks at a value's attributes), or
touch files.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def describe(value: Any) -> dict[str, Any]:
    """Type, a short summary and, for small scalars, the value itself (for diffs)."""
    kind = type(value)
    info: dict[str, Any] = {"type": f"{kind.__module__}.{kind.__qualname__}".removeprefix("builtins.")}
    shape = getattr(value, "shape", None)
    if isinstance(shape, tuple):
        info["summary"] = f"{getattr(value, 'dtype', '')} {shape}".strip()
        info["shape"] = [int(n) for n in shape if isinstance(n, int)]
        info["table"] = hasattr(value, "columns") or hasattr(value, "index")
        nbytes = getattr(value, "nbytes", None)
        if isinstance(nbytes, int):
            info["nbytes"] = nbytes
        elif callable(getattr(value, "memory_usage", None)):
            try:
                info["nbytes"] = int(value.memory_usage(deep=False).sum())
            except Exception:  # noqa: BLE001 - a size estimate only
                pass
    elif isinstance(value, list | tuple | dict | set):
        info["summary"] = f"{len(value)} items"
    if isinstance(value, bool | int | float | str | type(None)):
        text = repr(value)
        if len(text) <= 200:
            info["scalar"] = text
    elif kind.__module__ == "numpy" and shape == ():
        info["scalar"] = repr(value.item())
    return info


def output_summary(described: Mapping[str, Mapping[str, Any]], files: Mapping[str, Mapping[str, Any]]) -> str:
    """What a step produced, in a few words (``df: 1,000 rows × 3 columns · 24.0 kB (+1 value)``).

    ``described``: ``describe`` of each value (computed where the values live); ``files``:
    the entry's payload files (their sizes are the bytes). The main value is the largest
    table or array, else the first value.
    """
    values = {n: d for n, d in described.items() if d.get("type") != "module"}
    if not values:
        return ""
    main = max(values, key=lambda n: (values[n].get("nbytes", -1), "shape" in values[n]))
    info = values[main]
    shape = info.get("shape")
    if shape is not None and info.get("table") and len(shape) == 2:
        text = f"{shape[0]:,} rows × {shape[1]:,} columns"
    elif shape is not None and info.get("table") and len(shape) == 1:
        text = f"{shape[0]:,} rows"
    elif shape is not None:
        text = "array " + "×".join(str(n) for n in shape) if shape else "scalar"
    else:
        text = info.get("summary") or info.get("scalar") or info.get("type", "")
    if len(text) > 40:
        text = text[:37] + "..."
    text = f"{main}: {text}"
    nbytes = sum(int(f.get("size", 0)) for f in files.values())
    if nbytes:
        text += f" · {_bytes_text(nbytes)}"
    if len(values) > 1:
        text += f" (+{len(values) - 1} value{'s' if len(values) > 2 else ''})"
    return text


def _bytes_text(nbytes: int) -> str:
    size = float(nbytes)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{nbytes} B"
