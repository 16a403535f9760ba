"""How nbflow reaches a Dask cluster: its own ``LocalCluster``, or one it is given.

``Cluster`` connects a ``Client`` (to a given client, cluster object or scheduler
address, or to nbflow's own ``LocalCluster``) and listens to the nannies' log to know
how a worker process died (``death_text``: "worker died (signal 9; possibly out of
memory)").

The default ``LocalCluster`` was chosen by measurement (``benchmarks/bench_dask.py
--settings``): one worker process per core with one thread each (a step's stdout,
``__main__`` and working folder belong to its process; Dask's threads were as fast but
share them), listening on 127.0.0.1 only, and **without** Dask's
``MALLOC_TRIM_THRESHOLD_`` (it makes numpy code that allocates large temporaries about
twice as slow in a worker as in a plain process); BLAS/OpenMP pools are set to one
thread so two workers do not fight for two cores. Workers are forked from a forkserver
started first thing, which imports Dask, IPython and numpy once while this
process imports Dask and starts the scheduler (spawned workers each import them, on
cores that are busy starting the scheduler).

Start-up is kept off the run's path (``benchmarks/bench_dask.py --breakdown``):
``EarlyCluster`` starts nbflow's own cluster from the executor's ``prestart``, while the
run is recorded and opened; the scheduler starts without the dashboard's pages (Bokeh's
import is 0.7 s of CPU) and ``add_dashboard`` adds them from a background thread once
the client is connected, at the link printed at the start.

This module must not run steps, touch the cache or publish events (beyond a warning
about an unencrypted connection); ``dask.distributed`` is imported only when called.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

from .outcome import process_death

if TYPE_CHECKING:
    from .base import RunContext

#: How the death of a worker process is logged by its nanny (distributed.nanny).
_DEATH = re.compile(r"Worker process (\d+) (was killed by signal (\d+)|exited with status (\d+)|was killed by unknown)")
_MEMORY = re.compile(r"Worker .*\(pid=(\d+)\) exceeded (\d+)% memory budget")


#: What nbflow's worker processes import once, in the forkserver they are forked from.
#: Not joblib: with it imported there, a worker restarted by its nanny (to stop a step)
#: never came back and the nanny closed (tests/e2e/test_dask_executor.py, cancel tests).
FORKSERVER_PRELOAD = ["distributed", "nbflow.executors.on_worker", "IPython.core.interactiveshell"]
_THREAD_POOLS = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def local_cluster_config(start_method: str = "forkserver") -> dict[str, Any]:
    """The Dask settings of nbflow's own ``LocalCluster`` (measured; see module docstring)."""
    return {
        # No MALLOC_TRIM_THRESHOLD_: setting it at all turns off glibc's adaptive mmap
        # threshold, so every large numpy temporary is a fresh mmap (page faults).
        "distributed.nanny.pre-spawn-environ": dict(_THREAD_POOLS),
        # Set again in the worker itself: a forked worker has the forkserver's environment.
        "distributed.nanny.environ": dict(_THREAD_POOLS),
        "distributed.worker.multiprocessing-method": start_method,
        # A worker death reaches nbflow at once; nbflow retries (--retries) itself.
        "distributed.scheduler.allowed-failures": 0,
    }


def start_forkserver() -> bool:
    """Start multiprocessing's forkserver now, importing ``FORKSERVER_PRELOAD`` while this
    process imports Dask; ``False`` where there is no forkserver (Windows)."""
    import multiprocessing

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return False
    import importlib.util
    from multiprocessing import forkserver

    # The forkserver is ready before this process has started the scheduler: importing
    # numpy there (when installed) is free, and saves each worker importing its own.
    # Its thread pools read these variables when it is imported (Dask sets them in this
    # process's environment too, for the workers it spawns).
    for name, value in _THREAD_POOLS.items():
        os.environ.setdefault(name, value)
    preload = FORKSERVER_PRELOAD + (["numpy"] if importlib.util.find_spec("numpy") else [])
    multiprocessing.get_context("forkserver").set_forkserver_preload(preload)
    forkserver.ensure_running()
    return True


