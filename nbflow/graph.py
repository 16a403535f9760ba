"""From a read notebook to a validated pipeline graph.

``load_pipeline`` combines ``sources.read_source`` (cells and tags) with
``languages`` (per kernel language: the names each step reads and writes, the parameters) into a ``Pipeline``:

* A step **depends on the nearest step above it that writes a name it reads** (the
  value it would see running the notebook top to bottom), plus its ``after:`` steps.
* A name written by the parameters cell makes the step depend on that **parameter
  only**: a step that never reads ``lr`` is not invalidated when ``lr`` changes.
* Names from the setup (code cells before the first step) need no edge: the setup's
  code, and the parameters the setup reads, are part of every step's key.
* A step that *calls* a function defined earlier (in the setup or a step) also reads
  the globals that function reads: calling ``score()`` that uses ``model`` depends on
  the step that made ``model``.
* A file a step declares ``in:`` that an earlier step declares ``out:`` is a dependency
  on that step (the edge carries ``file:<path>``); other ``in:`` files are external and
  their content is part of the key.

Worked example::

    [parameters]  n = 10
    [step:load]   data = list(range(n))          reads n (parameter)
    [step:square] sq = [x * x for x in data]     reads data  -> edge load -> square
    [step:report] print(sum(sq), n)              reads sq, n -> edge square -> report

gives ``load -> square -> report``; ``load`` and ``report`` read parameter ``n``.

The execution order (``Pipeline.order``) is a topological order that keeps notebook
order wherever edges allow, so a notebook without ``after:`` tags pointing down runs
top to bottom, as papermill would run it. The networkx ``DiGraph`` (``Pipeline.graph``)
is built on first use: the no-op ``nbflow run`` never imports networkx.

Pure: no kernels, no cache, no store. ``Pipeline.plan``/``run``/``widget`` are
conveniences that hand the pipeline to the modules that do I/O.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .analysis import AnalysisError, FunctionNames, Names, used_function_names
from .analysis_setup import SetupStatement, setup_part, setup_reach
from .config import Config
from .errors import PipelineError, did_you_mean
from .hidden_state import ambient_kinds, edge_label, hidden_only, is_pseudo
from .languages import Language, language_of
from .notebook import Cell, CheckCell, NotebookSource, Step
from .outfiles import kind, same_path
from .parameters import Parameter

if TYPE_CHECKING:
    import networkx


SETUP = "<setup>"
PARAMETERS = "<parameters>"


@dataclass(frozen=True)
class Pipeline:
    """A notebook as a graph of steps. Build it with ``load_pipeline(path)``.

    Pure data and graph queries; ``nbflow.load_pipeline`` returns ``api.Pipeline``,
    which adds ``plan``, ``run``, ``invalidate`` and ``widget``.
    """

    path: Path
    source: NotebookSource
    steps: Mapping[str, Step]
    parameters: Mapping[str, Parameter]
    setup: Names
    setup_params: tuple[str, ...]
    deps: Mapping[str, tuple[str, ...]]
    edge_names: Mapping[tuple[str, str], tuple[str, ...]]
    order: tuple[str, ...]
    #: Where its runs, cache and settings live (``load_pipeline`` attaches it).
    config: Config = field(compare=False)
    warnings: tuple[str, ...] = ()
    #: Names bound by an import anywhere in the notebook (never counted as written in place).
    modules: frozenset[str] = frozenset()
    #: In a pipeline of notebooks (``project.py``): step -> {``other.ipynb:step``: that step's key},
    #: the steps of other notebooks it depends on (part of its key, like an upstream step's).
    foreign: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    #: step -> the ``in:`` files another notebook's step makes (keyed by that step, not hashed).
    foreign_files: Mapping[str, frozenset[str]] = field(default_factory=dict)
    #: The steps of ``foreign`` whose result is not what their key says (``project_context``):
    #: ``other.ipynb:step`` -> why (``"is stale (code changed)"``); a step needing one is not run.
    foreign_stale: Mapping[str, str] = field(default_factory=dict)
    #: The folder or ``nbflow.toml`` of the pipeline of notebooks it was linked in (``None``: alone).
    project: Path | None = None
    #: Parameters whose default is the ``nbflow.toml``'s shared value (``project_context``): a run
    #: injects them, so the kernel computes with the value the keys hold.
    shared_params: frozenset[str] = frozenset()
    #: The kernel's language (``languages.language_of``): analysis, values and parameters in the kernel.
    language: Language = field(default=None, compare=False)  # type: ignore[assignment]
    #: The setup's top-level statements (``analysis_setup``).
    setup_statements: tuple[SetupStatement, ...] = ()
    #: Per step, the setup part of its key: label -> digest of each setup statement it reaches.
    setup_parts: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    #: Data checks, by the name of the step that runs them (``load.check1``, see ``check_name``).
    checks: Mapping[str, CheckCell] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.language is None:
            from .languages.python import PYTHON

            object.__setattr__(self, "language", PYTHON)

    @cached_property
    def position(self) -> Mapping[str, int]:
        """Each step's index in ``order``."""
        return {name: i for i, name in enumerate(self.order)}

    @property
    def step_names(self) -> tuple[str, ...]:
        """The pipeline's own steps in execution order (``order`` without the checks)."""
        return tuple(s for s in self.order if s not in self.checks)

    def checks_of(self, step: str) -> list[str]:
        """The names of the checks of ``step``, in notebook order."""
        return [c for c, info in self.checks.items() if info.step == step]

    # ------------------------------------------------------------------ graph
    @cached_property
    def graph(self) -> networkx.DiGraph:
        """The steps as a ``networkx.DiGraph``.

        Nodes carry ``step`` (the ``Step``), ``params`` (parameters read) and ``cell``
        (1-based number); edges carry ``names`` (values passed, hidden state as
        pseudo-names such as ``<numpy.random>``) and ``explicit`` (an ``after:`` tag).
        """
        import networkx as nx

        g = nx.DiGraph(notebook=str(self.path), title=self.source.title)
        for name in self.order:
            step = self.steps[name]
            g.add_node(name, step=step, params=step.params, cell=step.cell.number)
        for (a, b), names in self.edge_names.items():
            g.add_edge(a, b, names=names, explicit=a in self.steps[b].after)
        return g

    def dependants(self, name: str) -> list[str]:
        """Steps that depend directly on ``name``, in execution order."""
        return [s for s in self.order if name in self.deps[s]]

    def descendants(self, names: Iterable[str]) -> set[str]:
        """Every step downstream of ``names`` (not including them)."""
        return reachable(names, self.dependants)

    def ancestors(self, names: Iterable[str]) -> set[str]:
        """Every step upstream of ``names`` (not including them)."""
        return reachable(names, lambda name: self.deps[name])

    def check_steps(self, names: Iterable[str], option: str) -> list[str]:
        """``names`` if all are steps, else a ``PipelineError`` suggesting the right one."""
        names = list(names)
        for name in names:
            if name not in self.steps:
                raise PipelineError(
                    f"{option} {name}: no such step{did_you_mean(name, self.steps)} "
                    f"(steps: {', '.join(self.order) or 'none'})",
                    notebook=self.path,
                )
        return names

    def to_dict(self) -> dict[str, Any]:
        """The pipeline as JSON-able data (``nbflow graph --format json``, the REST API)."""
        return {
            "notebook": str(self.path),
            "title": self.source.title,
            "description": self.source.description,
            "parameters": {name: {"default": p.default, "type": p.type_name} for name, p in self.parameters.items()},
            "setup_params": list(self.setup_params),
            "steps": [
                {
                    "name": name,
                    "cell": self.steps[name].cell.number,
                    "cell_id": self.steps[name].cell.id,
                    "cells": [c.number for c in self.steps[name].cells],
                    "docs": self.steps[name].docs,
                    "params": list(self.steps[name].params),
                    "deps": list(self.deps[name]),
                    "after": list(self.steps[name].after),
                    "reads": sorted(self.steps[name].reads),
                    "writes": sorted(self.steps[name].writes),
                    "checks": [
                        {"name": c, "cell": self.checks[c].cell.number, "warn": self.checks[c].warn}
                        for c in self.checks_of(name)
                    ],
                }
                for name in self.step_names
            ],
            "edges": [
                {
                    "source": a,
                    "target": b,
                    "names": list(names),
                    "explicit": a in self.steps[b].after,
                    "state": edge_label(names),
                    "hidden": hidden_only(names),
                }
                for (a, b), names in self.edge_names.items()
            ],
            "layout": self.source.layout,
            "warnings": list(self.warnings),
        }

    def to_dot(self) -> str:
        """Graphviz DOT text: steps as boxes, parameters as small ellipses."""

        def q(text: str) -> str:
            return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

        lines = [f"digraph {q(self.source.title)} {{", "  rankdir=TB;", "  node [shape=box];"]
        for name in self.order:
            lines.append(f"  {q(name)};")
        for name in self.parameters:
            lines.append(f"  {q('param:' + name)} [label={q(name)}, shape=ellipse, fontsize=10];")
        for (a, b), names in self.edge_names.items():
            style = ", style=dashed" if a in self.steps[b].after else ", style=dotted" if hidden_only(names) else ""
            lines.append(f"  {q(a)} -> {q(b)} [label={q(edge_text(names))}{style}];")
        for name in self.order:
            for param in self.steps[name].params:
                lines.append(f"  {q('param:' + param)} -> {q(name)} [style=dotted];")
        lines.append("}")
        return "\n".join(lines)


