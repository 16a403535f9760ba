"""What runs in the kernel on the kernel executor's behalf (``KernelSide``).

The kernel executor creates one ``KernelSide`` in the user's namespace as
``__nbflow__`` and calls it with silent executions and ``user_expressions``:

* ``restore(specs)`` loads cached values into the namespace before a step that needs
  them runs (``specs``: ``[[step, key, [names]], ...]``; the entries were verified by
  the executor while the kernel started).
* ``watch_on_request(names)`` (once) hooks IPython's ``pre_run_cell``: a step's first
  cell whose execute request carries ``nbflow_watch`` metadata (the names the step
  reads) fingerprints them just before its code runs (``watch``), with no round trip of
  its own; a kernel that does not pass request metadata to its cells answers false and
  the executor sends ``watch`` in a silent execution instead.
* ``dump(staging, names, required)`` runs as a ``user_expression`` of a step's last
  cell, so storing costs no extra round trip. Small values are written at once; large
  ones (``async_bytes`` and up) are written while the next steps run, as they were when
  the step ended, by a forked writer or from a copy (``background.BackgroundWrites``).
  The executor commits the entry (outputs, manifest, rename) when the dump is done.
* ``collect(wait)`` returns the finished background dumps.
* ``map_*`` run a ``map:`` step's elements one by one.

Results travel back as JSON text. ``limit_outputs`` caps what one cell sends out.

This module runs inside the user's kernel: it must stay light to import, must not talk
to the run store or publish events (the executor does that), and must not import the
executor's client side.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .. import hidden_state
from ..cache import Cache, Entry
from ..fingerprint import in_namespace
from .background import BackgroundWrites
from .outcome import cap_marker, dump_error, element_fingerprint, element_label


def _user_namespace() -> dict[str, Any]:
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None:  # pragma: no cover - only used inside IPython
        raise RuntimeError("nbflow.executors.in_kernel needs an IPython shell")
    return shell.user_ns


def approximate_nbytes(value: Any, depth: int = 2) -> int:
    """A cheap estimate of a value's data size (arrays, frames, containers of them)."""
    nbytes = getattr(value, "nbytes", None)
    if isinstance(nbytes, int):
        return nbytes
    usage = getattr(value, "memory_usage", None)
    if callable(usage) and hasattr(value, "columns"):
        try:
            return int(usage(deep=False).sum())
        except Exception:  # noqa: BLE001 - an estimate only
            return 0
    if depth and isinstance(value, list | tuple | dict):
        items = value.values() if isinstance(value, dict) else value
        return sum(approximate_nbytes(v, depth - 1) for v in list(items)[:1000])
    return 0