def start_local_cluster(workers: int | None = None, dashboard: bool = True, start_method: str | None = None) -> Any:
    """nbflow's default ``LocalCluster``: ``workers`` processes (default: one per core) of
    one thread each, on 127.0.0.1 only, with the settings of ``local_cluster_config``;
    each worker offers the resource ``memory`` (its memory limit, in bytes).

    ``dashboard``: listen on 127.0.0.1:8787 when it is free (else any free port); the
    dashboard's pages come with ``add_dashboard``. Workers are forked from a forkserver
    that imported Dask and IPython once (two
    spawned workers would each import them, on a machine whose cores are busy starting
    the scheduler); ``start_method="spawn"`` is Dask's default.
    """
    if start_method is None:
        start_method = "forkserver" if start_forkserver() else "spawn"
    import dask
    import distributed.system
    import distributed.utils
    from distributed import LocalCluster

    if start_method == "forkserver":
        # Dask would otherwise set its own preload list, importing numpy, pandas... here first.
        distributed.utils._forkserver_preload_set = True
    workers = workers or os.cpu_count() or 1
    memory = int(distributed.system.MEMORY_LIMIT / workers)
    address = "127.0.0.1:8787" if dashboard and _free_port(8787) else "127.0.0.1:0"
    with dask.config.set(local_cluster_config(start_method)):
        return LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=address,
            memory_limit=memory,
            resources={"memory": memory},
            silence_logs=logging.ERROR,
            # The scheduler serves /health (and the link) there at once; the dashboard's
            # pages are added by ``add_dashboard`` once the run is going: importing Bokeh
            # costs 0.7 s of CPU, which would delay the first step.
            scheduler_kwargs={"dashboard": False},
        )


def add_dashboard(cluster: Any) -> threading.Thread:
    """Add Dask's dashboard pages to the running scheduler of ``cluster`` (nbflow's own
    ``LocalCluster``) from a background thread: Bokeh is imported there, then the pages
    are connected on the scheduler's event loop. Nothing happens without Bokeh."""

    def connect() -> None:
        try:
            import distributed.dashboard.scheduler as pages
        except ImportError:
            return
        scheduler = cluster.scheduler

        def on_loop() -> None:
            with contextlib.suppress(Exception):  # the cluster closed meanwhile
                pages.connect(scheduler.http_application, scheduler.http_server, scheduler, prefix="/")

        with contextlib.suppress(Exception):
            cluster.loop.add_callback(on_loop)

    thread = threading.Thread(target=connect, name="nbflow-dask-dashboard", daemon=True)
    thread.start()
    return thread


