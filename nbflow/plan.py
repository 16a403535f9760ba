"""Step keys, and the plan: which steps a run would execute, and why.

**Keys.** A step's key is the SHA-256 of a canonical JSON of its ``KeyParts``: its
normalised code (AST dump: whitespace and comments do not matter), the setup
statements it reaches (``analysis_setup``: the helpers, classes, imports and constants
it uses, transitively, and every statement that defines nothing visible, such as
``np.random.seed(0)``), the values of the parameters it (or the setup) reads, the keys of
the steps it depends on, the content hashes of its ``in:`` files, its file declarations
(``in:``, ``out:``, ``out?:`` tags, in any order: editing ``out:a.txt`` to ``out:b.txt``
or ``out:parts/`` to ``out:plots/*.png`` re-runs it, "outputs changed") and the cache format.
Keys are Merkle-style: deciding freshness hashes code and parameters, never data.

**Plan.** A step is *fresh* when the cache holds an entry for its key, else *stale*,
with reasons found by comparing its parts with those of its latest entry::

    never run | code changed | setup: helper clean() changed | parameter lr changed |
    upstream load changed | input file data.csv changed | outputs changed: out:a.txt -> out:b.txt |
    inputs changed: in:a.txt -> in:b.txt | forced | invalidated |
    cache entry corrupt | value X needed by Y was not cached

Worked example, chain ``load -> clean -> train`` after editing ``clean``:
``load`` keeps its key (fresh); ``clean``'s code part changed (stale, "code changed");
``train``'s upstream part changed because ``clean``'s key did (stale, "upstream
clean changed"). Only ``clean`` and ``train`` run; ``load``'s values are restored.

Each entry also says what the run does with the step (``action``):
``run`` (stale and selected), ``cached`` (fresh: restored only if a running step needs
its values) or ``excluded`` (stale but outside ``--only``).

Pure: takes the pipeline, the parameter values and cache lookups as values and
returns a ``Plan``. Standard library only (it runs on the no-op path).
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

from .cache import CACHE_FORMAT
from .errors import CacheCorrupt
from .hidden_state import capturable, describe_change, hidden_only, is_pseudo, kind_of
from .parameters import canonical

if TYPE_CHECKING:
    from .cache import Entry
    from .graph import Pipeline

State = Literal["fresh", "stale"]
Action = Literal["run", "cached", "excluded"]
#: What a reason is about. Why a step is stale (the plan) or did not run (the executor).
ReasonKind = Literal[
    "never run",
    "cache format changed",
    "code changed",
    "setup changed",
    "parameter changed",
    "upstream changed",
    "input file changed",
    "outputs changed",
    "inputs changed",
    "cache entry missing",
    "cache entry corrupt",
    "forced",
    "invalidated",
    "value needed",
    "upstream failed",
    "setup failed",
    "not selected",
    "run cancelled",
    "run stopped",
    "fail fast",
    "hidden state changed",
    "re-executed",
]


class Reason(str):
    """Why a step runs, or did not: data with a display text.

    The value *is* the display text (``"upstream load changed"``: what the views show,
    the events carry and the run store keeps), so a ``Reason`` goes wherever a string
    does. ``kind`` (a ``ReasonKind``) and ``subject`` (the step, parameter, file or value
    it is about) are the data: code that decides tests ``kind`` (``has_reason``), never
    the text, so a display text never doubles as a flag.
    """

    kind: ReasonKind
    subject: str
    #: For ``hidden state changed`` and ``re-executed``: the state's pseudo-name (``<numpy.random>``).
    state: str | None

    def __new__(cls, kind: ReasonKind, text: str | None = None, subject: str = "", state: str | None = None) -> Reason:
        reason = super().__new__(cls, kind if text is None else text)
        reason.kind = kind
        reason.subject = subject
        reason.state = state
        return reason


def has_reason(reasons: Iterable[str], kind: ReasonKind) -> bool:
    """Whether one of ``reasons`` is a ``Reason`` of ``kind`` (plain text never is)."""
    return any(getattr(r, "kind", None) == kind for r in reasons)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class KeyParts:
    """What a step's key is made of."""

    code: str
    #: label -> digest of each setup statement the step reaches (``analysis_setup``).
    setup: Mapping[str, str]
    params: Mapping[str, Any]
    upstream: Mapping[str, str]
    files: Mapping[str, str] = field(default_factory=dict)
    format: int = CACHE_FORMAT
    #: The step's file tags, sorted: ``{"in": ["in:a.csv"], "out": ["out:parts/", "out?:x.png"]}``
    #: (only the kinds it has; a step without any keeps the key it had before this part existed).
    declared: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @cached_property
    def key(self) -> str:
        """The step key: SHA-256 of the canonical JSON of the parts."""
        return sha256_text(json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")))

    def to_dict(self) -> dict[str, Any]:
        # not dataclasses.asdict: its deep copy was a third of a no-op plan's time (same JSON)
        return {
            "code": self.code,
            "setup": self.setup,
            "params": copy.deepcopy(dict(self.params)),
            "upstream": dict(self.upstream),
            "files": dict(self.files),
            "format": self.format,
            **({"declared": {k: list(v) for k, v in self.declared.items()}} if self.declared else {}),
        }


#: What a step's entry says about its run, as ``step_keys`` needs it (``Known.of(manifest)``).
@dataclass(frozen=True)
class Known:
    """What one step's committed entry (or this run, for a step that just ran) tells.

    ``digests``: value name -> digest of the value the step left (small values, modules,
    functions; names of any kind, hidden-state pseudo-names included); a name without
    one stands for itself by the step's key. ``run_writes``: names the step was seen
    changing when it ran, beyond what its code shows. ``found_reads``: names it was found
    reading at run time (``eval`` of a string), with the step that provided them.
    """

    digests: Mapping[str, str] = field(default_factory=dict)
    run_writes: frozenset[str] = frozenset()
    found_reads: Mapping[str, str] = field(default_factory=dict)
    aliases: tuple[tuple[str, ...], ...] = ()

    @staticmethod
    def of(manifest: Mapping[str, Any] | None) -> Known | None:
        if manifest is None:
            return None
        return Known(
            digests=dict(manifest.get("digests") or {}),
            run_writes=frozenset(manifest.get("run_writes") or ()),
            found_reads=dict(manifest.get("found_reads") or {}),
            aliases=tuple(tuple(g) for g in manifest.get("aliases") or ()),
        )


def value_part(dep_key: str, names: Iterable[str], digests: Mapping[str, str] | None) -> str:
    """What an upstream step contributes to a reader's key: its key, or, when the digests
    of every value the reader takes from it are known, those digests (early cut-off: a
    re-run producing the same values leaves the reader's key alone)."""
    names = sorted(names)
    if not names or digests is None or any(n not in digests for n in names):
        return dep_key
    return "values:" + sha256_text(json.dumps({n: digests[n] for n in names}, sort_keys=True))


def effective_inputs(
    pipeline: Pipeline,
    name: str,
    holders: Mapping[str, tuple[int, str]],
    found: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The step each value ``name`` reads comes from, run-time knowledge included.

    ``holders``: for every value, (position in ``pipeline.order``, step) of the last
    earlier step that wrote it, in its code or as seen at run time. A run-time writer
    after the static provider takes its place; ``found`` adds reads seen at run time.
    """
    step = pipeline.steps[name]
    position = pipeline.position
    inputs = dict(step.inputs)
    for value in sorted(set(step.reads) | set(found or {})):
        held = holders.get(value)
        static = inputs.get(value)
        if held is None:
            if found and value in found and static is None and found[value] in position:
                inputs[value] = found[value]
            continue
        if static is None or held[0] > position.get(static, -1):
            inputs[value] = held[1]
    if step.map_over:
        inputs.pop(step.map_as or "", None)
    return inputs


def step_keys(
    pipeline: Pipeline,
    params: Mapping[str, Any],
    file_hashes: Mapping[str, str] | None = None,
    known: Callable[[str, str], Known | None] | None = None,
    found_reads: Callable[[str, str], Mapping[str, str]] | None = None,
    inputs_out: dict[str, dict[str, str]] | None = None,
    fixed: Mapping[str, KeyParts] | None = None,
    until: str | None = None,
) -> dict[str, KeyParts]:
    """The ``KeyParts`` of every step for a run with parameter values ``params``.

    ``known(step, key)`` says what the entry of ``step`` under ``key`` recorded (or the
    run, for a step that ran): value digests, run-time writes, run-time reads; ``None``
    when there is no entry. Without it keys depend on upstream keys only.
    ``found_reads(step, code)``: reads a previous run of the same code found at run
    time (tried when the key without them has no entry). ``inputs_out`` receives every
    step's effective inputs (value -> providing step). ``fixed`` steps keep the parts
    given (a run's finished steps); ``until`` stops after that step (a run re-keying it).
    """
    files = file_hashes or {}
    parts: dict[str, KeyParts] = {}
    keys: dict[str, str] = {}
    holders: dict[str, tuple[int, str]] = {}
    for position, name in enumerate(pipeline.order):
        step = pipeline.steps[name]
        used = sorted(set(step.params) | set(pipeline.setup_params))
        code = sha256_text(step.code)

        def parts_with(found: Mapping[str, str], step=step, name=name, used=used, code=code) -> KeyParts:
            inputs = effective_inputs(pipeline, name, holders, found)
            if inputs_out is not None:
                inputs_out[name] = inputs
            # a step waits for the checks of its upstream steps, but its key does not hold them
            deps = {d for d in pipeline.deps[name] if d not in pipeline.checks} | set(inputs.values())
            pinned = set(step.after) | set(step.file_inputs.values())
            upstream = {}
            for dep in sorted(deps):
                taken = [] if dep in pinned else [v for v, p in inputs.items() if p == dep]
                if step.map_over in taken:
                    taken = []  # elements may name files: their content keys the elements, not the names
                info = known(dep, keys[dep]) if known is not None and taken else None
                upstream[dep] = value_part(keys[dep], taken, info.digests if info else None)
            upstream.update(pipeline.foreign.get(name, {}))  # steps of other notebooks (project.py)
            made = pipeline.foreign_files.get(name, frozenset())
            return KeyParts(
                code=code,
                setup=setup_part_of(pipeline, name),
                params={p: canonical(params[p]) for p in used},
                upstream=upstream,
                files={
                    f: files.get(f, "missing") for f in step.in_files if f not in step.file_inputs and f not in made
                },
                declared=declared_part(step),
            )

        if fixed is not None and name in fixed:
            parts[name] = fixed[name]
            info = known(name, parts[name].key) if known is not None else None
            keys[name] = parts[name].key
            if inputs_out is not None:
                found = info.found_reads if info else (found_reads(name, code) if found_reads is not None else None)
                inputs_out[name] = effective_inputs(pipeline, name, holders, found)
            if name not in pipeline.checks:
                for value in step.writes:
                    holders[value] = (position, name)
                for value in info.run_writes if info else ():
                    holders[value] = (position, name)
            continue
        parts[name] = parts_with({})
        info = known(name, parts[name].key) if known is not None else None
        if info is None and found_reads is not None:
            found = found_reads(name, code)
            if found:
                parts[name] = parts_with(found)
                info = known(name, parts[name].key) if known is not None else None
        keys[name] = parts[name].key
        if name not in pipeline.checks:  # a check's values are never another step's input
            for value in step.writes:
                holders[value] = (position, name)
            for value in info.run_writes if info else ():
                holders[value] = (position, name)
        if name == until:
            break
    return parts


def item_key(pipeline: Pipeline, step: str, parts: KeyParts, fingerprint: str) -> str:
    """The key of one element of a ``map:`` step.

    It is the step's key with the iterable's contribution replaced by the element's
    fingerprint (a hash of its value, computed where it lives): when the iterable grows
    by one element, the other elements keep their keys and stay cached. The iterable's
    producer is left out only when the step reads nothing else from it.
    """
    info = pipeline.steps[step]
    upstream = dict(parts.upstream)
    params = dict(parts.params)
    producer = info.inputs.get(info.map_over or "")
    if (
        producer is not None
        and all(name == info.map_over for name, p in info.inputs.items() if p == producer)
        and producer not in info.file_inputs.values()
        and producer not in info.after
    ):
        upstream.pop(producer, None)
    if info.map_over in params and info.map_over not in pipeline.setup_params:
        params.pop(info.map_over)
    recipe: dict[str, Any] = {
        "item": fingerprint,
        "code": parts.code,
        "setup": dict(parts.setup),
        "params": params,
        "upstream": upstream,
        "files": dict(parts.files),
        "format": parts.format,
    }
    if parts.declared:
        recipe["declared"] = {k: list(v) for k, v in parts.declared.items()}
    return sha256_text(json.dumps(recipe, sort_keys=True, separators=(",", ":")))


def declared_part(step: Any) -> dict[str, tuple[str, ...]]:
    """The ``declared`` part of ``step``'s key: its ``in:`` and ``out:``/``out?:`` tags, sorted."""
    optional = set(step.optional_outs)
    part = {
        "in": tuple(sorted(f"in:{f}" for f in step.in_files)),
        "out": tuple(sorted(f"out?:{f}" if f in optional else f"out:{f}" for f in step.out_files)),
    }
    return {k: v for k, v in part.items() if v}


def declared_reasons(mine: Mapping[str, Iterable[str]], theirs: Any) -> list[Reason]:
    """``outputs changed: out:a.txt -> out:b.txt`` (and ``inputs changed``) between two ``declared`` parts."""
    theirs = theirs if isinstance(theirs, Mapping) else {}
    reasons = []
    for kind, label in (("out", "outputs"), ("in", "inputs")):
        now, before = set(mine.get(kind, ())), set(theirs.get(kind, ()))
        if now != before:
            was = ", ".join(sorted(before - now)) or "none"
            becomes = ", ".join(sorted(now - before)) or "none"
            reasons.append(Reason(f"{label} changed", f"{label} changed: {was} -> {becomes}"))  # type: ignore[arg-type]
    return reasons


def setup_part_of(pipeline: Pipeline, step: str) -> dict[str, str]:
    """The setup part of ``step``'s key: the setup statements it reaches (label -> digest)."""
    part = pipeline.setup_parts.get(step)
    if part is None:  # a pipeline built without the reach: the whole setup
        return {s.label: s.digest for s in pipeline.setup_statements} or {"setup": sha256_text(pipeline.setup.code)}
    return dict(part)


def setup_reasons(mine: Mapping[str, str], theirs: Any) -> list[Reason]:
    """``setup: helper clean() changed`` for each setup statement reached that differs
    from the previous entry's (added, removed or edited)."""
    if theirs == mine:
        return []
    if not isinstance(theirs, Mapping):  # an entry keyed on the whole setup (before setup precision)
        return [Reason("setup changed")]
    reasons = []
    for label in sorted(set(mine) | set(theirs)):
        if label not in theirs:
            change = "added"
        elif label not in mine:
            change = "removed"
        elif mine[label] != theirs[label]:
            change = "changed"
        else:
            continue
        reasons.append(Reason("setup changed", f"setup: {label} {change}", subject=label))
    return reasons


def upstream_reasons(step: str, passed: Iterable[str]) -> list[Reason]:
    """``upstream a changed``, or, when ``a`` passes only hidden state, what it changed:
    ``random state changed (numpy) after step a``."""
    passed = list(passed)
    if not hidden_only(passed):
        return [Reason("upstream changed", f"upstream {step} changed", subject=step)]
    return [Reason("hidden state changed", describe_change(n, step), subject=step, state=n) for n in sorted(passed)]


def reexecuted(state: str | None) -> Reason:
    """Why a cached step runs again: it left state nbflow cannot restore (or is tagged ``always``)."""
    if state is None:
        return Reason("re-executed", "re-executed: tagged always")
    return Reason("re-executed", f"re-executed: {kind_of(state).label}", state=state)


def explain(
    parts: KeyParts, previous: Mapping[str, Any] | None, passed: Mapping[str, Iterable[str]] | None = None
) -> tuple[Reason, ...]:
    """Why a step with ``parts`` has no entry, given its latest entry's parts.

    ``passed``: what each upstream step passes to this one (to say "random state
    changed" rather than "upstream changed" for hidden state).
    """
    if not previous:
        return (Reason("never run"),)
    reasons = []
    if previous.get("format") != parts.format:
        reasons.append(Reason("cache format changed"))
    if previous.get("code") != parts.code:
        reasons.append(Reason("code changed"))
    reasons += setup_reasons(parts.setup, previous.get("setup"))
    reasons += declared_reasons(parts.declared, previous.get("declared"))
    kinds: tuple[tuple[str, str, ReasonKind, Mapping[str, Any]], ...] = (
        ("params", "parameter", "parameter changed", parts.params),
        ("upstream", "upstream", "upstream changed", parts.upstream),
        ("files", "input file", "input file changed", parts.files),
    )
    for field_name, label, kind, mine in kinds:
        theirs = previous.get(field_name) or {}
        for name in sorted(set(mine) | set(theirs)):
            if mine.get(name) != theirs.get(name):
                if field_name == "upstream" and passed is not None:
                    reasons += upstream_reasons(name, passed.get(name, ()))
                else:
                    reasons.append(Reason(kind, f"{label} {name} changed", subject=name))
    return tuple(reasons) or (Reason("cache entry missing"),)


def always(pipeline: Pipeline, step: str) -> bool:
    """Whether ``step`` is tagged ``always`` (re-executed before any dependent step runs)."""
    return any("always" in cell.tags for cell in pipeline.steps[step].cells)


def restorable(pipeline: Pipeline, name: str, provider: str) -> bool:
    """Whether the value or hidden state ``name`` of ``provider`` can be put back from its
    entry: not pyplot's figures and the like, and not the state a ``map:`` step left
    (its entry holds one per element)."""
    return not is_pseudo(name) or (capturable(name) and not pipeline.steps[provider].map_over)


def replay_chain(pipeline: Pipeline, step: str) -> list[str]:
    """The steps to re-execute, in execution order, in a fresh process before ``step``
    runs there: the writers of state nbflow cannot capture that it reads (pyplot's
    figures; and, transitively, the writers those read) and the ``always`` steps it
    depends on."""
    chain: set[str] = set()
    todo = [step]
    while todo:
        current = todo.pop()
        providers = [p for n, p in pipeline.steps[current].inputs.items() if not restorable(pipeline, n, p)]
        providers += [p for p in pipeline.deps[current] if always(pipeline, p)]
        for provider in providers:
            if provider not in chain:
                chain.add(provider)
                todo.append(provider)
    return [s for s in pipeline.order if s in chain]


@dataclass(frozen=True)
class PlanEntry:
    """One step of a plan."""

    step: str
    key: str
    state: State
    action: Action
    reasons: tuple[str, ...] = ()
    parts: KeyParts | None = None
    #: Running steps that read what this cached step reads: they may change it at run
    #: time (an alias, an unclassified call), so its key is checked again after them.
    recheck: tuple[str, ...] = ()
    #: What the step's entry holds, in a few words (``cache.output_summary``); "" without one.
    summary: str = ""

    @property
    def why(self) -> str:
        """The reasons as one line (``"fresh"`` for a cached step)."""
        return "; ".join(self.reasons) if self.reasons else "fresh"


@dataclass(frozen=True)
class Plan:
    """What a run would do, step by step, in execution order."""

    notebook: str
    params: Mapping[str, Any]
    entries: Mapping[str, PlanEntry]
    #: the ``cutoff.Knowledge`` the plan read the cache with (memoised entries), reused by the run
    knowledge: Any = field(default=None, repr=False, compare=False)

    def __iter__(self):
        return iter(self.entries.values())

    def __getitem__(self, step: str) -> PlanEntry:
        return self.entries[step]

    @property
    def to_run(self) -> list[str]:
        return [e.step for e in self if e.action == "run"]

    @property
    def stale(self) -> list[str]:
        return [e.step for e in self if e.state == "stale"]

    @property
    def fresh(self) -> list[str]:
        return [e.step for e in self if e.state == "fresh"]

    def table(self) -> str:
        """A plain-text table: step, state, action, reasons."""
        rows = [("step", "state", "action", "why")]
        rows += [(e.step, e.state, e.action, e.why) for e in self]
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        lines = [
            "  ".join([*(cell.ljust(w) for cell, w in zip(row[:3], widths, strict=True)), row[3]]).rstrip()
            for row in rows
        ]
        lines.insert(1, "  ".join("-" * w for w in widths) + "  " + "-" * 3)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "notebook": self.notebook,
            "params": dict(self.params),
            "steps": [
                {
                    "step": e.step,
                    "key": e.key,
                    "state": e.state,
                    "action": e.action,
                    "reasons": list(e.reasons),
                    "summary": e.summary,
                }
                for e in self
            ],
        }


def compute_plan(
    pipeline: Pipeline,
    params: Mapping[str, Any],
    parts: Mapping[str, KeyParts],
    lookup: Callable[[str, str], Entry | None],
    latest: Callable[[str], Entry | None],
    *,
    force: Iterable[str] = (),
    force_all: bool = False,
    only: Iterable[str] = (),
    from_: Iterable[str] = (),
    invalidated: Callable[[str, str], bool] = lambda step, key: False,
) -> Plan:
    """Decide, for every step, fresh or stale (with reasons) and what the run does.

    ``force`` reruns steps whose entries exist; ``from_`` reruns steps and everything
    downstream of them; ``only`` restricts the run to those steps plus the stale steps
    they need upstream. ``lookup(step, key)`` returns the entry or ``None`` and may
    raise ``CacheCorrupt``; ``latest(step)`` returns the newest entry of a step.
    """
    from_ = list(from_)
    forced = set(force) | set(from_) | pipeline.descendants(from_)
    if force_all:
        forced = set(pipeline.order)
    reasons: dict[str, list[Reason]] = {}
    entries: dict[str, Entry | None] = {}
    for name in pipeline.order:
        key = parts[name].key
        try:
            entries[name] = lookup(name, key)
        except CacheCorrupt:
            entries[name] = None
            reasons[name] = [Reason("cache entry corrupt")]
            continue
        if name in forced:
            reasons[name] = [Reason("forced")]
        elif entries[name] is None:
            if invalidated(name, key):
                reasons[name] = [Reason("invalidated")]
                continue
            previous = latest(name)
            passed = {d: pipeline.edge_names.get((d, name), ()) for d in pipeline.deps[name]}
            reasons[name] = list(explain(parts[name], previous.parts if previous else None, passed))

    selected = set(pipeline.check_steps(only, "--only")) if only else set(pipeline.order)
    if only:
        selected |= {a for a in pipeline.ancestors(selected) if a in reasons}

    def runs(name: str) -> bool:
        return name in reasons and name in selected

    # A running step may change, through an alias or a call the analysis cannot
    # classify, a value it reads: a later cached step reading that value is checked
    # again once those steps have run (``PlanEntry.recheck``).
    touched: dict[str, set[str]] = {}
    recheck: dict[str, tuple[str, ...]] = {}
    for name in pipeline.order:
        info = pipeline.steps[name]
        if name not in reasons:
            shared = (set(info.reads) & set(touched)) - set(pipeline.parameters)
            if shared:
                recheck[name] = tuple(s for s in pipeline.order if any(s in touched[v] for v in shared))
        if runs(name):
            for value in set(info.reads) - pipeline.modules:
                touched.setdefault(value, set()).add(name)

    # A running step needs its inputs' values; a cached provider whose entry lacks
    # one (it could not be pickled) has to run too, and so does one that left hidden
    # state nbflow cannot capture (pyplot's figures) or is tagged `always`.
    changed = True
    while changed:
        changed = False
        for name in pipeline.order:
            if not runs(name):
                continue
            for provider in pipeline.deps[name]:
                if not runs(provider) and always(pipeline, provider) and provider not in reasons:
                    reasons[provider] = [reexecuted(None)]
                    selected.add(provider)
                    changed = True
            for value, provider in pipeline.steps[name].inputs.items():
                entry = entries.get(provider)
                replayed = not restorable(pipeline, value, provider)
                if runs(provider) or entry is None or (value in entry.names and not replayed):
                    continue
                if replayed:
                    reasons.setdefault(provider, [reexecuted(value)])
                else:
                    why = entry.missing.get(value, "it was not cached")
                    reasons[provider] = [
                        Reason("value needed", f"value {value} needed by {name}: {why}", subject=value)
                    ]
                selected.add(provider)
                changed = True

    plan_entries = {}
    for name in pipeline.order:
        stale = name in reasons
        action: Action = "run" if runs(name) else ("excluded" if stale else "cached")
        plan_entries[name] = PlanEntry(
            step=name,
            key=parts[name].key,
            state="stale" if stale else "fresh",
            action=action,
            reasons=tuple(reasons.get(name, ())),
            parts=parts[name],
            recheck=recheck.get(name, ()) if action == "cached" else (),
            summary=str(entries[name].manifest.get("summary") or "") if entries.get(name) is not None else "",
        )
    return Plan(notebook=str(pipeline.path), params=dict(params), entries=plan_entries)