class KernelSide:
    """The kernel's half of the kernel executor (see module docstring)."""

    def __init__(
        self,
        cache_root: str,
        by_reference: Iterable[str] = (),
        async_bytes: int = 8 << 20,
        namespace: dict[str, Any] | None = None,
        output_limit: int | None = None,
    ) -> None:
        if output_limit:
            limit_outputs(output_limit)
        self.cache = Cache(cache_root)
        self.by_reference = list(by_reference)
        self.async_bytes = async_bytes
        self._namespace = namespace
        self.writes = BackgroundWrites(self._dump)
        # Before the setup runs: hidden state is captured relative to this.
        self.baseline = hidden_state.Baseline.capture()

    @property
    def namespace(self) -> dict[str, Any]:
        return self._namespace if self._namespace is not None else _user_namespace()

    def restore(self, specs: list[list[Any]]) -> str:
        """Load ``[[step, key, names], ...]`` from the cache into the namespace."""
        ns = self.namespace
        loaded = []
        for step, key, names in specs:
            entry = self.cache.lookup(step, key)
            if entry is None:
                raise LookupError(f'nbflow: no cache entry for step "{step}" (key {key[:12]})')
            ns.update(in_namespace(restore_values(self.cache, entry, names, self.baseline), ns))
            loaded.append(step)
        return json.dumps(loaded)

    def watch(self, names: list[str], reads: list[str]) -> str:
        """Fingerprint the pipeline's values ``names`` a step ``reads`` (and those sharing
        memory or an index with them) before it runs (run-time writes)."""
        from ..fingerprint import StepWatch

        self._watch = StepWatch()
        self._watch.before(self.namespace, names, reads)
        return "{}"

    def watch_on_request(self, names: list[str]) -> str:
        """Watch before each cell whose request asks for it (see module docstring);
        JSON true when this kernel passes request metadata to its cells."""
        import inspect

        from IPython import get_ipython

        self.watched = list(names)
        shell = get_ipython()
        kernel = getattr(shell, "kernel", None)
        runner = getattr(shell, "run_cell_async", None)
        passes = (
            shell is not None
            and bool(getattr(kernel, "_do_exec_accepted_params", {}).get("cell_meta"))
            and runner is not None
            and "cell_meta" in inspect.signature(runner).parameters
        )
        if passes and not getattr(self, "_hooked", False):
            shell.events.register("pre_run_cell", self._watch_from_request)
            self._hooked = True
        return json.dumps(passes)

    def _watch_from_request(self, info: Any) -> None:
        reads = (getattr(info, "cell_meta", None) or {}).get("nbflow_watch")
        if reads is None:
            return
        try:
            self.watch(self.watched, reads)
        except Exception as e:  # noqa: BLE001 - reported by the dump (run-time writes not seen)
            self._watch = None
            self._watch_error = f"{type(e).__name__}: {e}"

    def dump(self, staging: str, names: list[str], required: list[str]) -> str:
        """Write the step's values into ``staging`` (see module docstring), with what the
        step left for early cut-off (``learnt``: digests, run-time writes, aliases)."""
        from ..fingerprint import StepWatch

        ns = self.namespace
        watch = getattr(self, "_watch", None)
        self._watch = None
        extra = watch.run_writes(ns, names) if watch is not None else []
        names = [*names, *extra]
        answer = json.loads(self._dump_values(staging, names, required))
        answer["learnt"] = StepWatch.learnt(ns, names, extra)
        if getattr(self, "_watch_error", None):
            answer["watch_error"], self._watch_error = self._watch_error, None
        return json.dumps(answer)

    def _dump_values(self, staging: str, names: list[str], required: list[str]) -> str:
        ns = self.namespace
        values = {n: ns[n] for n in names if n in ns}
        values.update(hidden_state.capture(names, self.baseline))
        if sum(approximate_nbytes(v) for v in values.values()) >= self.async_bytes and self.writes.start(
            staging, values, required
        ):
            return json.dumps({"pending": True})
        return json.dumps(self._dump(staging, values, required))

    def _dump(self, staging: str, values: dict[str, Any], required: list[str]) -> dict[str, Any]:
        try:
            return self.cache.dump_values(Path(staging), values, required, self.by_reference)
        except Exception as e:  # noqa: BLE001 - reported to the executor (outcome.commit_entry)
            return dump_error(e)

    # ------------------------------------------------------------ fan-out
    def map_begin(self, iterable: str, element: str) -> str:
        """Start a ``map:`` step over ``iterable``; return the elements' count, fingerprints
        (a hash of each value, and of the file an element names) and short labels."""
        import joblib

        ns = self.namespace
        items = list(ns[iterable])
        self._map = {"items": items, "element": element, "iterable": iterable, "saved": ns.get(iterable), "values": {}}
        return json.dumps(
            {
                "count": len(items),
                "fingerprints": [element_fingerprint(item, joblib.hash) for item in items],
                "labels": [element_label(item) for item in items],
            }
        )

    def map_item(self, index: int) -> None:
        """Bind element ``index`` for the next run of the step's cells."""
        self.namespace[self._map["element"]] = self._map["items"][index]

    def map_keep(self, index: int, names: list[str]) -> str:
        """Remember the values element ``index`` produced (after its cells ran)."""
        ns = self.namespace
        self._map["values"][index] = {n: ns[n] for n in names if n in ns}
        return json.dumps(sorted(self._map["values"][index]))

    def map_restore_item(self, index: int, step: str, key: str, names: list[str]) -> str:
        """Use a cached element's values instead of running it."""
        entry = self.cache.lookup(step, key)
        if entry is None:
            raise LookupError(f'nbflow: no cache entry for element {index} of step "{step}"')
        self._map["values"][index] = self.cache.load_values(entry, [n for n in names if n in entry.names])
        return json.dumps(sorted(self._map["values"][index]))

    def map_end(self, names: list[str]) -> str:
        """Bind each name the step writes to the list of its per-element values."""
        ns = self.namespace
        state = self._map
        count = len(state["items"])
        for name in names:
            if not hidden_state.is_pseudo(name):  # per element: not the state after the step
                ns[name] = [state["values"].get(i, {}).get(name) for i in range(count)]
        if state["element"] == state["iterable"]:
            ns[state["iterable"]] = state["saved"]
        elif state["element"] in ns:
            del ns[state["element"]]
        self._map = {}
        return json.dumps(count)

    def map_abort(self) -> None:
        """The step stopped mid-way (interrupted): the iterable as it was, the fan-out forgotten."""
        state = getattr(self, "_map", None) or {}
        if state and state["element"] == state["iterable"]:
            self.namespace[state["iterable"]] = state["saved"]
        self._map = {}

    def collect(self, wait: bool = False, only: list[str] | None = None) -> str:
        """Finished background dumps as ``{staging: result}`` (waiting for them if asked)."""
        return json.dumps(self.writes.collect(wait, only))