def _free_port(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class _NannyDeaths(logging.Filter):
    """Remembers how worker processes ended, from the log lines of in-process nannies.

    Installed as a filter on the ``distributed.nanny`` logger of this process (where a
    ``LocalCluster``'s nannies run); passes on only what would have been shown anyway.
    """

    def __init__(self, threshold: int) -> None:
        super().__init__()
        self.threshold = threshold
        self.deaths: dict[int, str] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        with contextlib.suppress(Exception):
            _record_death(record.getMessage(), self.deaths)
        return record.levelno >= self.threshold


def _record_death(message: str, deaths: dict[int, str]) -> None:
    match = _DEATH.search(message)
    if match:
        pid = int(match.group(1))
        if match.group(3):
            deaths[pid] = death_text(-int(match.group(3)))
        elif match.group(4):
            deaths.setdefault(pid, death_text(int(match.group(4))))
        else:
            deaths[pid] = "worker died (killed by an unknown signal)"
        return
    match = _MEMORY.search(message)
    if match:
        deaths[int(match.group(1))] = f"worker died (it used more than {match.group(2)}% of its memory limit)"


def death_text(exitcode: int) -> str:
    """How a worker process ended, as a person would want to read it."""
    return process_death("worker", exitcode)


def connect_in_background(executor: Any, ctx: RunContext | None) -> tuple[threading.Thread, dict[str, Any]]:
    """Start connecting ``executor``'s ``Cluster`` on a thread; the dict gets ``cluster``
    (or ``error``, one line) when the thread ends."""
    outcome: dict[str, Any] = {}

    def connect() -> None:
        try:
            outcome["cluster"] = Cluster(executor, ctx)
        except Exception as e:  # noqa: BLE001 - reported by the run's thread
            outcome["error"] = f"{type(e).__name__}: {e}"

    thread = threading.Thread(target=connect, name="nbflow-dask-connect", daemon=True)
    thread.start()
    return thread, outcome


class EarlyCluster:
    """nbflow's own ``LocalCluster``, starting while the run is recorded and opened (the
    Dask executor's ``prestart``, as the kernel executor starts its kernel early)."""

    def __init__(self, executor: Any) -> None:
        self.thread, self.outcome = connect_in_background(executor, None)

    def discard(self) -> None:
        """The run ended before its executor took the cluster: close it once it is up."""
        self.thread.join()
        cluster = self.outcome.get("cluster")
        if cluster is not None:
            cluster.close()


class Cluster:
    """A connected ``Client``, and what to close at the end."""

    def __init__(self, executor: Any, ctx: RunContext | None) -> None:
        """``executor``: the ``DaskExecutor`` whose cluster settings to use; ``ctx``: the
        run (``None`` only for nbflow's own ``LocalCluster``, started before the run)."""
        own = executor.cluster is None and executor.scheduler is None
        start_method = executor.start_method
        if own and start_method in (None, "forkserver"):
            # First: the forkserver imports Dask while this process does too.
            start_method = "forkserver" if start_forkserver() else "spawn"
        from distributed import Client

        self.owned: Any = None
        self.close_client = True
        given = executor.cluster
        if isinstance(given, Client):
            self.client = given
            self.close_client = False
        elif given is not None:
            self.client = Client(given, set_as_default=False)
        elif executor.scheduler is not None:
            assert ctx is not None
            address = executor.scheduler
            kwargs = {"security": executor.security} if executor.security is not None else {}
            self.client = Client(address, set_as_default=False, timeout=ctx.config.kernel_start_timeout, **kwargs)
            if not address.startswith(("tls://", "ucx://", "inproc://")) and not _loopback(address):
                ctx.warn(
                    f"the connection to the Dask scheduler at {address} is not encrypted; "
                    "use a tls:// address with distributed.Security"
                )
        else:
            self.owned = start_local_cluster(executor.workers, start_method=start_method)
            self.client = Client(self.owned, set_as_default=False)
            add_dashboard(self.owned)
        # Nannies of a LocalCluster run in this process: their log says how a worker died.
        nanny = logging.getLogger("distributed.nanny")
        self.deaths = _NannyDeaths(nanny.getEffectiveLevel())
        self._nanny_level = nanny.level
        nanny.setLevel(logging.INFO)
        nanny.addFilter(self.deaths)

    def close(self) -> None:
        if self.close_client:
            with contextlib.suppress(Exception):
                self.client.close()
        if self.owned is not None:
            with contextlib.suppress(Exception):
                self.owned.close()
        nanny = logging.getLogger("distributed.nanny")
        nanny.removeFilter(self.deaths)
        nanny.setLevel(self._nanny_level)

    def death(self, pid: int | None, wait: float = 3.0) -> str:
        """Why worker process ``pid`` died, from its nanny's log (best effort)."""
        if pid is None:
            return "worker died (killed, or out of memory)"
        deadline = time.monotonic() + wait
        while True:
            found = self.deaths.deaths.get(pid) or self.death_from_logs(pid)
            if found:
                return found
            if time.monotonic() >= deadline:
                return "worker died (killed, or out of memory)"
            time.sleep(0.1)

    def death_from_logs(self, pid: int) -> str | None:
        deaths: dict[int, str] = {}
        try:
            logs = self.client.get_worker_logs(nanny=True)
        except Exception:  # noqa: BLE001 - no nannies, or they cannot be asked
            return None
        for lines in logs.values():
            for _level, message in lines if isinstance(lines, list) else []:
                _record_death(str(message), deaths)
        return deaths.get(pid)


def _loopback(address: str) -> bool:
    host = address.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")
    return host in ("localhost", "::1") or host.startswith("127.")


__all__ = [
    "Cluster",
    "EarlyCluster",
    "add_dashboard",
    "connect_in_background",
    "death_text",
    "local_cluster_config",
    "start_forkserver",
    "start_local_cluster",
]
