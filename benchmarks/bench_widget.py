"""Live updates of ``PipelineWidget`` on a 200-step pipeline: comm messages and time.

The widget recolours a burst of events with one message (a new stylesheet), where the
plain ipycytoscape way (set each node widget's ``data``) sends one message per node.
Messages are counted at the comm layer (every ipywidgets message goes through
``comm.create_comm``'s comm), so the numbers are what a kernel would send to the browser.

Scenarios, with a real ``EventBus`` and the events a kernel run publishes:

* burst: 200 steps queued at once (the start of a run; also every cached step at once)
* run:   200 steps started and finished one after another, 2 ms apart

Also timed: what each event costs the publishing thread (the run's thread; the notebook's
own thread does nothing) and one flush (stylesheet built and serialised).

    python benchmarks/bench_widget.py
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import comm
from comm.base_comm import BaseComm
from common import chain_notebook

STEPS = 200
SENT: list[int] = []


class CountingComm(BaseComm):
    """A comm that records the size of every message instead of sending it to a frontend."""

    def publish_msg(self, msg_type, data=None, metadata=None, buffers=None, **keys):  # noqa: ANN001
        SENT.append(len(json.dumps(data or {}, default=str)))


def events(run_id: int, steps: list[str]):
    from nbflow.events import RunFinished, RunStarted, StepFinished, StepQueued, StepStarted

    yield "start", RunStarted(run_id, notebook="", params={}, steps=(), executor="kernel")
    for s in steps:
        yield "burst", StepQueued(run_id, step=s)
    for s in steps:
        yield "run", StepStarted(run_id, step=s)
        yield "run", StepFinished(run_id, step=s, status="done", duration=0.002)
    yield "end", RunFinished(run_id, status="done", duration=1.0)


def measure(nb: Path, batched: bool) -> dict[str, float]:
    import nbflow
    from nbflow.events import EventBus

    widget = nbflow.show(nb)
    bus = EventBus()
    per_event: list[float] = []
    if batched:
        listener = widget._on_event
    else:
        nodes = {n.data["id"]: n for n in widget.graph.graph.nodes}

        def listener(event) -> None:  # the plain way: one node widget update per event
            widget.state.apply(event)
            for name, state in widget.state.take_changes().items():
                nodes[name].data = {**nodes[name].data, "state": state}

    bus.subscribe(listener)
    steps = list(widget.pipeline.order)
    SENT.clear()
    phase_marks: dict[str, tuple[int, int]] = {}
    current = None
    for phase, event in events(1, steps):
        if phase != current:
            if current is not None:
                time.sleep(widget.interval * 3)  # let the last flush of the phase go out
                phase_marks[current] = (len(SENT), sum(SENT))
            current = phase
        t0 = time.perf_counter()
        bus.publish(event)
        per_event.append(time.perf_counter() - t0)
        if phase == "run":
            time.sleep(0.002)
    time.sleep(1.0)  # the refresh after RunFinished runs on its own thread
    phase_marks[current] = (len(SENT), sum(SENT))
    burst = phase_marks["burst"][0] - phase_marks["start"][0]
    run = phase_marks["run"][0] - phase_marks["burst"][0]
    per_event.sort()
    return {
        "burst_msgs": burst,
        "burst_bytes": phase_marks["burst"][1] - phase_marks["start"][1],
        "run_msgs": run,
        "run_bytes": phase_marks["run"][1] - phase_marks["burst"][1],
        "event_median_us": per_event[len(per_event) // 2] * 1e6,
        "event_p99_us": per_event[int(len(per_event) * 0.99)] * 1e6,
    }


def flush_cost(nb: Path) -> float:
    import nbflow

    widget = nbflow.show(nb)
    for name in widget.pipeline.order:
        widget.state._set(name, "running")
    t0 = time.perf_counter()
    for _ in range(20):
        widget.state.changed.add(widget.pipeline.order[0])
        widget._flush()
    return (time.perf_counter() - t0) / 20


def main() -> None:
    comm.create_comm = lambda **kwargs: CountingComm(**kwargs)
    with tempfile.TemporaryDirectory() as tmp:
        nb = chain_notebook(Path(tmp) / "chain.ipynb", STEPS)
        plain = measure(nb, batched=False)
        batched = measure(nb, batched=True)
        flush = flush_cost(nb)
    print(f"PipelineWidget live updates, {STEPS} steps (python {sys.version.split()[0]})")
    print(f"{'':34}{'batched':>12}{'per node':>12}{'ratio':>8}")
    for key, label in (
        ("burst_msgs", "burst of 200 queued: messages"),
        ("burst_bytes", "burst of 200 queued: bytes"),
        ("run_msgs", "200 steps, 2 ms apart: messages"),
        ("run_bytes", "200 steps, 2 ms apart: bytes"),
        ("event_median_us", "publisher cost per event (us, med)"),
        ("event_p99_us", "publisher cost per event (us, p99)"),
    ):
        b, p = batched[key], plain[key]
        ratio = f"{p / b:.1f}x" if b else "-"
        print(f"{label:34}{b:>12.0f}{p:>12.0f}{ratio:>8}")
    print(f"one flush of 200 states (stylesheet built + serialised): {flush * 1000:.1f} ms, on a timer thread")


if __name__ == "__main__":
    main()
