"""The progress of a backup, restore or verify on stderr, drawn with rich only when stderr is a terminal.

The bar shows the bytes done, throughput, elapsed time and time left, and fits the terminal's width; when the job
ends it leaves one summary line. With stderr redirected nothing is drawn, so logs and scripts stay clean.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, TextIO


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{int(n)} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _rich_progress(stream: TextIO) -> Any:
    """A rich Progress on ``stream``; rich is imported only here, as its import costs more than most commands."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        ProgressColumn,
        Task,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class RateColumn(ProgressColumn):
        """Throughput since the job started, in binary units (rich's own column samples a short window)."""

        def render(self, task: Task) -> Text:
            elapsed = task.elapsed or 0.0
            if elapsed <= 0:
                return Text("?", style="progress.data.speed")
            return Text(f"{human(task.completed / elapsed)}/s", style="progress.data.speed")

    console = Console(file=stream, force_terminal=True, highlight=False)
    return Progress(
        TextColumn("{task.description}"), BarColumn(bar_width=None), TaskProgressColumn(),
        DownloadColumn(binary_units=True), RateColumn(), TextColumn("elapsed"), TimeElapsedColumn(),
        TextColumn("left"), TimeRemainingColumn(), console=console, transient=True, refresh_per_second=5,
    )


class ProgressBar:
    def __init__(self, label: str, stream: TextIO | None = None, *, force: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.enabled = force or self.stream.isatty()
        self.label = label
        self.start = time.monotonic()
        self._lock = threading.Lock()
        self._done = 0
        self._progress: Any = _rich_progress(self.stream) if self.enabled else None
        self._task: Any = None

    def __call__(self, done: int, total: int) -> None:
        if self._progress is None:
            return
        with self._lock:
            if self._task is None:
                self.start = time.monotonic()
                self._progress.start()
                self._task = self._progress.add_task(self.label, total=total or None)
            self._done = done
            self._progress.update(self._task, completed=done, total=total or None)

    def waiting(self) -> None:
        if self.enabled:
            self.stream.write(f"{self.label}: waiting for a free operation slot (backup_max_operations)\n")
            self.stream.flush()

    def close(self) -> None:
        if self._progress is None or self._task is None:
            return
        with self._lock:
            self._progress.stop()
            seconds = max(time.monotonic() - self.start, 1e-6)
            self.stream.write(f"{self.label}: {human(self._done)} in {seconds:.1f} s "
                              f"({human(self._done / seconds)}/s)\n")
            self.stream.flush()
            self._task = None
