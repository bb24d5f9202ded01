"""Adopt Cinder chunked backups into the catalog: from exported records (``cinder backup-export``'s base64
``backup_url``) or from the backend given a container and a backup id or object prefix.

A backup is imported with its whole chain, parents first; a parent already imported is linked to, not imported
again. Everything is read and checked before the first record is written (metadata of every backup, its sha256
file, and that every object the metadata lists is on the backend), and a failure while writing removes the records
already written: nothing is ever half imported. Unlike Cinder's own import, which reads nothing from the backend,
a record whose data is not there is refused.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
from collections.abc import Callable, Iterable
from typing import Any

from ashvault import exceptions
from ashvault.catalog import Backup, BackupStatus, Catalog
from ashvault.catalog.models import utcnow
from ashvault.cinder import FORMAT
from ashvault.cinder.handler import chain_of, service_metadata
from ashvault.cinder.layout import (
    backup_id_of_prefix,
    metadata_name,
    parse_time,
    posix_container,
    prefix_of_metadata,
)
from ashvault.cinder.reader import Link, Loaded, check_chain, check_sha_file, load, volume_size
from ashvault.cinder.reader import verify as verify_chain
from ashvault.driver import BackupInfo, JobContext
from ashvault.locks import FileLock
from ashvault.objectstore import ObjectStore, check_name

BS = BackupStatus


def decode_record(url: str) -> dict[str, Any]:
    """The backup fields of a ``backup_url``: base64 of a JSON object holding at least ``id``. Raises
    ``InvalidInput``."""
    try:
        doc = json.loads(base64.b64decode(url.strip(), validate=True))
    except (ValueError, binascii.Error) as exc:
        raise exceptions.InvalidInput(reason=f"the Cinder backup record is not base64 of JSON: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("id"), str) or not doc["id"]:
        raise exceptions.InvalidInput(reason="the Cinder backup record names no backup id")
    return doc


def links_of(record: Backup) -> list[Link]:
    """The chain of a record already in the catalog, itself first. Raises ``InvalidBackup`` for a record that is
    not Cinder's chunked format."""
    if record.format != FORMAT:
        raise exceptions.InvalidBackup(
            reason=f"backup {record.id} is {record.format}, not an imported Cinder chunked backup"
        )
    return chain_of(record)


@dataclasses.dataclass
class Found:
    chain: list[Loaded]
    """The backup to import, then its parents, nearest first."""
    record: dict[str, Any] | None

    @property
    def loaded(self) -> Loaded:
        return self.chain[0]

    @property
    def parents(self) -> list[Link]:
        return [c.link for c in self.chain[1:]]


