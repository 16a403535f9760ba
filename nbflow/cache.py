"""Step results on disk: content-addressed entries written atomically, checked on load.

Layout (one folder per step and key, under the configured cache folder)::

    cache/<step>/<key>/values.pkl      joblib.dump of the step's values (numpy-aware;
                                       loaded with mmap_mode="c" when large)
    cache/<step>/<key>/code.pkl        cloudpickle of values that refer to functions or
                                       classes defined in the notebook itself
    cache/<step>/<key>/outputs.json    the step's captured outputs, per cell (nbformat)
    cache/<step>/<key>/manifest.json   written last: key parts, value names and types,
                                       size and SHA-256 of every file above, the
                                       modules loading the values imports

The key is computed by ``plan.py`` from code, parameters and upstream keys, never from
data, and freshness is "an entry exists for the key". ``joblib.Memory.cache`` is not
used: it decides freshness from one function's source (RELIABILITY.md).

An entry is built in a private staging folder and renamed into place in one step, so
an entry either exists whole or not at all; a folder without a valid manifest, or
whose files fail their checksum, is *corrupt*: it is never loaded, it is moved aside
and the step is recomputed. Pickles run code when loaded, so the cache folder is
private (0700) and ``verify`` refuses entries in a folder others can write to.

Standard library only at import time; joblib and cloudpickle are imported when values
are written or read.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import sys
import time
import types
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .cache_pickle import _CodePickler, probe  # noqa: F401 - probe is part of this module's API
from .errors import CacheCorrupt, NbflowError
from .fsutil import atomic_open, check_private, fsync_dir, fsync_path, private_dir
from .summaries import describe, output_summary  # noqa: F401 - re-exported: the manifest's summary

#: Bump when the layout or the key recipe changes: every key changes with it.
CACHE_FORMAT = 2
MANIFEST = "manifest.json"
OUTPUTS = "outputs.json"
#: Values files larger than this are memory-mapped (copy-on-write) when loaded.
MMAP_THRESHOLD = 1 << 20
#: Hidden folders nbflow leaves beside entries (``stage``, ``invalidate``, ``quarantine``).
_LEFTOVER = re.compile(r"\.(staging|invalidated|corrupt)-[0-9a-f-]+\Z")
#: Names that belong to IPython, never to a step.
IGNORED_NAMES = frozenset({"In", "Out", "exit", "quit", "get_ipython", "open"})


@dataclass(frozen=True)
class Entry:
    """A committed cache entry (its manifest was read and its files are present)."""

    step: str
    key: str
    path: Path
    manifest: Mapping[str, Any]

    @property
    def names(self) -> Mapping[str, Mapping[str, Any]]:
        """Cached values: name -> ``{"file", "type", "summary", "scalar"}``."""
        return self.manifest.get("values", {})

    @property
    def missing(self) -> Mapping[str, str]:
        """Values the step wrote that could not be cached, with the reason."""
        return self.manifest.get("missing", {})

    @property
    def parts(self) -> Mapping[str, Any]:
        """The key's ingredients (``plan.KeyParts`` as a dict), for explaining changes."""
        return self.manifest.get("parts", {})

    @property
    def created(self) -> float:
        return float(self.manifest.get("created", 0.0))

    @property
    def items(self) -> list[str]:
        """For a ``map:`` step: the keys of its elements' entries, in order."""
        return list(self.manifest.get("items", []))

    @property
    def out_files(self) -> Mapping[str, Mapping[str, Any]]:
        """Files the step declared ``out:``: path -> ``{"file", "size", "sha256", "mtime_ns"}``."""
        return self.manifest.get("out_files", {})


