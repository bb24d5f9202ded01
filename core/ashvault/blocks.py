"""Fixed-size blocks of a volume: the default block size and the rounding of byte ranges to whole blocks."""

from __future__ import annotations

from collections.abc import Iterable

BLOCK = 64 * 1024
"""Default granularity of change detection and of block checksums, in bytes."""


def count(size: int, block: int = BLOCK) -> int:
    """How many blocks hold ``size`` bytes (the last one may be short)."""
    return -(-size // block)


def span(offset: int, length: int, block: int = BLOCK) -> tuple[int, int]:
    """The blocks ``[first, end)`` that the bytes ``[offset, offset + length)`` touch."""
    return offset // block, count(offset + length, block)


def widen(ranges: Iterable[tuple[int, int]], nblocks: int, block: int = BLOCK) -> list[tuple[int, int]]:
    """The blocks ``[first, end)`` that sorted ``(offset, length)`` ranges touch, below ``nblocks``, merged."""
    out: list[tuple[int, int]] = []
    for offset, length in ranges:
        lo, hi = span(offset, length, block)
        hi = min(hi, nblocks)
        if lo >= hi:
            continue
        if out and out[-1][1] >= lo:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out
