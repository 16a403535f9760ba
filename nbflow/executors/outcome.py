"""What every executor does with a step's result, written once.

The kernel executor and the Dask executor run steps differently, but what a step's
result becomes must not depend on which one ran it. This module is that part:

* ``commit_entry``: a finished step (or ``map:`` element) becomes a cache entry --
  its outputs written, its values' files completed, the manifest (one format:
  ``ENTRY_META``: run id, duration, notebook, executor) and the rename. One disk-error
  rule: a value that cannot be cached is a warning, but a disk that cannot be written
  (``DISK_ERRNOS``: full, over quota, read-only, I/O error) stops the run naming the
  path, with either executor.
* ``stage_out_files`` / ``out_files_problem``: a step's ``out:`` files, folders and
  globs (``outfiles.py``) checked and copied into its entry.
* ``restore_specs``: before a step runs, the values it needs from cached steps must
  be in entries; when one is not, ``NotRestorable`` says "value X of step P is needed
  by step Y but ...", each executor adding its own advice.
* a ``map:`` step's elements: ``element_label``, ``element_fingerprint`` (what keys an
  element), ``element_outputs`` (the step's outputs, element after element),
  ``elements_failed`` (its error), ``map_values`` (its manifest's values).
* ``process_death``: how a kernel or worker process ended, in words.
* output truncation, two markers with two names: ``cap_marker`` (written where the
  output is produced, when a cell passes the output limit: "this cell printed or
  displayed more than 10 MB") and ``dropped_marker`` (added where outputs are
  collected, counting what was dropped there: "123 more bytes not kept").
* ``strip_ansi`` and ``error_text``: a step's traceback as plain text.
* ``save_output_notebook`` / ``OutputNotWritten``: the executed notebook that cannot be
  written (disk full) ends the run with one line naming the path, never a traceback.

It is imported in the kernel and on Dask workers too (the fan-out helpers, the
markers): it imports only the standard library at module level. It must not talk to
the run store, start processes, or know which executor calls it beyond the name it
writes into the manifest.
"""

from __future__ import annotations

import errno
import os
import re
import signal
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import NbflowError

if TYPE_CHECKING:
    from .base import RunContext

#: Write errors that mean the cache cannot be written at all: the run fails, naming the path.
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO})
#: What every cache entry's manifest says about the run that wrote it (besides the entry's own fields).
ENTRY_META = ("run_id", "duration", "notebook", "executor")

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


# ------------------------------------------------------------------ commit


def entry_meta(ctx: RunContext, duration: float, executor: str) -> dict[str, Any]:
    """The manifest fields ``ENTRY_META`` of an entry written by run ``ctx``."""
    return {
        "run_id": ctx.run_id,
        "duration": duration,
        "notebook": ctx.pipeline.path.name,
        "executor": executor,
    }


def disk_error(err: int | None) -> bool:
    """Whether ``err`` (an ``errno``) means the disk cannot be written at all."""
    return err in DISK_ERRNOS