class Cache:
    """The step-result store under one folder."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    # ------------------------------------------------------------- lookup
    def entry_dir(self, step: str, key: str) -> Path:
        return self.root / step / key

    def lookup(self, step: str, key: str) -> Entry | None:
        """The entry for ``key``, ``None`` if there is none; ``CacheCorrupt`` if broken.

        Cheap: reads the manifest and checks sizes, never the data (see ``verify``).
        """
        path = self.entry_dir(step, key)
        try:
            raw = (path / MANIFEST).read_bytes()
        except FileNotFoundError:
            if path.is_dir():
                raise CacheCorrupt(step, key, path, "manifest missing") from None
            return None
        except NotADirectoryError:
            raise CacheCorrupt(step, key, path, "not a folder") from None
        try:
            manifest = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise CacheCorrupt(step, key, path, "manifest is not valid JSON") from None
        if not isinstance(manifest, dict) or manifest.get("key") != key or manifest.get("format") != CACHE_FORMAT:
            raise CacheCorrupt(step, key, path, "manifest does not describe this entry")
        for name, info in manifest.get("files", {}).items():
            try:
                size = (path / name).stat().st_size
            except FileNotFoundError:
                raise CacheCorrupt(step, key, path, f"{name} is missing") from None
            if size != info.get("size"):
                raise CacheCorrupt(step, key, path, f"{name} has {size} bytes, the manifest says {info.get('size')}")
        return Entry(step, key, path, manifest)

    def entries(self, step: str | None = None) -> Iterator[Entry]:
        """Every readable entry (of ``step``), corrupt ones skipped."""
        steps = [self.root / step] if step else sorted(p for p in self._dirs(self.root))
        for folder in steps:
            for path in self._dirs(folder):
                with contextlib.suppress(CacheCorrupt):
                    entry = self.lookup(folder.name, path.name)
                    if entry is not None:
                        yield entry

    def latest(self, step: str, notebook: str | None = None) -> Entry | None:
        """The most recently written entry of ``step`` (to explain why it is stale).

        With ``notebook``, only entries written by runs of that notebook count: steps of
        different notebooks in one folder may share a name.
        """
        entries = [e for e in self.entries(step) if notebook is None or e.manifest.get("notebook") == notebook]
        return max(entries, key=lambda e: e.created, default=None)

    @staticmethod
    def _dirs(folder: Path) -> Iterator[Path]:
        try:
            with os.scandir(folder) as it:
                for item in it:
                    if item.is_dir(follow_symlinks=False) and not item.name.startswith("."):
                        yield Path(item.path)
        except (FileNotFoundError, NotADirectoryError):  # no such folder, or a file in the way: no entries
            return

    # ------------------------------------------------------------- verify
    def verify(self, entry: Entry) -> None:
        """Check ownership, permissions and every file's SHA-256; ``CacheCorrupt`` if bad.

        A file is hashed again only if it may have been written since it was hashed at
        commit: its ``stamp`` (size, inode, modification and change times, recorded in the
        manifest) differs. Any write, truncation, ``chmod`` or ``utime`` changes the change
        time, which no program can set back; a copied or moved cache is hashed in full.
        So restoring a 200 MB array hashes nothing (``hashed_bytes`` counts what was).
        """
        for folder in (self.root, entry.path.parent, entry.path):
            check_private(folder)
        for i, key in enumerate(entry.items):
            item = self.lookup(entry.step, key)
            if item is None:
                raise CacheCorrupt(entry.step, entry.key, entry.path, f"element {i}'s entry is missing")
            self.verify(item)
        for name, info in entry.manifest.get("files", {}).items():
            if _unchanged_since_hashed(entry.path / name, info):
                continue
            try:
                digest = file_sha256(entry.path / name)
            except OSError as e:
                raise CacheCorrupt(entry.step, entry.key, entry.path, f"{name}: {e.strerror}") from None
            if digest != info.get("sha256"):
                raise CacheCorrupt(entry.step, entry.key, entry.path, f"{name} fails its checksum")

    def invalidate(self, step: str, key: str) -> bool:
        """Forget the entry of ``step`` for ``key`` (moved aside, marked as invalidated)."""
        path = self.entry_dir(step, key)
        try:
            os.replace(path, path.parent / f".invalidated-{key}-{uuid.uuid4().hex[:8]}")
        except FileNotFoundError:
            return False
        return True

    def was_invalidated(self, step: str, key: str) -> bool:
        """Whether the entry for ``key`` was removed by ``invalidate``."""
        prefix = f".invalidated-{key}-"
        try:
            return any(n.startswith(prefix) for n in os.listdir(self.root / step))
        except OSError:  # no folder for the step (or not a folder): nothing was invalidated
            return False

    def quarantine(self, step: str, key: str) -> None:
        """Move a corrupt entry aside so it is never looked up again."""
        path = self.entry_dir(step, key)
        with contextlib.suppress(FileNotFoundError):
            os.replace(path, path.parent / f".corrupt-{key}-{uuid.uuid4().hex[:8]}")

    # --------------------------------------------------------------- load
    def load_values(self, entry: Entry, names: Iterable[str] | None = None, *, mmap: bool = True) -> dict[str, Any]:
        """The values ``names`` (default: all) of a verified entry.

        Large files are memory-mapped copy-on-write: arrays load instantly and a step
        that modifies one in place changes only its own memory.
        """
        wanted = set(entry.names) if names is None else set(names)
        unknown = wanted - set(entry.names)
        if unknown:
            raise KeyError(f'step "{entry.step}" did not cache {", ".join(sorted(unknown))}')
        by_file: dict[str, set[str]] = {}
        for name in wanted:
            by_file.setdefault(entry.names[name]["file"], set()).add(name)
        foreign = sorted(f for f in by_file if f not in ("items", "module", "code.pkl", "values.pkl"))
        if foreign:
            # another kernel language's file (an R value's .rds): Python cannot load it
            name = sorted(by_file[foreign[0]])[0]
            raise NbflowError(
                f'step "{entry.step}" cached {name} as {entry.names[name].get("type", "a value")} in '
                f"{entry.path / foreign[0]}, which only its own language can load (R: readRDS)"
            )
        values: dict[str, Any] = {}
        if "items" in by_file:
            wanted_items = sorted(by_file.pop("items"))
            lists: dict[str, list[Any]] = {n: [] for n in wanted_items}
            for i, key in enumerate(entry.items):
                item = self.lookup(entry.step, key)
                if item is None:
                    raise CacheCorrupt(entry.step, entry.key, entry.path, f"element {i}'s entry is missing")
                loaded = self.load_values(item, [n for n in wanted_items if n in item.names], mmap=mmap)
                for n in wanted_items:
                    lists[n].append(loaded.get(n))
            values.update(lists)
        try:
            for name in by_file.get("module", ()):
                import importlib

                values[name] = importlib.import_module(entry.names[name]["module"])
            if "code.pkl" in by_file:
                import cloudpickle

                with open(entry.path / "code.pkl", "rb") as f:
                    code = cloudpickle.load(f)
                values.update({n: code[n] for n in by_file["code.pkl"]})
            if "values.pkl" in by_file:
                path = entry.path / "values.pkl"
                if entry.manifest.get("files", {}).get("values.pkl", {}).get("format") == "pickle":
                    import pickle  # written without NumPy loaded (``_dump_plain``): no array in it

                    with open(path, "rb") as f:
                        plain = pickle.load(f)
                else:
                    import joblib

                    mode = "c" if mmap and path.stat().st_size > MMAP_THRESHOLD else None
                    plain = joblib.load(path, mmap_mode=mode)
                values.update({n: plain[n] for n in by_file["values.pkl"]})
        except Exception as e:  # noqa: BLE001 - any failure to unpickle makes the entry unusable
            raise CacheCorrupt(entry.step, entry.key, entry.path, f"cannot load: {type(e).__name__}: {e}") from None
        return values

    def load_outputs(self, entry: Entry) -> list[list[dict[str, Any]]]:
        """The step's captured outputs, one list of nbformat outputs per cell."""
        try:
            return json.loads((entry.path / OUTPUTS).read_bytes())["cells"]
        except FileNotFoundError:
            return []
        except (json.JSONDecodeError, KeyError, TypeError):
            raise CacheCorrupt(entry.step, entry.key, entry.path, f"{OUTPUTS} is not valid") from None

    # -------------------------------------------------------------- write
    def staging_path(self, step: str) -> Path:
        """A new, not yet created, staging folder name for an entry of ``step``.

        The folder is created by ``dump_values`` (or ``write_outputs``) where the
        writing happens; it stays invisible to lookups until ``commit_staged``
        renames it into place.
        """
        return self.root / step / f".staging-{uuid.uuid4().hex}"

    def prepare(self, steps: Iterable[str]) -> None:
        """Make the folders that entries of ``steps`` will be staged in, ahead of the
        writer (a kernel then makes one folder per step on its path, not two)."""
        for step in steps:
            with contextlib.suppress(OSError):  # the writer makes it, or says why it cannot
                private_dir(self.root / step)

    def stage(self, step: str) -> Path:
        """A new private staging folder for an entry of ``step`` (created)."""
        path = self.staging_path(step)
        private_dir(path)
        return path

    def write_outputs(self, staging: Path, cells: list[list[dict[str, Any]]]) -> None:
        """Put the step's captured outputs in a staging folder (fsynced at commit)."""
        private_dir(staging)
        data = json.dumps({"cells": cells}, ensure_ascii=False).encode("utf-8")
        with open(staging / OUTPUTS, "wb") as f:
            f.write(data)

    def dump_values(
        self,
        staging: Path,
        values: Mapping[str, Any],
        required: Iterable[str] = (),
        by_reference: Iterable[str] = (),
    ) -> dict[str, Any]:
        """Write ``values`` into ``staging``; return what the manifest needs to know.

        Runs where the values live (the kernel, a Dask worker). ``required`` values that
        cannot be pickled are listed as ``missing`` (the plan then reruns the step when
        they are needed); other unpicklable values are left out. Functions and classes
        named in ``by_reference`` (the setup's, which runs before any restore) are
        pickled by name, everything else defined in the notebook by value.
        """
        private_dir(staging)
        required = set(required)
        files: dict[str, dict[str, Any]] = {}
        described: dict[str, dict[str, Any]] = {}
        missing: dict[str, str] = {}
        plain: dict[str, Any] = {}
        interactive: dict[str, Any] = {}
        modules: set[str] = set()
        for name, value in values.items():
            if name in IGNORED_NAMES or (name.startswith("_") and name not in required):
                continue
            if isinstance(value, types.ModuleType):
                described[name] = {"file": "module", "module": value.__name__, "type": "module"}
                continue
            try:
                found: set[str] = set()
                kind = probe(value, found)
            except Exception as e:  # noqa: BLE001 - anything unpicklable is reported, not fatal
                if name in required:
                    missing[name] = f"cannot be pickled ({type(e).__name__}: {e})"[:300]
                continue
            (interactive if kind == "interactive" else plain)[name] = value
            modules |= found
            described[name] = {"file": "code.pkl" if kind == "interactive" else "values.pkl", **describe(value)}
        if plain:
            written: dict[str, str] = {}
            files["values.pkl"] = _write_hashed(staging / "values.pkl", lambda f: written.update(_dump_plain(plain, f)))
            files["values.pkl"].update(written)
        if interactive:
            files["code.pkl"] = _write_hashed(
                staging / "code.pkl", lambda f: _CodePickler(f, set(by_reference)).dump(interactive)
            )
        return {
            "values": described,
            "missing": missing,
            "files": files,
            "summary": output_summary(described, files),
            "modules": sorted(modules),
        }

    def commit_staged(
        self,
        staging: Path,
        *,
        step: str,
        key: str,
        parts: Mapping[str, Any],
        dumped: Mapping[str, Any],
        meta: Mapping[str, Any] | None = None,
    ) -> Entry:
        """Make a staged entry durable and visible: fsync its files, write the manifest,
        rename the folder into place. ``dump_values`` and ``write_outputs`` may have
        run in other processes. If another process committed the same key meanwhile
        (same inputs), theirs is kept."""
        private_dir(staging)
        files = dict(dumped.get("files", {}))
        for info in dumped.get("out_files", {}).values():
            files[info["file"]] = {"size": info["size"], "sha256": info["sha256"]}
        if (staging / OUTPUTS).exists():
            files[OUTPUTS] = {"size": (staging / OUTPUTS).stat().st_size, "sha256": file_sha256(staging / OUTPUTS)}
        for name in files:
            fsync_path(staging / name)
            files[name] = {**files[name], "stamp": _stamp(staging / name)}
        manifest = {
            "format": CACHE_FORMAT,
            "step": step,
            "key": key,
            "parts": dict(parts),
            "created": time.time(),
            "values": dict(dumped.get("values", {})),
            "missing": dict(dumped.get("missing", {})),
            "out_files": dict(dumped.get("out_files", {})),
            "out_patterns": list(dumped.get("out_patterns", [])),
            "items": list(dumped.get("items", [])),
            "files": files,
            "summary": str(dumped.get("summary", "")),
            "modules": [str(m) for m in dumped.get("modules", [])],
            **(meta or {}),
        }
        with open(staging / MANIFEST, "wb") as f:
            f.write(json.dumps(manifest, indent=1, default=str).encode())
            f.flush()
            os.fsync(f.fileno())
        fsync_dir(staging)
        final = self.entry_dir(step, key)
        try:
            os.replace(staging, final)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
            existing = self.lookup(step, key)
            if existing is None:
                raise
            return existing
        fsync_dir(final.parent)
        return Entry(step, key, final, manifest)

    def commit(
        self,
        staging: Path,
        *,
        step: str,
        key: str,
        parts: Mapping[str, Any],
        values: Mapping[str, Any],
        required: Iterable[str] = (),
        by_reference: Iterable[str] = (),
        meta: Mapping[str, Any] | None = None,
    ) -> Entry:
        """``dump_values`` then ``commit_staged``, in one process."""
        dumped = self.dump_values(staging, values, required, by_reference)
        return self.commit_staged(staging, step=step, key=key, parts=parts, dumped=dumped, meta=meta)

    def stage_files(
        self, staging: Path, folder: Path, names: Iterable[str], patterns: Mapping[str, str] | None = None
    ) -> dict[str, dict[str, Any]]:
        """Copy a step's ``out:`` files (relative to ``folder``) into ``staging``.

        Done right after the step, before a later step can change them. Returns the
        manifest's ``out_files`` part (the copies are also listed as entry files, so
        ``verify`` checks them); ``patterns`` names the ``out:`` folder or glob each file
        was found under (``outfiles.expand``), recorded as its ``pattern``.
        """
        private_dir(staging / "files")
        staged = {}
        for i, name in enumerate(names):
            source = folder / name
            stat = source.stat()
            digest = hashlib.sha256()
            with open(source, "rb") as src, open(staging / "files" / str(i), "wb") as dest:
                while block := src.read(8 << 20):
                    digest.update(block)
                    dest.write(block)
            staged[name] = {
                "file": f"files/{i}",
                "size": stat.st_size,
                "sha256": digest.hexdigest(),
                "mtime_ns": stat.st_mtime_ns,
                "pattern": (patterns or {}).get(name, name),
            }
        return staged

    def restore_files(self, entry: Entry, folder: Path) -> list[str]:
        """Put a cached step's ``out:`` files back where they belong, each atomically.

        A file whose size and modification time are those recorded is left alone;
        any other (missing, edited) is replaced by the cached copy. Under an ``out:``
        folder or glob, a file the entry does not list is removed only if nbflow wrote
        it (another entry of the step lists it, and it is unchanged since): a file of
        the user's is never deleted. Returns the paths restored, and those removed as
        ``-path``. Call ``verify`` on the entry first.
        """
        restored = []
        folders: set[Path] = set()
        for name, info in entry.out_files.items():
            target = folder / name
            try:
                stat = target.stat()
                if as_recorded(stat, info):
                    continue
            except FileNotFoundError:
                pass
            target.parent.mkdir(parents=True, exist_ok=True)
            with (
                atomic_open(target, "wb", perms=0o644, sync_dir=False) as f,
                open(entry.path / info["file"], "rb") as src,
            ):
                shutil.copyfileobj(src, f, 8 << 20)
            os.utime(target, ns=(info["mtime_ns"], info["mtime_ns"]))
            folders.add(target.parent)
            restored.append(name)
        for parent in folders:  # once per folder, not once per file (an out: folder of 1000 plots)
            fsync_dir(parent)
        patterns = {info.get("pattern", name) for name, info in entry.out_files.items()}
        patterns |= set(entry.manifest.get("out_patterns", ()))
        removed = self.remove_recorded(entry.step, folder, patterns, keep=entry.out_files)
        return restored + [f"-{name}" for name in removed]

    def remove_recorded(
        self, step: str, folder: Path, patterns: Iterable[str], keep: Collection[str] = ()
    ) -> list[str]:
        """Delete the files under ``step``'s ``out:`` folders and globs ``patterns`` that an
        entry of ``step`` lists and that are unchanged since (same size and modification
        time): files nbflow wrote or restored, never one of the user's. ``keep`` is spared.
        Returns the paths deleted."""
        from .outfiles import expand, kind

        found = [n for p in sorted(set(patterns)) if kind(p) != "file" for n in expand(folder, p) if n not in keep]
        if not found:
            return []
        written: dict[str, list[Mapping[str, Any]]] = {}
        for other in self.entries(step):
            for name, info in other.out_files.items():
                written.setdefault(name, []).append(info)
        removed = []
        for name in dict.fromkeys(found):
            with contextlib.suppress(OSError):
                stat = (folder / name).stat()
                if any(as_recorded(stat, info) for info in written.get(name, ())):
                    (folder / name).unlink()
                    removed.append(name)
        return removed

    def discard(self, staging: Path) -> None:
        """Remove an unfinished entry."""
        shutil.rmtree(staging, ignore_errors=True)

    # -------------------------------------------------------------- prune
    def prune(
        self,
        keep: set[tuple[str, str]],
        older_than: float = 3600.0,
        may_delete: Callable[[Entry], bool] | None = None,
    ) -> tuple[int, int]:
        """Delete entries not in ``keep`` and nbflow's leftovers older than ``older_than`` seconds.

        Only what nbflow provably wrote is deleted: an entry whose manifest names it
        (and that ``may_delete`` allows), or a hidden staging/invalidated/corrupt folder.
        Symbolic links are never followed nor removed. Returns (entries removed, bytes freed).
        """
        removed = freed = 0
        now = time.time()
        for folder in self._dirs(self.root):
            with os.scandir(folder) as it:
                items = [item for item in it if not item.is_symlink() and item.is_dir(follow_symlinks=False)]
            for item in items:
                path = Path(item.path)
                if item.name.startswith("."):
                    if not _LEFTOVER.match(item.name) or now - item.stat(follow_symlinks=False).st_mtime < older_than:
                        continue
                else:
                    if (folder.name, item.name) in keep:
                        continue
                    try:
                        entry = self.lookup(folder.name, item.name)
                    except CacheCorrupt:
                        continue  # not provably ours: a run quarantines it, clean leaves it
                    if entry is None or (may_delete is not None and not may_delete(entry)):
                        continue
                freed += _size(path)
                shutil.rmtree(path, ignore_errors=True)
                removed += not item.name.startswith(".")
            with contextlib.suppress(OSError):
                folder.rmdir()  # only if now empty
        return removed, freed


