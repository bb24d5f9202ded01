"""A kill -9 at a chosen object-store call, for crash tests that run the real ``ashvault`` command.

Set ``ASHVAULT_TEST_KILL_AT`` in the environment of a process to ``OP:N`` (``OP`` one of ``put``, ``get``,
``delete``, ``list``) and that process sends itself ``SIGKILL`` as its ``N``-th call of ``OP`` to the object store
begins (counted from 1 across all threads, over every store the process makes); ``OP:N:after`` kills it once that
call has returned instead. Other threads may be in the middle of their own calls at that moment, as in a real crash.

:func:`ashvault.wrappers.wrap` puts :class:`KillingObjectStore` innermost, around the driver's own store, only when
the variable is set; when it is unset nothing is wrapped and this module is not even imported.
"""

from __future__ import annotations

import os
import signal
import threading

from ashvault import exceptions
from ashvault.objectstore import ObjectStore, ObjectStoreWrapper

ENV = "ASHVAULT_TEST_KILL_AT"
OPS = ("put", "get", "delete", "list")

_lock = threading.Lock()
_counts: dict[str, int] = dict.fromkeys(OPS, 0)


def parse(spec: str) -> tuple[str, int, bool]:
    """``(op, n, after)`` from ``OP:N`` or ``OP:N:after``. Raises ``InvalidInput`` for anything else."""
    parts = spec.split(":")
    if len(parts) in (2, 3) and parts[0] in OPS and parts[1].isdigit() and int(parts[1]) > 0 and (
        len(parts) == 2 or parts[2] == "after"
    ):
        return parts[0], int(parts[1]), len(parts) == 3
    raise exceptions.InvalidInput(reason=f"{ENV}={spec!r}: expected OP:N or OP:N:after, OP one of {', '.join(OPS)}")


class KillingObjectStore(ObjectStoreWrapper):
    """Passes every call on, and kills the process at the one :data:`ENV` names."""

    def __init__(self, inner: ObjectStore, spec: str) -> None:
        super().__init__(inner)
        self.op, self.nth, self.after = parse(spec)

    def _is_the_one(self, op: str) -> bool:
        if op != self.op:
            return False
        with _lock:
            _counts[op] += 1
            return _counts[op] == self.nth

    def _call(self, op: str, fn, *args):  # type: ignore[no-untyped-def]
        if not self._is_the_one(op):
            return fn(*args)
        if not self.after:
            os.kill(os.getpid(), signal.SIGKILL)
        try:
            return fn(*args)
        finally:
            os.kill(os.getpid(), signal.SIGKILL)

    def list_objects(self, container: str, prefix: str = "") -> list[str]:
        return self._call("list", self.inner.list_objects, container, prefix)  # type: ignore[no-any-return]

    def put_object(self, container: str, name: str, data: bytes) -> None:
        self._call("put", self.inner.put_object, container, name, data)

    def get_object(self, container: str, name: str) -> bytes | memoryview:
        return self._call("get", self.inner.get_object, container, name)  # type: ignore[no-any-return]

    def delete_object(self, container: str, name: str) -> None:
        self._call("delete", self.inner.delete_object, container, name)


def from_environment(store: ObjectStore) -> ObjectStore:
    """``store`` wrapped in a :class:`KillingObjectStore` when :data:`ENV` is set and not empty."""
    spec = os.environ.get(ENV)
    return KillingObjectStore(store, spec) if spec else store
