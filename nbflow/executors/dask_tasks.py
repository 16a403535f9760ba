"""What one Dask task of a step is made of, and what the client builds from the results.

* ``run_task``: the task itself (on a worker: ``on_worker.run_step_on_worker``, with
  "started" notices through the scheduler's event topic);
* ``Attempt`` (one submission of a step, or of an element of a ``map:`` step) and
  ``FanOut`` (a ``map:`` step's elements and what became of them);
* ``TaskInputs``, the part of ``dask.DaskSession`` that builds a task's ``spec`` and
  its inputs: the restores (``outcome.restore_specs``) and, when the workers do not
  see the cache folder, the providers' files as bytes; ``resource_amounts`` and
  ``check_resources`` for ``resources:`` tags; ``CannotStart`` when a step cannot;
* ``write_output_notebook``: the executed notebook from the captured outputs, as the
  kernel executor would leave it.

This module must not publish events or decide what runs next: ``dask.DaskSession`` does.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import PipelineError
from ..plan import replay_chain, restorable
from .map_loop import Elements
from .outcome import NotRestorable, restore_specs, save_output_notebook

if TYPE_CHECKING:
    from ..notebook import Step
    from .base import RunContext


def run_task(spec: dict[str, Any], inputs: dict[str, Any], topic: str) -> dict[str, Any]:
    """The Dask task of one step (runs on a worker)."""
    from distributed import get_worker

    from .on_worker import run_step_on_worker

    worker = get_worker()

    def notify(message: dict[str, Any]) -> None:
        worker.log_event(topic, {**message, "worker": worker.address})

    return run_step_on_worker(spec, inputs, notify)


def resource_amounts(step: Step, notebook: str | Path | None = None) -> dict[str, float]:
    """The ``resources:`` tags of ``step`` as Dask resource amounts (``4GB`` -> 4e9)."""
    amounts = {}
    for name, text in step.resources.items():
        try:
            amounts[name] = float(text)
        except ValueError:
            from dask.utils import parse_bytes

            try:
                amounts[name] = float(parse_bytes(text))
            except ValueError:
                raise PipelineError(
                    f"resources:{name}={text} is not a number or a size such as 4GB",
                    notebook=notebook,
                    cell=step.cell.number,
                    step=step.name,
                ) from None
    return amounts


class Attempt:
    """One submission of a step."""

    def __init__(self, step: str, number: int, item: int | None = None, expand: bool = False) -> None:
        self.step = step
        self.number = number
        self.item = item  # the element of a map: step this task runs
        self.expand = expand  # the task only lists a map: step's elements
        self.token = f"{step}-{uuid.uuid4().hex[:12]}"
        self.future: Any = None
        self.staging: Path | None = None
        self.started: float | None = None  # monotonic, when the worker said so
        self.worker: str | None = None
        self.pid: int | None = None
        self.stopping: float | None = None  # monotonic, when nbflow asked it to stop
        #: ``out:`` files a worker without this disk sent back: ``{file: pattern}`` (``None``: look on disk).
        self.found: dict[str, str] | None = None
        #: The user's files under its ``out:`` folders and globs before it ran (``clear_old_out_files``).
        self.before: dict[str, tuple[int, int]] = {}


class FanOut(Elements):
    """A ``map:`` step on the cluster: its elements (``map_loop.Elements``: keys, what became
    of them) and those whose task has not come back yet (``open``)."""

    def __init__(self, ctx: RunContext, name: str, info: Mapping[str, Any], started: float) -> None:
        super().__init__(ctx, name, info, started)
        self.open: set[int] = set()


class CannotStart(Exception):
    """A step cannot be submitted (its inputs are not cached, no worker can take it)."""


class TaskInputs:
    """What a step's task needs (a mix-in of ``dask.DaskSession``, whose state it reads)."""

    ctx: RunContext
    pipeline: Any
    shared: bool
    client: Any
    fans: dict[str, FanOut]
    futures: dict[str, Any]
    scattered: dict[str, Any]

    def spec(self, step: str, attempt: Attempt, restores: list[list[Any]]) -> dict[str, Any]:
        ctx = self.ctx
        source = self.pipeline.source
        prelude = [["setup", c.number, c.source] for c in source.setup]
        if source.parameters is not None:
            prelude.append(["parameters", source.parameters.number, source.parameters.source])
        prelude.sort(key=lambda item: item[1])
        info = self.pipeline.steps[step]
        fan: dict[str, Any] | None = None
        if info.map_over:
            fan = {"iterable": info.map_over, "element": info.map_as}
            if attempt.expand:
                fan["expand"] = True
            else:
                fan.update(index=attempt.item, fingerprint=self.fans[step].fingerprints[attempt.item])
        stored = ctx.stored_names(step)
        return {
            "token": attempt.token,
            "step": step,
            "folder": str(self.pipeline.path.resolve().parent),
            "prelude": prelude,
            "params": dict(ctx.params),
            "cells": [[c.number, c.source] for c in self.pipeline.steps[step].cells],
            "restores": restores,
            "replay": self.replay_of(step),
            "shared": self.shared,
            "cache_root": str(ctx.cache.root),
            "staging": str(attempt.staging) if attempt.staging else None,
            "stored": stored,
            # An element's values are only ever read as the step's lists: keep them all.
            "required": stored if fan else ctx.required_names(step),
            "by_reference": sorted(self.pipeline.setup.writes),
            "output_limit": ctx.config.output_limit,
            "timeout": ctx.timeout_for(step),
            "out_files": [] if fan else list(info.out_files),
            "optional_outs": list(info.optional_outs),
            "out_before": {n: list(v) for n, v in attempt.before.items()},
            "map": fan,
            "watched": self.watched,
            "reads": sorted(set(info.reads) | set(ctx.keys.inputs(step))),
            "providers": self.providers_before(step),
        }

    def replay_of(self, step: str) -> list[list[Any]]:
        """The steps the task re-executes before ``step``, each with the values its
        cells read (``[[step, restores, cells]]``; see ``plan.replay_chain``)."""
        chain = replay_chain(self.pipeline, step)
        replay = []
        for name in chain:
            if self.pipeline.steps[name].map_over:
                raise CannotStart(
                    f'it reads hidden state the map: step "{name}" left, which a Dask worker cannot rebuild; '
                    "run with --executor kernel"
                )
            needs: dict[str, list[str]] = {}
            for value, provider in sorted(self.pipeline.steps[name].inputs.items()):
                if provider not in chain and restorable(self.pipeline, value, provider):
                    needs.setdefault(provider, []).append(value)
            if needs and not self.shared:
                raise CannotStart(
                    f'step "{name}" must be re-executed before it (its state cannot be restored), which needs '
                    "a cache folder the workers see; run with --executor kernel"
                )
            restores = [[provider, self.ctx.key(provider), names] for provider, names in needs.items()]
            cells = [[c.number, c.source] for c in self.pipeline.steps[name].cells]
            replay.append([name, restores, cells])
        return replay

    def providers_before(self, step: str) -> dict[str, list[str]]:
        """For a read found at run time: ``{value: [step, key]}`` of the finished steps before ``step``."""
        ctx = self.ctx
        found: dict[str, list[str]] = {}
        for earlier in self.pipeline.order[: self.pipeline.order.index(step)]:
            if ctx.status.get(earlier) in ("done", "cached"):
                for name in [*self.pipeline.steps[earlier].writes, *ctx.keys.run_writes(earlier)]:
                    found[name] = [earlier, ctx.key(earlier)]
        return found

    def inputs_of(self, step: str) -> tuple[list[list[Any]], dict[str, Any]]:
        """What the task restores (``[[provider, key, names]]``) and, without a shared
        cache, the providers' files (futures of this run's tasks, or scattered bytes)."""
        ctx = self.ctx
        needs: dict[str, list[str]] = {}
        reads = ctx.keys.inputs(step)
        for name, provider in sorted(reads.items()):
            if restorable(self.pipeline, name, provider):  # else re-executed on the worker (``replay_of``)
                needs.setdefault(provider, []).append(name)

        def mates(provider: str, names: list[str], entry: Any) -> list[str]:
            # values sharing memory or an index with those read are restored with them
            along: list[str] = []
            for group in entry.manifest.get("aliases", ()):
                if set(group) & set(names):
                    along += [
                        n for n in group if n not in names and n not in along and n not in reads and n in entry.names
                    ]
            return along

        try:
            restores = restore_specs(ctx, step, needs, mates)
        except NotRestorable as e:
            raise CannotStart(
                f"could not restore its inputs: {e}, so it cannot be passed to another Dask worker; "
                "make it picklable, compute it in this step, or run with --executor kernel"
            ) from None
        inputs = {}
        if not self.shared:
            for provider, key, _ in restores:
                inputs[provider] = self.futures.get(provider) or self.scatter_entry(ctx.cache.lookup(provider, key))
        return restores, inputs

    def scatter_entry(self, entry: Any) -> Any:
        if entry.step not in self.scattered:
            if entry.items:
                payload = self.repack(entry)
            else:
                files = {
                    n: (entry.path / n).read_bytes() for n in entry.manifest.get("files", {}) if n.endswith(".pkl")
                }
                payload = {"values": dict(entry.names), "files": files}
            self.scattered[entry.step] = self.client.scatter(payload, hash=False)
        return self.scattered[entry.step]

    def repack(self, entry: Any) -> dict[str, Any]:
        """A ``map:`` step's entry as one payload: its lists are spread over the
        elements' entries, which a worker without the cache folder cannot read."""
        import shutil
        import tempfile

        from ..cache import Cache

        values = self.ctx.cache.load_values(entry, list(entry.names), mmap=False)
        folder = Path(tempfile.mkdtemp(prefix="nbflow-repack-"))
        try:
            dumped = Cache(folder).dump_values(
                folder / "entry", values, list(values), sorted(self.pipeline.setup.writes)
            )
            if "error" in dumped:
                raise CannotStart(f'could not send the values of step "{entry.step}" to a worker: {dumped["error"]}')
            files = {n: (folder / "entry" / n).read_bytes() for n in dumped.get("files", {})}
            return {"values": dumped["values"], "files": files}
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def check_resources(self, step: str, resources: Mapping[str, float]) -> None:
        if not resources:
            return
        workers = self.client.scheduler_info().get("workers", {})
        if not workers:
            return  # an adaptive cluster may still start workers that have them
        for info in workers.values():
            offered = info.get("resources") or {}
            if all(offered.get(k, 0) >= v for k, v in resources.items()):
                return
        wanted = " ".join(f"{k}={v:g}" for k, v in resources.items())
        offered = sorted({f"{k}={v:g}" for info in workers.values() for k, v in (info.get("resources") or {}).items()})
        raise CannotStart(
            f"needs Dask worker resources {wanted}, which no worker offers "
            f"({'workers offer ' + ', '.join(offered) if offered else 'the workers declare no resources'}); "
            f'start workers with e.g. dask worker ADDRESS --resources "{wanted}"'
        )


