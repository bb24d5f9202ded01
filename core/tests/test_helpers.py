"""The helpers written once and shared by the engine and the plugins: blocks, the zero check, the bounded pool."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from ashvault import blocks, exceptions
from ashvault.driver import JobContext
from ashvault.engine.pool import run_bounded

MiB = 1 << 20


def test_block_counts_spans_and_widening() -> None:
    b = blocks.BLOCK
    assert [blocks.count(n) for n in (0, 1, b, b + 1)] == [0, 1, 1, 2]
    assert blocks.span(b - 1, 2) == (0, 2) and blocks.span(b, b) == (1, 2) and blocks.span(3 * b, 0) == (3, 3)
    ranges = [(5, 10), (b - 1, 2), (3 * b, 0), (9 * b + 7, 5 * b), (20 * b, b)]
    assert blocks.widen(ranges, 12) == [(0, 2), (9, 12)]
    assert blocks.widen([(0, 10), (10, 10)], 1, block=10) == [(0, 1)]
    assert blocks.widen([], 5) == []


def test_bounded_pool_keeps_order_bounds_the_queue_and_reports_progress() -> None:
    running = peak = 0
    lock = threading.Lock()
    seen: list[tuple[int, int]] = []

    def job(i: int) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.002 * (i % 3))
        with lock:
            running -= 1
        return i * i

    queued = 0

    def work() -> Iterator[tuple[int, Callable[[], int]]]:
        nonlocal queued
        for i in range(40):
            queued += 1
            yield i + 1, (lambda i=i: job(i))

    ctx = JobContext(progress=lambda done, total: seen.append((done, total)))
    assert run_bounded(work(), ctx, workers=3, total=820, name="test") == [i * i for i in range(40)]
    assert peak <= 3 and queued == 40
    assert [d for d, _t in seen] == [sum(range(1, k + 1)) for k in range(1, 41)] and seen[-1] == (820, 820)


def test_bounded_pool_stops_at_a_failure_and_at_a_cancel() -> None:
    started: list[int] = []

    def job(i: int) -> int:
        started.append(i)
        if i == 3:
            raise exceptions.TransientDriverError(reason="boom")
        return i

    with pytest.raises(exceptions.TransientDriverError):
        run_bounded(((1, lambda i=i: job(i)) for i in range(1000)), JobContext(), workers=2, total=1000, name="t")
    assert len(started) < 20

    calls = 0

    def cancelled() -> bool:
        return calls >= 5

    def counted(i: int) -> int:
        nonlocal calls
        calls += 1
        return i

    with pytest.raises(exceptions.Cancelled):
        run_bounded(((1, lambda i=i: counted(i)) for i in range(1000)), JobContext(is_cancelled=cancelled),
                    workers=2, total=1000, name="t")
    assert calls < 20