def commit_entry(
    ctx: RunContext,
    step: str,
    staging: Path,
    *,
    outputs: list[list[dict[str, Any]]],
    dumped: Mapping[str, Any],
    duration: float,
    executor: str,
    key: str | None = None,
    files: Mapping[str, bytes] | None = None,
    out_files: Mapping[str, Any] | None = None,
) -> bool:
    """Make ``staging`` the cache entry of ``step`` (under its run key, or ``key`` for a
    ``map:`` element); ``True`` if it was committed.

    ``dumped`` is ``Cache.dump_values``' answer where the values live (``dump_error``'s
    if it failed); ``files`` the entry's files when they travelled as bytes;
    ``out_files`` what ``stage_out_files`` staged. A failure is a warning on the step;
    a disk error (``DISK_ERRNOS``) also sets ``ctx.failure``, naming the path, so the
    run stops and ends failed.
    """
    cache = ctx.cache
    if "error" in dumped:
        cache.discard(staging)
        ctx.warn(f"values not cached: {dumped['error']}", step)
        if disk_error(dumped.get("errno")):
            ctx.failure = f'step "{step}": cannot write its cache entry: {dumped["error"]}'
        return False
    for value, why in dumped.get("missing", {}).items():
        ctx.warn(f"value {value} not cached: {why}", step)
    try:
        from ..fsutil import private_dir

        private_dir(staging)
        for name, data in (files or {}).items():
            with open(staging / name, "wb") as f:
                f.write(data)
        cache.write_outputs(staging, outputs)
        cache.commit_staged(
            staging,
            step=step,
            key=key or ctx.key(step),
            parts=ctx.parts(step),
            dumped={**dumped, "out_files": dict(out_files or {}), "out_patterns": _patterns(ctx, step, key)},
            meta={
                **entry_meta(ctx, duration, executor),
                **(ctx.keys.manifest(step) if key in (None, ctx.key(step)) else {}),
            },
        )
    except OSError as e:
        _not_written(ctx, step, staging, e)
        return False
    return True


def out_files_found(ctx: RunContext, step: str, folder: Path | None = None) -> dict[str, str]:
    """``{file: pattern}``: the files ``step``'s ``out:`` patterns stand for now (``outfiles.expand``),
    never the notebook itself nor anything in nbflow's home."""
    from ..outfiles import expand

    folder = folder or ctx.pipeline.path.parent
    own = {ctx.pipeline.path.name}
    found: dict[str, str] = {}
    for pattern in ctx.pipeline.steps[step].out_files:
        for name in expand(folder, pattern):
            if name not in own and not _under(folder / name, ctx.config.home):
                found.setdefault(name, pattern)
    return found


def _under(path: Path, folder: Path) -> bool:
    try:
        return path.resolve().is_relative_to(folder.resolve())
    except OSError:
        return False


def out_files_problem(ctx: RunContext, step: str) -> str:
    """Why ``step``'s declared outputs are not there after it ran (``""``: they are)."""
    from ..outfiles import problem

    info = ctx.pipeline.steps[step]
    return problem(ctx.pipeline.path.parent, info.out_files, info.optional_outs)


def clear_old_out_files(ctx: RunContext, step: str) -> dict[str, tuple[int, int]]:
    """Before ``step`` runs: remove the files under its ``out:`` folders and globs that an
    earlier run of it wrote and nothing changed since (``Cache.remove_recorded``), so
    its entry lists what this run writes, not what an older one left behind.

    Returns what is left there (the user's own files): ``{file: (size, mtime_ns)}``;
    ``stage_out_files`` leaves out those the step did not touch."""
    from ..outfiles import kind

    patterns = ctx.pipeline.steps[step].out_files
    if not any(kind(p) != "file" for p in patterns):
        return {}
    folder = ctx.pipeline.path.parent
    try:
        ctx.cache.remove_recorded(step, folder, patterns)
    except OSError as e:
        ctx.warn(f"could not remove the out: files an earlier run wrote: {e}", step)
    return {
        name: _stamp(folder / name) for name, pattern in out_files_found(ctx, step).items() if kind(pattern) != "file"
    }


def _stamp(path: Path) -> tuple[int, int]:
    try:
        st = path.stat()
        return st.st_size, st.st_mtime_ns
    except OSError:
        return -1, -1


