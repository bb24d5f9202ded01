"""Reading and writing files around the page cache (``O_DIRECT``) where the file system allows it.

Volumes are read once per backup, and backup objects and restored volumes are written once and rarely read back
soon. Putting them through the page cache costs a kernel copy to or from freshly allocated pages; ``O_DIRECT``
moves the bytes between the device and our buffers (docs/performance.md, "Reads").
``O_DIRECT`` wants the buffer, offset and length aligned: reads land in page-aligned buffers (from a
:class:`BufferPool`, which hands them out again once nothing refers to them, where the caller gives one); writes
from page-aligned memory go straight to the file, others are staged through pooled aligned buffers; whatever is not
aligned goes through an ordinary descriptor to the same file. Buffers of 1 MiB or more sit on transparent huge
pages where the kernel allows it: physically contiguous memory lets one call reach the device as one request
(docs/performance.md, "Huge-page buffers"). File systems that refuse ``O_DIRECT`` (tmpfs, some FUSE mounts) get
ordinary reads and writes.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import sys
import threading

from ashvault.libc import memcmp

ALIGN = 4096
HUGE = 2 << 20
"""Size of a transparent huge page on x86-64 and arm64 (4 KiB base pages)."""
STAGE = HUGE
"""Bytes staged per ``O_DIRECT`` write by default: one huge page, so most compressed objects are one request."""
_REFUSED = (errno.EINVAL, errno.EOPNOTSUPP, errno.EACCES, errno.EPERM)

_ZEROS = bytes(1 << 20)


def aligned_buffer(length: int) -> memoryview:
    """A zeroed, writable, page-aligned buffer of ``length`` bytes, freed with the last view of it.

    Buffers of 1 MiB or more are huge-page aligned and asked to be backed by transparent huge pages, so their
    memory is physically contiguous and one ``O_DIRECT`` call becomes one large request to the device.
    """
    raw, skip = _allocate(length)
    return memoryview(raw)[skip : skip + length]


def _allocate(length: int) -> tuple[bytearray | mmap.mmap, int]:
    """Memory for an aligned buffer of ``length`` bytes, and the offset in it where the buffer starts."""
    if length < HUGE // 2:
        small = bytearray(length + ALIGN)
        return small, -ctypes.addressof(ctypes.c_char.from_buffer(small)) % ALIGN
    raw = mmap.mmap(-1, length + HUGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    try:
        raw.madvise(mmap.MADV_HUGEPAGE)
    except (AttributeError, OSError):
        pass
    return raw, -ctypes.addressof(ctypes.c_char.from_buffer(raw)) % HUGE


class BufferPool:
    """Aligned buffers (as :func:`aligned_buffer` makes them) handed out again once nothing refers to them.

    Fresh memory costs the kernel a zeroing of every page: a pool pays it once per buffer. A buffer is free again
    when the pool holds the only reference to its memory; every view of it, slices included, holds one, so bytes a
    queued object still points to are never overwritten. Reused buffers are not zeroed.

    A request gets a buffer of exactly its length, so a view never pins more memory than it shows. The pool keeps at
    most ``keep`` buffers, of any lengths; a new length takes the place of a free buffer of another one, and when
    none is free the new buffer is simply not kept. Thread-safe.
    """

    _FREE = 2
    """``sys.getrefcount`` of a buffer's memory that only the pool refers to: its entry, and the call's argument."""

    def __init__(self, keep: int = 16) -> None:
        self._lock = threading.Lock()
        self._keep = keep
        self._held: list[tuple[bytearray | mmap.mmap, int, int]] = []

    def get(self, length: int) -> memoryview:
        with self._lock:
            spare = -1
            for i, entry in enumerate(self._held):
                if sys.getrefcount(entry[0]) == self._FREE:
                    if entry[2] == length:
                        return memoryview(entry[0])[entry[1] : entry[1] + length]
                    spare = i
            raw, skip = _allocate(length)
            if len(self._held) < self._keep:
                self._held.append((raw, skip, length))
            elif spare >= 0:
                self._held[spare] = (raw, skip, length)
            return memoryview(raw)[skip : skip + length]


_STAGING = BufferPool()


def address(data: bytes | memoryview) -> int | None:
    """Where ``data``'s bytes start in memory, or ``None`` for a buffer that is neither bytes nor writable."""
    if isinstance(data, bytes):
        return ctypes.cast(ctypes.c_char_p(data), ctypes.c_void_p).value
    view = memoryview(data)
    if view.readonly or not view.c_contiguous or not view.nbytes:
        return None
    return ctypes.addressof(ctypes.c_char.from_buffer(view))