def restore_values(cache: Cache, entry: Entry, names: list[str], baseline: hidden_state.Baseline) -> dict[str, Any]:
    """Put back the hidden state among ``names`` (first: ``sys.path`` and the working
    folder matter to loading values) and return the values of the others."""
    states = [n for n in names if hidden_state.is_pseudo(n)]
    if states:
        hidden_state.restore(cache.load_values(entry, states), baseline)
    return cache.load_values(entry, [n for n in names if not hidden_state.is_pseudo(n)])


def limit_outputs(limit: int) -> None:
    """Cap what one cell sends out of the kernel (stdout, stderr, displays) at ``limit`` bytes.

    A cell that prints 200 MB would otherwise send 200 MB to nbflow, into the output
    notebook and the cache. Past the limit, one visible marker is written and the rest
    is dropped here, before it is sent. The budget resets before every cell.
    """
    import sys

    from IPython import get_ipython

    shell = get_ipython()
    if shell is None or getattr(shell, "_nbflow_limited", False):
        return
    state = {"used": 0, "marked": False}

    def allow(size: int) -> int:
        room = max(0, limit - state["used"])
        state["used"] += min(size, room)
        return room

    def mark(write: Any) -> None:
        if not state["marked"]:
            state["marked"] = True
            write(cap_marker(limit))

    def limited(original: Any) -> Any:
        def write(text: str, *args: Any, **kwargs: Any) -> int:
            room = allow(len(text))
            if len(text) <= room:
                return original(text, *args, **kwargs)
            if room:
                original(text[:room], *args, **kwargs)
            mark(original)
            return len(text)

        write._nbflow_limited = True  # type: ignore[attr-defined]
        return write

    def before_cell(*_: Any) -> None:
        # IPython wraps the streams' write around every cell and puts back, afterwards,
        # the write it found: wrapping here (inside that) lasts exactly one cell.
        state["used"] = 0
        state["marked"] = False
        for stream in (sys.stdout, sys.stderr):
            if not getattr(stream.write, "_nbflow_limited", False):
                stream.write = limited(stream.write)

    publish = shell.display_pub.publish

    def limited_publish(data: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        size = sum(len(v) if isinstance(v, str | bytes) else len(json.dumps(v, default=str)) for v in data.values())
        if size <= max(0, limit - state["used"]):
            state["used"] += size
            return publish(data, *args, **kwargs)
        mark(sys.stderr.write)
        return None

    shell.display_pub.publish = limited_publish
    shell.events.register("pre_run_cell", before_cell)
    shell._nbflow_limited = True