def stage_out_files(
    ctx: RunContext,
    step: str,
    staging: Path,
    found: Mapping[str, str] | None = None,
    before: Mapping[str, tuple[int, int]] | None = None,
) -> dict[str, Any] | None:
    """Copy ``step``'s ``out:`` files into its staging folder right after it ran (before
    a later step can change them); ``None`` if they could not be (warned as
    ``commit_entry`` would; the entry is then not committed). ``found``: ``{file: pattern}``
    when the files came from elsewhere (a Dask worker without this disk), else those on
    disk, less the files ``before`` (``clear_old_out_files``) shows the step did not touch."""
    if not ctx.pipeline.steps[step].out_files:
        return {}
    folder = ctx.pipeline.path.parent
    try:
        if found is not None:
            files = dict(found)
        else:
            files = {n: p for n, p in out_files_found(ctx, step).items() if (before or {}).get(n) != _stamp(folder / n)}
        return ctx.cache.stage_files(staging, folder, list(files), files)
    except OSError as e:
        _not_written(ctx, step, staging, e)
        return None


def _not_written(ctx: RunContext, step: str, staging: Path, e: OSError) -> None:
    ctx.cache.discard(staging)
    message = f"cache entry not written ({e.strerror or e}: {e.filename or staging})"
    ctx.warn(message, step)
    if disk_error(e.errno):
        ctx.failure = f'step "{step}": {message}'  # the disk is full or read-only: stop saying "done"


def _patterns(ctx: RunContext, step: str, key: str | None) -> list[str]:
    """The step's ``out:`` folders and globs, kept in its manifest (a restore cleans under them)."""
    from ..outfiles import kind

    if key not in (None, ctx.key(step)):
        return []  # a map: element
    return [p for p in ctx.pipeline.steps[step].out_files if kind(p) != "file"]


def dump_error(e: BaseException) -> dict[str, Any]:
    """What a failed ``Cache.dump_values`` reports to the executor (``commit_entry``)."""
    return {"error": f"{type(e).__name__}: {e}", "errno": getattr(e, "errno", None)}


# ----------------------------------------------------------------- restores


class NotRestorable(Exception):
    """A value a step needs is not in its provider's cache entry."""

    def __init__(self, value: str, provider: str, step: str, why: str) -> None:
        self.value = value
        self.provider = provider
        self.step = step
        self.why = why
        super().__init__(f'value {value} of step "{provider}" is needed by step "{step}" but {why}')


def restore_specs(ctx: RunContext, step: str, needs: Mapping[str, Sequence[str]], mates: Any = None) -> list[list[Any]]:
    """``[[provider, key, names]]`` to restore before ``step`` runs, from ``needs``
    (``{provider: names}``); raises ``NotRestorable`` for the first value not cached.
    ``mates(provider, names, entry)`` adds values restored along (sharing memory or an
    index with ``names``: ``fingerprint.alias_groups``)."""
    specs: list[list[Any]] = []
    for provider, names in needs.items():
        key = ctx.key(provider)
        entry = ctx.cache.lookup(provider, key)
        missing = [n for n in names if entry is None or n not in entry.names]
        if missing:
            why = (entry.missing.get(missing[0]) if entry else None) or "it was not cached"
            raise NotRestorable(missing[0], provider, step, why)
        along = mates(provider, list(names), entry) if mates is not None else []
        specs.append([provider, key, [*names, *along]])
    return specs


# ------------------------------------------------------------------ fan-out


