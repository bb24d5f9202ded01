"""Checksums of RBD backups: a 128-bit BLAKE3 digest of every 64 KiB block of the volume at the backup's snapshot.

Cinder's RBD backup images carry no checksums. Here each RBD backup also stores this index as one RADOS object (zlib
compressed, 256 KiB per GiB of volume before compression), built while the data is copied: a full backup hashes what
it copies, an incremental starts from its parent's index and rehashes only the blocks its changed extents touch. A
restore checks every block it writes, and ``verify`` reads the whole snapshot back against it, so a corrupt backup
is named, never restored silently. All-zero blocks are stored as 16 zero bytes, without hashing.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

import blake3

BLOCK = 64 * 1024
DIGEST = 16
_ZERO = bytes(DIGEST)
_ZEROS = memoryview(bytes(BLOCK))
MAGIC = b"ashvault-rbd-index/1\n"


def digest(block: bytes | memoryview) -> bytes:
    """The block's digest; the zero sentinel for an all-zero block."""
    if memoryview(block) == _ZEROS[: len(block)]:
        return _ZERO
    return bytes(blake3.blake3(block).digest(DIGEST))


def align(extents: Iterable[tuple[int, int, bool]], size: int, block: int = BLOCK) -> list[tuple[int, int, bool]]:
    """``extents`` widened to whole blocks (clipped to ``size``) and merged; all marked as holding data to read."""
    out: list[tuple[int, int, bool]] = []
    for off, length, _data in extents:
        lo = off - off % block
        hi = min(size, -(-(off + length) // block) * block)
        if lo >= hi:
            continue
        if out and out[-1][0] + out[-1][1] >= lo:
            start = out[-1][0]
            out[-1] = (start, max(out[-1][0] + out[-1][1], hi) - start, True)
        else:
            out.append((lo, hi - lo, True))
    return out


class BlockIndex:
    """One digest per block of a volume of ``size`` bytes; blocks are updated from several threads at once (each
    piece owns its own range)."""

    def __init__(self, size: int, raw: bytes | None = None) -> None:
        self.size = size
        self.blocks = -(-size // BLOCK)
        self.buf = bytearray(self.blocks * DIGEST)
        self.stale: list[int] = []
        """Offsets of blocks whose digest must be recomputed even if unchanged (a partial last block that grew)."""
        if raw:
            keep = raw[: len(self.buf)]
            self.buf[: len(keep)] = keep

    @classmethod
    def decode(cls, data: bytes, size: int) -> BlockIndex:
        """Raises ``ValueError`` when ``data`` is not an index."""
        if not data.startswith(MAGIC):
            raise ValueError("not an ashvault RBD block index")
        return cls(size, zlib.decompress(data[len(MAGIC) :]))

    def encode(self) -> bytes:
        return MAGIC + zlib.compress(bytes(self.buf), 1)

    def resized(self, size: int) -> BlockIndex:
        """A copy for a volume of ``size`` bytes (blocks past the old end read as zeros)."""
        return BlockIndex(size, bytes(self.buf))

    def update(self, off: int, data: bytes | memoryview) -> None:
        """Record the digests of ``data``, which starts at block boundary ``off``."""
        view = memoryview(data)
        first = off // BLOCK
        for i in range(0, len(view), BLOCK):
            j = (first + i // BLOCK) * DIGEST
            self.buf[j : j + DIGEST] = digest(view[i : i + BLOCK])

    def mismatches(self, off: int, data: bytes | memoryview) -> list[int]:
        """Offsets of the blocks of ``data`` (starting at block boundary ``off``) whose digest differs."""
        view = memoryview(data)
        first = off // BLOCK
        bad = []
        for i in range(0, len(view), BLOCK):
            j = (first + i // BLOCK) * DIGEST
            if self.buf[j : j + DIGEST] != digest(view[i : i + BLOCK]):
                bad.append(off + i)
        return bad

    def data_outside(self, extents: list[tuple[int, int, bool]]) -> list[int]:
        """Offsets of blocks outside the (block-aligned) ``extents`` whose digest says they held data."""
        covered = bytearray(self.blocks)
        for off, length, _d in extents:
            lo, hi = off // BLOCK, min(self.blocks, -(-(off + length) // BLOCK))
            if lo < hi:
                covered[lo:hi] = b"\x01" * (hi - lo)
        return [b * BLOCK for b in range(self.blocks)
                if not covered[b] and self.buf[b * DIGEST : (b + 1) * DIGEST] != _ZERO]