def edge_text(names: Iterable[str]) -> str:
    """What an edge passes, for people: ``x, y; numpy random state``."""
    values = ", ".join(n for n in names if not is_pseudo(n))
    state = edge_label(names)
    return "; ".join(t for t in (values, state) if t)


def reachable(starts: Iterable[str], neighbours: Callable[[str], Iterable[str]]) -> set[str]:
    """Every node reached from ``starts`` by following ``neighbours`` (``starts`` not included
    unless reached again)."""
    todo, seen = list(starts), set()
    while todo:
        for other in neighbours(todo.pop()):
            if other not in seen:
                seen.add(other)
                todo.append(other)
    return seen


def load_pipeline(
    path: str | Path,
    config: Config | None = None,
    *,
    source: NotebookSource | None = None,
    cls: type[Pipeline] | None = None,
) -> Pipeline:
    """Read, analyse and validate the notebook at ``path``: the one way to a ``Pipeline``.

    ``config`` defaults to the configuration that applies to ``path``; ``source`` is the
    notebook when it has been read already (the studio's edits, a recorded notebook);
    ``cls`` a subclass to build (``api.Pipeline``, which adds ``run``, ``plan``...).
    """
    path = Path(path)
    config = config or Config.for_notebook(path)
    if source is None:
        from .sources import read_source

        source = read_source(path, memo=config.home / "validated")
    try:
        return _build_pipeline(source, config, cls or Pipeline)
    except PipelineError as e:
        if not source.lines:
            raise
        from .sources import with_line

        raise with_line(e, source.lines) from None