def element_label(value: Any) -> str:
    """A short, readable name for a fan-out element (its repr, cut)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def element_fingerprint(value: Any, hash_value: Any) -> str:
    """What identifies a fan-out element: its value, and the content of a file it names.

    An element that is a path to an existing file stands for that file: if a step
    rewrites the file under the same name, the element's key must change.
    """
    content = ""
    if isinstance(value, str | os.PathLike):
        try:
            if os.path.isfile(value):
                from ..cache import file_sha256

                content = file_sha256(value)
        except (OSError, ValueError):
            pass
    return hash_value((value, content))


def element_outputs(cells: int, elements: Sequence[tuple[str, Sequence[Sequence[Any]]]]) -> list[list[Any]]:
    """A ``map:`` step's outputs, per cell: each element's (``(label, outputs per cell)``,
    in element order) after a line naming it, as every executor shows them."""
    combined: list[list[Any]] = [[] for _ in range(cells)]
    for i, (label, outputs) in enumerate(elements):
        header = {"output_type": "stream", "name": "stdout", "text": f"[nbflow] element {i}: {label}\n"}
        for j in range(cells):
            combined[j] += [header, *(outputs[j] if j < len(outputs) else [])]
    return combined


def elements_failed(count: int, failures: Mapping[int, tuple[str, str]]) -> str:
    """The error of a ``map:`` step whose elements ``{index: (label, error)}`` failed."""
    first = min(failures)
    label, error = failures[first]
    return f"{len(failures)} of {count} elements failed; element {first} ({label}): {error}"


def map_values(names: Iterable[str], count: int) -> dict[str, Any]:
    """A ``map:`` step's cache manifest values: each name a list spread over the elements' entries."""
    return {"values": {n: {"file": "items", "type": "list", "summary": f"{count} items"} for n in names}}


# ------------------------------------------------------------ process death


def process_death(what: str, exitcode: int) -> str:
    """How a kernel or worker process ended (``exitcode`` as ``Popen.returncode``: minus
    the signal), as a person would want to read it: ``"kernel died (signal 9; possibly
    out of memory)"``."""
    if exitcode < 0:
        sig = -exitcode
        if sig == signal.SIGKILL:
            return f"{what} died (signal {sig}; possibly out of memory)"
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else "unknown signal"
        return f"{what} died (signal {sig}, {name})"
    return f"{what} died (exit code {exitcode})"


# --------------------------------------------------------------- truncation


def _size_text(nbytes: int) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if nbytes >= size:
            return f"{nbytes / size:.3g} {unit}"
    return f"{nbytes} bytes"


def cap_marker(limit: int) -> str:
    """The line written where a cell's output is produced once it passes ``limit`` bytes."""
    return (
        f"\n[nbflow: output truncated: this cell printed or displayed more than {_size_text(limit)}; "
        "the rest was not kept]\n"
    )


def dropped_marker(nbytes: int) -> str:
    """The line added where a cell's outputs are collected when ``nbytes`` were dropped there."""
    return f"[nbflow: output truncated: {nbytes} more bytes not kept]\n"


# --------------------------------------------------------------- tracebacks


def strip_ansi(text: str) -> str:
    """``text`` without terminal colour codes (IPython colours its tracebacks)."""
    return _ANSI.sub("", text)


def error_text(outputs: Iterable[Mapping[str, Any]]) -> str:
    """The plain-text traceback of the first ``error`` output among a cell's ``outputs``."""
    for output in outputs:
        if output.get("output_type") == "error":
            return strip_ansi("\n".join(output.get("traceback", [])))
    return ""


# ----------------------------------------------------------- output notebook


class OutputNotWritten(NbflowError):
    """The executed notebook could not be written (the run's results are in the cache)."""

    def __init__(self, path: str | Path, error: OSError) -> None:
        self.path = Path(path)
        super().__init__(f"output notebook not written ({error.strerror or error}): {path}")


def save_output_notebook(path: Path, data: bytes) -> None:
    """Write the executed notebook ``data`` to ``path`` atomically; ``OutputNotWritten``
    if the disk refuses."""
    from ..fsutil import atomic_write_bytes

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, data, perms=0o644)
    except OSError as e:
        raise OutputNotWritten(path, e) from None


__all__ = [
    "DISK_ERRNOS",
    "ENTRY_META",
    "NotRestorable",
    "OutputNotWritten",
    "cap_marker",
    "commit_entry",
    "disk_error",
    "dropped_marker",
    "dump_error",
    "element_fingerprint",
    "element_label",
    "element_outputs",
    "elements_failed",
    "entry_meta",
    "error_text",
    "map_values",
    "process_death",
    "restore_specs",
    "save_output_notebook",
    "clear_old_out_files",
    "out_files_found",
    "out_files_problem",
    "stage_out_files",
    "strip_ansi",
]
