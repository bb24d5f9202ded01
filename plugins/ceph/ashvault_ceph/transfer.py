"""Moving RBD extents: a snapshot diff into a backup image, and a backup snapshot onto any restore target.

Work is cut into pieces of at most 8 MiB, run from a few threads (librbd images take concurrent I/O) with at most two
pieces per thread in flight, so memory stays bounded whatever the image size. A cancel (``ctx.check``) or a failure
stops at the next piece; pieces already running finish first, and the error propagates as it was raised (librbd
errors are translated by the caller, which knows what it was doing).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

from ashvault import exceptions
from ashvault.blocks import BLOCK
from ashvault.directio import is_zero
from ashvault.driver import JobContext
from ashvault.engine.pool import run_bounded
from ashvault.sources import VolumeWriter
from ashvault_ceph.blockindex import BlockIndex, align
from ashvault_ceph.rbd_source import RbdReader, extents

PIECE = 8 << 20

Extent = tuple[int, int, bool]
"""(offset, length, has data)."""


def zero_runs(data: bytes, block: int = BLOCK) -> list[tuple[int, int, bool]]:
    """``data`` cut into runs of whole ``block``-sized pieces: (start, end, all zero).

    Zero runs inside a changed extent are zeroed on the backup image, not written.
    """
    if is_zero(data):
        return [(0, len(data), True)]
    runs: list[tuple[int, int, bool]] = []
    for a in range(0, len(data), block):
        b = min(a + block, len(data))
        zero = is_zero(data, a, b - a)
        if runs and runs[-1][2] == zero:
            runs[-1] = (runs[-1][0], b, zero)
        else:
            runs.append((a, b, zero))
    return runs


def run_pieces(todo: list[Extent], fn: Callable[[int, int, bool], tuple[int, int]], ctx: JobContext, *,
               piece: int = PIECE, workers: int = 4) -> tuple[int, int]:
    """Call ``fn(offset, length, has_data)`` on every piece of ``todo``; return the sums of what it returned."""
    piece = max(BLOCK, min(piece, PIECE) // BLOCK * BLOCK)

    def pieces() -> Iterator[tuple[int, Callable[[], tuple[int, int]]]]:
        for off, length, has_data in todo:
            for pos in range(off, off + length, piece):
                n = min(piece, off + length - pos)
                yield n, functools.partial(fn, pos, n, has_data)

    results = run_bounded(pieces(), ctx, workers=workers, total=sum(n for _o, n, _d in todo) or 1, name="rbd")
    return sum(a for a, _b in results), sum(b for _a, b in results)


def copy_diff(reader: RbdReader, from_snap: str | None, dest: Any, ctx: JobContext, *, index: BlockIndex | None,
              piece: int = PIECE, workers: int = 4) -> tuple[int, int]:
    """Copy what changed on the source since ``from_snap`` (all its data when None) into image ``dest``.

    Returns (bytes written to ``dest``, bytes read from the source). Zero runs inside a changed extent are zeroed
    (deallocated) on ``dest``, or skipped for a full copy into a new image. With an ``index``, changed extents are
    widened to whole 64 KiB blocks and the digests of every block copied are recorded in it.
    """
    todo = reader.diff(from_snap)
    if index is not None:
        todo = align(sorted(todo + [(off, BLOCK, True) for off in index.stale if off < reader.size]), reader.size)

    def copy(off: int, n: int, has_data: bool) -> tuple[int, int]:
        if not has_data:
            dest.write_zeroes(off, n)
            return 0, 0
        data = reader.pread(off, n)
        if index is not None:
            index.update(off, data)
        view = memoryview(data)
        written = 0
        for a, b, zero in zero_runs(data):
            if not zero:
                dest.write(data if b - a == len(data) else bytes(view[a:b]), off + a)
                written += b - a
            elif from_snap is not None:
                dest.write_zeroes(off + a, b - a)
        return written, len(data)

    return run_pieces(todo, copy, ctx, piece=piece, workers=workers)


def restore_image(img: Any, target: VolumeWriter, ctx: JobContext, *, volume_is_new: bool, discard_excess: bool,
                  index: BlockIndex | None = None, label: str = "", backup_id: str = "", piece: int = PIECE,
                  workers: int = 4) -> None:
    """Write the allocated extents of image ``img`` (opened at a backup snapshot) to ``target``.

    For an RBD target this is the diff path (only data moves); for any other a sparse full copy. A target that is
    not new is zeroed first (cheaply where it can be) or around the data; with ``discard_excess`` what lies past the
    backup's end reads as zeros too. With an ``index`` every block is checked before it is written.

    Raises ``InvalidVolume`` when the target is smaller than the backup, ``IntegrityError`` naming the backup and
    ``<label>:<offset>`` of the first block that does not match its checksum.
    """
    size = int(img.size())
    if target.size < size:
        raise exceptions.InvalidVolume(reason=f"{target.location} holds {target.size} bytes, the backup {size}")
    zeroed = volume_is_new
    if not zeroed and target.cheap_reset:
        target.reset()
        zeroed = True
    data = extents(img, size, None, data_only=True)
    if index is not None:
        data = align(data, size)
        lost = index.data_outside(data)
        if lost:
            raise exceptions.IntegrityError(backup=backup_id, object=f"{label}:{lost[0]}",
                                            reason="the backup image lacks data its checksums record")
    pos = 0
    if not zeroed:
        for off, length, _d in data:
            if off > pos:
                target.zero(pos, off - pos)
            pos = off + length

    def copy(off: int, n: int, _has_data: bool) -> tuple[int, int]:
        buf = img.read(off, n)
        if index is not None:
            bad = index.mismatches(off, buf)
            if bad:
                raise exceptions.IntegrityError(backup=backup_id, object=f"{label}:{bad[0]}",
                                                reason="the data does not match its checksum")
        if zeroed and is_zero(buf):
            return 0, n
        target.pwrite(off, buf)
        return n, n

    run_pieces(data, copy, ctx, piece=piece, workers=workers)
    if not zeroed:
        tail = target.size if discard_excess else size
        if tail > pos:
            target.zero(pos, tail - pos)
    target.flush()
