"""Runs in the studio: start, follow and cancel a run; the run history; reports.

``RunsView`` (a base of ``app.Studio``) starts runs with ``run.start_run`` like every
other view and follows the run's event bus: events arrive on the run's thread,
``GraphState`` collects them under a lock, and one callback per burst is scheduled on
the session's Bokeh document (``add_next_tick_callback``, the thread-safe way in). Runs
and reports are looked up by run id in the store of the notebook's nbflow home, never
by a path from the browser; reports are served by ``serve.py``'s handler at
``folder.report_url``. A report open in the Report tab follows its run as steps finish;
the Publish button writes ``nbflow publish``'s site of the folder.
"""

from __future__ import annotations

import html
import io
import time
from pathlib import Path
from typing import Any

from ..errors import NbflowError, PipelineError
from ..events import Event
from ..graph import load_pipeline
from ..project_context import in_project
from ..view import GraphState, graph_model
from .background import in_background
from .folder import report_url

#: Seconds between two rebuilds of the report of a run that goes on (it is rebuilt when it ends too).
LIVE_REPORT = 2.0
#: Where the Publish button writes the site, inside the studio's folder.
SITE_FOLDER = "nbflow-site"
#: Milliseconds between two looks at the run store's files while the Runs tab is shown.
RUNS_CHECK_MS = 1000


def _when(timestamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp)) if timestamp else ""


