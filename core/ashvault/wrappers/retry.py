"""Retry transient object-store failures with exponential backoff."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from ashvault import exceptions
from ashvault.objectstore import ObjectStore, ObjectStoreWrapper

LOG = logging.getLogger(__name__)
T = TypeVar("T")


class RetryingObjectStore(ObjectStoreWrapper):
    """Retries calls that raise :class:`~ashvault.exceptions.TransientDriverError`.

    ``attempts`` counts every try, the first included; the wait before try ``n`` (from 1) is
    ``backoff * 2**(n-1)`` seconds with up to 25% jitter, capped at ``max_wait``. Permanent errors pass at once.
    """

    def __init__(
        self,
        inner: ObjectStore,
        *,
        attempts: int = 3,
        backoff: float = 1.0,
        max_wait: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(inner)
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.max_wait = max_wait
        self._sleep = sleep

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        for attempt in range(1, self.attempts + 1):
            try:
                return fn()
            except exceptions.TransientDriverError as exc:
                if attempt == self.attempts:
                    raise
                wait = min(self.max_wait, self.backoff * 2 ** (attempt - 1)) * (1 + random.random() / 4)
                LOG.warning("%s failed (%s); try %d of %d in %.1fs", what, exc, attempt + 1, self.attempts, wait)
                self._sleep(wait)
        raise AssertionError("unreachable")

    def put_container(self, container: str) -> None:
        self._call(f"create container {container}", lambda: self.inner.put_container(container))

    def list_objects(self, container: str, prefix: str = "") -> list[str]:
        return self._call(f"list {container}/{prefix}", lambda: self.inner.list_objects(container, prefix))

    def object_sizes(self, container: str, prefix: str = "") -> dict[str, int] | None:
        return self._call(f"list {container}/{prefix}", lambda: self.inner.object_sizes(container, prefix))

    def put_object(self, container: str, name: str, data: bytes) -> None:
        self._call(f"upload {name}", lambda: self.inner.put_object(container, name, data))

    def get_object(self, container: str, name: str) -> bytes | memoryview:
        return self._call(f"download {name}", lambda: self.inner.get_object(container, name))

    def delete_object(self, container: str, name: str) -> None:
        self._call(f"delete {name}", lambda: self.inner.delete_object(container, name))