def _analyse(source: NotebookSource, config: Config, language: Language) -> tuple[Names, dict[str, Names]]:
    """The setup's names and each step's, through the notebook's language."""
    path = source.path
    memo = config.home / "analysis"
    groups = [source.setup, *(step.cells for step in source.steps)]
    owners: list[str | None] = [None, *(step.name for step in source.steps)]
    found = language.analyse([[c.source for c in cells] for cells in groups], memo)
    names: list[Names] = []
    for cells, owner, result in zip(groups, owners, found, strict=True):
        if isinstance(result, AnalysisError):
            raise PipelineError(str(result), notebook=path, cell=cells[result.cell].number, step=owner)
        names.append(result)
    return names[0], {step.name: n for step, n in zip(source.steps, names[1:], strict=True)}


def _build_pipeline(source: NotebookSource, config: Config, cls: type[Pipeline]) -> Pipeline:
    """Analyse the steps of ``source`` and connect them; raise ``PipelineError``."""
    path = source.path
    language = language_of(source.data, path)
    memo = config.home / "analysis"
    cell_sources = [c.source for c in source.setup] + [c.source for s in source.steps for c in s.cells]
    language.prefetch(cell_sources, source.parameters.source if source.parameters else None, memo)
    parameters: dict[str, Parameter] = {}
    if source.parameters is not None:
        parameters = language.parameters(source.parameters.source, path, source.parameters.number, memo)
    setup, names = _analyse(source, config, language)
    statements = language.setup_statements([c.source for c in source.setup])
    # Hidden state every step reads (the working folder, options...): an edge only
    # from a step that writes it.
    ambient = ambient_kinds()

    modules = set(setup.imports).union(*(n.imports for n in names.values()))
    functions: dict[str, FunctionNames] = {}
    for found in (setup, *names.values()):
        for fname, info in found.functions.items():
            known = functions.get(fname, FunctionNames())
            functions[fname] = FunctionNames(known.reads | info.reads, known.writes | info.writes)

    setup_params = tuple(sorted(set(setup.reads) & set(parameters) - set(setup.writes)))
    lenient = setup.star_import or any(n.star_import for n in names.values())
    kernel_names = language.kernel_names
    warnings: list[str] = list(source.warnings)
    last_writer: dict[str, str] = {}
    last_file_writer: dict[str, str] = {}
    steps: dict[str, Step] = {}
    deps: dict[str, tuple[str, ...]] = {}
    edge_names: dict[tuple[str, str], tuple[str, ...]] = {}
    reach: dict[str, set[int]] = {}

    for step in source.steps:
        found = names[step.name]
        called = used_function_names(found, functions)
        used = found.reads | found.refs | found.late_reads | called.reads
        reach[step.name] = set(setup_reach(statements, used, functions)) if statements is not None else set()
        writes = set(found.writes) | (set(found.mutated) - modules) | (set(called.writes) - modules)
        immediate = set(found.reads) | ambient
        if step.map_over and not language.fan_out:
            raise PipelineError(
                f"map:{step.map_over} steps run in Python kernels only; this notebook's kernel runs {language.name}",
                notebook=path,
                cell=_tag_cell(step, next(t for t in step.cell.tags if t.startswith("map:"))).number,
                step=step.name,
            )
        if step.map_over:
            # the element is bound by nbflow; the iterable is read from upstream
            immediate = (immediate - {step.map_as}) | {step.map_over}
            writes.discard(step.map_as)
        late = (set(found.late_reads) | set(called.reads)) - immediate
        inputs: dict[str, str] = {}
        params: set[str] = set()
        for name in sorted(immediate | late):
            if name in last_writer:
                inputs[name] = last_writer[name]
            elif name in setup.writes:
                continue
            elif name in parameters:
                params.add(name)
            elif name in immediate and name not in kernel_names and not lenient and not is_pseudo(name):
                warnings.append(_undefined(path, step, name))
        if (
            step.map_over
            and step.map_over not in inputs
            and step.map_over not in params
            and (step.map_over not in setup.writes)
        ):
            raise PipelineError(
                f"map:{step.map_over} needs an earlier step, the setup or a parameter to make {step.map_over!r}",
                notebook=path,
                cell=step.cell.number,
                step=step.name,
            )
        for kept in step.keep:
            if kept not in writes:
                warnings.append(f"{_where(path, step)}: keep:{kept} names a value this step does not write")
        for after in step.after:
            if after not in {s.name for s in source.steps}:
                raise PipelineError(
                    f"after:{after} names no step{did_you_mean(after, [s.name for s in source.steps])}",
                    notebook=path,
                    cell=_tag_cell(step, f"after:{after}").number,
                    step=step.name,
                )
            if after == step.name:
                raise PipelineError(
                    f"after:{after} makes the step wait for itself",
                    notebook=path,
                    cell=_tag_cell(step, f"after:{after}").number,
                    step=step.name,
                )
        providers: dict[str, list[str]] = {}
        for name, provider in inputs.items():
            providers.setdefault(provider, []).append(name)
        # A file an earlier step writes (out:) is that step's result, like a value.
        file_inputs = {f: w for f in step.in_files if (w := _file_writer(f, last_file_writer))}
        for name, provider in sorted(file_inputs.items()):
            providers.setdefault(provider, []).append(f"file:{name}")
        for provider, passed in providers.items():
            edge_names[(provider, step.name)] = tuple(sorted(passed))
        for after in step.after:
            edge_names.setdefault((after, step.name), ())
        deps[step.name] = tuple(dict.fromkeys([*providers, *step.after]))
        steps[step.name] = replace(
            step,
            # ambient state every step reads is listed only where a step writes it
            reads=frozenset(n for n in immediate | late if n not in ambient or n in inputs or n in found.reads),
            writes=frozenset(writes),
            params=tuple(sorted(params)),
            inputs=inputs,
            file_inputs=file_inputs,
            code=found.code,
        )
        for name in step.out_files:
            last_file_writer[same_path(name)] = step.name
        for name in writes:
            last_writer[name] = step.name

    order = _execution_order(source, deps)
    checks = _add_checks(source, config, language, steps, deps, order, setup, parameters, set(last_writer), modules)
    for check in checks:
        reach[check] = set(setup_reach(statements, steps[check].reads, functions)) if statements is not None else set()
    order = _with_checks(order, checks)
    # Functions and classes travel with the values built from them (an instance is
    # unpickled with today's class): a step also reaches the ones its upstream steps reach.
    for name in order:
        for dep in deps[name]:
            reach[name] |= {i for i in reach[dep] if statements is not None and statements[i].code_value}
    return cls(
        path=path,
        source=source,
        steps=steps,
        parameters=parameters,
        setup=setup,
        setup_params=setup_params,
        deps=deps,
        edge_names=edge_names,
        order=order,
        config=config,
        warnings=tuple(warnings),
        modules=frozenset(modules),
        language=language,
        setup_statements=statements or (),
        setup_parts={name: setup_part(statements, reach[name]) for name in order} if statements is not None else {},
        checks=checks,
    )


