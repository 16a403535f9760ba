"""A pipeline of notebooks: a graph of pipelines, joined by files.

Each notebook stays a ``Pipeline`` of its own (its kernel, steps, parameters and keys);
``load_project`` joins them with **links**, the only thing that crosses notebooks:

* a step's ``in:`` file that a step of another notebook declares ``out:`` depends on
  that step (the file is keyed by the producing step, as inside a notebook);
* ``after:OTHER.ipynb:STEP`` is an explicit dependency on a step of another notebook.

Keys chain across notebooks: a consumer's key holds the key of each step of another
notebook it depends on (``Pipeline.foreign``), so editing the producer makes the
consumer stale with ``upstream ingest.ipynb:export changed``, and an unchanged
pipeline of notebooks re-runs nothing. Notebooks run one after the other in a
topological order (``run_project`` in ``project_run.py``); no value crosses, only files.

A project is a folder (every notebook of it with a ``step:`` tag, ``.ipynb`` or text
through Jupytext, a paired pair counted once) or an ``nbflow.toml``::

    notebooks = ["ingest.ipynb", "features.py", "model.ipynb"]

    [parameters]          # shared: applied to every notebook declaring the name
    n_rows = 200

Worked example: ``ingest.ipynb:export`` writes ``out:data/clean.csv``; ``features.py``'s
step ``build`` reads ``in:data/clean.csv``; ``model.ipynb``'s ``fit`` has
``after:features.py:build``. The links are ``ingest.ipynb:export -> features.py:build``
(file data/clean.csv) and ``features.py:build -> model.ipynb:fit``; the notebooks run
ingest, features, model. A cycle through notebooks is refused with its path
(``a.ipynb:x -> b.ipynb:y -> a.ipynb:x``), and so are two notebooks that each need a
step of the other (a notebook runs in one go).

Pure: reads notebooks and plans; never starts a kernel (``project_run.py`` runs).
"""

from __future__ import annotations

import dataclasses
import heapq
import posixpath
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import Config
from .errors import ParameterError, PipelineError, did_you_mean
from .graph import Pipeline, _find_cycle, load_pipeline
from .notebook import TEXT_SUFFIXES
from .plan import Plan

PROJECT_FILE = "nbflow.toml"
_SUFFIXES = (".ipynb", *TEXT_SUFFIXES)
_STEP_TAG = re.compile(r"step:[A-Za-z_]")


@dataclass(frozen=True)
class Link:
    """One dependency between steps of two notebooks (``producer`` and ``consumer`` are
    ``notebook:step``); ``file`` is the ``in:`` path as the consumer names it (``None``
    for an ``after:`` tag)."""

    producer: str
    consumer: str
    file: str | None = None

    @property
    def label(self) -> str:
        return f"file:{self.file}" if self.file else "after"


