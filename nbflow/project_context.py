"""One notebook planned inside its pipeline of notebooks: the one way every view of a
single notebook gets its ``Pipeline``.

``in_project(pipeline)`` takes a notebook's pipeline as its entry point loaded it (from
disk, or the edited notebook of the studio or of a JupyterLab request) and returns it
**linked**: the keys of the steps of other notebooks it depends on (``Pipeline.foreign``,
from those notebooks' current plans, planned in order with the ``nbflow.toml``'s shared
parameters; pure, no kernel) and which of those steps are not ready
(``Pipeline.foreign_stale``); the ``nbflow.toml``'s shared parameters become its defaults
(``Pipeline.shared_params``: a run injects them). A notebook of no pipeline of notebooks
(``project.find_project``'s rule), or one that reads nothing another notebook could make
(no ``in:`` file, no ``after:NB:STEP``, no ``nbflow.toml``), comes back unchanged. So a notebook's badges, ``nbflow
plan|run NB`` and the pipeline's section (``server_project.py``) show the same keys, and
switching between ``nbflow run FOLDER`` and ``nbflow run NB`` re-runs nothing.

Worked example (``ingest.ipynb:export`` writes ``out:data/clean.csv``, ``model.ipynb:fit``
reads ``in:data/clean.csv``)::

    in_project(load_pipeline("model.ipynb"))
      folder stamp (names, sizes, mtimes) unchanged -> the linked Project from the memo
      plan ingest.ipynb            -> export: key 3f2a..., fresh
      model.ipynb linked           -> fit's key holds ingest.ipynb:export's key, not
                                      the hash of data/clean.csv

**An upstream step that is not ready.** A step of another notebook is *not ready* when
its current key has no committed entry (it is stale: its notebook was edited, or never
ran) or when the ``out:`` file the consumer reads is not the one its entry recorded (it
was edited or removed since). A consumer step computed then would be cached under a key
that claims a file it did not read, so ``run.prepare_run`` refuses to run it with one
line naming the upstream notebook, step and the command (``foreign.refuse_unready_upstream``).
``nbflow run NB`` does what ``make`` and Snakemake do for a target: it first runs the
notebooks NB needs (``run_upstream_first``: an ordinary run of each, which recomputes the
stale steps and restores changed files from the cache), says which, then runs NB. The
interactive views (JupyterLab, the studio, the widget, ``%nbflow``) refuse with that line
instead: they run one notebook in its kernel, and *Run pipeline of notebooks* is one
click away.

**Bad input elsewhere.** When the notebook's ``nbflow.toml`` cannot be read, or another
notebook of its pipeline does not load, the notebook is planned alone (the ``in:`` file
hashed, as for any notebook) with one line in ``Pipeline.warnings`` saying why; the
pipeline's own commands (``nbflow run FOLDER``, ``GET project``) keep their errors.

**Memo.** Reading and linking every notebook is remembered per folder, keyed on the
names, sizes and modification times of the folder's notebook files and ``nbflow.toml``
and of every notebook a project lists (so a server answering badges re-reads nothing
while nothing changed). Plans are not remembered: they depend on the cache and on input
files, and planning a notebook with nothing to read is cheap.

Must not: start a kernel, write anything, or decide freshness itself (``plan.py``).
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import NbflowError, PipelineError
from .foreign import unready_needs
from .parameters import coerce

if TYPE_CHECKING:
    from .graph import Pipeline
    from .plan import Plan
    from .project import Project

_MEMO_SIZE = 64
#: ``project.PROJECT_FILE`` (a test checks they agree), known here without importing ``project``: a
#: notebook alone in its folder pays a listing, nothing read, nothing imported
PROJECT_FILE = "nbflow.toml"
_memo: dict[tuple[Path, bool], tuple[Any, Any, Any]] = {}
_memo_lock = threading.Lock()


def in_project(pipeline: Pipeline, check: Callable[[list[Path]], None] | None = None) -> Pipeline:
    """``pipeline`` linked in the pipeline of notebooks its notebook belongs to, or
    unchanged when it belongs to none (see module docstring). ``check(paths)`` is called
    with the notebooks a project lists before they are read (the REST API confines them
    to its root; a ``PipelineError`` it raises makes the notebook planned alone)."""
    path = pipeline.path.resolve()
    stamp = _folder_stamp(path.parent)
    toml = any(name == PROJECT_FILE for name, _, _ in stamp)
    consumes = any(s.in_files or s.after_notebooks for s in pipeline.steps.values())
    if not toml and (len(stamp) < 2 or not consumes):
        # alone in its folder, or it reads nothing another notebook could make: its keys hold
        # no other notebook's (a listing, nothing read, nothing imported)
        return pipeline
    try:
        project = _project_of(path, check, stamp)
        if project is None:
            return pipeline
        name = path.relative_to(project.root).as_posix() if path.is_relative_to(project.root) else str(pipeline.path)
        project = _with_notebook(project, name, pipeline)
        shared = project.parameters_for()[name][0]
        if not shared and not any(name in (_notebook(k.producer), _notebook(k.consumer)) for k in project.links):
            return pipeline
        keys, unready = upstream_keys(project, name)
        parameters = {
            n: dataclasses.replace(p, default=coerce(p, shared[n], None, pipeline.path)) if n in shared else p
            for n, p in pipeline.parameters.items()
        }
    except NbflowError as e:  # another notebook, or the nbflow.toml, is broken: never this one's views
        return dataclasses.replace(pipeline, warnings=(*pipeline.warnings, _alone(e)))
    return dataclasses.replace(
        project.linked(name, keys),
        foreign_stale=unready,
        project=project.source,
        parameters=parameters,
        shared_params=frozenset(shared),
    )


def upstream_keys(project: Project, name: str) -> tuple[dict[str, str], dict[str, str]]:
    """The keys of the steps of the notebooks ``name`` needs (``notebook:step`` -> key, from
    their current plans, in run order) and, of the steps ``name`` links to, those not
    ready (-> why)."""
    from .run import plan_pipeline

    needed = ancestors(project, name)
    params = project.parameters_for()
    keys: dict[str, str] = {}
    plans: dict[str, Plan] = {}
    for other in project.order:
        if other not in needed:
            continue
        given, texts = params[other]
        plan = plan_pipeline(project.linked(other, keys), given, raw=texts)
        plans[other] = plan
        keys.update({f"{other}:{e.step}": e.key for e in plan})
    unready: dict[str, str] = {}
    for link in project.links:
        if _notebook(link.consumer) != name or link.producer in unready:
            continue
        producer, step = link.producer.rsplit(":", 1)
        entry = plans[producer][step]
        if entry.state == "stale":
            unready[link.producer] = f"is stale ({entry.why})"
        elif link.file is not None:
            changed = _file_changed(project, producer, step, entry.key, project.pipelines[name].path.parent / link.file)
            if changed:
                unready[link.producer] = changed
    return keys, unready


def ancestors(project: Project, name: str) -> set[str]:
    """Every notebook ``name`` needs a step of, directly or not."""
    from .graph import reachable

    return reachable([name], project.upstream)


def run_upstream_first(pipeline: Pipeline, plan: Plan, say: Callable[[str], None], **options: Any) -> Any:
    """Run the notebooks ``pipeline``'s notebook needs (``project_run.run_project``, with
    ``options``) when a step its ``plan`` runs needs a step of theirs that is not ready;
    ``say`` is told which. Returns the ``ProjectRun`` (``None`` when nothing was needed);
    ``StepFailed`` naming the notebook that did not finish (the notebook is then not run).
    Ctrl-C cancels them and waits for them to stop."""
    needs = unready_needs(pipeline, plan)
    if not needs or pipeline.project is None:
        return None
    from .errors import StepFailed
    from .project_run import ProjectRun, run_project

    project = _project_of(pipeline.path.resolve(), None)
    if project is None:  # pragma: no cover - the notebook was linked a moment ago
        return None
    name = pipeline.path.resolve().relative_to(project.root).as_posix()
    needed = ancestors(project, name)
    order = tuple(n for n in project.order if n in needed)
    declared = {p for n in order for p in project.pipelines[n].parameters}
    upstream = dataclasses.replace(
        project, order=order, shared={k: v for k, v in project.shared.items() if k in declared}
    )
    step, producer = needs[0]
    say(
        f"nbflow: {name} (step {step}) needs {producer}, which {pipeline.foreign_stale[producer]}; "
        f"running {', '.join(order)} first"
    )
    handle = ProjectRun(upstream)
    try:
        result = run_project(upstream, handle=handle, **options)
    except KeyboardInterrupt:
        handle.cancel()
        for run in list(handle.runs.values()):
            run.wait()
        raise
    if result.status != "done":
        failed = next((n for n in order if n in result.skipped or result.runs[n].status != "done"), order[-1])
        run = result.runs.get(failed)
        why = result.skipped.get(failed) or (run.error if run is not None else "") or (run.status if run else "")
        raise StepFailed(f"not run: the notebook it needs, {failed}, did not finish ({why})", notebook=pipeline.path)
    return result


# ------------------------------------------------------------------ finding the project


@dataclasses.dataclass(frozen=True)
class _Found:
    """What a folder (or its ``nbflow.toml``) holds, as remembered: the project, or the
    error reading it, and the pipeline notebooks of the folder."""

    project: Project | None
    error: PipelineError | None
    notebooks: tuple[Path, ...] = ()


def _project_of(
    notebook: Path, check: Callable[[list[Path]], None] | None, stamp: tuple[tuple[str, int, int], ...] | None = None
) -> Project | None:
    """The pipeline of notebooks ``notebook`` (resolved) belongs to, read once per folder
    stamp; ``PipelineError`` when it cannot be read (the caller plans it alone)."""
    from .project import read_project_file

    folder = notebook.parent
    toml = folder / PROJECT_FILE
    listed = False
    if toml.is_file():
        paths = [p.resolve() for p in read_project_file(toml)[0]]
        listed = notebook in paths
        if listed and check is not None:
            check(paths)
    stamp = stamp if stamp is not None else _folder_stamp(folder)
    with _memo_lock:
        memo = _memo.get((folder, listed))
    if memo is not None and memo[0] == stamp and _listed_stamp(memo[1].project) == memo[2]:
        found: _Found = memo[1]
    else:
        found = _read(folder, toml if listed else None)
        if found.error is None or not listed:  # a listed notebook of another folder may be fixed unseen
            with _memo_lock:
                if len(_memo) >= _MEMO_SIZE:
                    _memo.pop(next(iter(_memo)))
                _memo[(folder, listed)] = (stamp, found, _listed_stamp(found.project))
    if found.error is not None:
        if listed or notebook in found.notebooks:
            raise found.error
        return None
    project = found.project
    if project is None or not any(p.path.resolve() == notebook for p in project.pipelines.values()):
        return None
    if not listed and check is not None:
        check([p.path for p in project.pipelines.values()])
    return project


def _read(folder: Path, toml: Path | None) -> _Found:
    """The project of ``folder`` (its ``toml`` when given; none for fewer than two pipeline
    notebooks), or the error reading it."""
    from .project import find_notebooks, load_project

    if toml is not None:
        try:
            return _Found(load_project(toml), None)
        except PipelineError as e:
            return _Found(None, e)
    notebooks = tuple(p.resolve() for p in find_notebooks(folder))
    if len(notebooks) < 2:
        return _Found(None, None, notebooks)
    try:
        return _Found(load_project(folder), None, notebooks)
    except PipelineError as e:
        return _Found(None, e, notebooks)


def _folder_stamp(folder: Path) -> tuple[tuple[str, int, int], ...]:
    """Name, size and modification time of the folder's notebook files and ``nbflow.toml``."""
    from .notebook import TEXT_SUFFIXES

    kinds = (".ipynb", *TEXT_SUFFIXES)
    found = []
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                name = entry.name
                if name.startswith(".") or not (name == PROJECT_FILE or name.lower().endswith(kinds)):
                    continue
                try:
                    st = entry.stat()
                except OSError:
                    continue
                found.append((name, st.st_size, st.st_mtime_ns))
    except OSError:
        pass
    return tuple(sorted(found))


