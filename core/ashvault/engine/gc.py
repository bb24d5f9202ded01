"""Deleting a backup without harming the others.

Backups of one volume share objects: an incremental's manifest points at the objects of older backups for the
blocks that did not change. Deleting a backup therefore removes its manifest (after which it is gone) and then every
object of a deleted backup that no remaining manifest references. A ``tombstone`` object marks the namespace of a
deleted backup whose objects are still in use, so that a later deletion can collect them; a namespace with neither
manifest nor tombstone belongs to a backup still being written and is never touched.
"""

from __future__ import annotations

import collections
import logging

from ashvault import exceptions
from ashvault.driver import JobContext
from ashvault.engine.layout import INDEX, MANIFEST, TOMBSTONE, namespace_of, read_manifest
from ashvault.objectstore import ObjectStore

LOG = logging.getLogger(__name__)


def _delete_quietly(store: ObjectStore, container: str, name: str) -> None:
    try:
        store.delete_object(container, name)
    except exceptions.ObjectNotFound:
        pass


TEMPORARY_GRACE = 3600.0
"""Seconds after which the collection takes a temporary file (an unfinished write) for one a killed process left:
an object's write takes seconds, and a live backup renames its temporaries long before."""


def delete_backup(store: ObjectStore, container: str, prefix: str, volume_prefix: str, ctx: JobContext) -> None:
    """Remove the backup stored under ``prefix``, then collect what no remaining backup of the volume uses.

    The temporaries of its unfinished writes go at once, whatever their age: a backup is deleted only once its own
    job has ended (the delete holds the job's lock), so no write under ``prefix`` is still running. The tombstone
    is written even when ``prefix`` lists nothing, so that whatever a store keeps of the backup outside its
    listing goes with the collection that removes the tombstone."""
    store.remove_temporaries(container, prefix + "/", older_than=0)
    try:
        store.put_object(container, f"{prefix}/{TOMBSTONE}", b"")
    except exceptions.ContainerNotFound:
        return  # nothing of this backup was ever written
    _delete_quietly(store, container, f"{prefix}/{MANIFEST}")
    collect(store, container, volume_prefix, ctx)


def collect(store: ObjectStore, container: str, volume_prefix: str, ctx: JobContext,
            *, grace: float = TEMPORARY_GRACE) -> int:
    """Delete the unreferenced objects of deleted backups under ``volume_prefix``, and the temporaries left by
    killed writers that are older than ``grace`` seconds; returns how many objects went."""
    dropped = store.remove_temporaries(container, volume_prefix + "/", older_than=grace)
    if dropped:
        LOG.info("removed %d temporary files of unfinished writes under %s", dropped, volume_prefix)
    names = store.list_objects(container, volume_prefix + "/")
    spaces: dict[str, list[str]] = collections.defaultdict(list)
    for name in names:
        spaces[namespace_of(name)].append(name)
    live: set[str] = set()
    for space, members in spaces.items():
        if f"{space}/{MANIFEST}" in members and f"{space}/{TOMBSTONE}" not in members:
            try:
                live |= read_manifest(store, container, space, None).referenced_names()
            except exceptions.IntegrityError:
                LOG.warning("manifest of %s is unreadable; keeping every object of the volume", space)
                return 0
    removed = 0
    for space, members in sorted(spaces.items()):
        tomb = f"{space}/{TOMBSTONE}"
        if tomb not in members:
            continue
        keep = 0
        for name in sorted(members):
            if name == tomb:
                continue
            if name in live:
                keep += 1
                continue
            ctx.check()
            _delete_quietly(store, container, name)
            removed += 1
        if keep == 0:
            _delete_quietly(store, container, tomb)
    return removed


__all__ = ["INDEX", "collect", "delete_backup"]
