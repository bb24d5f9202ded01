"""Restore and verify a Cinder chunked backup, chains included, through any ObjectStore.

Cinder restores a chain by writing the full backup, then each incremental over it. Here the chain's objects are
first overlaid on paper (:func:`plan`: later backups win, and within one backup later objects win, as Cinder's
order of writes does), so every byte of the target is written once and objects that later ones cover entirely are
not even read. Each object read is checked against the MD5 of its uncompressed bytes from ``_metadata``, and each
``chunk_size`` block of the result against the target backup's ``_sha256file``: neither check exists in Cinder.
Zero regions are left as holes on a new volume (Cinder does that in 1 MiB steps; this does it per 64 KiB).
"""

from __future__ import annotations

import bisect
import collections
import concurrent.futures as cf
import dataclasses
import hashlib
import itertools
import threading
from collections.abc import Callable, Iterator

from ashvault import exceptions
from ashvault.cinder.layout import (
    CinderObject,
    Metadata,
    Sha256File,
    is_own_object,
    metadata_name,
    parse_metadata,
    parse_sha256file,
    sha256file_name,
)
from ashvault.directio import is_zero
from ashvault.driver import JobContext, VerifyReport
from ashvault.engine.compression import get_compressor
from ashvault.objectstore import ObjectStore
from ashvault.sources import VolumeWriter

ZERO_STEP = 64 << 10
"""Granularity at which a restore leaves zero regions unwritten."""

MEMORY_BUDGET = 256 << 20
"""Uncompressed bytes of objects a restore holds at once, beyond one object (Cinder's posix objects are 1.86 GiB
each, and the format gives no way to read part of a compressed object)."""


@dataclasses.dataclass(frozen=True)
class Link:
    """Where one backup of a chain lives."""

    backup_id: str
    container: str
    prefix: str


@dataclasses.dataclass
class Loaded:
    link: Link
    meta: Metadata
    sha: Sha256File | None


@dataclasses.dataclass(frozen=True)
class Piece:
    """``length`` bytes of the volume at ``offset`` come from object ``obj`` of chain member ``member`` at
    ``obj_offset`` in its uncompressed bytes."""

    offset: int
    length: int
    member: int
    obj: int
    obj_offset: int


def load(store: ObjectStore, link: Link) -> Loaded:
    """Read and check one backup's ``_metadata`` and ``_sha256file`` (``None`` when it has none: Cinder before
    2015). Raises ``InvalidBackup`` naming the backup and the object."""
    name = metadata_name(link.prefix)
    try:
        raw = store.get_object(link.container, name)
    except exceptions.ObjectNotFound:
        raise exceptions.InvalidBackup(
            reason=f"Cinder backup {link.backup_id}: object {name} is missing from container {link.container}"
        ) from None
    meta = parse_metadata(raw, link.backup_id)
    try:
        sha = parse_sha256file(store.get_object(link.container, sha256file_name(link.prefix)), link.backup_id)
    except exceptions.ObjectNotFound:
        sha = None
    return Loaded(link, meta, sha)


def check_chain(chain: list[Loaded]) -> None:
    """The chain, newest first, must link by ``parent_id`` down to a full backup of one volume, with one block
    size. Raises ``InvalidBackup``."""
    for child, parent in itertools.pairwise(chain):
        cid = child.link.backup_id
        if child.meta.parent_id != parent.link.backup_id:
            raise exceptions.InvalidBackup(
                reason=f"Cinder backup {cid}: its parent is {child.meta.parent_id}, not {parent.link.backup_id}"
            )
        if child.meta.volume_id != parent.meta.volume_id:
            raise exceptions.InvalidBackup(reason=f"Cinder backup {cid}: its parent belongs to another volume")
        for member in (child, parent):
            if member.sha is None:
                raise exceptions.InvalidBackup(
                    reason=f"Cinder backup {member.link.backup_id}: object {sha256file_name(member.link.prefix)} "
                    f"is missing from container {member.link.container}, and a chain needs it"
                )
        assert child.sha is not None and parent.sha is not None
        if child.sha.block_size != parent.sha.block_size:
            raise exceptions.InvalidBackup(
                reason=f"Cinder backup {cid}: its sha256 block size differs from its parent's"
            )
    if chain and chain[-1].meta.parent_id:
        raise exceptions.InvalidBackup(
            reason=f"Cinder backup {chain[-1].link.backup_id}: its parent {chain[-1].meta.parent_id} is missing"
        )


def check_sha_file(store: ObjectStore, chain: list[Loaded]) -> None:
    """Check, from metadata alone, that the newest backup's sha256 file fits the chain's objects. Raises
    ``IntegrityError`` naming the sha256 file."""
    _Job(store, chain).check_sha_file()


def load_chain(store: ObjectStore, links: list[Link]) -> list[Loaded]:
    chain = [load(store, link) for link in links]
    check_chain(chain)
    return chain


