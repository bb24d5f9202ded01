"""The handler of the ``cinder-chunked/1`` format tag: restore, verify, delete, export and import of a backup
Cinder's chunked drivers wrote, over the object store of the driver that reads it (registered in
:mod:`ashvault.formats`).

An imported record's ``service_metadata`` is JSON: the backup's object ``prefix`` and its ``parents`` (backup id,
container and prefix of each, nearest first), since a Cinder incremental reads what it did not store from them.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

from ashvault import exceptions
from ashvault.cinder import FORMAT, reader
from ashvault.cinder.reader import Link
from ashvault.driver import BackupDriver, BackupInfo, BackupResult, JobContext, VerifyReport
from ashvault.objectstore import ObjectStore, check_name
from ashvault.sources import VolumeReader, VolumeWriter


def service_metadata(link: Link, parents: list[Link]) -> str:
    """What an imported record stores in ``service_metadata``."""
    return json.dumps({"prefix": link.prefix, "parents": [dataclasses.asdict(p) for p in parents]}, sort_keys=True)


def chain_of(backup: Any, default_container: str | None = None) -> list[Link]:
    """The chain of a ``cinder-chunked/1`` record or :class:`BackupInfo`, itself first. Raises ``InvalidBackup``."""
    try:
        doc = json.loads(backup.service_metadata or "")
        container = check_name(backup.container or default_container or "", what="container name")
        return [Link(backup.id, container, str(doc["prefix"]))] + [Link(**p) for p in doc.get("parents", [])]
    except (ValueError, KeyError, TypeError, exceptions.InvalidInput) as exc:
        raise exceptions.InvalidBackup(
            reason=f"backup {backup.id} is {FORMAT} but its record does not say where its objects are"
        ) from exc


@dataclasses.dataclass
class CinderChunkedFormat:
    """Backups in Cinder's chunked format in ``store``: read, checked and deleted, never written."""

    store: ObjectStore
    default_container: str
    workers: int

    @classmethod
    def for_driver(cls, driver: BackupDriver) -> CinderChunkedFormat:
        workers = max(driver.conf.backup_pipeline_threads or os.cpu_count() or 2, driver.options.max_transfers)
        return cls(driver.store, driver.default_container or "volumebackups", workers)

    def _chain(self, backup: BackupInfo) -> list[Link]:
        return chain_of(backup, self.default_container)

    def backup(self, backup: BackupInfo, source: VolumeReader, ctx: JobContext) -> BackupResult:
        raise exceptions.NotSupported(reason=f"ashvault reads {FORMAT} backups but writes none: make a full backup")

    def restore(self, backup: BackupInfo, target: VolumeWriter, ctx: JobContext, *, volume_is_new: bool) -> None:
        reader.restore(self.store, self._chain(backup), target, ctx, volume_is_new=volume_is_new,
                       workers=self.workers)

    def verify(self, backup: BackupInfo, ctx: JobContext) -> VerifyReport:
        return reader.verify(self.store, self._chain(backup), ctx, workers=self.workers)

    def delete_backup(self, backup: BackupInfo, ctx: JobContext) -> None:
        own = self._chain(backup)[0]
        reader.delete(self.store, own.container, own.prefix, ctx)

    def export_record(self, backup: BackupInfo) -> dict[str, Any]:
        own = self._chain(backup)[0]
        return {"container": own.container, "prefix": own.prefix}

    def import_record(self, backup: BackupInfo, driver_info: dict[str, Any]) -> None:
        reader.check_sha_file(self.store, reader.load_chain(self.store, self._chain(backup)))