def is_check(name: str) -> bool:
    """Whether ``name`` names a data check (``load.check1``), not a step."""
    return "." in name


def check_name(step: str, number: int) -> str:
    """The name of the ``number``-th check of ``step``: ``load.check1`` (a dot: never a step's name)."""
    return f"{step}.check{number}"


def _add_checks(
    source: NotebookSource,
    config: Config,
    language: Language,
    steps: dict[str, Step],
    deps: dict[str, tuple[str, ...]],
    order: tuple[str, ...],
    setup: Names,
    parameters: Mapping[str, Parameter],
    names: set[str],
    modules: set[str],
) -> dict[str, CheckCell]:
    """Make a step of every data check (it runs right after the step it checks, on its
    values, keyed apart from it) and make the checked step's dependants wait for it."""
    path = source.path
    checks: dict[str, CheckCell] = {}
    counts: dict[str, int] = {}
    for check in source.checks:
        counts[check.step] = counts.get(check.step, 0) + 1
        name = check_name(check.step, counts[check.step])
        target = steps[check.step]
        [found] = language.analyse([[check.cell.source]], config.home / "analysis")
        if isinstance(found, AnalysisError):
            raise PipelineError(str(found), notebook=path, cell=check.cell.number, step=check.step)
        tag = f"check{'-warn' if check.warn else ''}:{check.step}"
        params: set[str] = set()
        inputs: dict[str, str] = {}
        for read in sorted(found.reads | found.late_reads):
            if read in target.writes:
                inputs[read] = check.step
            elif read in setup.writes or read in language.kernel_names or is_pseudo(read):
                continue
            elif read in parameters:
                params.add(read)
            elif read in names:
                raise PipelineError(
                    f"tag '{tag}': the check reads {read!r}, which step {check.step} does not make; "
                    f"a check reads the values of the step it checks",
                    notebook=path,
                    cell=check.cell.number,
                    step=check.step,
                )
        steps[name] = Step(
            name=name,
            cells=(check.cell,),
            reads=frozenset(found.reads | found.late_reads),
            writes=frozenset(set(found.writes) | (set(found.mutated) - modules)),
            params=tuple(sorted(params)),
            inputs=inputs,
            code=found.code,
        )
        deps[name] = (check.step,)
        checks[name] = check
        if not check.warn:
            for other in order:
                if check.step in deps[other] and other not in checks:
                    deps[other] = (*deps[other], name)
    return checks