@dataclass(frozen=True)
class Project:
    """Notebooks (by name relative to ``root``, in run order) and the links between them."""

    root: Path
    order: tuple[str, ...]
    pipelines: Mapping[str, Pipeline]
    links: tuple[Link, ...]
    shared: Mapping[str, Any]
    config: Config
    #: Where the project was read from: the folder or the ``nbflow.toml``.
    source: Path

    @property
    def title(self) -> str:
        return self.source.name if self.source.is_file() else self.root.name

    def upstream(self, notebook: str) -> list[str]:
        """The notebooks ``notebook`` needs a step of, in run order."""
        found = {split(link.producer)[0] for link in self.links if split(link.consumer)[0] == notebook}
        return [n for n in self.order if n in found]

    def downstream(self, notebook: str) -> set[str]:
        """Every notebook depending, directly or not, on ``notebook``."""
        todo, seen = [notebook], set()
        while todo:
            current = todo.pop()
            for other in self.order:
                if other not in seen and current in self.upstream(other):
                    seen.add(other)
                    todo.append(other)
        return seen

    def linked(self, notebook: str, keys: Mapping[str, str]) -> Pipeline:
        """``notebook``'s pipeline with the keys of the other notebooks' steps it depends on
        (``keys``: ``notebook:step`` -> key) in its steps' keys."""
        foreign: dict[str, dict[str, str]] = {}
        files: dict[str, set[str]] = {}
        for link in self.links:
            nb, step = split(link.consumer)
            if nb != notebook:
                continue
            foreign.setdefault(step, {})[link.producer] = keys[link.producer]
            if link.file is not None:
                files.setdefault(step, set()).add(link.file)
        return dataclasses.replace(
            self.pipelines[notebook],
            foreign=foreign,
            foreign_files={s: frozenset(f) for s, f in files.items()},
        )

    def parameters_for(
        self, values: Mapping[str, Any] | None = None, raw: Mapping[str, str] | None = None
    ) -> dict[str, tuple[dict[str, Any], dict[str, str]]]:
        """Per notebook, the (values, raw texts) of a run: shared ones from ``nbflow.toml``,
        then ``values``; ``NAME`` goes to every notebook declaring it, ``nb.ipynb:NAME`` to
        that one. A name no notebook declares is refused (types are checked per notebook)."""
        out: dict[str, tuple[dict[str, Any], dict[str, str]]] = {n: ({}, {}) for n in self.order}
        raw = raw or {}
        given = [(k, v, None) for k, v in self.shared.items()] + [(k, v, raw.get(k)) for k, v in (values or {}).items()]
        # a parameter named for one notebook wins over the same name given for all
        for name, value, text in sorted(given, key=lambda g: ":" in g[0]):
            if ":" in name:
                notebook, _, param = name.rpartition(":")
                notebook = self._notebook_name(notebook, f"-p {name}")
                targets = [notebook]
            else:
                param = name
                targets = [n for n in self.order if name in self.pipelines[n].parameters]
                if not targets:
                    declared = sorted({p for n in self.order for p in self.pipelines[n].parameters})
                    known = "; ".join(
                        f"{n}: {', '.join(self.pipelines[n].parameters)}"
                        for n in self.order
                        if self.pipelines[n].parameters
                    )
                    raise ParameterError(
                        f"unknown parameter {name!r}{did_you_mean(name, declared)}: no notebook of the pipeline "
                        f"declares it (parameters: {known or 'none'})",
                        notebook=self.source,
                    )
            for notebook in targets:
                out[notebook][0][param] = value
                if text is not None:
                    out[notebook][1][param] = text
                else:
                    out[notebook][1].pop(param, None)
        return out

    def _notebook_name(self, given: str, what: str) -> str:
        name = posixpath.normpath(given)
        if name in self.pipelines:
            return name
        by_file = [n for n in self.order if posixpath.basename(n) == name]
        if len(by_file) == 1:
            return by_file[0]
        raise ParameterError(
            f"{what}: no notebook {given!r} in the pipeline{did_you_mean(given, self.order)} "
            f"(notebooks: {', '.join(self.order)})",
            notebook=self.source,
        )

    def to_dict(self) -> dict[str, Any]:
        """The pipeline of notebooks as JSON-able data: each notebook's graph and the links."""
        return {
            "project": str(self.source),
            "title": self.title,
            "notebooks": [{"name": n, **self.pipelines[n].to_dict()} for n in self.order],
            "links": [{"source": k.producer, "target": k.consumer, "file": k.file} for k in self.links],
        }


def split(node: str) -> tuple[str, str]:
    """``("ingest.ipynb", "export")`` from ``ingest.ipynb:export``."""
    notebook, _, step = node.rpartition(":")
    return notebook, step


def is_project(path: str | Path) -> bool:
    """Whether ``path`` names a pipeline of notebooks (a folder or a ``.toml`` file)."""
    path = Path(path)
    return path.suffix.lower() == ".toml" or path.is_dir()


def project_of(notebook: str | Path) -> Path | None:
    """The folder or ``nbflow.toml`` of the pipeline of notebooks ``notebook`` belongs to
    (``find_project``), or ``None``."""
    project = find_project(notebook)
    return project.source if project is not None else None


def find_project(notebook: str | Path, check: Callable[[list[Path]], None] | None = None) -> Project | None:
    """The pipeline of notebooks ``notebook`` belongs to: the ``nbflow.toml`` of its folder
    when that file lists it (a bad file raises ``PipelineError`` naming it); else its folder,
    when a link joins it to another pipeline notebook there (a file edge or ``after:NB:STEP``,
    either way); else ``None``. A folder whose notebooks do not load together (one of them
    is broken) is no pipeline of notebooks for its other notebooks: ``None``.

    ``check(paths)`` is called with the notebooks a pipeline lists before any is read (the
    REST API refuses one outside its root there)."""
    notebook = Path(notebook).resolve()
    folder = notebook.parent
    toml = folder / PROJECT_FILE
    if toml.is_file():
        paths, _ = read_project_file(toml)
        if any(Path(p).resolve() == notebook for p in paths):
            if check is not None:
                check(paths)
            return load_project(toml)
    pipeline_notebooks = [p.resolve() for p in find_notebooks(folder)]
    if notebook not in pipeline_notebooks or len(pipeline_notebooks) < 2:
        return None
    if check is not None:
        check(pipeline_notebooks)
    try:
        project = load_project(folder)
    except PipelineError:
        return None
    name = notebook.relative_to(folder).as_posix()
    if any(name in (split(k.producer)[0], split(k.consumer)[0]) for k in project.links):
        return project
    return None


