"""Early cut-off: what step keys learn from committed entries and from the running run.

A step's key depends on the *values* it takes from upstream steps when their digests
are known (``plan.value_part``), not only on the upstream steps' keys. Digests are
recorded in an entry's manifest (``digests``, computed where the values live by
``fingerprint.value_digests``), together with what the step was seen doing at run time:
``run_writes`` (values it changed beyond what its code shows: through an alias, a
call the analysis cannot classify) and ``found_reads`` (values it read through
``eval``/``exec`` of a string, discovered by a ``NameError``).

``Knowledge`` answers ``plan.step_keys``' two questions -- what does the entry of a
step under a key say (``known``), which reads did a previous run of the same code find
(``found_reads``) -- first from what this run learnt (``learn``), then from the cache.
The executors call ``Knowledge.rekey`` before running a step: with the digests of the
upstream steps that have just run, the step's key may now have an entry (the upstream
steps re-ran and produced the same values), and the step is restored instead of run.

Worked example: ``[step:setup] import numpy as np; n = 3`` -> ``[step:use] y = np.ones(2)``.
Editing ``n = 4`` re-runs ``setup``; its ``np`` has the digest ``module:numpy`` as
before, so ``use``'s key is unchanged and it stays cached.

Must not: run code, talk to the store, or publish events (the executor does).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .errors import CacheCorrupt
from .plan import KeyParts, Known, sha256_text, step_keys

if TYPE_CHECKING:
    from .cache import Cache, Entry
    from .graph import Pipeline


class Knowledge:
    """Entries' and this run's knowledge of steps (see module docstring)."""

    def __init__(self, pipeline: Pipeline, cache: Cache) -> None:
        self.pipeline = pipeline
        self.cache = cache
        self._entries: dict[tuple[str, str], Entry | None] = {}
        self._latest: dict[str, Entry | None] = {}
        #: what this run learnt, by step: the ``Known`` of its run and the key it ran under
        self.ran: dict[str, tuple[str, Known]] = {}

    # ------------------------------------------------------------ lookups
    def lookup(self, step: str, key: str) -> Entry | None:
        """``Cache.lookup``, memoised (``CacheCorrupt`` is raised again each time)."""
        if (step, key) not in self._entries:
            self._entries[(step, key)] = self.cache.lookup(step, key)
        return self._entries[(step, key)]

    def latest(self, step: str) -> Entry | None:
        """The newest entry of ``step`` written by this notebook, memoised."""
        if step not in self._latest:
            self._latest[step] = self.cache.latest(step, notebook=self.pipeline.path.name)
        return self._latest[step]

    def forget(self, step: str, key: str) -> None:
        self._entries.pop((step, key), None)

    def known(self, step: str, key: str) -> Known | None:
        ran = self.ran.get(step)
        if ran is not None and ran[0] == key:
            return ran[1]
        try:
            entry = self.lookup(step, key)
        except CacheCorrupt:
            return None
        return Known.of(entry.manifest) if entry is not None else None

    def found_reads(self, step: str, code: str) -> Mapping[str, str]:
        ran = self.ran.get(step)
        if ran is not None and ran[1].found_reads:
            return ran[1].found_reads
        latest = self.latest(step)
        if latest is None or latest.parts.get("code") != code:
            return {}
        return dict(latest.manifest.get("found_reads") or {})

    # --------------------------------------------------------------- keys
    def keys(
        self,
        params: Mapping[str, Any],
        files: Mapping[str, str] | None = None,
        inputs_out: dict[str, dict[str, str]] | None = None,
        fixed: Mapping[str, KeyParts] | None = None,
        until: str | None = None,
    ) -> dict[str, KeyParts]:
        """Every step's ``KeyParts`` with what is known now (``plan.step_keys``)."""
        return step_keys(
            self.pipeline,
            params,
            files,
            known=self.known,
            found_reads=self.found_reads,
            inputs_out=inputs_out,
            fixed=fixed,
            until=until,
        )

    def learn(self, step: str, key: str, manifest_part: Mapping[str, Any]) -> None:
        """Record what ``step`` (run under ``key``) left: ``digests``, ``run_writes``, ``found_reads``."""
        known = Known.of(manifest_part) or Known()
        self.ran[step] = (key, known)


def code_hash(code: str) -> str:
    """The ``code`` part of a key (``KeyParts.code``) for a step's normalised code."""
    return sha256_text(code)


#: Reasons that make a step run whatever its key says.
_MUST_RUN = ("forced", "invalidated", "cache entry corrupt")
_FINISHED = ("done", "cached", "failed", "skipped", "cancelled", "interrupted")


