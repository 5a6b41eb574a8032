"""A progress display per pipeline stage: a live bar on a terminal, plain lines elsewhere (CI).

    with Stages() as stages:
        with stages.stage("lut", "latency table") as st:
            st.progress(done, new_total)   # profiler-style increments
            st.note("81 entries measured")
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn,
                           TimeElapsedColumn)


@dataclass
class StageHandle:
    _progress: Progress | None
    _task: int | None
    name: str
    total: int = 0
    notes: list[str] = field(default_factory=list)

    def progress(self, done: int, new_total: int = 0) -> None:
        """Add `new_total` units of work and mark `done` of them finished."""
        self.total += new_total
        if self._progress is not None:
            self._progress.update(self._task, total=self.total or None, advance=done)

    def note(self, text: str) -> None:
        self.notes.append(text)


class Stages:
    def __init__(self, quiet: bool = False, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self.quiet = quiet
        self.seconds: dict[str, float] = {}
        self._progress: Progress | None = None

    def __enter__(self) -> "Stages":
        if not self.quiet and self.console.is_terminal:
            self._progress = Progress(SpinnerColumn(), TextColumn("{task.description:<28}"), BarColumn(),
                                      MofNCompleteColumn(), TimeElapsedColumn(), console=self.console,
                                      transient=False)
            self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()

    @contextmanager
    def stage(self, key: str, title: str):
        task = None
        if self._progress is not None:
            task = self._progress.add_task(title, total=None)
        handle = StageHandle(self._progress, task, key)
        start = time.monotonic()
        try:
            yield handle
        except BaseException:
            if self._progress is not None:
                self._progress.update(task, description=f"[red]✗ {title}")
            raise
        elapsed = time.monotonic() - start
        self.seconds[key] = round(elapsed, 2)
        summary = f" — {'; '.join(handle.notes)}" if handle.notes else ""
        if self._progress is not None:
            total = handle.total or 1
            self._progress.update(task, total=total, completed=total, description=f"[green]✓[/] {title}")
            if handle.notes:
                self._progress.console.print(f"  {title}: {'; '.join(handle.notes)}", highlight=False)
        elif not self.quiet:
            self.console.print(f"[{key}] {title}: done in {elapsed:.1f} s{summary}", highlight=False, markup=False)
