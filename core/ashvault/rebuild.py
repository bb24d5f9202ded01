"""Rebuilding the catalog from the backend alone: every chunked backup's manifest lives beside its data and says
which volume it backs up, its parent, size, name, description and time (FORMAT.md), so losing the SQLite file or the
PostgreSQL database loses no backup.

:func:`rebuild` lists a container's manifests and adds the backup records the catalog lacks, ``available``, chains
included, and a record for each volume it does not know. Such a volume's location is unknown (manifests do not
keep it): it gets status ``unavailable`` and an empty location, and its backups restore to a new volume. Records
that exist are left as they are, so a rebuild can be run again, or on a catalog that lost only some records.
A backup being deleted (a ``tombstone`` beside its manifest) or never completed (no manifest) is not recorded.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import re

from ashvault import exceptions, formats
from ashvault.catalog import Backup, BackupStatus, Catalog, Volume, VolumeStatus
from ashvault.catalog.models import utcnow
from ashvault.chunked import ChunkedFormat
from ashvault.engine.layout import MANIFEST, TOMBSTONE, Manifest, content_hash, read_manifest

LOG = logging.getLogger(__name__)

_MANIFEST_NAME = re.compile(rf"^(volume_([^/]+)/backup_([^/]+))/{MANIFEST}$")

CREATED = "created"
WOULD_CREATE = "would create"
SKIPPED = "skipped"
FAILED = "failed"


@dataclasses.dataclass
class Rebuilt:
    """One record a rebuild looked at: ``kind`` volume or backup, ``action`` created, skipped (the catalog has it)
    or failed (its manifest cannot be read), with why."""

    kind: str
    id: str
    action: str
    """created (or would create, in a dry run), skipped or failed."""
    volume_id: str | None = None
    parent_id: str | None = None
    created_at: datetime.datetime | None = None
    detail: str | None = None


def manifests(handler: ChunkedFormat, container: str) -> list[tuple[str, str, str]]:
    """(prefix, volume id, backup id) of every complete, undeleted backup in ``container``."""
    names = handler.store.list_objects(container, "volume_")
    gone = {n.rsplit("/", 1)[0] for n in names if n.endswith(f"/{TOMBSTONE}")}
    found = []
    for name in names:
        m = _MANIFEST_NAME.match(name)
        if m is not None and m.group(1) not in gone:
            found.append((m.group(1), m.group(2), m.group(3)))
    return found


def _time(text: str | None) -> datetime.datetime:
    try:
        when = datetime.datetime.fromisoformat(text) if text else utcnow()
    except ValueError:
        when = utcnow()
    return when if when.tzinfo else when.replace(tzinfo=datetime.UTC)


def _record(m: Manifest, digest: str, *, container: str, prefix: str, driver: str, host: str | None,
            zone: str | None) -> Backup:
    when = _time(m.created_at)
    stats = m.stats
    return Backup(
        id=m.backup_id, volume_id=m.volume_id, status=BackupStatus.AVAILABLE, name=m.name, description=m.description,
        container=container, parent_id=m.parent_id, size=m.size, service=driver, service_metadata=prefix,
        format=formats.CHUNKED, object_count=int(stats.get("new_objects", len(m.objects))),
        stored_bytes=int(stats.get("new_bytes", 0)) + int(stats.get("metadata_bytes", 0)),
        read_bytes=int(stats.get("read_bytes", 0)), host=host, availability_zone=zone, data_timestamp=when,
        created_at=when, updated_at=utcnow(), manifest_hash=digest,
    )


def rebuild(catalog: Catalog, handler: ChunkedFormat, container: str, *, driver: str, host: str | None = None,
            zone: str | None = None, dry_run: bool = False) -> list[Rebuilt]:
    """Add the records of ``container``'s backups (read with ``handler``, of driver ``driver``) that ``catalog``
    lacks (with ``dry_run``, only say so); returns what was done, volumes first, then backups oldest first.

    A manifest that cannot be read, or that names another backup or volume than its place, is reported ``failed``
    and the others go on. Raises driver errors (unreachable backend, ``EncryptionKeyError`` when the container is
    encrypted and no key opens it) before anything is written."""
    found: list[tuple[str, Manifest, str]] = []
    out: list[Rebuilt] = []
    for prefix, volume_id, backup_id in manifests(handler, container):
        try:
            m = read_manifest(handler.store, container, prefix, backup_id)
            digest = content_hash(handler.store.get_object(container, f"{prefix}/{MANIFEST}"))
        except (exceptions.IntegrityError, exceptions.InvalidBackup) as exc:
            out.append(Rebuilt("backup", backup_id, FAILED, volume_id, detail=str(exc)))
            continue
        if m.backup_id != backup_id or m.volume_id != volume_id:
            out.append(Rebuilt("backup", backup_id, FAILED, volume_id, detail=f"the manifest at {prefix} belongs "
                               f"to backup {m.backup_id} of volume {m.volume_id}"))
            continue
        found.append((prefix, m, digest))
    found.sort(key=lambda pm: (_time(pm[1].created_at), pm[1].backup_id))
    volumes: list[Rebuilt] = []
    latest: dict[str, Manifest] = {m.volume_id: m for _p, m, _d in found}
    for volume_id, m in latest.items():
        if catalog.find_volume(volume_id) is not None:
            volumes.append(Rebuilt("volume", volume_id, SKIPPED, volume_id))
            continue
        if dry_run:
            volumes.append(Rebuilt("volume", volume_id, WOULD_CREATE, volume_id, detail="location unknown"))
            continue
        try:
            catalog.add(Volume(id=volume_id, location="", size=m.size, status=VolumeStatus.UNAVAILABLE,
                               description=f"rebuilt from container '{container}'; its location is unknown"))
        except exceptions.CatalogError:
            if catalog.find_volume(volume_id) is None:  # not a concurrent rebuild's insert: a real failure
                raise
            volumes.append(Rebuilt("volume", volume_id, SKIPPED, volume_id))
            continue
        LOG.info("rebuild: volume %s recorded (location unknown)", volume_id)
        volumes.append(Rebuilt("volume", volume_id, CREATED, volume_id, detail="location unknown"))
    backups: list[Rebuilt] = []
    for prefix, m, digest in found:
        row = Rebuilt("backup", m.backup_id, SKIPPED, m.volume_id, m.parent_id, _time(m.created_at))
        if catalog.find_backup(m.backup_id) is None and dry_run:
            row.action = WOULD_CREATE
        elif catalog.find_backup(m.backup_id) is None:
            try:
                catalog.add(_record(m, digest, container=container, prefix=prefix, driver=driver, host=host, zone=zone))
                row.action = CREATED
                LOG.info("rebuild: backup %s of volume %s recorded", m.backup_id, m.volume_id)
            except exceptions.CatalogError:
                if catalog.find_backup(m.backup_id) is None:  # not a concurrent rebuild's insert: a real failure
                    raise
        backups.append(row)
    return volumes + backups + out
