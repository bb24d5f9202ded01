"""Restore and verify: fetch each object once, check its hash, decode it and write its extents in place.

A restore reads only the target backup's manifest, which maps the whole volume, so every byte of the target is
written once whatever the length of the chain. Objects are checked before any of their bytes reach the target.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable

from ashvault import exceptions
from ashvault.driver import JobContext, VerifyReport
from ashvault.engine import extents as ext
from ashvault.engine.compression import get_compressor
from ashvault.engine.layout import Manifest, ObjectEntry, content_hash, namespace_of
from ashvault.engine.pool import run_bounded
from ashvault.objectstore import ObjectStore
from ashvault.sources import VolumeWriter


def check_stored(store: ObjectStore, container: str, entry: ObjectEntry, backup_id: str) -> bytes | memoryview:
    """Download one object and check it against its hash. Raises ``IntegrityError`` naming backup and object."""
    try:
        raw = store.get_object(container, entry.name)
    except exceptions.ObjectNotFound as exc:
        raise exceptions.IntegrityError(backup=backup_id, object=entry.name, reason="object is missing") from exc
    except exceptions.ObjectAuthenticationFailed as exc:
        raise exceptions.IntegrityError(backup=backup_id, object=entry.name, reason=exc.kwargs["reason"]) from exc
    if len(raw) != entry.stored_size or content_hash(raw) != entry.hash:
        raise exceptions.IntegrityError(backup=backup_id, object=entry.name, reason="hash mismatch")
    return raw


def fetch(store: ObjectStore, container: str, entry: ObjectEntry, backup_id: str) -> bytes | memoryview:
    """Download, check and decompress one object. Raises ``IntegrityError`` naming the backup and object."""
    raw = check_stored(store, container, entry, backup_id)
    try:
        data = get_compressor(entry.compression).decompress(raw, entry.size)
    except ValueError as exc:
        raise exceptions.IntegrityError(backup=backup_id, object=entry.name, reason=f"cannot decode: {exc}") from exc
    if len(data) != entry.size:
        raise exceptions.IntegrityError(backup=backup_id, object=entry.name, reason="wrong decoded length")
    return data


def check_present(store: ObjectStore, container: str, manifest: Manifest) -> None:
    """Every object the manifest names is listed in the store (one listing per backup prefix of the chain), and its
    index holds. Raises ``IntegrityError`` naming the first missing object. Run before a restore touches its target:
    an object found corrupt when it is read still stops a restore part-way."""
    entries = list(manifest.objects) + ([manifest.index] if manifest.index else [])
    listed: set[str] = set()
    for space in sorted({namespace_of(e.name) for e in entries}):
        listed.update(store.list_objects(container, space + "/"))
    for entry in entries:
        if entry.name not in listed:
            raise exceptions.IntegrityError(backup=manifest.backup_id, object=entry.name, reason="object is missing")
    if manifest.index is not None:
        check_stored(store, container, manifest.index, manifest.backup_id)


def restore(
    store: ObjectStore,
    container: str,
    manifest: Manifest,
    target: VolumeWriter,
    ctx: JobContext,
    *,
    volume_is_new: bool,
    workers: int,
) -> None:
    if target.size < manifest.size:
        raise exceptions.InvalidVolume(
            reason=f"target {target.location} holds {target.size} bytes, the backup needs {manifest.size}"
        )
    by_object: dict[int, list[tuple[int, int, int]]] = collections.defaultdict(list)
    for off, length, idx, obj_off in manifest.extents:
        by_object[idx].append((off, length, obj_off))
    check_present(store, container, manifest)
    if not volume_is_new:
        if target.cheap_reset:
            target.reset()
        else:
            for off, length in ext.gaps(manifest.extents, manifest.size):
                target.zero(off, length)

    def job(idx: int) -> Callable[[], None]:
        def run() -> None:
            data = memoryview(fetch(store, container, manifest.objects[idx], manifest.backup_id))
            for off, length, obj_off in by_object[idx]:
                target.pwrite(off, data[obj_off : obj_off + length])

        return run

    for off, length in ext.coalesce((off, length) for off, length, _i, _oo in manifest.extents):
        target.reserve(off, length)
    total = sum(length for _o, length, _i, _oo in manifest.extents)
    work = ((sum(n for _o, n, _oo in by_object[i]), job(i)) for i in by_object)
    run_bounded(work, ctx, workers=workers, total=total, name="restore")
    target.flush()


def verify(store: ObjectStore, container: str, manifest: Manifest, ctx: JobContext, *, workers: int,
           entries: list[ObjectEntry] | None = None) -> VerifyReport:
    """Read and check ``entries`` (default: every object the manifest names, its index included)."""
    report = VerifyReport(manifest.backup_id)
    lock = threading.Lock()
    if entries is None:
        entries = list(manifest.objects) + ([manifest.index] if manifest.index else [])

    def job(entry: ObjectEntry) -> Callable[[], None]:
        def run() -> None:
            problem = None
            try:
                fetch(store, container, entry, manifest.backup_id)
            except exceptions.IntegrityError as exc:
                problem = exc.kwargs.get("reason", str(exc))
            with lock:
                if problem:
                    report.corrupt.append((entry.name, problem))
                report.objects_checked += 1
                report.bytes_checked += entry.stored_size

        return run

    total = sum(e.stored_size for e in entries)
    run_bounded(((e.stored_size, job(e)) for e in entries), ctx, workers=workers, total=total, name="verify")
    report.corrupt.sort()
    return report
