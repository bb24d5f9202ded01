"""A bounded worker pool for jobs that run many independent pieces: restores, verifies, RBD copies."""

from __future__ import annotations

import collections
import concurrent.futures as cf
from collections.abc import Callable, Iterable
from typing import TypeVar

from ashvault.driver import JobContext

T = TypeVar("T")


def run_bounded(work: Iterable[tuple[int, Callable[[], T]]], ctx: JobContext, *, workers: int, total: int,
                name: str) -> list[T]:
    """Run the calls of ``work``, ``(weight, call)`` pairs, on ``workers`` threads; return their results in order.

    At most ``2 * workers`` calls are queued or running, so memory stays bounded however long ``work`` is.
    ``ctx.check()`` runs before each call is queued, and ``ctx.progress(weight done, total)`` after each finishes,
    in order. A cancel or the first failure stops queueing, drops the queued calls, waits for the running ones and
    propagates as it was raised.
    """
    results: list[T] = []
    pending: collections.deque[tuple[int, cf.Future[T]]] = collections.deque()
    done = 0

    def settle(limit: int) -> None:
        nonlocal done
        while len(pending) > limit:
            weight, fut = pending.popleft()
            results.append(fut.result())
            done += weight
            ctx.progress(done, total)

    with cf.ThreadPoolExecutor(workers, thread_name_prefix=f"ashvault-{name}") as pool:
        try:
            for weight, call in work:
                ctx.check()
                pending.append((weight, pool.submit(call)))
                settle(2 * workers)
            settle(0)
        finally:
            for _w, fut in pending:
                fut.cancel()
    return results
