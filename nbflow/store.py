"""The run store: every run and step outcome in SQLite, next to the notebook.

Schema (``<home>/runs.db``)::

    runs       id, notebook, notebook_hash, params, status, executor, created,
               started, finished, pid, host, heartbeat, provenance (JSON), error
    step_runs  run_id, step, position, key, status, reasons (JSON), started,
               finished, duration, error, traceback
    artifacts  run_id, kind (output_notebook, report), path, created
    step_items run_id, step, item, label, status, duration, error   -- map: elements
    sweeps     id, notebook, grid, zip, created; sweep_runs sweep_id, run_id, params
    messages   run_id, step, text, time          -- warnings during a run

The store is a listener on a run's ``EventBus`` (``RunStore.listener``): it is written
from events, never from an executor's internals. Statuses only move forward::

    run:  pending -> running -> done | failed | cancelled | interrupted
    step: pending -> running -> done | failed | cancelled | interrupted
          pending -> cached | skipped | cancelled | interrupted
          done | cached -> failed      only by a ``CheckFailed`` event (a failed data check)

A run whose owner died leaves ``running`` rows behind; ``reconcile`` (run on every
open) marks them ``interrupted`` when the owner's pid is gone on this host or its
heartbeat is stale. The clock and the liveness probe are injectable for tests.

Concurrency (RELIABILITY.md): WAL mode, a busy timeout, ``BEGIN IMMEDIATE`` for every
write, short transactions, one connection per thread. Standard library only.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import NbflowError
from .events import (
    CheckFailed,
    Event,
    ItemFinished,
    RunFinished,
    RunStarted,
    RunWarning,
    StepFinished,
    StepQueued,
    StepStarted,
)
from .fsutil import private_dir

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    notebook TEXT NOT NULL,
    notebook_hash TEXT,
    params TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL DEFAULT 'pending',
    executor TEXT,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    pid INTEGER,
    host TEXT,
    heartbeat REAL,
    provenance TEXT NOT NULL DEFAULT '{}',
    error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS runs_by_notebook ON runs (notebook, id);
CREATE TABLE IF NOT EXISTS step_runs (
    run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step TEXT NOT NULL,
    position INTEGER NOT NULL,
    key TEXT,
    status TEXT NOT NULL DEFAULT 'pending',
    reasons TEXT NOT NULL DEFAULT '[]',
    started REAL,
    finished REAL,
    duration REAL,
    error TEXT NOT NULL DEFAULT '',
    traceback TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (run_id, step)
);
CREATE TABLE IF NOT EXISTS artifacts (
    run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    path TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (run_id, kind)
);
CREATE TABLE IF NOT EXISTS step_items (
    run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step TEXT NOT NULL,
    item INTEGER NOT NULL,
    label TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL,
    duration REAL,
    error TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (run_id, step, item)
);
CREATE TABLE IF NOT EXISTS sweeps (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    notebook TEXT NOT NULL,
    grid TEXT NOT NULL,
    zip INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS sweep_runs (
    sweep_id INTEGER NOT NULL REFERENCES sweeps (id) ON DELETE CASCADE,
    run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    params TEXT NOT NULL,
    PRIMARY KEY (sweep_id, run_id)
);
CREATE TABLE IF NOT EXISTS messages (
    run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step TEXT,
    text TEXT NOT NULL,
    time REAL NOT NULL
);
"""

RUN_TRANSITIONS = {
    "running": ("pending",),
    "done": ("running",),
    "failed": ("pending", "running"),
    "cancelled": ("pending", "running"),
    "interrupted": ("pending", "running"),
}
STEP_TRANSITIONS = {
    "running": ("pending",),
    "done": ("running",),
    "failed": ("running", "pending"),
    "cached": ("pending",),
    "skipped": ("pending",),
    "cancelled": ("pending", "running"),
    "interrupted": ("pending", "running"),
}
#: The one move back: a step a data check failed on (``CheckFailed``), and only from these.
CHECK_FAILED_FROM = ("done", "cached")
ACTIVE = ("pending", "running")


