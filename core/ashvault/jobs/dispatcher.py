"""Dispatchers hand a job to where it runs. ``local`` runs it in a bounded thread pool of this process."""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class LocalDispatcher:
    """Runs jobs in this process; at most ``size`` at once (0: a pool of 64)."""

    def __init__(self, size: int) -> None:
        self._pool = cf.ThreadPoolExecutor(size or 64, thread_name_prefix="ashvault-job")

    def submit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> cf.Future[T]:
        return self._pool.submit(fn, *args, **kwargs)

    def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a job and wait for its result (or its exception)."""
        return self.submit(fn, *args, **kwargs).result()

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True)
