"""Issue 15, item 24: the disk fills up while the executed notebook is written.

The fault is injected into the real ``nbflow run`` process (``sitecustomize.py``, as in
test_faults.py): ``os.fsync`` of the output notebook's temporary file fails with
ENOSPC, as it does on a full disk with delayed allocation. The run must end failed
with one line naming the path (no traceback), record nothing half-written at the final
path, and keep every step's cache entry (a second run is fully cached).
"""

from __future__ import annotations

import sys

import pytest

from .conftest import check_invariants, nbflow_cli
from .test_faults import inject, notebook, store_of

pytestmark = pytest.mark.slow


def disk_full_on(folder, stem: str) -> dict[str, str]:
    """Environment in which fsync of a temporary file of ``<stem>.ipynb`` (``.<stem>...``) fails with ENOSPC."""
    return inject(
        folder,
        f"""
        import errno, os
        _fsync = os.fsync
        def fsync(fd):
            try:
                name = os.readlink(f"/proc/self/fd/{{fd if isinstance(fd, int) else fd.fileno()}}")
            except OSError:
                name = ""
            if os.path.basename(name).startswith({"." + stem!r}):
                raise OSError(errno.ENOSPC, "No space left on device")
            return _fsync(fd)
        os.fsync = fsync
    """,
    )


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the file of a descriptor in /proc")
@pytest.mark.parametrize(
    ("executor", "output"),
    [("kernel", None), ("kernel", "result.ipynb"), ("dask", None)],
    ids=["kernel", "kernel-output", "dask"],
)
def test_disk_full_while_writing_the_output_notebook(folder, executor, output):
    path = notebook(folder)
    args = ["run", str(path), "--executor", executor]
    if executor == "dask":
        args += ["--workers", "1"]
    if output is not None:
        args += ["--output", str(folder / output)]
    target = folder / output if output else folder / ".nbflow" / "runs" / "1" / "output.ipynb"
    proc = nbflow_cli(*args, env=disk_full_on(folder, target.stem))
    check_invariants(folder, proc)
    last = [line for line in proc.stderr.splitlines() if line.strip()][-1]
    assert last == f"nbflow: error: output notebook not written (No space left on device): {target}", proc.stderr
    assert "Traceback" not in proc.stderr
    assert not target.exists()
    assert not [p for p in target.parent.glob(f".{target.stem}*")]  # no temporary file left behind
    assert store_of(folder).run(1)["status"] == "failed"
    again = nbflow_cli("run", str(path), "--executor", executor, *(["--workers", "1"] if executor == "dask" else []))
    assert again.returncode == 0, again.stderr
    steps = {s["step"]: s["status"] for s in store_of(folder).steps(2)}
    assert steps == dict.fromkeys(("load", "double", "total", "side"), "cached")