class StoreError(NbflowError):
    """The run store refused a change (an illegal state transition) or is unusable."""


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunStore:
    """Runs and step outcomes of the notebooks under one nbflow home."""

    def __init__(
        self,
        path: str | Path,
        *,
        clock: Callable[[], float] = time.time,
        is_alive: Callable[[int], bool] = pid_alive,
        heartbeat_interval: float = 5.0,
        reconcile: bool = True,
        readonly: bool | None = None,
    ) -> None:
        self.path = Path(path)
        self.clock = clock
        self.is_alive = is_alive
        self.heartbeat_interval = heartbeat_interval
        self.host = socket.gethostname()
        self._local = threading.local()
        #: Opened only to read: the folder is not writable (a read-only checkout, a
        #: colleague's results); listing, showing and reporting runs still work.
        self.readonly = readonly if readonly is not None else self.path.is_file() and _cannot_write(self.path)
        if self.readonly:
            if not self.path.is_file():
                raise StoreError(f"{self.path}: no run store here (nothing has run in {self.path.parent} yet)")
        else:
            self._make_home()
        with self._damage_reported():
            if not self.readonly:
                self._create_schema()  # finds out about a read-only mount
            if self.readonly:
                self._connect().execute("SELECT 1 FROM runs LIMIT 1").fetchall()
            elif reconcile:
                self.reconcile()

    def _make_home(self) -> None:
        home = self.path.parent
        try:
            private_dir(home)
        except (FileExistsError, NotADirectoryError):
            raise StoreError(
                f"{home} is a file, not a folder; nbflow keeps its runs there: move the file aside "
                f"(mv {home} {home}.old) or set NBFLOW_HOME to another folder"
            ) from None
        except OSError as e:
            raise StoreError(
                f"cannot create the run store in {home}: {e.strerror}; make the folder writable or set "
                "NBFLOW_HOME to a folder that is"
            ) from None
        if _cannot_write(self.path):
            raise StoreError(
                f"cannot write the run store {self.path}: the folder is read-only; set NBFLOW_HOME to a writable folder"
            )

    @contextmanager
    def _damage_reported(self) -> Iterator[None]:
        """Turn SQLite's errors into one line naming the file and what to do."""
        try:
            yield
        except sqlite3.OperationalError as e:
            if "locked" in str(e) or "busy" in str(e):
                raise StoreError(f"{self.path}: {e} (another nbflow process holds it; try again)") from None
            if "readonly" in str(e) or "read-only" in str(e) or "unable to open" in str(e):
                raise StoreError(
                    f"{self.path}: {e}; make its folder writable or set NBFLOW_HOME to a folder that is"
                ) from None
            raise StoreError(_damaged(self.path, e)) from None
        except sqlite3.DatabaseError as e:
            raise StoreError(_damaged(self.path, e)) from None

    # ---------------------------------------------------------- connection
    def _connect(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None and self.readonly:
            db = _connect_readonly(self.path)
            db.row_factory = sqlite3.Row
            self._local.db = db
        if db is None:
            db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=True)
            db.row_factory = sqlite3.Row
            try:
                db.execute("PRAGMA journal_mode=WAL")
            except sqlite3.OperationalError as e:
                if not self.path.is_file() or not any(w in str(e) for w in ("readonly", "read-only", "unable to open")):
                    raise
                db.close()  # a read-only mount that access() does not see: read what is there
                self.readonly = True
                return self._connect()
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            db.execute("PRAGMA busy_timeout=30000")
            self._local.db = db
        return db

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        if self.readonly:
            raise StoreError(f"{self.path} is read-only here; set NBFLOW_HOME to a writable folder to record runs")
        db = self._connect()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _create_schema(self) -> None:
        db = self._connect()
        if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'sweep_runs'").fetchone():
            return
        with self._write() as db:
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    # ------------------------------------------------------------- runs
    def create_run(
        self,
        notebook: str | Path,
        *,
        notebook_hash: str = "",
        params: Mapping[str, Any] | None = None,
        executor: str = "kernel",
        provenance: Mapping[str, Any] | None = None,
    ) -> int:
        """Allocate a run id (status ``pending``) owned by this process."""
        now = self.clock()
        with self._write() as db:
            cursor = db.execute(
                "INSERT INTO runs (notebook, notebook_hash, params, executor, created, pid, host, heartbeat, "
                "provenance) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    str(Path(notebook).resolve()),
                    notebook_hash,
                    json.dumps(params or {}, default=repr),
                    executor,
                    now,
                    os.getpid(),
                    self.host,
                    now,
                    json.dumps(provenance or {}, default=repr),
                ),
            )
            return int(cursor.lastrowid)

    def heartbeat(self, run_id: int) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE runs SET heartbeat = ? WHERE id = ? AND status IN ('pending', 'running')",
                (self.clock(), run_id),
            )

    def set_run_status(self, run_id: int, status: str, *, error: str = "", at: float | None = None) -> None:
        allowed = RUN_TRANSITIONS[status]
        now = at if at is not None else self.clock()
        column = "started" if status == "running" else "finished"
        with self._write() as db:
            cursor = db.execute(
                f"UPDATE runs SET status = ?, {column} = ?, error = ? WHERE id = ? "
                f"AND status IN ({','.join('?' * len(allowed))})",
                (status, now, error, run_id, *allowed),
            )
            if cursor.rowcount == 0:
                current = db.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
                raise StoreError(
                    f"run {run_id}: cannot go from {current['status'] if current else 'nothing'} to {status}"
                )

    def add_artifact(self, run_id: int, kind: str, path: str | Path) -> None:
        """Record a file made from a run; a read-only store cannot, and the file (a
        report written elsewhere with ``-o``) is still there: not recorded, not an error."""
        if self.readonly:
            return
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO artifacts (run_id, kind, path, created) VALUES (?, ?, ?, ?)",
                (run_id, kind, str(path), self.clock()),
            )

    # ------------------------------------------------------------- steps
    def add_steps(self, run_id: int, steps: list[Mapping[str, Any]]) -> None:
        with self._write() as db:
            db.executemany(
                "INSERT INTO step_runs (run_id, step, position, key, reasons) VALUES (?, ?, ?, ?, ?)",
                [
                    (run_id, s["step"], i, s.get("key"), json.dumps(list(s.get("reasons", ()))))
                    for i, s in enumerate(steps)
                ],
            )

    def set_step_status(
        self,
        run_id: int,
        step: str,
        status: str,
        *,
        at: float | None = None,
        duration: float | None = None,
        error: str = "",
        traceback: str = "",
        reasons: tuple[str, ...] | None = None,
        key: str = "",
    ) -> None:
        allowed = STEP_TRANSITIONS[status]
        now = at if at is not None else self.clock()
        sets = ["status = ?"]
        values: list[Any] = [status]
        if status == "running":
            sets.append("started = ?")
            values.append(now)
        else:
            sets += ["finished = ?", "duration = ?", "error = ?", "traceback = ?"]
            values += [now, duration, error, traceback]
        if reasons:
            sets.append("reasons = ?")
            values.append(json.dumps(list(reasons)))
        if key:
            sets.append("key = ?")
            values.append(key)
        with self._write() as db:
            cursor = db.execute(
                f"UPDATE step_runs SET {', '.join(sets)} WHERE run_id = ? AND step = ? "
                f"AND status IN ({','.join('?' * len(allowed))})",
                (*values, run_id, step, *allowed),
            )
            if cursor.rowcount == 0:
                current = _step_status(db, run_id, step)
                raise StoreError(f"run {run_id}, step {step}: cannot go from {current} to {status}")

    def fail_checked_step(self, run_id: int, step: str, error: str) -> None:
        """A data check failed on ``step``'s values: ``done``/``cached`` -> ``failed`` with
        the check's line as its error (the step's timing is kept)."""
        with self._write() as db:
            cursor = db.execute(
                "UPDATE step_runs SET status = 'failed', error = ? WHERE run_id = ? AND step = ? "
                f"AND status IN ({','.join('?' * len(CHECK_FAILED_FROM))})",
                (error, run_id, step, *CHECK_FAILED_FROM),
            )
            if cursor.rowcount == 0:
                current = _step_status(db, run_id, step)
                raise StoreError(f"run {run_id}, step {step}: a failed check cannot fail it from {current}")

    def add_message(self, run_id: int, text: str, step: str | None = None) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO messages (run_id, step, text, time) VALUES (?, ?, ?, ?)",
                (run_id, step, text, self.clock()),
            )

    # ------------------------------------------------------------ listener
    def listener(self, event: Event) -> None:
        """Record ``event``: subscribe this to a run's bus (as a critical listener)."""
        if isinstance(event, RunStarted):
            self.add_steps(event.run_id, list(event.steps))
            self.set_run_status(event.run_id, "running", at=event.time)
        elif isinstance(event, StepQueued):
            pass  # steps are pending from RunStarted on; queued is a view-only state
        elif isinstance(event, StepStarted):
            self.set_step_status(event.run_id, event.step, "running", at=event.time)
        elif isinstance(event, StepFinished):
            self.set_step_status(
                event.run_id,
                event.step,
                event.status,
                at=event.time,
                duration=event.duration,
                error=event.error,
                traceback=event.traceback,
                reasons=event.reasons or None,
                key=event.key,
            )
        elif isinstance(event, CheckFailed):
            self.fail_checked_step(event.run_id, event.step, event.error)
        elif isinstance(event, ItemFinished):
            with self._write() as db:
                db.execute(
                    "INSERT OR REPLACE INTO step_items (run_id, step, item, label, status, duration, error) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (event.run_id, event.step, event.item, event.label, event.status, event.duration, event.error),
                )
        elif isinstance(event, RunWarning):
            self.add_message(event.run_id, event.message, event.step)
        elif isinstance(event, RunFinished):
            with self._write() as db:
                db.execute(
                    "UPDATE step_runs SET status = ?, finished = ? WHERE run_id = ? AND status IN ('pending', "
                    "'running')",
                    ("cancelled" if event.status == "cancelled" else "interrupted", event.time, event.run_id),
                )
            self.set_run_status(event.run_id, event.status, error=event.error, at=event.time)

    # ------------------------------------------------------------ reconcile
    def reconcile(self) -> list[int]:
        """Mark runs whose owner is gone as ``interrupted``; return their ids."""
        db = self._connect()
        rows = db.execute("SELECT id, pid, host, heartbeat FROM runs WHERE status IN ('pending', 'running')").fetchall()
        now = self.clock()
        stale_after = 3 * self.heartbeat_interval + 10.0
        dead = []
        for row in rows:
            gone = row["host"] == self.host and row["pid"] is not None and not self.is_alive(row["pid"])
            silent = row["heartbeat"] is None or now - row["heartbeat"] > stale_after
            if gone or silent:
                dead.append(row["id"])
        for run_id in dead:
            reason = "the nbflow process running it stopped (killed, crashed or lost)"
            with self._write() as db:
                db.execute(
                    "UPDATE step_runs SET status = 'interrupted', finished = ? WHERE run_id = ? "
                    "AND status IN ('pending', 'running')",
                    (now, run_id),
                )
                db.execute(
                    "UPDATE runs SET status = 'interrupted', finished = ?, error = ? WHERE id = ? "
                    "AND status IN ('pending', 'running')",
                    (now, reason, run_id),
                )
        return dead

    # ---------------------------------------------------------------- read
    def run(self, run_id: int) -> dict[str, Any] | None:
        row = self._connect().execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        return _run_dict(row) if row else None

    def runs(self, notebook: str | Path | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Most recent runs first (of one notebook when given)."""
        db = self._connect()
        if notebook is None:
            rows = db.execute("SELECT * FROM runs ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        else:
            rows = db.execute(
                "SELECT * FROM runs WHERE notebook = ? ORDER BY id DESC LIMIT ?", (str(Path(notebook).resolve()), limit)
            ).fetchall()
        return [_run_dict(r) for r in rows]

    def steps(self, run_id: int) -> list[dict[str, Any]]:
        rows = (
            self._connect().execute("SELECT * FROM step_runs WHERE run_id = ? ORDER BY position", (run_id,)).fetchall()
        )
        return [{**dict(r), "reasons": json.loads(r["reasons"])} for r in rows]

    def step_counts(self, run_ids: list[int]) -> dict[int, dict[str, int]]:
        counts: dict[int, dict[str, int]] = {i: {} for i in run_ids}
        if not run_ids:
            return counts
        rows = (
            self._connect()
            .execute(
                f"SELECT run_id, status, COUNT(*) AS n FROM step_runs WHERE run_id IN ({','.join('?' * len(run_ids))}) "
                "GROUP BY run_id, status",
                run_ids,
            )
            .fetchall()
        )
        for row in rows:
            counts[row["run_id"]][row["status"]] = row["n"]
        return counts

    def create_sweep(self, notebook: str | Path, grid: Mapping[str, Any], zip_: bool = False) -> int:
        with self._write() as db:
            cursor = db.execute(
                "INSERT INTO sweeps (notebook, grid, zip, created) VALUES (?, ?, ?, ?)",
                (str(Path(notebook).resolve()), json.dumps(grid, default=repr), int(zip_), self.clock()),
            )
            return int(cursor.lastrowid)

    def add_sweep_run(self, sweep_id: int, run_id: int, params: Mapping[str, Any]) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO sweep_runs (sweep_id, run_id, params) VALUES (?, ?, ?)",
                (sweep_id, run_id, json.dumps(params, default=repr)),
            )

    def sweep(self, sweep_id: int) -> dict[str, Any] | None:
        row = self._connect().execute("SELECT * FROM sweeps WHERE id = ?", (sweep_id,)).fetchone()
        return {**dict(row), "grid": json.loads(row["grid"])} if row else None

    def sweeps(self, notebook: str | Path | None = None) -> list[dict[str, Any]]:
        """Sweeps, oldest first (of one notebook when given), each with its run ids (``runs``)."""
        db = self._connect()
        if notebook is None:
            rows = db.execute("SELECT * FROM sweeps ORDER BY id").fetchall()
        else:
            rows = db.execute(
                "SELECT * FROM sweeps WHERE notebook = ? ORDER BY id", (str(Path(notebook).resolve()),)
            ).fetchall()
        return [
            {**dict(r), "grid": json.loads(r["grid"]), "runs": [m["run_id"] for m in self.sweep_runs(r["id"])]}
            for r in rows
        ]

    def sweep_runs(self, sweep_id: int) -> list[dict[str, Any]]:
        rows = (
            self._connect()
            .execute("SELECT run_id, params FROM sweep_runs WHERE sweep_id = ? ORDER BY run_id", (sweep_id,))
            .fetchall()
        )
        return [{"run_id": r["run_id"], "params": json.loads(r["params"])} for r in rows]

    def items(self, run_id: int, step: str) -> list[dict[str, Any]]:
        """The elements of a ``map:`` step in a run, in order."""
        rows = (
            self._connect()
            .execute(
                "SELECT item, label, status, duration, error FROM step_items WHERE run_id = ? AND step = ? ORDER BY item",
                (run_id, step),
            )
            .fetchall()
        )
        return [dict(r) for r in rows]

    def artifacts(self, run_id: int) -> dict[str, str]:
        rows = self._connect().execute("SELECT kind, path FROM artifacts WHERE run_id = ?", (run_id,)).fetchall()
        return {r["kind"]: r["path"] for r in rows}

    def messages(self, run_id: int) -> list[dict[str, Any]]:
        rows = (
            self._connect()
            .execute("SELECT step, text, time FROM messages WHERE run_id = ? ORDER BY rowid", (run_id,))
            .fetchall()
        )
        return [dict(r) for r in rows]

    def latest_step_key(self, notebook: str | Path, step: str) -> tuple[int, str] | None:
        """(run id, key) of the newest run of ``notebook`` where ``step`` ended done or cached."""
        row = (
            self._connect()
            .execute(
                "SELECT s.run_id, s.key FROM step_runs s JOIN runs r ON r.id = s.run_id WHERE r.notebook = ? "
                "AND s.step = ? AND s.status IN ('done', 'cached') ORDER BY s.run_id DESC LIMIT 1",
                (str(Path(notebook).resolve()), step),
            )
            .fetchone()
        )
        return (row["run_id"], row["key"]) if row else None

    def delete_runs(self, run_ids: list[int]) -> None:
        if not run_ids:
            return
        with self._write() as db:
            db.execute(f"DELETE FROM runs WHERE id IN ({','.join('?' * len(run_ids))})", run_ids)

    def integrity_check(self) -> str:
        return self._connect().execute("PRAGMA integrity_check").fetchone()[0]


def _guard_damage(cls: type) -> type:
    """Wrap every public method so a damaged database is reported as ``StoreError``."""
    import functools

    def guarded(method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def call(self: RunStore, *args: Any, **kwargs: Any) -> Any:
            with self._damage_reported():
                return method(self, *args, **kwargs)

        return call

    for name, value in list(vars(cls).items()):
        if not name.startswith("_") and callable(value) and name not in ("close", "listener"):
            setattr(cls, name, guarded(value))
    return cls


_guard_damage(RunStore)


def _damaged(path: Path, e: Exception) -> str:
    return (
        f"{path} is damaged ({e}); nbflow cannot read its runs. Move it aside "
        f"(mv {path} {path}.broken) and nbflow starts a new run store (cached results are kept)"
    )


def _cannot_write(path: Path) -> bool:
    """Whether the store at ``path`` can only be read (existing, in a read-only folder)."""
    folder = path.parent
    if not folder.is_dir():
        return False
    if not os.access(folder, os.W_OK):
        return True
    return path.exists() and not os.access(path, os.W_OK)


def _connect_readonly(path: Path) -> sqlite3.Connection:
    """Open without writing anything: ``mode=ro``, or ``immutable`` when SQLite cannot
    create the WAL index beside the database (a read-only folder)."""
    uri = path.resolve().as_uri()
    try:
        db = sqlite3.connect(f"{uri}?mode=ro", uri=True, isolation_level=None, check_same_thread=True)
        db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        return db
    except sqlite3.OperationalError:
        return sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True, isolation_level=None, check_same_thread=True)


def _run_dict(row: sqlite3.Row) -> dict[str, Any]:
    data = dict(row)
    data["params"] = json.loads(data["params"])
    data["provenance"] = json.loads(data["provenance"])
    return data


def _step_status(db: sqlite3.Connection, run_id: int, step: str) -> str:
    """``step``'s status in run ``run_id`` as an error names it (``nothing`` when there is no row)."""
    row = db.execute("SELECT status FROM step_runs WHERE run_id = ? AND step = ?", (run_id, step)).fetchone()
    return row["status"] if row else "nothing"