def find_notebooks(folder: Path) -> list[Path]:
    """The pipeline notebooks of ``folder`` (not its subfolders): those with a ``step:`` tag,
    a text notebook paired with an ``.ipynb`` of the folder counted once (as the ``.ipynb``)."""
    from .sources import paired_ipynb

    found = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.suffix.lower() not in _SUFFIXES or not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if not _STEP_TAG.search(text):
            continue
        if path.suffix.lower() == ".py" and "# %%" not in text:
            continue  # a plain script mentioning step: is not a notebook
        if path.suffix.lower() != ".ipynb" and paired_ipynb(path) is not None:
            continue
        found.append(path)
    return found


def read_project_file(path: Path) -> tuple[list[Path], dict[str, Any]]:
    """The notebooks (resolved against the file's folder) and shared parameters of an ``nbflow.toml``."""
    import sys

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PipelineError("no such pipeline file", notebook=path) from None
    except (OSError, UnicodeDecodeError) as e:
        raise PipelineError(f"cannot be read ({e})", notebook=path) from None
    except tomllib.TOMLDecodeError as e:
        raise PipelineError(f"invalid TOML ({e})", notebook=path) from None
    unknown = set(data) - {"notebooks", "parameters"}
    if unknown:
        raise PipelineError(
            f"unknown key(s) {', '.join(sorted(unknown))}; an nbflow.toml has notebooks = [...] and [parameters]",
            notebook=path,
        )
    notebooks = data.get("notebooks")
    if not isinstance(notebooks, list) or not notebooks or not all(isinstance(n, str) for n in notebooks):
        raise PipelineError('notebooks must be a list of notebook paths: notebooks = ["ingest.ipynb"]', notebook=path)
    shared = data.get("parameters", {})
    if not isinstance(shared, dict):
        raise PipelineError("[parameters] must be a table of parameter values", notebook=path)
    paths = []
    for name in notebooks:
        full = path.parent / name
        if not full.is_file():
            raise PipelineError(f"notebooks lists {name!r}, which does not exist", notebook=path)
        paths.append(full)
    return paths, shared


def load_project(path: str | Path) -> Project:
    """Read every notebook of the folder or ``nbflow.toml`` at ``path`` and link them;
    ``PipelineError`` for a bad notebook, link or cycle."""
    path = Path(path)
    if path.is_dir():
        root, shared = path.resolve(), {}
        paths = find_notebooks(root)
        if not paths:
            raise PipelineError(
                "no pipeline notebooks here (a notebook with a code cell tagged step:<name>)", notebook=path
            )
    else:
        paths, shared = read_project_file(path)
        root = path.resolve().parent
    names: dict[str, Pipeline] = {}
    for file in paths:
        name = Path(file).resolve().relative_to(root).as_posix() if _inside(file, root) else str(file)
        if name in names:
            raise PipelineError(f"lists {name} twice", notebook=path)
        names[name] = load_pipeline(file)
    links = _links(names, root)
    order = _notebook_order(list(names), names, links)
    return Project(
        root=root,
        order=order,
        pipelines=names,
        links=links,
        shared=dict(shared),
        config=Config.for_folder(root),
        source=path,
    )


def relink(project: Project, pipelines: Mapping[str, Pipeline]) -> Project:
    """``project`` with ``pipelines`` in place of its notebooks' (one of them edited, not
    saved): links and run order found again (``PipelineError`` as ``load_project``)."""
    links = _links(pipelines, project.root)
    order = _notebook_order(list(pipelines), pipelines, links)
    return dataclasses.replace(project, pipelines=dict(pipelines), links=links, order=order)


def _inside(file: Path, root: Path) -> bool:
    try:
        Path(file).resolve().relative_to(root)
        return True
    except ValueError:
        return False


def _links(pipelines: Mapping[str, Pipeline], root: Path) -> tuple[Link, ...]:
    producers: dict[Path, str] = {}
    for name, pipeline in pipelines.items():
        folder = pipeline.path.parent
        for step in pipeline.order:
            for file in pipeline.steps[step].out_files:
                full = (folder / file).resolve()
                made = f"{name}:{step}"
                other = producers.get(full)
                if other is not None and split(other)[0] != name:
                    raise PipelineError(
                        f"out:{file} is also made by {other}; one file has one producing step",
                        notebook=pipeline.path,
                        cell=pipeline.steps[step].cell.number,
                        step=step,
                    )
                producers.setdefault(full, made)
    links: list[Link] = []
    by_path = {p.path.resolve(): n for n, p in pipelines.items()}
    for name, pipeline in pipelines.items():
        folder = pipeline.path.parent
        for step_name in pipeline.order:
            step = pipeline.steps[step_name]
            for file in step.in_files:
                producer = producers.get((folder / file).resolve())
                if file in step.file_inputs or producer is None or split(producer)[0] == name:
                    continue
                links.append(Link(producer, f"{name}:{step_name}", file))
            for target in step.after_notebooks:
                other_path, _, other_step = target.rpartition(":")
                other = by_path.get((folder / other_path).resolve())
                cell = next((c for c in step.cells if f"after:{target}" in c.tags), step.cell).number
                if other is None:
                    raise PipelineError(
                        f"after:{target} names no notebook of the pipeline (notebooks: {', '.join(pipelines)})",
                        notebook=pipeline.path,
                        cell=cell,
                        step=step_name,
                    )
                if other == name:
                    raise PipelineError(
                        f"after:{target} names this notebook; write after:{other_step}",
                        notebook=pipeline.path,
                        cell=cell,
                        step=step_name,
                    )
                if other_step not in pipelines[other].steps:
                    raise PipelineError(
                        f"after:{target}: {other} has no step {other_step!r}"
                        f"{did_you_mean(other_step, pipelines[other].steps)}",
                        notebook=pipeline.path,
                        cell=cell,
                        step=step_name,
                    )
                links.append(Link(f"{other}:{other_step}", f"{name}:{step_name}"))
    _refuse_step_cycle(pipelines, links)
    return tuple(dict.fromkeys(links))


