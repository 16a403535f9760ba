"""The fidelity harness: nbflow gives a plain papermill run's values after random edits.

Every notebook of ``corpus.py`` (every code cell a step) is run by nbflow, then edited
at random -- a number in a random step changed, or a comment added -- and run again;
each time a plain papermill run of the same notebook, instrumented with a snapshot cell
after every step, gives the values each step must have, and every value nbflow's run
used (restored from the cache or computed) is compared with it. An edit that makes
the notebook fail under papermill is undone and another is drawn.

It also measures **over-invalidation**: the steps nbflow re-ran, against the steps that
had to run (their code changed, or a value they produce differs from the previous plain
run's).

By default (CI) a bounded sample runs (a few notebooks, a few edits: well under three
minutes); ``NBFLOW_FIDELITY_FULL=1`` runs every notebook with ``NBFLOW_FIDELITY_EDITS``
edits each (default 10), and ``NBFLOW_FIDELITY_EXECUTOR=dask`` uses the Dask executor.
The numbers go to ``test-artifacts/fidelity.json`` and the terminal.
"""

from __future__ import annotations

import io
import json
import os
import random
import subprocess
import tokenize
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pytest

import nbflow
from nbflow import load_pipeline

from ..conftest import ROOT, step, write_notebook
from ..e2e.test_against_papermill import papermill_snapshots, same
from .corpus import CORPUS, cells

FULL = os.environ.get("NBFLOW_FIDELITY_FULL") == "1"
pytestmark = [pytest.mark.slow, pytest.mark.timeout(4 * 3600 if FULL else 600)]
EDITS = int(os.environ.get("NBFLOW_FIDELITY_EDITS", "10"))
EXECUTOR = os.environ.get("NBFLOW_FIDELITY_EXECUTOR", "kernel")
#: The CI sample: notebook -> edits (the six cases of issue 14 among them, kept small).
SAMPLE = {"generator_draws": 2, "numpy_views": 1, "eval_display": 1}


@dataclass
class Tally:
    notebooks: int = 0
    edits: int = 0
    rerun: int = 0
    needed: int = 0
    compared: int = 0
    mismatches: list[str] = field(default_factory=list)

    def ratio(self) -> float:
        return self.rerun / self.needed if self.needed else float(self.rerun > 0)


def random_edit(source: str, rng: random.Random) -> str:
    """``source`` with one number changed, or (one time in six) a comment added."""
    numbers = [t for t in tokenize.generate_tokens(io.StringIO(source).readline) if t.type == tokenize.NUMBER]
    if not numbers or rng.random() < 1 / 6:
        return source + f"\n# edited {rng.randrange(1000)}"
    token = rng.choice(numbers)
    text = token.string
    value = float(text) + rng.choice([0.5, 1.5]) if "." in text else int(text, 0) + rng.choice([1, 2])
    lines = source.splitlines(keepends=True)
    row, col = token.start
    line = lines[row - 1]
    lines[row - 1] = line[:col] + repr(value) + line[col + len(text) :]
    return "".join(lines)


def compare(path: Path, expected: dict[str, dict], run_id: int, label: str, tally: Tally) -> None:
    pipeline = load_pipeline(path)
    for name in pipeline.order:
        for value_name, value in expected[name].items():
            try:
                got = nbflow.result(path, name, value_name, run=run_id)
            except nbflow.errors.NbflowError:
                continue  # not cached (an iterator, a generator object): nothing to compare
            tally.compared += 1
            if not same(got, value):
                tally.mismatches.append(f"{label}: step {name}: {value_name} = {got!r} but papermill gave {value!r}")


def changed_steps(before: dict[str, dict], after: dict[str, dict], edited: str | None) -> set[str]:
    """Steps whose values differ between two plain runs, plus the edited one."""
    changed = set() if edited is None else {edited}
    for name, values in after.items():
        old = before.get(name, {})
        if values.keys() != old.keys() or any(not same(values[k], old[k]) for k in values):
            changed.add(name)
    return changed


def check_notebook(name: str, edits: int, folder: Path, rng: random.Random, tally: Tally) -> None:
    sources = dict(cells(name))
    folder.mkdir(parents=True)
    path = write_notebook(folder / f"{name}.ipynb", [step(s, src) for s, src in sources.items()])
    first = load_pipeline(path).run(executor=EXECUTOR)
    assert first.status == "done", f"{name}: {first.error}"
    plain = papermill_snapshots(path, {}, folder / "plain-0")
    compare(path, plain, first.id, f"{name} first run", tally)
    tally.notebooks += 1
    done = 0
    attempts = 0
    while done < edits and attempts < edits * 4:
        attempts += 1
        target = rng.choice(sorted(sources))
        new = random_edit(sources[target], rng)
        nb = nbformat.read(path, 4)
        cell = int(target[1:])
        old_source = nb.cells[cell].source
        nb.cells[cell].source = new
        nbformat.write(nb, path)
        try:
            expected = papermill_snapshots(path, {}, folder / f"plain-{attempts}")
        except subprocess.CalledProcessError:
            nb.cells[cell].source = old_source  # this edit breaks the notebook: draw another
            nbformat.write(nb, path)
            continue
        sources[target] = new
        done += 1
        tally.edits += 1
        label = f"{name} edit {done} ({target}: {new.splitlines()[-1][:40]!r})"
        r = load_pipeline(path).run(executor=EXECUTOR)
        if r.status != "done":
            tally.mismatches.append(f"{label}: nbflow failed where papermill did not: {r.error}")
            plain = expected
            continue
        compare(path, expected, r.id, label, tally)
        tally.rerun += sum(1 for s in r.steps.values() if s["status"] == "done")
        tally.needed += len(changed_steps(plain, expected, target if new.strip() != old_source.strip() else None))
        plain = expected


def test_nbflow_matches_papermill_after_random_edits(tmp_path):
    plan = {name: EDITS for name in CORPUS} if FULL else SAMPLE
    rng = random.Random(int(os.environ.get("NBFLOW_FIDELITY_SEED", "14")))
    tally = Tally()
    for name, edits in plan.items():
        check_notebook(name, edits, tmp_path / name, rng, tally)
        write_summary(tally, done=name)
    summary = write_summary(tally)
    print("\nfidelity:", json.dumps(summary, indent=1))
    assert not tally.mismatches, "\n".join(tally.mismatches)
    if FULL:
        assert tally.ratio() <= 2.0, summary


def write_summary(tally: Tally, done: str | None = None) -> dict:
    """The numbers so far, in ``test-artifacts/fidelity.json``."""
    summary = {
        "executor": EXECUTOR,
        "full": FULL,
        "notebooks": tally.notebooks,
        "edits": tally.edits,
        "values compared": tally.compared,
        "mismatches": tally.mismatches,
        "steps re-run": tally.rerun,
        "steps whose values changed": tally.needed,
        "over-invalidation": round(tally.ratio(), 2),
        "last notebook done": done,
    }
    artifacts = ROOT / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    (artifacts / "fidelity.json").write_text(json.dumps(summary, indent=1))
    return summary
