"""Writing files around the page cache (``O_DIRECT``) where the file system allows it.

Backup objects and restored volumes are written once and rarely read back soon. Putting them through the page
cache costs a kernel copy into freshly allocated pages, which on the virtual machines we measured runs at about
0.5 GB/s and took more CPU than compression; ``O_DIRECT`` writes ran at 1.1-1.5 GB/s for a tenth of the CPU
(FORMAT.md, "Choices and measurements"). ``O_DIRECT`` wants the buffer, offset and length aligned, so data is
staged through a page-aligned buffer reused per thread, and whatever is not aligned goes through an ordinary
descriptor to the same file. File systems that refuse ``O_DIRECT`` (tmpfs, some FUSE mounts) get ordinary writes.
"""

from __future__ import annotations

import errno
import mmap
import os
import threading

ALIGN = 4096
STAGE = 1 << 20
"""Bytes staged per ``O_DIRECT`` write by default: one such buffer per writing thread."""
_local = threading.local()


def _stage(size: int) -> mmap.mmap:
    bufs: dict[int, mmap.mmap] | None = getattr(_local, "bufs", None)
    if bufs is None:
        bufs = _local.bufs = {}
    buf = bufs.get(size)
    if buf is None:
        buf = bufs[size] = mmap.mmap(-1, size)
    return buf


def _write_all(fd: int, view: memoryview, offset: int) -> None:
    while view:
        n = os.pwrite(fd, view, offset)
        view = view[n:]
        offset += n


class DirectWriter:
    """Positional writes to one open file: the aligned part through ``O_DIRECT``, the rest through ``fd``.

    ``fd`` stays owned by the caller (it is the descriptor to fsync and close); :meth:`close` closes only the
    extra ``O_DIRECT`` descriptor. Raises ``OSError`` as ``os.pwrite`` does.
    """

    def __init__(self, fd: int, path: str, *, enabled: bool = True, stage: int = STAGE) -> None:
        self.fd = fd
        self.stage = stage
        self._direct = -1
        if enabled and hasattr(os, "O_DIRECT"):
            try:
                self._direct = os.open(path, os.O_WRONLY | os.O_DIRECT | os.O_CLOEXEC)
            except OSError as exc:
                if exc.errno not in (errno.EINVAL, errno.EOPNOTSUPP, errno.EACCES, errno.EPERM):
                    raise

    @property
    def direct(self) -> bool:
        return self._direct >= 0

    def pwrite(self, offset: int, data: bytes | memoryview) -> None:
        view = memoryview(data).cast("B")
        aligned = len(view) - len(view) % ALIGN
        if self._direct >= 0 and offset % ALIGN == 0 and aligned:
            stage = _stage(self.stage)
            try:
                for pos in range(0, aligned, self.stage):
                    n = min(self.stage, aligned - pos)
                    stage[:n] = view[pos : pos + n]
                    _write_all(self._direct, memoryview(stage)[:n], offset + pos)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                os.close(self._direct)
                self._direct = -1
                _write_all(self.fd, view, offset)
                return
            view, offset = view[aligned:], offset + aligned
        _write_all(self.fd, view, offset)

    def close(self) -> None:
        if self._direct >= 0:
            os.close(self._direct)
            self._direct = -1
