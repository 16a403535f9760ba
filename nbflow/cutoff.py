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
    def keys(self, params: Mapping[str, Any], files: Mapping[str, str] | None = None) -> dict[str, KeyParts]:
        """Every step's ``KeyParts`` with what is known now."""
        return step_keys(self.pipeline, params, files, known=self.known, found_reads=self.found_reads)

    def learn(self, step: str, key: str, manifest_part: Mapping[str, Any]) -> None:
        """Record what ``step`` (run under ``key``) left: ``digests``, ``run_writes``, ``found_reads``."""
        known = Known.of(manifest_part) or Known()
        self.ran[step] = (key, known)


def code_hash(code: str) -> str:
    """The ``code`` part of a key (``KeyParts.code``) for a step's normalised code."""
    return sha256_text(code)
