"""The pure parts of ``executors.outcome`` (no kernel, no cluster): the manifest every
executor writes, the disk-error rule, the restore check, fan-out helpers, markers."""

from __future__ import annotations

import errno
import threading
from pathlib import Path

import pytest

from nbflow import load_pipeline
from nbflow.cache import Cache
from nbflow.config import Config
from nbflow.events import EventBus, RunWarning
from nbflow.executors.base import RunContext
from nbflow.executors.outcome import (
    DISK_ERRNOS,
    ENTRY_META,
    NotRestorable,
    OutputNotWritten,
    cap_marker,
    commit_entry,
    dropped_marker,
    element_fingerprint,
    element_label,
    element_outputs,
    elements_failed,
    error_text,
    map_values,
    process_death,
    restore_specs,
    save_output_notebook,
    strip_ansi,
)

from .conftest import code, step, write_notebook


@pytest.fixture
def ctx(tmp_path: Path) -> RunContext:
    """A run context of a two-step notebook, with a real cache and an event bus."""
    path = write_notebook(
        tmp_path / "pipeline.ipynb", [code("n = 3", "parameters"), step("a", "x = n"), step("b", "y = x")]
    )
    pipeline = load_pipeline(path)
    config: Config = pipeline.config
    plan = pipeline.plan()
    bus = EventBus()
    context = RunContext(
        run_id=7,
        pipeline=pipeline,
        plan=plan,
        params={"n": 3},
        given={},
        config=config,
        cache=Cache(config.cache_dir),
        bus=bus,
        cancel=threading.Event(),
    )
    context.warnings = []
    bus.subscribe(lambda e: context.warnings.append(e) if isinstance(e, RunWarning) else None)
    return context


def dumped(cache: Cache, staging: Path, **values) -> dict:
    return cache.dump_values(staging, values, list(values))


def test_commit_entry_writes_one_manifest_format(ctx):
    staging = ctx.cache.staging_path("a")
    ok = commit_entry(
        ctx, "a", staging, outputs=[[]], dumped=dumped(ctx.cache, staging, x=3), duration=1.5, executor="kernel"
    )
    assert ok
    entry = ctx.cache.lookup("a", ctx.key("a"))
    assert {k: entry.manifest[k] for k in ENTRY_META} == {
        "run_id": 7,
        "duration": 1.5,
        "notebook": "pipeline.ipynb",
        "executor": "kernel",
    }
    assert ctx.cache.latest("a", notebook="pipeline.ipynb").key == ctx.key("a")
    assert ctx.cache.load_values(entry) == {"x": 3}


def test_commit_entry_writes_files_that_travelled_as_bytes(ctx, tmp_path):
    elsewhere = tmp_path / "worker" / "entry"
    answer = dumped(Cache(elsewhere.parent), elsewhere, x=[1, 2])
    files = {name: (elsewhere / name).read_bytes() for name in answer["files"]}
    staging = ctx.cache.staging_path("a")
    assert commit_entry(ctx, "a", staging, outputs=[[]], dumped=answer, duration=0.1, executor="dask", files=files)
    assert ctx.cache.load_values(ctx.cache.lookup("a", ctx.key("a"))) == {"x": [1, 2]}


@pytest.mark.parametrize("err", sorted(DISK_ERRNOS))
def test_a_disk_error_stops_the_run_naming_the_path(ctx, monkeypatch, err):
    def full(self, staging, cells):
        raise OSError(err, "No space left on device", str(staging / "outputs.json"))

    monkeypatch.setattr(Cache, "write_outputs", full)
    staging = ctx.cache.staging_path("a")
    ok = commit_entry(
        ctx, "a", staging, outputs=[[]], dumped=dumped(ctx.cache, staging, x=1), duration=0.1, executor="dask"
    )
    assert not ok
    assert ctx.failure.startswith('step "a": cache entry not written (No space left on device: ')
    assert "outputs.json" in ctx.failure
    assert not staging.exists() and ctx.cache.lookup("a", ctx.key("a")) is None


def test_other_write_errors_only_warn(ctx, monkeypatch):
    def denied(self, staging, cells):
        raise OSError(errno.EACCES, "Permission denied", str(staging / "outputs.json"))

    monkeypatch.setattr(Cache, "write_outputs", denied)
    staging = ctx.cache.staging_path("a")
    commit_entry(ctx, "a", staging, outputs=[[]], dumped=dumped(ctx.cache, staging, x=1), duration=0, executor="x")
    assert ctx.failure == ""
    assert [w.message for w in ctx.warnings] == [f"cache entry not written (Permission denied: {staging}/outputs.json)"]