# --------------------------------------------------------------------- helpers


#: Bytes this process has hashed to check files (``file_sha256``): benchmarks read it.
_HASHED = [0]


def hashed_bytes() -> int:
    """How many bytes ``file_sha256`` has read in this process."""
    return _HASHED[0]


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file, read in large blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(8 << 20):
            digest.update(block)
            _HASHED[0] += len(block)
    return digest.hexdigest()


def as_recorded(stat: os.stat_result, info: Mapping[str, Any]) -> bool:
    """Whether a file with ``stat`` is the ``out:`` file an entry recorded as ``info``
    (same size and modification time: what nbflow wrote or restored, not edited since)."""
    return (stat.st_size, stat.st_mtime_ns) == (info.get("size"), info.get("mtime_ns"))


def _stamp(path: Path) -> list[int]:
    """What changes whenever a file is written: size, device, inode, mtime and ctime."""
    st = os.stat(path)
    return [st.st_size, st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns]


def _unchanged_since_hashed(path: Path, info: Mapping[str, Any]) -> bool:
    """Whether ``path`` is the very file hashed at commit (``Cache.verify``)."""
    stamp = info.get("stamp")
    if not stamp:
        return False
    try:
        return _stamp(path) == list(stamp)
    except OSError:
        return False


def _size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):  # never follows symbolic links
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


