"""nbflow/inputs.py: hashes of in: files, remembered by their stamps; special files refused."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from nbflow.errors import PipelineError
from nbflow.graph import load_pipeline
from nbflow.inputs import MEMO, HashMemo, input_file_hashes, path_digest

from .conftest import step, write_notebook


@pytest.fixture
def pipeline_with_input(tmp_path: Path):
    (tmp_path / "big.bin").write_bytes(b"x" * 100_000)
    path = write_notebook(tmp_path / "pipeline.ipynb", [step("read", "n = 1", "in:big.bin")])
    return tmp_path, path


def memo_of(folder: Path) -> dict:
    return json.loads((folder / ".nbflow" / MEMO).read_text())


def test_hash_is_remembered_and_used_while_the_file_is_unchanged(pipeline_with_input):
    folder, path = pipeline_with_input
    first = input_file_hashes(load_pipeline(path))["big.bin"]
    memo = memo_of(folder)
    (name,) = memo
    assert Path(name) == (folder / "big.bin").absolute() and memo[name][4] == first
    # Proof that the file is not read again: the remembered hash is what the plan uses.
    memo[name][4] = "f" * 64
    (folder / ".nbflow" / MEMO).write_text(json.dumps(memo))
    assert input_file_hashes(load_pipeline(path))["big.bin"] == "f" * 64


@pytest.mark.parametrize("change", ["content", "mtime", "same-size-and-mtime"])
def test_any_change_of_the_file_re_hashes(pipeline_with_input, change):
    folder, path = pipeline_with_input
    target = folder / "big.bin"
    input_file_hashes(load_pipeline(path))
    memo = memo_of(folder)
    (name,) = memo
    memo[name][4] = "f" * 64  # a wrong remembered hash must not survive a change
    (folder / ".nbflow" / MEMO).write_text(json.dumps(memo))
    st = target.stat()
    if change == "content":
        target.write_bytes(b"y" * 100_001)
    elif change == "mtime":
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    else:  # rewritten in place, size and mtime put back (rsync -t, touch -r): ctime still moves
        target.write_bytes(b"z" * 100_000)
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    from nbflow.cache import file_sha256

    assert input_file_hashes(load_pipeline(path))["big.bin"] == file_sha256(target)


def test_a_damaged_memo_only_costs_a_hash(pipeline_with_input):
    folder, path = pipeline_with_input
    input_file_hashes(load_pipeline(path))
    (folder / ".nbflow" / MEMO).write_text("{not json")
    from nbflow.cache import file_sha256

    assert input_file_hashes(load_pipeline(path))["big.bin"] == file_sha256(folder / "big.bin")
    assert memo_of(folder)  # written again


def test_special_files_are_refused_and_missing_files_are_missing(tmp_path: Path):
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(PipelineError, match="named pipe"):
        path_digest(tmp_path / "pipe")
    with pytest.raises(PipelineError, match="character device"):
        path_digest(Path("/dev/null"))
    assert path_digest(tmp_path / "nothing") == "missing"
    memo = HashMemo(None)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_text("1")
    os.mkfifo(tmp_path / "d" / "p")  # inside a folder: skipped, never opened
    assert path_digest(tmp_path / "d", memo) == path_digest(tmp_path / "d")
