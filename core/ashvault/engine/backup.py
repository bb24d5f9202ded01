"""The backup pipeline: read, fingerprint, compare, pack, compress, hash and upload, overlapped and bounded.

Reads and fingerprinting run in one thread pool, compression, hashing and uploads in another; the calling thread
keeps the volume order, packs changed blocks into objects and builds the manifest. Hashing and compression hold
one of ``threads`` CPU slots and at most ``transfers`` objects are being sent at once, so that objects waiting for
the backend never keep a CPU slot from being used. At most ``3 * threads + 1`` segments are being read or waiting
for the calling thread (``threads + 2`` reads at once: reads slow down while the backend writes, and a deeper
queue keeps the CPU slots fed) and ``threads + transfers`` objects are waiting or in flight, so memory depends on
``object_size`` and the thread counts, never on the volume's size.
"""

from __future__ import annotations

import array
import collections
import concurrent.futures as cf
import dataclasses
import datetime
import threading
from collections.abc import Iterable, Iterator

from ashvault import blocks, exceptions
from ashvault.directio import is_zero
from ashvault.driver import BackupInfo, JobContext
from ashvault.engine import extents as ext
from ashvault.engine.compression import Compressor
from ashvault.engine.layout import (
    INDEX,
    MANIFEST,
    Extent,
    Manifest,
    ObjectEntry,
    content_hash,
    data_name,
    encode_index,
    encode_manifest,
    fingerprint,
)
from ashvault.objectstore import ObjectStore
from ashvault.sources import VolumeReader


@dataclasses.dataclass
class Settings:
    object_size: int
    block_size: int
    compressor: Compressor
    threads: int = 2
    transfers: int = 4

    def __post_init__(self) -> None:
        if self.object_size < self.block_size:
            self.object_size = self.block_size
        self.object_size -= self.object_size % self.block_size


@dataclasses.dataclass
class Parent:
    manifest: Manifest
    fps: array.array  # type: ignore[type-arg]


@dataclasses.dataclass
class _Plan:
    start: int
    end: int
    blocks: list[tuple[int, int, bool]]
    """(first block, block count, read?) for the blocks to (re)compute; unread ones are zero."""


@dataclasses.dataclass
class _Scanned:
    plan: _Plan
    fps: list[tuple[int, list[int]]]
    cuts: list[tuple[int, int]]
    runs: list[tuple[int, bytes | memoryview]]
    read: int


class _BlockRanges:
    """A sorted list of block ranges ``[lo, hi)`` clipped by ascending windows."""

    def __init__(self, ranges: Iterable[tuple[int, int]]) -> None:
        self._ranges = list(ranges)
        self._pos = 0

    def clip(self, lo: int, hi: int) -> list[tuple[int, int]]:
        while self._pos < len(self._ranges) and self._ranges[self._pos][1] <= lo:
            self._pos += 1
        out = []
        i = self._pos
        while i < len(self._ranges) and self._ranges[i][0] < hi:
            a, b = max(lo, self._ranges[i][0]), min(hi, self._ranges[i][1])
            if a < b:
                out.append((a, b))
            i += 1
        return out


def plan_segments(
    size: int,
    settings: Settings,
    data: Iterable[tuple[int, int]] | None,
    changed: Iterable[tuple[int, int]] | None,
) -> Iterator[_Plan]:
    """Split the volume into object-sized segments and say, per block, what must be read.

    Blocks outside ``changed`` (when given) keep the parent's fingerprint and are not listed; blocks outside
    ``data`` (when given) are listed as zero without being read.
    """
    bs = settings.block_size
    nblocks = blocks.count(size, bs)
    per_seg = settings.object_size // bs
    data_r = _BlockRanges(blocks.widen(data, nblocks, bs)) if data is not None else None
    changed_r = _BlockRanges(blocks.widen(changed, nblocks, bs)) if changed is not None else None
    for first in range(0, nblocks, per_seg):
        last = min(nblocks, first + per_seg)
        todo = changed_r.clip(first, last) if changed_r is not None else [(first, last)]
        plan: list[tuple[int, int, bool]] = []
        for lo, hi in todo:
            if data_r is None:
                plan.append((lo, hi - lo, True))
                continue
            pos = lo
            for a, b in data_r.clip(lo, hi):
                if a > pos:
                    plan.append((pos, a - pos, False))
                plan.append((a, b - a, True))
                pos = b
            if pos < hi:
                plan.append((pos, hi - pos, False))
        if plan:
            yield _Plan(first * bs, min(size, last * bs), plan)


