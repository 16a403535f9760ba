"""The command line's view of a run: a listener that prints each step's state and why.

One line per finished step, with a live spinner naming the running step when the
output is a terminal. rich is imported only once a step actually runs, so a fully
cached run prints its lines with nothing but the standard library.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from .events import CheckFailed, Event, RunFinished, RunStarted, RunWarning, StepFinished, StepStarted

SYMBOLS = {
    "done": "✓",
    "cached": "✓",
    "failed": "✗",
    "skipped": "-",
    "cancelled": "✗",
    "interrupted": "✗",
}
COLOURS = {
    "done": "green",
    "cached": "cyan",
    "failed": "red",
    "skipped": "yellow",
    "cancelled": "red",
    "interrupted": "red",
}


class ProgressPrinter:
    """Prints a run's progress to ``stream`` (stderr by default)."""

    def __init__(self, stream: TextIO | None = None, quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.width = 0
        self.counts: dict[str, int] = {}
        self.console: Any = None
        self.status: Any = None
        self.total = 0
        self.finished = 0
        #: each step's last status (a failed check moves its step's count to failed)
        self.last: dict[str, str] = {}

    def __call__(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self.width = max((len(s["step"]) for s in event.steps), default=4)
            self.total = len(event.steps)
            to_run = sum(1 for s in event.steps if s["action"] == "run")
            self.line(f"run {event.run_id} of {event.notebook.rsplit('/', 1)[-1]}: {self.total} steps, {to_run} to run")
        elif isinstance(event, StepStarted):
            self.spin(f"running {event.step} ({self.finished}/{self.total} finished)")
        elif isinstance(event, StepFinished):
            self.finished += 1
            self.counts[event.status] = self.counts.get(event.status, 0) + 1
            self.last[event.step] = event.status
            if self.quiet and event.status in ("cached", "done"):
                return
            timing = f"{event.duration:6.2f} s" if event.status in ("done", "failed") else " " * 8
            why = "; ".join(event.reasons)
            text = f"  {SYMBOLS[event.status]} {event.step.ljust(self.width)}  {event.status:<9} {timing}"
            if why:
                text += f"  ({why})"
            self.line(text, COLOURS[event.status])
            if event.error:
                self.line(f"      {event.error}", "red")
        elif isinstance(event, CheckFailed):
            was = self.last.get(event.step)
            if was in self.counts:
                self.counts[was] -= 1
                if not self.counts[was]:
                    del self.counts[was]
            self.counts["failed"] = self.counts.get("failed", 0) + 1
            self.last[event.step] = "failed"
            text = (
                f"  {SYMBOLS['failed']} {event.step.ljust(self.width)}  {'failed':<9} {' ' * 8}  (check {event.check})"
            )
            self.line(text, COLOURS["failed"])
        elif isinstance(event, RunWarning):
            where = f"step {event.step}: " if event.step else ""
            self.line(f"  warning: {where}{event.message}", "yellow")
        elif isinstance(event, RunFinished):
            self.stop_spinner()
            summary = ", ".join(f"{n} {s}" for s, n in sorted(self.counts.items()))
            if event.cache_wait >= 0.05:
                summary += f"; {event.cache_wait:.2f} s of it writing the cache after the last step"
            self.line(
                f"run {event.run_id} {event.status} in {event.duration:.2f} s ({summary})"
                + (f": {event.error}" if event.error else ""),
                "green" if event.status == "done" else "red",
            )

    def line(self, text: str, colour: str | None = None) -> None:
        if self.console is not None:
            from rich.text import Text

            self.console.print(Text(text, style=colour or ""), highlight=False)
        else:
            print(text, file=self.stream, flush=True)

    def spin(self, text: str) -> None:
        if not self.stream.isatty():
            return
        if self.console is None:
            from rich.console import Console

            self.console = Console(file=self.stream)
        if self.status is None:
            self.status = self.console.status(text)
            self.status.start()
        else:
            self.status.update(text)

    def stop_spinner(self) -> None:
        if self.status is not None:
            self.status.stop()
            self.status = None