class RunKeys:
    """The keys of one run's steps, recomputed as the run learns (``RunContext.keys``).

    Starts from the plan's keys. ``learn`` records what a step that ran left (value
    digests, run-time writes, reads found at run time) and gives the step its final key;
    ``recheck`` recomputes a step's key just before it would run and returns its entry
    if the key now has one (the upstream steps re-ran and left the same values): the
    step is then restored, not run. A cached step whose plan entry names steps to
    ``recheck`` after (they read what it reads) is ``deferred`` until they have run.
    """

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        planned_with = getattr(ctx.plan, "knowledge", None)  # the plan's lookups (run.plan_pipeline)
        same = isinstance(planned_with, Knowledge) and planned_with.cache is ctx.cache and not planned_with.ran
        self.knowledge = planned_with if same else Knowledge(ctx.pipeline, ctx.cache)
        self._parts: dict[str, KeyParts | None] = {e.step: e.parts for e in ctx.plan}
        self._inputs: dict[str, dict[str, str]] = {}
        self._files: dict[str, str] = {}
        for entry in ctx.plan:
            if entry.parts is not None:
                self._files.update(entry.parts.files)
        self._learnt: dict[str, dict[str, Any]] = {}
        # where each step's values come from, with what the cache knows (no key is hashed again)
        planned = {s: p for s, p in self._parts.items() if p is not None}
        self.knowledge.keys(ctx.params, self._files, inputs_out=self._inputs, fixed=planned)

    def key(self, step: str) -> str:
        parts = self._parts.get(step)
        return parts.key if parts is not None else self.ctx.plan[step].key

    def parts(self, step: str) -> KeyParts | None:
        return self._parts.get(step)

    def inputs(self, step: str) -> dict[str, str]:
        """Where each value ``step`` reads comes from, with what the run learnt."""
        return self._inputs.get(step) or dict(self.ctx.pipeline.steps[step].inputs)

    def deferred(self, step: str) -> bool:
        """Whether ``step`` is cached but must be checked again after steps that run."""
        ctx = self.ctx
        return (
            ctx.actions.get(step) == "cached"
            and step not in ctx.status
            and any(ctx.actions.get(s) == "run" and ctx.status.get(s) not in _FINISHED for s in ctx.plan[step].recheck)
        )

    def refresh(self, until: str | None = None) -> None:
        """Recompute the keys of the steps that have not finished (up to ``until``);
        finished steps keep theirs, unhashed again."""
        fixed = {
            s: p
            for s, p in self._parts.items()
            if p is not None and (self.ctx.status.get(s) in _FINISHED or s in self._learnt) and s != until
        }
        inputs: dict[str, dict[str, str]] = {}
        parts = self.knowledge.keys(self.ctx.params, self._files, inputs_out=inputs, fixed=fixed, until=until)
        self._inputs.update(inputs)
        for step, new in parts.items():
            if step not in fixed:
                self._parts[step] = new

    def recheck(self, step: str, deferred: bool = False) -> Entry | None:
        """Re-key ``step`` before it runs; its verified entry if the new key has one.

        A ``deferred`` (cached) step's entry is returned even if its key is the plan's.
        """
        planned = self.key(step)
        self.refresh(until=step)
        ctx = self.ctx
        if (
            (self.key(step) == planned and not deferred)  # the plan decided with this key: it runs for a reason
            or ctx.pipeline.steps[step].map_over
            or any(r in _MUST_RUN for r in ctx.reasons.get(step, ()))
        ):
            return None
        return ctx.verified_entry(step, self.key(step))

    def learn(self, step: str, learnt: Mapping[str, Any] | None, found_reads: Mapping[str, str] | None = None) -> str:
        """Record what ``step`` left when it ran; return its final key (which the entry is committed under)."""
        from .plan import Known

        run_writes = sorted((learnt or {}).get("run_writes") or ())
        found = dict(found_reads or {})
        # A value the step changed at run time without its code showing it (through an alias,
        # a call the analysis cannot classify) was read too: what the step left in it depends
        # on what it got. It keys the step like a read found at run time; the provider is
        # whichever earlier step holds the value (``plan.effective_inputs``), so "" here.
        reads = self.ctx.pipeline.steps[step].reads
        for value in run_writes:
            if value not in reads:
                found.setdefault(value, "")
        part = {
            "digests": dict((learnt or {}).get("digests") or {}),
            "run_writes": run_writes,
            "found_reads": found,
            "aliases": list((learnt or {}).get("aliases") or ()),
        }
        known = Known.of(part) or Known()
        self.knowledge.ran[step] = ("", known)
        self._learnt.pop(step, None)
        self.refresh(until=step)
        key = self.key(step)
        self.knowledge.ran[step] = (key, known)
        self._learnt[step] = part
        return key

    def run_writes(self, step: str) -> list[str]:
        return list(self._learnt.get(step, {}).get("run_writes", ()))

    def manifest(self, step: str) -> dict[str, Any]:
        """What the entry of ``step``'s run records for the keys of later runs."""
        return dict(self._learnt.get(step, {}))