def _with_checks(order: tuple[str, ...], checks: Mapping[str, CheckCell]) -> tuple[str, ...]:
    """``order`` with each check right after the step it checks."""
    result: list[str] = []
    for name in order:
        result.append(name)
        result.extend(c for c, info in checks.items() if info.step == name)
    return tuple(result)


def _where(path: Path, step: Step) -> str:
    from .errors import where

    return where(path, step.cell.number, step.name)


def _undefined(path: Path, step: Step, name: str) -> str:
    cell = next((c for c in step.cells if name in c.source), step.cell)
    from .errors import where

    return (
        f"{where(path, cell.number, step.name)}: reads {name!r}, which no earlier step, setup cell "
        "or parameter defines (a builtin, a name from %run, or a typo?)"
    )


def _tag_cell(step: Step, tag: str) -> Cell:
    return next((c for c in step.cells if tag in c.tags), step.cell)


def _file_writer(name: str, writers: dict[str, str]) -> str | None:
    """The step whose ``out:`` produces ``in:name``: the same path, or a folder or glob it falls under."""
    if name in writers:
        return writers[name]
    from fnmatch import fnmatchcase

    for pattern, writer in reversed(list(writers.items())):
        if name.startswith(pattern + "/") or (kind(pattern) == "glob" and fnmatchcase(name, pattern)):
            return writer
    return None


