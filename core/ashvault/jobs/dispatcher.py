"""Dispatchers hand a job to where it runs. ``local`` runs it in a bounded thread pool of this process.

A dispatcher takes :class:`~ashvault.jobs.job.Job` values, not functions, so that another dispatcher can send them
over a message queue to a worker whose manager runs them.
"""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Callable
from typing import Any

from ashvault.jobs.job import Job, Observers

Runner = Callable[[Job, Observers], Any]


class LocalDispatcher:
    """Runs jobs with ``runner`` (the manager's) in this process; at most ``size`` at once (0: a pool of 64)."""

    def __init__(self, runner: Runner, size: int) -> None:
        self._runner = runner
        self._pool = cf.ThreadPoolExecutor(size or 64, thread_name_prefix="ashvault-job")

    def submit(self, job: Job, observers: Observers | None = None) -> cf.Future[Any]:
        """Queue ``job``; the future gives its result or raises its error."""
        return self._pool.submit(self._runner, job, observers or Observers())

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True)
