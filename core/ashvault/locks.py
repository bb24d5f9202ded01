"""File locks held for as long as a process lives: a job's lock tells whether its owner is still running; the catalog
serialises its migrations with one.

``flock`` locks vanish with the process that holds them, even on SIGKILL, so a record whose lock can be taken
belongs to a dead owner, however old or young it is.
"""

from __future__ import annotations

import errno
import fcntl
import os
import threading
import time
from collections.abc import Callable


class FileLock:
    """An exclusive ``flock`` on ``path``, blocking by default."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd = -1

    def acquire(self, *, blocking: bool = True, timeout: float | None = None) -> bool:
        """Take the lock; False when ``blocking`` is false and it is held, or ``timeout`` seconds passed first."""
        if timeout is not None:
            return self.acquire(blocking=False) or self._acquire_within(timeout)
        fd = self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return False
            raise
        self._own(fd)
        return True

    def _open(self) -> int:
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def _own(self, fd: int) -> None:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def _acquire_within(self, timeout: float) -> bool:
        # flock has no timeout: a helper thread blocks in it, and lets go at once if nobody wants the lock any more.
        got = threading.Event()
        gate = threading.Lock()
        abandoned = False

        def take() -> None:
            fd = self._open()
            fcntl.flock(fd, fcntl.LOCK_EX)
            with gate:
                if abandoned:
                    os.close(fd)
                    return
                self._own(fd)
                got.set()

        threading.Thread(target=take, name="ashvault-lock-wait", daemon=True).start()
        got.wait(timeout)
        with gate:
            abandoned = not got.is_set()
            return not abandoned

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    @property
    def held(self) -> bool:
        return self._fd >= 0

    def fileno(self) -> int:
        """The descriptor holding the lock (-1 when not held): a child process that inherits it holds the lock too,
        for as long as either keeps it open."""
        return self._fd

    @classmethod
    def adopt(cls, path: str, fd: int) -> FileLock:
        """The lock at ``path``, held through ``fd``, a descriptor inherited from the process that took it; the lock
        file then names this process as its owner."""
        lock = cls(path)
        lock._own(fd)
        return lock

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def owner_alive(path: str) -> bool:
    """True while some process holds the lock at ``path``."""
    if not os.path.exists(path):
        return False
    probe = FileLock(path)
    if probe.acquire(blocking=False):
        probe.release()
        return False
    return True


class SlotSemaphore:
    """At most ``slots`` holders at once across every process on this host; 0 means no limit."""

    def __init__(self, directory: str, slots: int) -> None:
        self.directory = directory
        self.slots = slots
        self._lock: FileLock | None = None

    def acquire(self, on_wait: Callable[[], None] | None = None, poll: float = 0.2,
                cancelled: Callable[[], bool] | None = None) -> bool:
        """Wait for a slot; False, without one, once ``cancelled`` says the waiting job was cancelled."""
        if self.slots <= 0:
            return True
        waited = False
        while True:
            for n in range(self.slots):
                lock = FileLock(os.path.join(self.directory, f"operation-slot-{n}.lock"))
                if lock.acquire(blocking=False):
                    self._lock = lock
                    return True
            if cancelled is not None and cancelled():
                return False
            if not waited and on_wait is not None:
                on_wait()
            waited = True
            time.sleep(poll)

    def release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None