def _execution_order(source: NotebookSource, deps: Mapping[str, tuple[str, ...]]) -> tuple[str, ...]:
    """Topological order that prefers notebook order; ``PipelineError`` on a cycle."""
    position = {step.name: i for i, step in enumerate(source.steps)}
    waiting = {name: len(set(parents)) for name, parents in deps.items()}
    children: dict[str, list[str]] = {name: [] for name in deps}
    for name, parents in deps.items():
        for parent in set(parents):
            children[parent].append(name)
    ready = [(position[n], n) for n, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        _, name = heapq.heappop(ready)
        order.append(name)
        for child in children[name]:
            waiting[child] -= 1
            if waiting[child] == 0:
                heapq.heappush(ready, (position[child], child))
    if len(order) < len(deps):
        cycle = _find_cycle({n: deps[n] for n in deps if n not in order})
        by_name = {s.name: s for s in source.steps}
        # Inferred edges always point up the notebook, so an after: tag closes the cycle.
        parent, child = next(
            ((a, b) for a, b in zip(cycle, cycle[1:], strict=False) if a in by_name[b].after),
            (cycle[0], cycle[1]),
        )
        step = by_name[child]
        raise PipelineError(
            f"the steps form a cycle: {' -> '.join(cycle)}; tag after:{parent} closes it",
            notebook=source.path,
            cell=_tag_cell(step, f"after:{parent}").number,
            step=step.name,
        )
    return tuple(order)


def _find_cycle(deps: Mapping[str, Sequence[str]]) -> list[str]:
    """A cycle among ``deps`` spelled in dependency order: ``['a', 'b', 'a']``."""
    start = next(iter(deps))
    path: list[str] = []
    seen: dict[str, int] = {}
    node = start
    while node not in seen:
        seen[node] = len(path)
        path.append(node)
        node = next(p for p in deps[node] if p in deps)
    cycle = path[seen[node] :] + [node]
    cycle.reverse()  # parents first: "a -> b" means b runs after a
    return cycle
