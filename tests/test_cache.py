"""The cache: atomic entries, checksums, corruption, permissions, numpy and notebook code."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from nbflow.cache import Cache
from nbflow.errors import CacheCorrupt, CacheRefused

PARTS = {"code": "c", "setup": "s", "params": {}, "upstream": {}, "files": {}, "format": 1}


def commit(cache: Cache, step: str = "a", key: str = "k1", values=None, required=(), outputs=None):
    staging = cache.stage(step)
    if outputs is not None:
        cache.write_outputs(staging, outputs)
    return cache.commit(staging, step=step, key=key, parts=PARTS, values=values or {}, required=required)


def test_roundtrip(tmp_path):
    cache = Cache(tmp_path / "cache")
    entry = commit(cache, values={"x": 1, "s": "text", "d": {"a": [1, 2]}}, outputs=[[{"output_type": "stream"}]])
    found = cache.lookup("a", "k1")
    assert found is not None and found.names.keys() == {"x", "s", "d"}
    cache.verify(found)
    assert cache.load_values(found) == {"x": 1, "s": "text", "d": {"a": [1, 2]}}
    assert cache.load_outputs(found) == [[{"output_type": "stream"}]]
    assert found.names["x"]["scalar"] == "1"
    assert entry.path == tmp_path / "cache" / "a" / "k1"
    assert cache.lookup("a", "other") is None
    assert not [p for p in (tmp_path / "cache" / "a").iterdir() if p.name.startswith(".staging")]


def test_cache_folders_are_private(tmp_path):
    cache = Cache(tmp_path / "cache")
    entry = commit(cache, values={"x": 1})
    for folder in (cache.root, entry.path.parent, entry.path):
        assert folder.stat().st_mode & 0o077 == 0


def test_large_arrays_are_memory_mapped_copy_on_write(tmp_path):
    cache = Cache(tmp_path / "cache")
    big = np.arange(1_000_000, dtype=np.float64)
    commit(cache, values={"big": big, "small": np.arange(3)})
    entry = cache.lookup("a", "k1")
    loaded = cache.load_values(entry)
    assert isinstance(loaded["big"], np.memmap)
    np.testing.assert_array_equal(loaded["big"], big)
    loaded["big"][0] = -1  # copy-on-write: the entry on disk is unchanged
    cache.verify(entry)
    assert cache.load_values(entry)["big"][0] == 0
    assert entry.names["big"]["summary"] == "float64 (1000000,)"


def test_modules_are_stored_by_name(tmp_path):
    import math

    cache = Cache(tmp_path / "cache")
    commit(cache, values={"m": math})
    entry = cache.lookup("a", "k1")
    assert entry.names["m"]["file"] == "module"
    assert cache.load_values(entry)["m"] is math


def test_the_manifest_records_the_modules_loading_the_values_imports(tmp_path):
    import fractions
    from collections import OrderedDict

    cache = Cache(tmp_path / "cache")
    values = {"half": fractions.Fraction(1, 2), "od": OrderedDict(a=np.arange(3)), "lock": threading.Lock()}
    entry = commit(cache, values=values)
    modules = set(entry.manifest["modules"])
    assert {"fractions", "collections", "numpy"} <= modules  # what unpickling them imports
    assert not modules & {"builtins", "__main__", "copyreg", "_thread"}  # nothing to import; the lock is not stored
    assert cache.lookup("a", "k1").manifest["modules"] == entry.manifest["modules"]


def test_notebook_defined_functions_survive_a_new_process(tmp_path):
    # A function defined in __main__ (as in a kernel) is stored by value with cloudpickle.
    script = (
        "import sys; from nbflow.cache import Cache\n"
        "def double(v):\n    return 2 * v + OFFSET\n"
        "OFFSET = 1\n"
        "cache = Cache(sys.argv[1])\n"
        "s = cache.stage('a')\n"
        "cache.commit(s, step='a', key='k1', parts={}, values={'double': double, 'n': 3})\n"
    )
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "cache")], check=True)
    cache = Cache(tmp_path / "cache")
    entry = cache.lookup("a", "k1")
    assert entry.names["double"]["file"] == "code.pkl" and entry.names["n"]["file"] == "values.pkl"
    values = cache.load_values(entry)
    assert values["double"](4) == 9


def test_unpicklable_required_value_is_reported_missing(tmp_path):
    cache = Cache(tmp_path / "cache")
    entry = commit(cache, values={"lock": threading.Lock(), "ok": 1, "gen": (i for i in [])}, required=["lock"])
    assert set(entry.names) == {"ok"}
    assert "cannot be pickled" in entry.missing["lock"]
    assert "gen" not in entry.missing  # not needed downstream: silently not cached


CORRUPTIONS = {
    "garbage": lambda p: p.write_bytes(b"garbage" * 100),
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
    "zero bytes": lambda p: p.write_bytes(b""),
    "one byte flipped": lambda p: p.write_bytes(_flip(p.read_bytes())),
}


def _flip(data: bytes) -> bytes:
    i = len(data) // 2
    return data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1 :]


@pytest.mark.parametrize("how", sorted(CORRUPTIONS))
def test_corrupt_values_detected(tmp_path, how):
    cache = Cache(tmp_path / "cache")
    commit(cache, values={"arr": np.arange(100_000)})
    CORRUPTIONS[how](tmp_path / "cache" / "a" / "k1" / "values.pkl")
    with pytest.raises(CacheCorrupt) as info:
        entry = cache.lookup("a", "k1")  # size changes are caught without reading data
        cache.verify(entry)
    assert 'step "a": cache entry corrupt' in str(info.value)


def test_manifest_deleted_or_garbage(tmp_path):
    cache = Cache(tmp_path / "cache")
    commit(cache, values={"x": 1})
    manifest = tmp_path / "cache" / "a" / "k1" / "manifest.json"
    manifest.write_text("{not json")
    with pytest.raises(CacheCorrupt, match="manifest is not valid JSON"):
        cache.lookup("a", "k1")
    manifest.unlink()
    with pytest.raises(CacheCorrupt, match="manifest missing"):
        cache.lookup("a", "k1")
    cache.quarantine("a", "k1")
    assert cache.lookup("a", "k1") is None


class _Marker:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def test_replaced_pickle_is_refused_before_loading(tmp_path):
    cache = Cache(tmp_path / "cache")
    commit(cache, values={"x": 1})
    marker = tmp_path / "pwned"
    (tmp_path / "cache" / "a" / "k1" / "values.pkl").write_bytes(pickle.dumps({"x": _Marker(str(marker))}))
    entry_dir = tmp_path / "cache" / "a" / "k1"
    manifest = json.loads((entry_dir / "manifest.json").read_text())
    manifest["files"]["values.pkl"]["size"] = (entry_dir / "values.pkl").stat().st_size  # a careful attacker
    (entry_dir / "manifest.json").write_text(json.dumps(manifest))
    entry = cache.lookup("a", "k1")
    with pytest.raises(CacheCorrupt, match="fails its checksum"):
        cache.verify(entry)
    assert not marker.exists()


def test_folder_writable_by_others_is_refused(tmp_path):
    cache = Cache(tmp_path / "cache")
    commit(cache, values={"x": 1})
    os.chmod(cache.root, 0o777)
    entry = cache.lookup("a", "k1")
    with pytest.raises(CacheRefused, match="writable by other users"):
        cache.verify(entry)


def test_same_key_committed_twice_keeps_one_entry(tmp_path):
    cache = Cache(tmp_path / "cache")
    commit(cache, values={"x": 1})
    again = commit(cache, values={"x": 1})
    assert again.path == tmp_path / "cache" / "a" / "k1"
    assert [p.name for p in (tmp_path / "cache" / "a").iterdir()] == ["k1"]


def test_latest_and_prune(tmp_path):
    cache = Cache(tmp_path / "cache")
    commit(cache, key="old", values={"x": 1})
    commit(cache, key="new", values={"x": 2})
    assert cache.latest("a").key == "new"
    removed, freed = cache.prune(keep={("a", "new")})
    assert removed == 1 and freed > 0
    assert [e.key for e in cache.entries()] == ["new"]


def test_crash_before_rename_leaves_no_entry(tmp_path):
    script = (
        "import os, sys\nfrom nbflow.cache import Cache\n"
        "c = Cache(sys.argv[1]); s = c.stage('a')\n"
        "real = os.replace\n"
        "def crash(src, dst):\n    os._exit(3) if os.path.basename(str(dst)) == 'k1' else real(src, dst)\n"
        "os.replace = crash\n"
        "c.commit(s, step='a', key='k1', parts={}, values={'x': 1})\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path / "cache")])
    assert proc.returncode == 3
    cache = Cache(tmp_path / "cache")
    assert cache.lookup("a", "k1") is None
    assert list(Path(tmp_path / "cache" / "a").glob(".staging-*"))  # leftover is ignored, pruned later


def test_verify_hashes_only_files_written_since_commit(tmp_path):
    from nbflow.cache import hashed_bytes

    cache = Cache(tmp_path / "cache")
    commit(cache, values={"x": list(range(1000))})
    entry = cache.lookup("a", "k1")
    before = hashed_bytes()
    cache.verify(entry)
    assert hashed_bytes() == before  # unchanged since it was hashed at commit: not read again
    path = entry.path / "values.pkl"
    stat = path.stat()
    data = bytearray(path.read_bytes())
    data[-2] ^= 0xFF  # same size, and the modification time put back: only the ctime tells
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    with pytest.raises(CacheCorrupt, match="fails its checksum"):
        cache.verify(cache.lookup("a", "k1"))
    assert hashed_bytes() - before == stat.st_size


def test_output_summary_names_rows_columns_shape_and_bytes(tmp_path):
    import numpy as np
    import pandas as pd

    from nbflow.cache import describe, output_summary

    frame = pd.DataFrame({"a": range(1000), "b": [0.5] * 1000, "c": ["x"] * 1000})
    described = {"df": describe(frame), "n": describe(3), "arr": describe(np.zeros((4, 5)))}
    files = {"values.pkl": {"size": 24_100, "sha256": "-"}}
    assert output_summary(described, files) == "df: 1,000 rows × 3 columns · 24.1 kB (+2 values)"
    assert output_summary({"arr": describe(np.zeros((4, 5)))}, {}) == "arr: array 4×5"
    assert output_summary({"s": describe(pd.Series([1, 2]))}, {"v": {"size": 900}}) == "s: 2 rows · 900 B"
    assert output_summary({"xs": describe([1, 2, 3])}, {}) == "xs: 3 items"
    assert output_summary({}, {}) == ""
    # what the manifest keeps: the summary is written where the values are dumped
    cache = Cache(tmp_path / "cache")
    entry = cache.commit(cache.stage("s"), step="s", key="k" * 64, parts=PARTS, values={"df": frame})
    assert entry.manifest["summary"].startswith("df: 1,000 rows × 3 columns · ")


def test_values_without_numpy_are_written_as_joblib_would_without_importing_it(tmp_path):
    """A kernel that never imported NumPy does not import joblib (and NumPy) to cache its
    values: the file is the bytes joblib writes, and joblib loads it."""
    script = (
        "import sys\nfrom pathlib import Path\nfrom nbflow.cache import Cache\n"
        f"cache = Cache({str(tmp_path / 'cache')!r})\n"
        "staging = cache.stage('a')\n"
        "cache.commit(staging, step='a', key='k', parts={}, values={'x': 1, 'd': {'a': [1, 2.5, 'z']}})\n"
        "loaded = cache.load_values(cache.lookup('a', 'k'))\n"
        "print(loaded['x'], sorted(m for m in ('numpy', 'joblib') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "1 []"  # written and loaded back without joblib or NumPy
    import io

    import joblib

    expected = io.BytesIO()
    joblib.dump({"x": 1, "d": {"a": [1, 2.5, "z"]}}, expected)
    cache = Cache(tmp_path / "cache")
    entry = cache.lookup("a", "k")
    assert entry is not None
    assert (entry.path / "values.pkl").read_bytes() == expected.getvalue()
    assert entry.manifest["files"]["values.pkl"]["format"] == "pickle"
    cache.verify(entry)
    assert cache.load_values(entry) == {"x": 1, "d": {"a": [1, 2.5, "z"]}}
    assert joblib.load(entry.path / "values.pkl") == {"x": 1, "d": {"a": [1, 2.5, "z"]}}
    # with NumPy loaded (this process), values go through joblib as before
    arrays = commit(cache, step="b", values={"a": np.arange(3), "x": 1})
    assert "format" not in arrays.manifest["files"]["values.pkl"]
    assert cache.load_values(arrays)["a"].tolist() == [0, 1, 2]


def test_private_dir_makes_new_folders_with_their_parents_and_keeps_existing_ones(tmp_path):
    from nbflow.fsutil import private_dir

    deep = private_dir(tmp_path / "a" / "b" / "c")
    assert deep.is_dir() and (deep.stat().st_mode & 0o077) == 0
    assert (tmp_path / "a").stat().st_mode & 0o077 == 0
    (deep / "kept").write_text("x")
    assert private_dir(deep) == deep and (deep / "kept").read_text() == "x"
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError):
        private_dir(tmp_path / "file")
    with pytest.raises((FileExistsError, NotADirectoryError)):
        private_dir(tmp_path / "file" / "sub")
