"""Operations on sorted, non-overlapping extent lists."""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator

from ashvault.engine.layout import Extent

Range = tuple[int, int]


def subtract(extents: Iterable[Extent], cuts: Iterable[Range]) -> Iterator[Extent]:
    """The parts of ``extents`` outside every ``(offset, length)`` of ``cuts``; both sorted by offset."""
    cut_iter = iter(cuts)
    cut = next(cut_iter, None)
    for off, length, obj, obj_off in extents:
        end = off + length
        while off < end:
            while cut is not None and cut[0] + cut[1] <= off:
                cut = next(cut_iter, None)
            if cut is None or cut[0] >= end:
                yield off, end - off, obj, obj_off
                break
            if cut[0] > off:
                yield off, cut[0] - off, obj, obj_off
            skip_to = min(end, cut[0] + cut[1])
            obj_off += skip_to - off
            off = skip_to


def merge(old: Iterable[Extent], new: Iterable[Extent]) -> list[Extent]:
    """Merge two disjoint sorted lists and join neighbours that continue each other in one object."""
    out: list[Extent] = []
    for ext in heapq.merge(old, new):
        if out:
            poff, plen, pobj, pobj_off = out[-1]
            if pobj == ext[2] and poff + plen == ext[0] and pobj_off + plen == ext[3]:
                out[-1] = (poff, plen + ext[1], pobj, pobj_off)
                continue
        out.append(ext)
    return out


def truncate(extents: Iterable[Extent], size: int) -> Iterator[Extent]:
    for off, length, obj, obj_off in extents:
        if off >= size:
            break
        yield off, min(length, size - off), obj, obj_off


def gaps(extents: Iterable[Extent], size: int) -> Iterator[Range]:
    """The ranges of ``[0, size)`` no extent covers."""
    pos = 0
    for off, length, _obj, _obj_off in extents:
        if off > pos:
            yield pos, off - pos
        pos = max(pos, off + length)
    if pos < size:
        yield pos, size - pos


def coalesce(ranges: Iterable[Range]) -> list[Range]:
    out: list[Range] = []
    for off, length in ranges:
        if out and out[-1][0] + out[-1][1] == off:
            out[-1] = (out[-1][0], out[-1][1] + length)
        else:
            out.append((off, length))
    return out
