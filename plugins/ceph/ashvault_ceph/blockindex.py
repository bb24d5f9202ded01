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

from ashvault import blocks
from ashvault.blocks import BLOCK
from ashvault.directio import is_zero

DIGEST = 16
_ZERO = bytes(DIGEST)
MAGIC = b"ashvault-rbd-index/1\n"

__all__ = ["BLOCK", "BlockIndex", "align", "digest"]


def digest(data: bytes | memoryview, start: int = 0, length: int = BLOCK) -> bytes:
    """The digest of the block ``data[start : start + length]``; the zero sentinel for an all-zero block."""
    length = min(length, len(data) - start)
    if is_zero(data, start, length):
        return _ZERO
    return bytes(blake3.blake3(memoryview(data)[start : start + length]).digest(DIGEST))


def align(extents: Iterable[tuple[int, int, bool]], size: int, block: int = BLOCK) -> list[tuple[int, int, bool]]:
    """``extents`` widened to whole blocks (clipped to ``size``) and merged; all marked as holding data to read."""
    spans = blocks.widen(((off, length) for off, length, _data in extents), blocks.count(size, block), block)
    return [(lo * block, min(size, hi * block) - lo * block, True) for lo, hi in spans]


class BlockIndex:
    """One digest per block of a volume of ``size`` bytes; blocks are updated from several threads at once (each
    piece owns its own range)."""

    def __init__(self, size: int, raw: bytes | None = None) -> None:
        self.size = size
        self.blocks = blocks.count(size)
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
        first = off // BLOCK
        for i in range(0, len(data), BLOCK):
            j = (first + i // BLOCK) * DIGEST
            self.buf[j : j + DIGEST] = digest(data, i)

    def mismatches(self, off: int, data: bytes | memoryview) -> list[int]:
        """Offsets of the blocks of ``data`` (starting at block boundary ``off``) whose digest differs."""
        first = off // BLOCK
        bad = []
        for i in range(0, len(data), BLOCK):
            j = (first + i // BLOCK) * DIGEST
            if self.buf[j : j + DIGEST] != digest(data, i):
                bad.append(off + i)
        return bad

    def data_outside(self, extents: list[tuple[int, int, bool]]) -> list[int]:
        """Offsets of blocks outside the (block-aligned) ``extents`` whose digest says they held data."""
        covered = bytearray(self.blocks)
        for lo, hi in blocks.widen(((off, length) for off, length, _d in extents), self.blocks):
            covered[lo:hi] = b"\x01" * (hi - lo)
        return [b * BLOCK for b in range(self.blocks)
                if not covered[b] and self.buf[b * DIGEST : (b + 1) * DIGEST] != _ZERO]