class Importer:
    """Plans the import of Cinder backups found through ``store``, then writes their records."""

    def __init__(self, store: ObjectStore | None, catalog: Catalog, *, driver: str, default_container: str,
                 host: str | None, job_lock: Callable[[str], FileLock]) -> None:
        self._store = store
        self.catalog = catalog
        self.driver = driver
        self.default_container = default_container
        self.host = host
        self.job_lock = job_lock

    @property
    def store(self) -> ObjectStore:
        if self._store is None:
            raise exceptions.NotSupported(reason=f"driver '{self.driver}' stores no objects")
        return self._store

    # finding backups on the backend

    def _containers(self, backup_id: str, *hints: str | None) -> list[str]:
        out = []
        for c in (*hints, self.default_container, posix_container(backup_id)):
            if c and c not in out:
                out.append(c)
        return out

    def locate(self, backup_id: str, containers: list[str], volume_id: str | None = None) -> Link | None:
        """Find the prefix of ``backup_id``'s ``_metadata`` in the first container that holds it."""
        for container in containers:
            try:
                listed = self.store.list_objects(container, f"volume_{volume_id}" if volume_id else "")
            except exceptions.InvalidInput:
                continue  # a name this store cannot hold, such as Cinder's posix directory on Swift
            for name in listed:
                prefix = prefix_of_metadata(name)
                if prefix is not None and backup_id_of_prefix(prefix) == backup_id:
                    return Link(backup_id, container, prefix)
        return None

    def _from_prefix(self, container: str, prefix: str) -> Link:
        check_name(container, what="container name")
        check_name(prefix, what="object prefix")
        backup_id = backup_id_of_prefix(prefix)
        if backup_id is None:
            try:
                doc = json.loads(bytes(self.store.get_object(container, metadata_name(prefix))))
                backup_id = str(doc["backup_id"])
            except exceptions.ObjectNotFound:
                raise exceptions.InvalidBackup(
                    reason=f"no Cinder backup at {prefix} in container {container}: {metadata_name(prefix)} is missing"
                ) from None
            except (ValueError, KeyError, TypeError) as exc:
                raise exceptions.InvalidBackup(
                    reason=f"object {metadata_name(prefix)} in container {container} is not Cinder metadata"
                ) from exc
        return Link(backup_id, container, prefix)

    def _from_record(self, rec: dict[str, Any]) -> Link:
        bid = rec["id"]
        container = rec.get("container")
        prefix = rec.get("service_metadata")
        if container and prefix:
            return Link(bid, check_name(container, what="container name"), check_name(prefix, what="object prefix"))
        link = self.locate(bid, self._containers(bid, container), rec.get("volume_id"))
        if link is None:
            raise exceptions.InvalidBackup(reason=f"Cinder backup {bid}: its metadata was not found")
        return link

    # planning

    def _existing_chain(self, backup_id: str) -> list[Link] | None:
        rec = self.catalog.find_backup(backup_id)
        if rec is None or rec.deleted or rec.status == BS.DELETED:
            return None
        if rec.status not in (BS.AVAILABLE, BS.RESTORING):
            raise exceptions.InvalidState(reason=f"backup {backup_id} is already in the catalog and {rec.status}")
        return links_of(rec)

    def _check_objects(self, loaded: Loaded) -> None:
        link = loaded.link
        listed = set(self.store.list_objects(link.container, link.prefix))
        missing = [o.name for o in loaded.meta.objects if o.name not in listed]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise exceptions.InvalidBackup(
                reason=f"Cinder backup {link.backup_id}: object {missing[0]} is missing from container "
                f"{link.container}{more}"
            )

    def plan(self, *, records: Iterable[dict[str, Any]] = (), backup_id: str | None = None,
             container: str | None = None, prefix: str | None = None, verify: bool = False) -> list[Found]:
        """Everything to import, parents first, read and checked. Raises ``InvalidBackup`` naming the backup and
        object at the first problem, ``InvalidState`` when a backup is already in the catalog.

        ``verify`` also reads every object each backup needs and checks it as ``backup verify`` does, raising
        ``IntegrityError`` naming the backup and the first corrupt object.
        """
        by_id = {r["id"]: r for r in records}
        starts: list[tuple[Link, dict[str, Any] | None]] = []
        if prefix:
            starts.append((self._from_prefix(container or self.default_container, prefix), None))
        elif backup_id:
            link = self.locate(backup_id, self._containers(backup_id, container))
            if link is None:
                raise exceptions.InvalidBackup(
                    reason=f"Cinder backup {backup_id}: no {backup_id}_metadata object found in container(s) "
                    f"{', '.join(self._containers(backup_id, container))}"
                )
            starts.append((link, by_id.get(backup_id)))
        parent_ids = {r.get("parent_id") for r in by_id.values()}
        starts += [(self._from_record(r), r) for bid, r in by_id.items() if bid not in parent_ids]
        if not starts:
            raise exceptions.InvalidInput(reason="name a Cinder backup: a record, a backup id, or a prefix")
        found: dict[str, Found] = {}
        order: list[str] = []
        for link, rec in starts:
            for item in self._walk(link, rec, by_id):
                if item.loaded.link.backup_id not in found:
                    found[item.loaded.link.backup_id] = item
                    order.append(item.loaded.link.backup_id)
        items = [found[b] for b in order]
        if verify:
            for item in items:
                report = verify_chain(self.store, [c.link for c in item.chain], JobContext(), workers=2)
                if not report.ok:
                    name, why = report.corrupt[0]
                    raise exceptions.IntegrityError(backup=report.backup_id, object=name, reason=why)
        return items

    def _walk(self, link: Link, rec: dict[str, Any] | None, by_id: dict[str, dict[str, Any]]) -> list[Found]:
        """The chain ending at ``link`` that is not in the catalog yet, parents first."""
        if self._existing_chain(link.backup_id) is not None:
            raise exceptions.InvalidState(reason=f"backup {link.backup_id} is already in the catalog")
        new = [(load(self.store, link), rec)]
        below: list[Link] = []
        while True:
            child = new[-1][0]
            pid = child.meta.parent_id
            if not pid:
                break
            if any(loaded.link.backup_id == pid for loaded, _r in new):
                raise exceptions.InvalidBackup(reason=f"Cinder backup {child.link.backup_id}: its parents loop")
            existing = self._existing_chain(pid)
            if existing is not None:
                below = existing
                break
            prec = by_id.get(pid)
            plink = self._from_record(prec) if prec else self.locate(
                pid, self._containers(pid, child.link.container), child.meta.volume_id
            )
            if plink is None:
                raise exceptions.InvalidBackup(
                    reason=f"Cinder backup {child.link.backup_id}: its parent {pid} was not found in container(s) "
                    f"{', '.join(self._containers(pid, child.link.container))}; import the parent first or give "
                    "its record too"
                )
            new.append((load(self.store, plink), prec))
        chain = [loaded for loaded, _r in new] + [load(self.store, p) for p in below]
        check_chain(chain)
        out = []
        for i, (loaded, r) in enumerate(new):
            if r is not None and r.get("id") != loaded.link.backup_id:
                raise exceptions.InvalidBackup(reason=f"Cinder backup {r.get('id')}: its record and metadata differ")
            self._check_objects(loaded)
            check_sha_file(self.store, chain[i:])
            out.append(Found(chain[i:], r))
        return out[::-1]

    # writing

    def record(self, item: Found) -> Backup:
        meta, link, rec = item.loaded.meta, item.loaded.link, item.record or {}
        created = meta.created_at or utcnow()
        return Backup(
            id=link.backup_id, volume_id=meta.volume_id, status=BS.CREATING,
            name=meta.name if meta.name is not None else rec.get("display_name"),
            description=meta.description if meta.description is not None else rec.get("display_description"),
            container=link.container, parent_id=meta.parent_id,
            size=volume_size(item.chain),
            service=self.driver, format=FORMAT, service_metadata=service_metadata(link, item.parents),
            object_count=len(meta.objects), host=self.host, availability_zone=rec.get("availability_zone"),
            created_at=created, data_timestamp=parse_time(rec.get("data_timestamp")) or created,
            updated_at=utcnow(),
        )

    def from_info(self, info: BackupInfo, fmt: str) -> Backup:
        """A record for a backup a driver found in Cinder's own layout of its backend (Cinder's Ceph images), in
        the driver's format ``fmt``."""
        created = info.created_at or utcnow()
        return Backup(
            id=info.id, volume_id=info.volume_id, status=BS.CREATING, name=info.name, description=info.description,
            container=info.container, parent_id=info.parent_id, size=info.size, service=self.driver,
            format=fmt, service_metadata=info.service_metadata, object_count=1, host=self.host, created_at=created,
            data_timestamp=created, updated_at=utcnow(),
        )

    def adopt_found(self, infos: list[BackupInfo], wanted: Iterable[str], *, fmt: str) -> list[Backup]:
        """Adopt what a driver found (parents first) as ``fmt`` backups: parents already in the catalog are linked
        to, a wanted backup already there is an error."""
        wanted = set(wanted)
        todo = []
        for info in infos:
            if self._existing(info.id):
                if info.id in wanted:
                    raise exceptions.InvalidState(reason=f"backup {info.id} is already in the catalog")
                continue
            todo.append(self.from_info(info, fmt))
        return self.adopt(todo)

    def _existing(self, backup_id: str) -> bool:
        rec = self.catalog.find_backup(backup_id)
        return rec is not None and not rec.deleted and rec.status != BS.DELETED

    def adopt(self, records: list[Backup]) -> list[Backup]:
        """Write the records, parents first; on any failure remove every record written. Returns them."""
        locks = [self.job_lock(r.id) for r in records]
        added: list[str] = []
        try:
            for rec, lock in zip(records, locks, strict=True):
                lock.acquire()
                old = self.catalog.find_backup(rec.id)
                if old is not None:
                    if not (old.deleted or old.status == BS.DELETED):
                        raise exceptions.InvalidState(reason=f"backup {rec.id} already exists here ({old.status})")
                    self.catalog.purge_backup(old.id)
                self.catalog.add(rec)
                added.append(rec.id)
            for rec in records:
                self.catalog.update_backup(rec.id, [BS.CREATING], status=BS.AVAILABLE)
        except BaseException:
            for bid in reversed(added):
                self.catalog.purge_backup(bid)
            raise
        finally:
            for lock in locks:
                if lock.held:
                    lock.release()
        return [self.catalog.get_backup(r.id) for r in records]