def _refuse_step_cycle(pipelines: Mapping[str, Pipeline], links: Iterable[Link]) -> None:
    """``PipelineError`` spelling a cycle through the steps of several notebooks."""
    deps: dict[str, set[str]] = {}
    for name, pipeline in pipelines.items():
        for step in pipeline.order:
            deps[f"{name}:{step}"] = {f"{name}:{d}" for d in pipeline.deps[step]}
    for link in links:
        deps[link.consumer].add(link.producer)
    remaining = _unsorted(deps)
    if remaining:
        cycle = _find_cycle({n: sorted(deps[n] & remaining) for n in sorted(remaining)})
        raise PipelineError(f"the notebooks' steps form a cycle: {' -> '.join(cycle)}")


def _unsorted(deps: Mapping[str, set[str]]) -> set[str]:
    """The nodes a topological sort of ``deps`` (node -> parents) cannot place: on or after a cycle."""
    waiting = {n: len(p) for n, p in deps.items()}
    children: dict[str, list[str]] = {n: [] for n in deps}
    for node, parents in deps.items():
        for parent in parents:
            children[parent].append(node)
    ready = [n for n, count in waiting.items() if count == 0]
    placed = set()
    while ready:
        node = ready.pop()
        placed.add(node)
        for child in children[node]:
            waiting[child] -= 1
            if waiting[child] == 0:
                ready.append(child)
    # every node left has a parent left: walking up from any of them ends in a cycle
    return set(deps) - placed


def _notebook_order(names: list[str], pipelines: Mapping[str, Pipeline], links: Iterable[Link]) -> tuple[str, ...]:
    """The notebooks in run order (listed order where links allow); refuse two notebooks
    that need steps of each other."""
    parents: dict[str, dict[str, Link]] = {n: {} for n in names}
    for link in links:
        producer, consumer = split(link.producer)[0], split(link.consumer)[0]
        parents[consumer].setdefault(producer, link)
    position = {n: i for i, n in enumerate(names)}
    waiting = {n: len(p) for n, p in parents.items()}
    ready = [(position[n], n) for n, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        _, name = heapq.heappop(ready)
        order.append(name)
        for other in names:
            if name in parents[other]:
                waiting[other] -= 1
                if waiting[other] == 0:
                    heapq.heappush(ready, (position[other], other))
    if len(order) < len(names):
        left = {n: sorted(p for p in parents[n] if p not in order) for n in names if n not in order}
        left = {n: p for n, p in left.items() if p}
        cycle = _find_cycle(left)
        why = ", ".join(
            f"{parents[b][a].producer} -> {parents[b][a].consumer}" for a, b in zip(cycle, cycle[1:], strict=False)
        )
        raise PipelineError(
            f"notebooks {' and '.join(dict.fromkeys(cycle))} need steps of each other ({why}); a notebook runs "
            "in one kernel, in one go: move one of these steps to the other notebook"
        )
    return tuple(order)


def plan_project(
    project: Project,
    values: Mapping[str, Any] | None = None,
    raw: Mapping[str, str] | None = None,
    *,
    force_all: bool = False,
) -> dict[str, Plan]:
    """Each notebook's plan, in run order, its keys chained to the plans of the notebooks
    it depends on (nothing is executed)."""
    from .run import plan_pipeline

    params = project.parameters_for(values, raw)
    keys: dict[str, str] = {}
    plans: dict[str, Plan] = {}
    for name in project.order:
        given, texts = params[name]
        plan = plan_pipeline(project.linked(name, keys), given, raw=texts, force_all=force_all)
        plans[name] = plan
        keys.update({f"{name}:{e.step}": e.key for e in plan})
    return plans