class RunsView:
    """The runs of one session: the one it follows, the history table, the report tab."""

    # ------------------------------------------------------------------ runs
    def _running(self) -> bool:
        # RunFinished reaches us before Run.done is set: trust the event stream first.
        return self.run is not None and not self._run_over and not self.run.done

    @property
    def _starting(self) -> bool:
        return getattr(self, "_starting_run", False)

    @_starting.setter
    def _starting(self, value: bool) -> None:
        self._starting_run = value

    def _start_run(self) -> None:
        if self.pipeline is None or self.editor is None:
            return
        if self._running() or self._starting:
            self._say("a run is going on; cancel it first", "warning")
            return
        self._apply_step_edits(quiet=True)
        if self.editor.dirty and not self._save():
            return
        from ..run import start_run

        try:
            values = self._parameter_values()
        except NbflowError as e:
            self._say(f"cannot run: {e}", "danger")
            return
        path, config, token = self.editor.path, self.config, self._plan_token
        self._starting = True
        self._update_toolbar()

        def work() -> Any:
            # The saved file, as every other view would run it (and its hash is recorded);
            # start_run plans first, which reads every in: file: off the IO loop.
            pipeline = in_project(load_pipeline(path, config=config))
            return pipeline, start_run(pipeline, values)

        def done(result: Any, error: BaseException | None) -> None:
            self._starting = False
            self._wait_note("")
            if error is not None:
                text = str(error) if isinstance(error, NbflowError) else f"{type(error).__name__}: {error}"
                self._say(f"cannot run: {text}", "danger")
                self._update_toolbar()
                return
            pipeline, run = result
            if token != self._plan_token or self.editor is None or self.editor.path != path:
                self._say(f"run {run.id} of {path.name} started", "info")  # another notebook is open now
                self._update_toolbar()
                return
            self._plan_token += 1  # the run's own plan is the newest
            self.pipeline = pipeline
            self.model = graph_model(pipeline, run.plan)
            self._draw()
            self._follow(run)
            self._say(f"run {run.id} started", "info")

        in_background(
            self.doc,
            work,
            done,
            name=f"start {path.name}",
            on_slow=lambda limit: self._wait_note(f"still planning the run of {path.name} after {limit:g} s"),
        )

    def _follow_active_run(self) -> None:
        """Show a run of this notebook another session (or the CLI in this process) started."""
        from ..run import ACTIVE_RUNS

        if self.pipeline is None:
            return
        for run in list(ACTIVE_RUNS.values()):
            if Path(run.pipeline.path).resolve() == self.pipeline.path.resolve() and not run.done:
                self._follow(run)
                return

    def _follow(self, run: Any) -> None:
        self._stop_following()
        assert self.model is not None
        with self._lock:
            self.run = run
            self._run_over = False
            self._graph_state = GraphState(self.model)
            self._flush_pending = False
        self._unsubscribe = run.bus.subscribe(self._on_event)
        self.run_status.object = f"run {run.id}: running"
        self._update_toolbar()

    def _stop_following(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def _on_event(self, event: Event) -> None:
        # On the run's thread: collect, and schedule one flush per burst on the session.
        with self._lock:
            if self._graph_state is None:
                return
            self._graph_state.apply(event)
            if self._flush_pending:
                return
            self._flush_pending = True
        if self.doc is not None:
            self.doc.add_next_tick_callback(self._flush)

    def _flush(self) -> None:
        with self._lock:
            self._flush_pending = False
            state = self._graph_state
            if state is None:
                return
            changes = state.take_changes()
            states = dict(state.states)
            labels = state.labels()
            run_status = state.run_status
        if changes:
            self.canvas.states = states
            self.canvas.labels = labels
        run = self.run
        if run is None:
            return
        counts: dict[str, int] = {}
        for s in states.values():
            counts[s] = counts.get(s, 0) + 1
        summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        self.run_status.object = f"run {run.id}: {run_status or 'starting'} ({summary})"
        if self._editing in changes:
            self._show_step(self._editing)
        over = run_status not in (None, "running")
        if self._report_run == run.id and (over or (changes and time.monotonic() - self._report_built >= LIVE_REPORT)):
            self._open_report(run.id, show=False)  # the Report tab follows the run as steps finish
        if over:
            self._run_finished(run, run_status)

    def _run_finished(self, run: Any, status: str) -> None:
        self._run_over = True
        self._stop_following()
        error = f": {run.error}" if run.error else ""
        self._say(f"run {run.id} {status}{error}", "success" if status == "done" else "danger")
        self._update_toolbar()
        self._refresh_runs()

    def _cancel_run(self) -> None:
        if self._running():
            self.run.cancel()
            self._say(f"cancelling run {self.run.id}", "warning")

    # --------------------------------------------------------------- history
    def _watch_runs(self) -> None:
        """Keep the Runs tab's table current while it is shown, whatever the browser reported.

        Showing the tab asks for a refresh (``layout.py``), but two quick clicks (leave the
        tab, come straight back) can reach the server as no change of the active tab, and
        a run another process finished meanwhile was never listed. So the session also
        looks every ``RUNS_CHECK_MS`` at the run store's files (two ``stat`` calls) and
        refreshes when they changed since the last refresh -- only while the tab is shown
        as the server sees it, where Tabulator lays its rows out. The callback is the
        session's (Panel stops it when the session ends).
        """
        if self.doc is not None and self.doc.session_context is not None:
            import panel as pn

            pn.state.add_periodic_callback(self._check_runs, period=RUNS_CHECK_MS)

    def _runs_signature(self) -> tuple | None:
        """What changes when a run is written: the notebook, and the store's file and WAL (time, size)."""
        if self.config is None or self.editor is None:
            return None
        path = self.config.store_path
        seen: list[Any] = [str(self.editor.path)]
        for file in (path, path.with_name(path.name + "-wal")):
            try:
                st = file.stat()
            except OSError:
                seen.append(None)
            else:
                seen.append((st.st_mtime_ns, st.st_size))
        return tuple(seen)

    def _check_runs(self) -> None:
        if self.tabs.active == 1 and self._runs_signature() != self._runs_seen:
            self._refresh_runs()

    def _store(self) -> Any:

        if self.config is None or not self.config.store_path.exists():
            return None
        return self.config.open_store()

    def _refresh_runs(self) -> None:
        """Show the notebook's run history in the Runs tab.

        Tabulator lays rows out only while it is visible, so a refresh asked while the
        tab is hidden waits for the tab to be shown. Shown, the table is replaced only
        when a run changed, keeping the selected run: a click on a row right after the
        tab switch must not be undone by the refresh that the switch asked for.
        """
        import pandas as pd

        if self.tabs.active != 1:
            self._runs_hidden_change = True
            return
        # taken before reading: a run written while the table is made is seen by the next check
        self._runs_seen = self._runs_signature()
        store = self._store()
        if store is None or self.editor is None:
            self.runs_table.value = pd.DataFrame(
                columns=["run", "status", "started", "duration", "steps", "parameters"]
            )
            return
        try:
            runs = store.runs(self.editor.path, limit=200)
            counts = store.step_counts([r["id"] for r in runs])
        finally:
            store.close()
        rows = []
        for r in runs:
            duration = r["finished"] - r["started"] if r["finished"] and r["started"] else None
            rows.append(
                {
                    "run": r["id"],
                    "status": r["status"],
                    "started": _when(r["started"] or r["created"]),
                    "duration": f"{duration:.2f} s" if duration is not None else "",
                    "steps": ", ".join(f"{n} {s}" for s, n in sorted(counts[r["id"]].items())),
                    "parameters": ", ".join(f"{k}={v!r}" for k, v in r["params"].items()),
                }
            )
        frame = pd.DataFrame(rows, columns=["run", "status", "started", "duration", "steps", "parameters"])
        # A refresh keeps the user's selection: the tab switch that asks for it races
        # with the click on a row, and the table is only replaced when a run changed.
        selected = self._selected_run()
        old = self.runs_table.value
        if self._runs_hidden_change or old is None or not frame.equals(old):
            self._runs_hidden_change = False
            self.runs_table.value = frame
            ids = frame["run"].tolist()
            self.runs_table.selection = [ids.index(selected)] if selected in ids else []
        self._select_run()

    def _selected_run(self) -> int | None:
        """The run selected in the table, else the row last clicked (if that run is still listed).

        The click counts on its own: when the table's rows are replaced while the user
        clicks (the tab switch refreshes them), Tabulator clears its selection in the
        browser after the click reached the server, and the selection alone would leave
        *Open report* disabled after the first click.
        """
        frame = self.runs_table.value
        if frame is None or frame.empty:
            return None
        ids = [int(i) for i in frame["run"].tolist()]
        selection = self.runs_table.selection
        if selection and selection[0] < len(ids):
            return ids[selection[0]]
        clicked = getattr(self, "_clicked_run", None)
        return clicked if clicked in ids else None

    def _row_clicked(self, row: int) -> None:
        frame = self.runs_table.value
        if frame is None or not 0 <= row < len(frame):
            return
        self._clicked_run = int(frame.iloc[row]["run"])
        self._select_run()

    def _select_run(self) -> None:
        run_id = self._selected_run()
        self.report_button.disabled = run_id is None
        if run_id is None:
            self.run_details.object = ""
            return
        store = self._store()
        if store is None:
            return
        try:
            steps = store.steps(run_id)
            run = store.run(run_id)
        finally:
            store.close()
        if run is None:
            return
        lines = [f"**run {run_id}**: {run['status']}" + (f" — {html.escape(run['error'])}" if run["error"] else "")]
        for s in steps:
            duration = f"{s['duration']:.2f} s" if s["duration"] else ""
            why = f"(why: {html.escape('; '.join(s['reasons']))})" if s["reasons"] else ""
            lines.append(f"- `{s['step']}` {s['status']} {duration} {why}".rstrip())
        self.run_details.object = "\n".join(lines)

    def _build_report(self, run_id: int, config: Any) -> Path:
        try:
            from ..report import build_report
        except ImportError:
            raise PipelineError("reports are not available in this nbflow (nbflow.report is missing)") from None
        # Untrusted: outputs' scripts are not run (the user did not choose to trust them).
        return build_report(config, run_id)

    def _open_report(self, run_id: int | None = None, show: bool = True) -> None:
        run_id = self._selected_run() if run_id is None else run_id
        if run_id is None or self.pipeline is None:
            return
        notebook = self.pipeline.path.relative_to(self.folder).as_posix()
        config = self.config
        self._report_built = time.monotonic()  # a live report is not asked for again while this one is written
        if show:
            self.report_button.disabled = True
            self._say(f"writing the report of run {run_id}", "info")

        def work() -> tuple[Path, int]:
            path = self._build_report(run_id, config)  # seconds for a long run: off the IO loop
            return path, path.stat().st_mtime_ns

        def done(result: Any, error: BaseException | None) -> None:
            self.report_button.disabled = self._selected_run() is None
            if error is not None:
                text = str(error) if isinstance(error, (NbflowError, OSError)) else f"{type(error).__name__}: {error}"
                self._say(f"run {run_id}: no report ({text})", "danger")
                return
            path, modified = result
            self._report_path = path
            self._report_run, self._report_built = run_id, time.monotonic()
            self.report_title.object = f"**Report of run {run_id}** &nbsp; `{html.escape(path.name)}`"
            self.download.param.update(filename=f"nbflow-run-{run_id}-report.html", disabled=False)
            # The page comes over HTTP from serve.py's handler (found by run id in the store),
            # not through the websocket. A sandboxed frame: its scripts (the plots) run, but
            # cannot reach the studio.
            src = report_url(run_id, notebook, modified)
            self.report_pane.object = (
                f'<iframe title="report of run {run_id}" sandbox="allow-scripts" '
                f'style="width:100%;height:740px;border:1px solid #ddd" src="{html.escape(src, quote=True)}"></iframe>'
            )
            if show:
                self.tabs.active = 2
                self._say(f"report of run {run_id}", "info")

        in_background(
            self.doc,
            work,
            done,
            name=f"report {run_id}",
            on_slow=(
                (lambda limit: self._say(f"still writing the report of run {run_id} after {limit:g} s", "warning"))
                if show
                else None
            ),
        )

    def _report_file(self) -> io.BytesIO:
        """The report shown in the Report tab, for the download button."""
        if self._report_path is None:
            raise PipelineError("open a run's report first")
        try:
            return io.BytesIO(self._report_path.read_bytes())
        except OSError as e:
            self._say(f"{self._report_path}: {e.strerror}", "danger")
            raise

    # --------------------------------------------------------------- publish
    def _publish(self) -> None:
        """The Publish button: ``nbflow publish`` of the studio's folder into ``<folder>/nbflow-site``.

        Written on a thread of its own (a first publish of many runs takes seconds); the
        outcome comes back to the session as one message.
        """
        import threading

        from ..publish import publish_site

        site = self.folder / SITE_FOLDER
        self.publish_button.disabled = True
        self._say(f"publishing the runs of {self.folder.name} into {site}", "info")

        def work() -> None:
            try:
                result = publish_site([self.folder], site, jobs=1)  # in this thread: no processes from the server
                text, kind = f"site written: {result.index} ({result.summary()})", "success"
            except (NbflowError, OSError) as e:
                text, kind = f"cannot publish: {e}", "danger"

            def done() -> None:
                self.publish_button.disabled = False
                self._say(text, kind)

            if self.doc is not None:
                self.doc.add_next_tick_callback(done)
            else:
                done()

        threading.Thread(target=work, name="nbflow-publish", daemon=True).start()