def plan(chain: list[Loaded]) -> list[Piece]:
    """Which object supplies each byte of the volume at the chain's newest backup, sorted by offset."""
    starts: list[int] = []
    ends: list[int] = []
    pieces: list[Piece] = []
    for member, loaded in enumerate(chain):
        objects = loaded.meta.objects
        for idx in range(len(objects) - 1, -1, -1):
            a = objects[idx].offset
            b = a + objects[idx].length
            if a == b:
                continue
            pos = a
            i = bisect.bisect_right(ends, a)
            while pos < b:
                if i < len(starts) and starts[i] < b:
                    if starts[i] > pos:
                        pieces.append(Piece(pos, starts[i] - pos, member, idx, pos - a))
                    pos = max(pos, ends[i])
                    i += 1
                else:
                    pieces.append(Piece(pos, b - pos, member, idx, pos - a))
                    pos = b
            lo = bisect.bisect_left(ends, a)
            hi = bisect.bisect_right(starts, b)
            if lo < hi:
                a, b = min(a, starts[lo]), max(b, ends[hi - 1])
            starts[lo:hi] = [a]
            ends[lo:hi] = [b]
    pieces.sort(key=lambda p: p.offset)
    return pieces


def volume_size(chain: list[Loaded]) -> int:
    return max(loaded.meta.end for loaded in chain)


def _gaps(pieces: list[Piece], size: int) -> Iterator[tuple[int, int]]:
    pos = 0
    for p in pieces:
        if p.offset > pos:
            yield pos, p.offset - pos
        pos = max(pos, p.offset + p.length)
    if pos < size:
        yield pos, size - pos