class BackupRun:
    """One backup of ``reader`` into ``prefix`` of ``container``; :meth:`run` returns the written manifest."""

    def __init__(
        self,
        store: ObjectStore,
        container: str,
        prefix: str,
        reader: VolumeReader,
        info: BackupInfo,
        settings: Settings,
        ctx: JobContext,
        parent: Parent | None = None,
    ) -> None:
        self.store = store
        self.container = container
        self.prefix = prefix
        self.reader = reader
        self.info = info
        self.settings = settings
        self.ctx = ctx
        self.parent = parent
        self.size = reader.size
        if parent is not None:
            self.settings.block_size = parent.manifest.block_size
            self.settings.__post_init__()
        self.bs = self.settings.block_size
        self.nblocks = blocks.count(self.size, self.bs)
        self._zero_fp = {self.bs: fingerprint(bytes(self.bs))}
        self._seq = 0
        self._pieces: list[tuple[int, bytes | memoryview]] = []
        self._piece_bytes = 0
        self._new_extents: list[tuple[int, int, str, int]] = []
        self._new_objects: dict[str, ObjectEntry] = {}
        self._cuts: list[tuple[int, int]] = []
        self._read = 0
        self.manifest_hash: str | None = None
        """The content hash of the manifest once written (:meth:`run`), which the catalog records."""
        # Hashing and compression hold a token, reads and transfers do not: ``threads`` bounds the CPU work.
        self._cpu = threading.Semaphore(self.settings.threads)
        self._puts = threading.Semaphore(self.settings.transfers)

    def _parent_fp(self, i: int) -> int:
        fps = self.parent.fps if self.parent is not None else None
        return fps[i] if fps is not None and i < len(fps) else 0

    def _zero_fp_for(self, length: int) -> int:
        fp = self._zero_fp.get(length)
        if fp is None:
            fp = self._zero_fp[length] = fingerprint(bytes(length))
        return fp

    def _scan(self, plan: _Plan) -> _Scanned:
        bs = self.bs
        out = _Scanned(plan, [], [], [], 0)
        for first, count, read in plan.blocks:
            fps = [0] * count
            off = first * bs
            length = min(self.size, (first + count) * bs) - off
            if read:
                buf = self.reader.pread(off, length)
                if len(buf) != length:
                    raise exceptions.InvalidVolume(reason=f"{self.reader.location} shrank while being read")
                out.read += length
                if not is_zero(buf):
                    view = memoryview(buf)
                    with self._cpu:
                        for j in range(count):
                            block = view[j * bs : (j + 1) * bs]
                            fp = fingerprint(block)
                            fps[j] = 0 if fp == self._zero_fp_for(len(block)) else fp
                    self._collect(out, first, fps, buf, off)
                    continue
            self._collect(out, first, fps, None, off)
        return out

    def _collect(self, out: _Scanned, first: int, fps: list[int], buf: bytes | memoryview | None, off: int) -> None:
        out.fps.append((first, fps))
        bs = self.bs
        run_start = cut_start = -1
        for j in range(len(fps) + 1):
            if j < len(fps):
                changed = fps[j] != self._parent_fp(first + j) or self.parent is None
                data = changed and fps[j] != 0
            else:
                changed = data = False
            if changed and cut_start < 0:
                cut_start = j
            elif not changed and cut_start >= 0:
                out.cuts.append((off + cut_start * bs, min(self.size, off + j * bs) - (off + cut_start * bs)))
                cut_start = -1
            if data and run_start < 0:
                run_start = j
            elif not data and run_start >= 0:
                assert buf is not None
                a, b = run_start * bs, min(len(buf), j * bs)
                if a == 0 and b == len(buf):
                    out.runs.append((off, buf))
                elif 2 * (b - a) >= len(buf):
                    out.runs.append((off + a, memoryview(buf)[a:b]))
                else:
                    # A small run must not pin its whole segment buffer while it waits in a pack.
                    out.runs.append((off + a, bytes(memoryview(buf)[a:b])))
                run_start = -1

    def _upload(self, name: str, pieces: list[tuple[int, bytes | memoryview]]) -> ObjectEntry:
        with self._cpu:
            data: bytes | memoryview = pieces[0][1] if len(pieces) == 1 else b"".join(p for _o, p in pieces)
            # Only the bytes to store stay alive while the transfer waits, not the pieces they came from.
            pieces.clear()
            size = len(data)
            comp = self.settings.compressor
            packed = comp.pack(data)
            stored, algo = (data, "none") if packed is None else (packed, comp.name)
            if isinstance(stored, memoryview) and not self.store.accepts_buffers:
                stored = bytes(stored)
            del data
            entry = ObjectEntry(name, len(stored), size, algo, content_hash(stored))
        with self._puts:
            self.store.put_object(self.container, name, stored)
        return entry

    def run(self) -> Manifest:
        s = self.settings
        fps = array.array("Q", [0]) * self.nblocks
        if self.parent is not None:
            keep = self.parent.fps[: self.nblocks]
            fps[: len(keep)] = keep
        self.reader.advise(incremental=self.parent is not None)
        data = self.reader.data_extents()
        marker = self.parent.manifest.source_marker if self.parent is not None else None
        changed = self.reader.changed_extents(marker) if marker else None
        reads: collections.deque[cf.Future[_Scanned]] = collections.deque()
        uploads: set[cf.Future[ObjectEntry]] = set()
        pending = s.threads + s.transfers
        ahead = 3 * s.threads
        read_pool = cf.ThreadPoolExecutor(s.threads + 2, thread_name_prefix="ashvault-read")
        upload_pool = cf.ThreadPoolExecutor(pending, thread_name_prefix="ashvault-put")

        def settle(limit: int) -> None:
            while len(uploads) > limit:
                done, _ = cf.wait(uploads, return_when=cf.FIRST_COMPLETED)
                for fut in done:
                    uploads.discard(fut)
                    entry = fut.result()
                    self._new_objects[entry.name] = entry

        def flush() -> None:
            if not self._pieces:
                return
            self._seq += 1
            name = data_name(self.prefix, self._seq)
            obj_off = 0
            for off, view in self._pieces:
                self._new_extents.append((off, len(view), name, obj_off))
                obj_off += len(view)
            uploads.add(upload_pool.submit(self._upload, name, self._pieces))
            self._pieces, self._piece_bytes = [], 0
            settle(pending)

        def handle(res: _Scanned) -> None:
            for first, block_fps in res.fps:
                fps[first : first + len(block_fps)] = array.array("Q", block_fps)
            self._cuts.extend(res.cuts)
            self._read += res.read
            for off, view in res.runs:
                if self._piece_bytes + len(view) > s.object_size:
                    flush()
                self._pieces.append((off, view))
                self._piece_bytes += len(view)
            self.ctx.progress(res.plan.end, self.size)

        try:
            for plan in plan_segments(self.size, s, data, changed):
                self.ctx.check()
                reads.append(read_pool.submit(self._scan, plan))
                while len(reads) > ahead:
                    handle(reads.popleft().result())
            while reads:
                handle(reads.popleft().result())
            flush()
            settle(0)
            self.ctx.check()
            return self._finish(fps, marker=self.reader.change_marker())
        finally:
            for fut in reads:
                fut.cancel()
            read_pool.shutdown(wait=True, cancel_futures=True)
            upload_pool.shutdown(wait=True, cancel_futures=True)

    def _finish(self, fps: array.array, *, marker: str | None) -> Manifest:  # type: ignore[type-arg]
        new = sorted(self._new_extents)
        if self.parent is not None:
            pm = self.parent.manifest
            old = ((o, n, pm.objects[i].name, oo) for o, n, i, oo in ext.truncate(pm.extents, self.size))
            named = ext.merge(ext.subtract(old, ext.coalesce(self._cuts)), new)  # type: ignore[arg-type]
            known = {o.name: o for o in pm.objects}
        else:
            named = ext.merge([], new)  # type: ignore[arg-type]
            known = {}
        known.update(self._new_objects)
        table: dict[str, int] = {}
        extents: list[Extent] = []
        for off, length, name, obj_off in named:  # type: ignore[misc]
            idx = table.setdefault(name, len(table))
            extents.append((off, length, idx, obj_off))
        index_raw = encode_index(fps)
        index = ObjectEntry(f"{self.prefix}/{INDEX}", len(index_raw), 8 * len(fps), "zstd", content_hash(index_raw))
        self.store.put_object(self.container, index.name, index_raw)
        new_bytes = sum(o.stored_size for o in self._new_objects.values())
        manifest = Manifest(
            backup_id=self.info.id,
            volume_id=self.info.volume_id,
            parent_id=self.info.parent_id,
            name=self.info.name,
            description=self.info.description,
            created_at=(self.info.created_at or datetime.datetime.now(datetime.UTC)).isoformat(),
            size=self.size,
            block_size=self.bs,
            objects=[known[n] for n in table],
            extents=extents,
            index=index,
            source_marker=marker,
            stats={
                "read_bytes": self._read,
                "new_objects": len(self._new_objects),
                "new_bytes": new_bytes,
                "data_bytes": sum(e[1] for e in extents),
            },
        )
        raw = encode_manifest(manifest)
        self.store.put_object(self.container, f"{self.prefix}/{MANIFEST}", raw)
        self.manifest_hash = content_hash(raw)
        # Known only once encoded, so it is reported to the caller but not stored in the manifest itself.
        manifest.stats["metadata_bytes"] = len(raw) + len(index_raw)
        return manifest
