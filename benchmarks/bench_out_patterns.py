"""What an ``out:`` folder costs: staging it into a cache entry and restoring it, against
a plain ``shutil.copytree`` of the same folder (what a user would do by hand).

Two folders: 1000 files of 4 kB (many small plots) and 20 files of 5 MB (parts of a
table). Staging hashes each file while it copies (SHA-256 for the manifest); a restore
of an unchanged folder compares sizes and modification times only; a restore after the
folder was deleted copies every file back atomically (temp file, fsync, rename).

    python benchmarks/bench_out_patterns.py
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from common import report

from nbflow.cache import Cache
from nbflow.outfiles import expand


def make_folder(root: Path, count: int, size: int) -> None:
    (root / "parts").mkdir(parents=True)
    for i in range(count):
        (root / "parts" / f"{i:05d}.bin").write_bytes(os.urandom(size))


def median(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def case(count: int, size: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_folder(root, count, size)
        cache = Cache(root / ".nbflow" / "cache")
        entry = None

        def stage() -> None:
            nonlocal entry
            staging = cache.staging_path("make")
            found = {n: "parts/" for n in expand(root, "parts/")}
            out_files = cache.stage_files(staging, root, list(found), found)
            entry = cache.commit_staged(
                staging,
                step="make",
                key=f"k{time.perf_counter_ns()}",
                parts={},
                dumped={"out_files": out_files, "out_patterns": ["parts/"]},
            )

        def copytree() -> None:
            target = root / f"copy-{time.perf_counter_ns()}"
            shutil.copytree(root / "parts", target)

        staged = median(stage)
        plain = median(copytree)
        unchanged = median(lambda: cache.restore_files(entry, root))

        def restore_deleted() -> None:
            shutil.rmtree(root / "parts")
            cache.restore_files(entry, root)

        restored = median(restore_deleted)
        print(f"{count} files of {size // 1024} kB ({count * size / 1e6:.0f} MB):")
        report(
            [
                ("stage + commit (hash, copy, fsync)", staged, f"{staged / plain:.2f}x shutil.copytree"),
                ("shutil.copytree", plain, "the plain alternative"),
                ("restore, folder unchanged", unchanged, f"{unchanged / plain:.2f}x shutil.copytree"),
                ("restore, folder deleted", restored, f"{restored / plain:.2f}x shutil.copytree"),
            ]
        )


if __name__ == "__main__":
    case(1000, 4096)
    case(20, 5 * 1024 * 1024)