class _Job:
    """One restore or verify of the chain's newest backup."""

    def __init__(self, store: ObjectStore, chain: list[Loaded]) -> None:
        self.store = store
        self.chain = chain
        self.target = chain[0]
        self.backup_id = self.target.link.backup_id
        self.sha = self.target.sha
        self.size = volume_size(chain)
        self.pieces = plan(chain)
        self.by_object: dict[tuple[int, int], list[Piece]] = collections.defaultdict(list)
        for p in self.pieces:
            self.by_object[(p.member, p.obj)].append(p)

    def entry(self, key: tuple[int, int]) -> tuple[Loaded, CinderObject]:
        loaded = self.chain[key[0]]
        return loaded, loaded.meta.objects[key[1]]

    def corrupt(self, loaded: Loaded, name: str, reason: str) -> exceptions.IntegrityError:
        return exceptions.IntegrityError(backup=loaded.link.backup_id, object=name, reason=reason)

    def check_sha_file(self) -> None:
        """The target's sha256 file must cover the volume, and blocks no object covers must hash as zeros."""
        if self.sha is None:
            return
        bs = self.sha.block_size
        name = sha256file_name(self.target.link.prefix)
        if self.sha.count != -(-self.size // bs):
            raise self.corrupt(self.target, name, f"it holds {self.sha.count} block hashes for a volume of "
                                                  f"{self.size} bytes in blocks of {bs}")
        zero = hashlib.sha256(bytes(bs)).digest()
        for off, length in _gaps(self.pieces, self.size):
            for i in range(-(-off // bs), (off + length) // bs):
                if self.sha.digest(i) != zero:
                    raise self.corrupt(self.target, name, f"block {i} holds data no object provides")

    def fetch(self, key: tuple[int, int]) -> bytes | memoryview:
        """One object, downloaded, decompressed and checked against its MD5 and the target's block hashes."""
        loaded, obj = self.entry(key)
        try:
            raw = self.store.get_object(loaded.link.container, obj.name)
        except exceptions.ObjectNotFound:
            raise self.corrupt(loaded, obj.name, "object is missing") from None
        try:
            data = get_compressor(obj.compression).decompress(raw, obj.length)
        except ValueError as exc:
            raise self.corrupt(loaded, obj.name, f"cannot decode {obj.compression}: {exc}") from exc
        if len(data) != obj.length:
            raise self.corrupt(loaded, obj.name, f"holds {len(data)} bytes, the metadata says {obj.length}")
        if obj.md5 is not None and hashlib.md5(data, usedforsecurity=False).hexdigest() != obj.md5:
            raise self.corrupt(loaded, obj.name, "md5 mismatch")
        if self.sha is not None:
            self.check_blocks(key, data)
        return data

    def check_blocks(self, key: tuple[int, int], data: bytes | memoryview) -> None:
        # Cinder's objects start and end on block boundaries (its object size is a multiple of the block size),
        # so every block lies within one piece; a block straddling two pieces could only come from a changed
        # block size, which Cinder refuses, and is left to the MD5 check.
        assert self.sha is not None
        bs = self.sha.block_size
        view = memoryview(data)
        loaded, obj = self.entry(key)
        for p in self.by_object[key]:
            end = p.offset + p.length
            for i in range(-(-p.offset // bs), -(-end // bs)):
                s, e = i * bs, min(i * bs + bs, self.size)
                if e > end:
                    break
                block = view[p.obj_offset + s - p.offset : p.obj_offset + e - p.offset]
                if hashlib.sha256(block).digest() != self.sha.digest(i):
                    raise self.corrupt(loaded, obj.name, f"block {i} (volume offset {s}) does not match the "
                                                         f"sha256 of backup {self.backup_id}")

    def workers(self, wanted: int) -> int:
        biggest = max((self.entry(k)[1].length for k in self.by_object), default=1)
        return max(1, min(wanted, MEMORY_BUDGET // max(biggest, 1)))

    def run(self, work: Callable[[tuple[int, int]], int], ctx: JobContext, workers: int) -> None:
        keys = sorted(self.by_object, key=lambda k: self.by_object[k][0].offset)
        total = sum(p.length for p in self.pieces)
        done = 0
        pending: collections.deque[cf.Future[int]] = collections.deque()
        n = self.workers(workers)
        with cf.ThreadPoolExecutor(n, thread_name_prefix="ashvault-cinder") as pool:
            try:
                for key in keys:
                    ctx.check()
                    pending.append(pool.submit(work, key))
                    while len(pending) >= n:
                        done += pending.popleft().result()
                        ctx.progress(done, total)
                while pending:
                    done += pending.popleft().result()
                    ctx.progress(done, total)
            finally:
                for fut in pending:
                    fut.cancel()


def _write(target: VolumeWriter, offset: int, data: memoryview, *, holes: bool) -> None:
    """Write ``data`` at ``offset``, leaving its all-zero 64 KiB steps as holes (``holes``: the target already reads
    as zeros) or zeroing them through the target, which punches holes where it can."""
    run_start = None
    for pos in range(0, len(data), ZERO_STEP):
        step = data[pos : pos + ZERO_STEP]
        if is_zero(step):
            if run_start is not None:
                target.pwrite(offset + run_start, data[run_start:pos])
                run_start = None
            if not holes:
                target.zero(offset + pos, len(step))
        elif run_start is None:
            run_start = pos
    if run_start is not None:
        target.pwrite(offset + run_start, data[run_start:])


def restore(store: ObjectStore, links: list[Link], target: VolumeWriter, ctx: JobContext, *,
            volume_is_new: bool, workers: int) -> None:
    """Restore the newest backup of ``links`` (newest first) into ``target``. Raises ``InvalidBackup`` when its
    metadata is missing or damaged, ``IntegrityError`` naming the backup and object when data is corrupt."""
    job = _Job(store, load_chain(store, links))
    job.check_sha_file()
    if target.size < job.size:
        raise exceptions.InvalidVolume(
            reason=f"target {target.location} holds {target.size} bytes, backup {job.backup_id} needs {job.size}"
        )
    holes = volume_is_new
    if not volume_is_new and target.cheap_reset:
        target.reset()
        holes = True
    if not holes:
        for off, length in _gaps(job.pieces, job.size):
            target.zero(off, length)

    def work(key: tuple[int, int]) -> int:
        data = memoryview(job.fetch(key))
        written = 0
        for p in job.by_object[key]:
            _write(target, p.offset, data[p.obj_offset : p.obj_offset + p.length], holes=holes)
            written += p.length
        return written

    job.run(work, ctx, workers)
    target.flush()


def verify(store: ObjectStore, links: list[Link], ctx: JobContext, *, workers: int) -> VerifyReport:
    """Check every object the newest backup of ``links`` needs, as a restore would, and report the corrupt ones.
    Raises ``InvalidBackup`` when metadata is missing or damaged."""
    job = _Job(store, load_chain(store, links))
    report = VerifyReport(job.backup_id)
    try:
        job.check_sha_file()
    except exceptions.IntegrityError as exc:
        report.corrupt.append((exc.kwargs["object"], exc.kwargs["reason"]))
    lock = threading.Lock()

    def work(key: tuple[int, int]) -> int:
        _loaded, obj = job.entry(key)
        problem = None
        try:
            job.fetch(key)
        except exceptions.IntegrityError as exc:
            problem = exc.kwargs.get("reason", str(exc))
            if exc.kwargs.get("backup") != job.backup_id:
                problem = f"{problem} (in backup {exc.kwargs.get('backup')})"
        with lock:
            if problem:
                report.corrupt.append((obj.name, problem))
            report.objects_checked += 1
            report.bytes_checked += obj.length
        return sum(p.length for p in job.by_object[key])

    job.run(work, ctx, workers)
    report.corrupt.sort()
    return report


def delete(store: ObjectStore, container: str, prefix: str, ctx: JobContext) -> None:
    """Remove the objects Cinder wrote for this backup alone (its data objects, sha256 file, then metadata).

    Idempotent. Each Cinder backup's objects are its own: an incremental stores only its changed extents and reads
    the rest from its parent through the catalog, so this never touches another backup's data; the API refuses to
    delete a backup that still has children, as Cinder does.
    """
    names = [n for n in store.list_objects(container, prefix) if is_own_object(prefix, n)]
    last = metadata_name(prefix)
    for name in sorted(names, key=lambda n: n == last):
        ctx.check()
        try:
            store.delete_object(container, name)
        except exceptions.ObjectNotFound:
            pass