def test_a_dump_that_failed_on_a_full_disk_stops_the_run(ctx):
    staging = ctx.cache.staging_path("a")
    answer = {"error": "OSError: [Errno 28] No space left on device: '/x/values.pkl'", "errno": errno.ENOSPC}
    assert not commit_entry(ctx, "a", staging, outputs=[[]], dumped=answer, duration=0, executor="dask")
    assert ctx.failure == 'step "a": cannot write its cache entry: ' + answer["error"]
    ctx.failure = ""
    answer = {"error": "PicklingError: no", "errno": None}
    commit_entry(ctx, "a", staging, outputs=[[]], dumped=answer, duration=0, executor="dask")
    assert ctx.failure == "" and ctx.warnings[-1].message == "values not cached: PicklingError: no"


def test_restore_specs_and_the_message_of_a_value_not_cached(ctx):
    with pytest.raises(NotRestorable) as raised:
        restore_specs(ctx, "b", {"a": ["x"]})
    assert str(raised.value) == 'value x of step "a" is needed by step "b" but it was not cached'
    staging = ctx.cache.staging_path("a")
    answer = ctx.cache.dump_values(staging, {"x": (i for i in range(2))}, ["x"])
    commit_entry(ctx, "a", staging, outputs=[[]], dumped=answer, duration=0, executor="kernel")
    with pytest.raises(NotRestorable, match=r'value x of step "a" is needed by step "b" but cannot be pickled'):
        restore_specs(ctx, "b", {"a": ["x"]})
    staging = ctx.cache.staging_path("a")
    ctx.cache.discard(ctx.cache.entry_dir("a", ctx.key("a")))
    commit_entry(ctx, "a", staging, outputs=[[]], dumped=dumped(ctx.cache, staging, x=1), duration=0, executor="k")
    assert restore_specs(ctx, "b", {"a": ["x"]}) == [["a", ctx.key("a"), ["x"]]]


def test_fan_out_helpers():
    assert element_label("x" * 100) == "'" + "x" * 56 + "..."
    assert element_label(3) == "3"
    outputs = element_outputs(2, [("1", [[{"text": "a"}], []]), ("2", [[]])])
    assert [o.get("text") for o in outputs[0]] == ["[nbflow] element 0: 1\n", "a", "[nbflow] element 1: 2\n"]
    assert len(outputs[1]) == 2
    assert elements_failed(4, {3: ("'c'", "boom"), 1: ("'a'", "bad")}) == "2 of 4 elements failed; element 1 ('a'): bad"
    assert map_values(["y"], 3) == {"values": {"y": {"file": "items", "type": "list", "summary": "3 items"}}}


def test_an_element_naming_a_file_is_keyed_by_its_content(tmp_path):
    import joblib

    f = tmp_path / "a.txt"
    f.write_text("one")
    before = element_fingerprint(str(f), joblib.hash)
    f.write_text("two")
    assert element_fingerprint(str(f), joblib.hash) != before
    assert element_fingerprint("not a file", joblib.hash) == element_fingerprint("not a file", joblib.hash)


def test_process_death_in_words():
    assert process_death("kernel", -9) == "kernel died (signal 9; possibly out of memory)"
    assert process_death("worker", -15) == "worker died (signal 15, SIGTERM)"
    assert process_death("worker", 3) == "worker died (exit code 3)"


def test_two_truncation_markers_two_names():
    assert cap_marker(10_000_000) == (
        "\n[nbflow: output truncated: this cell printed or displayed more than 10 MB; the rest was not kept]\n"
    )
    assert "more than 100 kB" in cap_marker(100_000)
    assert "more than 500 bytes" in cap_marker(500)
    assert dropped_marker(10) == "[nbflow: output truncated: 10 more bytes not kept]\n"


def test_tracebacks_as_plain_text():
    assert strip_ansi("\x1b[0;31mValueError\x1b[0m: x") == "ValueError: x"
    outputs = [{"output_type": "stream", "text": "hi"}, {"output_type": "error", "traceback": ["\x1b[1mA\x1b[0m", "B"]}]
    assert error_text(outputs) == "A\nB"
    assert error_text([]) == ""


def test_output_notebook_on_a_full_disk_is_one_line_naming_the_path(tmp_path, monkeypatch):
    import nbflow.fsutil as fsutil

    target = tmp_path / "runs" / "1" / "output.ipynb"
    save_output_notebook(target, b"{}")
    assert target.read_bytes() == b"{}"

    def full(path, data, perms=0o600):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fsutil, "atomic_write_bytes", full)
    with pytest.raises(OutputNotWritten) as raised:
        save_output_notebook(target, b"{...}")
    assert str(raised.value) == f"output notebook not written (No space left on device): {target}"
    assert target.read_bytes() == b"{}"
