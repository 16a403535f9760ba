"""Run state as data: a reason is a display text *and* a kind; decisions test the kind."""

from __future__ import annotations

import copy
import dataclasses
import json
import threading

from nbflow import load_pipeline
from nbflow.cache import Cache
from nbflow.events import EventBus, StepFinished
from nbflow.executors.base import RunContext
from nbflow.plan import Reason, explain, has_reason

from .conftest import code, step, write_notebook


def test_a_reason_is_its_display_text_with_its_kind_as_data():
    reason = Reason("upstream changed", "upstream load changed", subject="load")
    assert reason == "upstream load changed" and json.dumps([reason]) == '["upstream load changed"]'
    assert (reason.kind, reason.subject) == ("upstream changed", "load")
    copied = copy.deepcopy(reason)
    assert (copied, copied.kind, copied.subject) == (reason, "upstream changed", "load")
    event = StepFinished(1, step="a", status="skipped", reasons=(reason,))
    assert dataclasses.asdict(event)["reasons"][0].kind == "upstream changed"


def test_a_display_text_is_never_a_flag():
    assert has_reason([Reason("cache entry corrupt")], "cache entry corrupt")
    assert not has_reason(["cache entry corrupt"], "cache entry corrupt")  # text read back from the store


def test_the_plan_gives_reasons_with_kinds(tmp_path):
    path = write_notebook(tmp_path / "p.ipynb", [code("n = 1", "parameters"), step("a", "x = n")])
    plan = load_pipeline(path).plan()
    assert [r.kind for r in plan["a"].reasons] == ["never run"]
    parts = plan["a"].parts
    previous = {**parts.to_dict(), "code": "other", "params": {"n": "changed"}}
    reasons = explain(parts, previous)
    assert [(r.kind, r.subject, str(r)) for r in reasons] == [
        ("code changed", "", "code changed"),
        ("parameter changed", "n", "parameter n changed"),
    ]


def test_the_executor_sets_aside_only_entries_the_plan_found_corrupt(tmp_path):
    path = write_notebook(tmp_path / "p.ipynb", [step("a", "x = 1")])
    pipeline = load_pipeline(path)
    plan = pipeline.plan()
    ctx = RunContext(
        1, pipeline, plan, {}, {}, pipeline.config, Cache(pipeline.config.cache_dir), EventBus(), threading.Event()
    )
    entry = plan["a"]
    plain = dataclasses.replace(entry, reasons=("cache entry corrupt",))
    ctx.plan = dataclasses.replace(plan, entries={"a": plain})
    ctx.set_aside_corrupt_entries()  # the text alone sets nothing aside
    assert not [e for e in ctx.bus.history if getattr(e, "message", "").startswith("cache entry corrupt")]
    ctx.plan = dataclasses.replace(
        plan, entries={"a": dataclasses.replace(entry, reasons=(Reason("cache entry corrupt"),))}
    )
    ctx.set_aside_corrupt_entries()
    assert [e for e in ctx.bus.history if getattr(e, "message", "").startswith("cache entry corrupt")]
