"""A progress bar on stderr, drawn only when stderr is a terminal."""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"


class ProgressBar:
    def __init__(self, label: str, stream: TextIO | None = None, *, force: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.enabled = force or self.stream.isatty()
        self.label = label
        self.start = time.monotonic()
        self._last = 0.0
        self._lock = threading.Lock()
        self._drawn = False

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        with self._lock:
            if now - self._last < 0.2 and done < total:
                return
            self._last = now
            frac = min(1.0, done / total) if total else 1.0
            width = 30
            filled = int(frac * width)
            rate = done / max(now - self.start, 1e-6)
            line = (f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {frac * 100:5.1f}% "
                    f"{_human(done)}/{_human(total)} {_human(rate)}/s")
            self.stream.write(line)
            self.stream.flush()
            self._drawn = True

    def waiting(self) -> None:
        if self.enabled:
            self.stream.write(f"{self.label}: waiting for a free operation slot (backup_max_operations)\n")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