class _HashingWriter(io.RawIOBase):
    """A write-only file that hashes what passes through (joblib needs ``tell``)."""

    def __init__(self, f: Any) -> None:
        self.f = f
        self.sha = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self.sha.update(view)
        self.f.write(view)
        self.size += view.nbytes
        return view.nbytes

    def tell(self) -> int:
        return self.size


def _write_hashed(path: Path, dump: Any) -> dict[str, Any]:
    """Write through ``dump(file)``, hashing on the way (fsynced later, at commit)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb", buffering=1 << 20) as f:
        writer = _HashingWriter(f)
        dump(writer)
    return {"size": writer.size, "sha256": writer.sha.hexdigest()}


def _dump_plain(values: Mapping[str, Any], f: Any) -> dict[str, str]:
    """joblib's pickle of ``values`` (arrays as raw buffers, memory-mapped when loaded).
    With NumPy not imported no value holds an array, and joblib writes pickle's bytes
    exactly: pickle writes them, without importing joblib and NumPy (a kernel pays
    ~0.2 s for that on its first step), and the manifest says so (``"format": "pickle"``)
    so that loading them does not import joblib either."""
    if "numpy" in sys.modules:
        import joblib

        joblib.dump(values, f)
        return {}
    import pickle

    pickle.Pickler(f, protocol=pickle.DEFAULT_PROTOCOL).dump(values)
    return {"format": "pickle"}