def write_output_notebook(
    ctx: RunContext, results: Mapping[str, Mapping[str, Any]], prelude_outputs: list[list[dict[str, Any]]]
) -> None:
    """The executed notebook, as the kernel executor would leave it: each step cell with
    its outputs (captured now, or the cached ones), the parameters injected after the
    parameters cell. Standard library only (no nbformat import on the client)."""
    pipeline = ctx.pipeline
    assert ctx.output_path is not None
    data = json.loads(json.dumps(pipeline.source.data))
    cells = data["cells"]
    prelude = sorted(
        [*pipeline.source.setup, *([pipeline.source.parameters] if pipeline.source.parameters else [])],
        key=lambda c: c.index,
    )
    for cell, outputs in zip(prelude, prelude_outputs, strict=False):
        cells[cell.index]["outputs"] = outputs
    for name in pipeline.order:
        step = pipeline.steps[name]
        cached = ctx.status.get(name) == "cached"
        outputs: list[list[dict[str, Any]]] = []
        if cached:
            with contextlib.suppress(Exception):
                entry = ctx.cache.lookup(name, ctx.key(name))
                outputs = ctx.cache.load_outputs(entry) if entry else []
        elif name in results:
            outputs = list(results[name].get("outputs") or [])
        for i, cell in enumerate(step.cells):
            target = cells[cell.index]
            target.setdefault("metadata", {})["nbflow"] = {"step": name, **({"cached": True} if cached else {})}
            if target.get("cell_type") == "code":
                target["outputs"] = outputs[i] if i < len(outputs) else []
    for cell in cells:
        if cell.get("cell_type") == "code":
            cell.setdefault("outputs", [])
            cell["execution_count"] = None
    if ctx.given and pipeline.source.parameters is not None:
        source = "# Parameters\n" + "".join(f"{k} = {v!r}\n" for k, v in ctx.given.items())
        injected = {
            "cell_type": "code",
            "id": uuid.uuid4().hex[:8],
            "metadata": {"tags": ["injected-parameters"]},
            "execution_count": None,
            "outputs": [],
            "source": source,
        }
        cells.insert(pipeline.source.parameters.index + 1, injected)
    data.setdefault("metadata", {})["nbflow"] = {
        **(data["metadata"].get("nbflow") or {}),
        "run": ctx.run_id,
        "executor": "dask",
        "parameters": ctx.params,
    }
    save_output_notebook(ctx.output_path, json.dumps(data, indent=1, ensure_ascii=False, default=repr).encode("utf-8"))


__all__ = ["Attempt", "CannotStart", "FanOut", "TaskInputs", "resource_amounts", "run_task", "write_output_notebook"]