def is_zero(data: bytes | memoryview, start: int = 0, length: int | None = None) -> bool:
    """Whether bytes ``[start, start + length)`` of ``data`` (all of it by default) are zero.

    The one all-zero check: a ``memcmp`` without the GIL for bytes and writable buffers, a compare of a copy for
    other buffers (comparing two memoryviews instead runs item by item in Python's generic code, far slower).
    """
    view = memoryview(data).cast("B")
    end = len(view) if length is None else start + length
    addr = address(data)
    for pos in range(start, end, len(_ZEROS)):
        n = min(len(_ZEROS), end - pos)
        if addr is None:
            if bytes(view[pos : pos + n]) != _ZEROS[:n]:
                return False
        elif memcmp(addr + pos, _ZEROS, n):
            return False
    return True


def _write_all(fd: int, view: memoryview, offset: int) -> None:
    while view:
        n = os.pwrite(fd, view, offset)
        view = view[n:]
        offset += n


class _DirectFile:
    """An extra ``O_DIRECT`` descriptor beside the caller's ``fd``, or none where ``O_DIRECT`` is off or refused."""

    def __init__(self, fd: int, path: str, flags: int, *, enabled: bool) -> None:
        self.fd = fd
        self._direct = -1
        if enabled and hasattr(os, "O_DIRECT"):
            try:
                self._direct = os.open(path, flags | os.O_DIRECT | os.O_CLOEXEC)
            except OSError as exc:
                if exc.errno not in _REFUSED:
                    raise

    @property
    def direct(self) -> bool:
        return self._direct >= 0

    def close(self) -> None:
        """Close the ``O_DIRECT`` descriptor; ``fd`` stays the caller's."""
        if self._direct >= 0:
            os.close(self._direct)
            self._direct = -1


class DirectWriter(_DirectFile):
    """Positional writes to one open file: the aligned part through ``O_DIRECT``, the rest through ``fd``.

    ``fd`` stays owned by the caller (it is the descriptor to fsync and close); :meth:`close` closes only the
    extra ``O_DIRECT`` descriptor. Raises ``OSError`` as ``os.pwrite`` does.
    """

    def __init__(self, fd: int, path: str, *, enabled: bool = True, stage: int = STAGE) -> None:
        super().__init__(fd, path, os.O_WRONLY, enabled=enabled)
        self.stage = stage

    def pwrite(self, offset: int, data: bytes | memoryview) -> None:
        view = memoryview(data).cast("B")
        aligned = len(view) - len(view) % ALIGN
        if self._direct >= 0 and offset % ALIGN == 0 and aligned:
            start = address(view)
            try:
                if start is not None and start % ALIGN == 0:
                    _write_all(self._direct, view[:aligned], offset)
                else:
                    self._staged(view[:aligned], offset)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                os.close(self._direct)
                self._direct = -1
                _write_all(self.fd, view, offset)
                return
            view, offset = view[aligned:], offset + aligned
        _write_all(self.fd, view, offset)

    def _staged(self, view: memoryview, offset: int) -> None:
        stage = _STAGING.get(self.stage)
        for pos in range(0, len(view), self.stage):
            n = min(self.stage, len(view) - pos)
            stage[:n] = view[pos : pos + n]
            _write_all(self._direct, stage[:n], offset + pos)


class DirectReader(_DirectFile):
    """Positional reads of one open file through ``O_DIRECT``, into page-aligned buffers (from ``pool`` if given).

    ``fd`` stays owned by the caller and serves the reads when ``O_DIRECT`` is refused; :meth:`close` closes only
    the extra ``O_DIRECT`` descriptor. Raises ``OSError`` as ``os.pread`` does.
    """

    def __init__(self, fd: int, path: str, *, enabled: bool = True, pool: BufferPool | None = None) -> None:
        super().__init__(fd, path, os.O_RDONLY, enabled=enabled)
        self._pool = pool

    def pread(self, offset: int, length: int) -> bytes | memoryview:
        """``length`` bytes at ``offset``, short only at the end of the file."""
        if self._direct < 0 or length <= 0:
            return os.pread(self.fd, length, offset)
        start = offset - offset % ALIGN
        end = offset + length
        size = end - start + -end % ALIGN
        buf = self._pool.get(size) if self._pool is not None else aligned_buffer(size)
        got = 0
        try:
            while got < len(buf):
                n = os.preadv(self._direct, [buf[got:]], start + got)
                got += n
                if n == 0 or n % ALIGN:
                    break
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            os.close(self._direct)
            self._direct = -1
            return os.pread(self.fd, length, offset)
        skip = offset - start
        return buf[skip : max(skip, min(got, skip + length))]