def _listed_stamp(project: Project | None) -> tuple[tuple[str, int, int], ...]:
    """Size and modification time of every notebook a project lists (an ``nbflow.toml`` may
    list notebooks of other folders)."""
    if project is None:
        return ()
    stamp = []
    for pipeline in project.pipelines.values():
        try:
            st = pipeline.path.stat()
            stamp.append((str(pipeline.path), st.st_size, st.st_mtime_ns))
        except OSError:
            stamp.append((str(pipeline.path), -1, -1))
    return tuple(stamp)


def _with_notebook(project: Project, name: str, pipeline: Pipeline) -> Project:
    """``project`` with ``pipeline`` as its notebook ``name`` (the caller's, perhaps edited:
    its links are found again when its content differs from the file's)."""
    from .project import relink

    pipelines = {**project.pipelines, name: pipeline}
    if project.pipelines[name].source.content_hash == pipeline.source.content_hash:
        return dataclasses.replace(project, pipelines=pipelines)
    return relink(project, pipelines)


def _file_changed(project: Project, producer: str, step: str, key: str, file: Path) -> str:
    """Why ``file`` (made by ``producer``'s ``step`` under ``key``) is not the one its entry
    recorded, or ``""`` when it is."""
    pipeline = project.pipelines[producer]
    entry = pipeline.config.cache().lookup(step, key)
    if entry is None:
        return ""
    from .cache import as_recorded

    folder, target = pipeline.path.parent, file.resolve()
    for name, info in entry.out_files.items():
        if (folder / name).resolve() != target:
            continue
        try:
            st = target.stat()
        except OSError:
            return f"made out:{name}, which is missing"
        if not as_recorded(st, info):
            return f"made out:{name}, which was changed since"
    return ""


def _alone(error: NbflowError) -> str:
    return f"planned on its own, without the other notebooks of its pipeline: {error}"


def _notebook(node: str) -> str:
    return node.rpartition(":")[0]
