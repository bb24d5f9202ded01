"""Limit the bytes per second a store moves, shared by every thread of a process."""

from __future__ import annotations

import threading
import time

from ashvault.objectstore import ObjectStore, ObjectStoreWrapper


class TokenBucket:
    """Lets ``rate`` bytes per second through, in bursts of at most one second's worth."""

    def __init__(self, rate: float) -> None:
        self.rate = float(rate)
        self._lock = threading.Lock()
        self._next_free = time.monotonic()

    def take(self, nbytes: int) -> None:
        with self._lock:
            now = time.monotonic()
            start = max(now - 1.0, self._next_free)
            self._next_free = start + nbytes / self.rate
            wait = self._next_free - now
        if wait > 0:
            time.sleep(wait)


class ThrottledObjectStore(ObjectStoreWrapper):
    """Holds uploads and downloads to ``rate`` bytes per second (``backup_bandwidth_limit``)."""

    def __init__(self, inner: ObjectStore, rate: float) -> None:
        super().__init__(inner)
        self.bucket = TokenBucket(rate)

    def put_object(self, container: str, name: str, data: bytes) -> None:
        self.bucket.take(len(data))
        self.inner.put_object(container, name, data)

    def get_object(self, container: str, name: str) -> bytes | memoryview:
        data = self.inner.get_object(container, name)
        self.bucket.take(len(data))
        return data
