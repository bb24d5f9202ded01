"""ChunkedBackupDriver: a full backup driver made from any :class:`~ashvault.objectstore.ObjectStore`.

A chunked plugin is a small file: an object store, the driver subclass naming it, and its options (see the posix
plugin). Everything else, chunking, hashing, compression, incrementals, verification, garbage collection, retries,
bandwidth limits, parallel transfers and progress, lives here.
"""

from __future__ import annotations

import abc
import os
from typing import Any, ClassVar

from oslo_config import cfg

from ashvault import exceptions
from ashvault.driver import BackupDriver, BackupInfo, BackupResult, Capabilities, JobContext, VerifyReport
from ashvault.engine import gc
from ashvault.engine import restore as restore_mod
from ashvault.engine.backup import BackupRun, Parent, Settings
from ashvault.engine.compression import get_compressor
from ashvault.engine.layout import MANIFEST, Manifest, backup_prefix, read_index, read_manifest, volume_prefix
from ashvault.objectstore import ObjectStore, check_name
from ashvault.sources import VolumeReader, VolumeWriter
from ashvault.wrappers import RetryingObjectStore, ThrottledObjectStore, encryption


class ChunkedBackupDriver(BackupDriver):
    """Backs up to an object store in ashvault's native format (FORMAT.md)."""

    capabilities: ClassVar[Capabilities] = Capabilities()

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        super().__init__(conf)
        self._store: ObjectStore | None = None

    @abc.abstractmethod
    def make_object_store(self) -> ObjectStore:
        """Build the backend's object store from ``self.options``. Raises ``DriverSetupError``."""

    @property
    def store(self) -> ObjectStore:
        """The object store, wrapped with the core's retry, bandwidth-limit and encryption behaviour."""
        if self._store is None:
            store: ObjectStore = self.make_object_store()
            limit = self.conf.backup_bandwidth_limit
            if limit:
                store = ThrottledObjectStore(store, limit)
            opts = self.options
            attempts = opts.retry_attempts or self.conf.backup_object_retry_attempts
            backoff = opts.retry_backoff if opts.retry_backoff is not None else self.conf.backup_object_retry_backoff
            store = RetryingObjectStore(store, attempts=attempts, backoff=backoff)
            self._store = encryption.for_config(store, self.conf)
        return self._store

    @property
    def default_container(self) -> str:
        return str(self.options.container or "volumebackups")

    def check_for_setup_error(self) -> None:
        opts = self.options
        if opts.object_size % opts.block_size:
            raise exceptions.DriverSetupError(
                reason=f"[{self.option_group}] object_size ({opts.object_size}) must be a multiple of "
                f"block_size ({opts.block_size})"
            )
        get_compressor(self.conf.backup_compression_algorithm, self.conf.backup_compression_level)
        self.store.check()

    def _threads(self) -> int:
        return self.conf.backup_pipeline_threads or os.cpu_count() or 2

    def _settings(self) -> Settings:
        opts = self.options
        return Settings(
            object_size=opts.object_size,
            block_size=opts.block_size,
            compressor=get_compressor(self.conf.backup_compression_algorithm, self.conf.backup_compression_level),
            threads=self._threads(),
            transfers=opts.max_transfers,
        )

    def _where(self, backup: BackupInfo) -> tuple[str, str]:
        container = check_name(backup.container or self.default_container, what="container name")
        return container, backup.service_metadata or backup_prefix(backup.volume_id, backup.id)

    def read_manifest(self, backup: BackupInfo) -> Manifest:
        container, prefix = self._where(backup)
        return read_manifest(self.store, container, prefix, backup.id)

    def backup(self, backup: BackupInfo, source: VolumeReader, ctx: JobContext) -> BackupResult:
        container, prefix = self._where(backup)
        parent = None
        if backup.parent is not None:
            pcontainer, pprefix = self._where(backup.parent)
            if pcontainer != container:
                raise exceptions.InvalidInput(
                    reason=f"an incremental backup must go to its parent's container '{pcontainer}'"
                )
            pmanifest = read_manifest(self.store, pcontainer, pprefix, backup.parent.id)
            parent = Parent(pmanifest, read_index(self.store, pcontainer, pmanifest))
        self.store.put_container(container)
        if self.store.list_objects(container, f"{prefix}/{MANIFEST}"):
            raise exceptions.InvalidBackup(reason=f"container '{container}' already holds a backup at {prefix}")
        manifest = BackupRun(self.store, container, prefix, source, backup, self._settings(), ctx, parent).run()
        return BackupResult(
            container=container,
            service_metadata=prefix,
            size=manifest.size,
            object_count=manifest.stats["new_objects"],
            stored_bytes=manifest.stats["new_bytes"] + manifest.stats.get("metadata_bytes", 0),
            read_bytes=manifest.stats["read_bytes"],
        )

    def restore(self, backup: BackupInfo, target: VolumeWriter, ctx: JobContext, *, volume_is_new: bool) -> None:
        container, _prefix = self._where(backup)
        manifest = self.read_manifest(backup)
        workers = max(self._threads(), self.options.max_transfers)
        restore_mod.restore(self.store, container, manifest, target, ctx, volume_is_new=volume_is_new,
                            workers=workers)

    def verify(self, backup: BackupInfo, ctx: JobContext) -> VerifyReport:
        container, _prefix = self._where(backup)
        manifest = self.read_manifest(backup)
        workers = max(self._threads(), self.options.max_transfers)
        return restore_mod.verify(self.store, container, manifest, ctx, workers=workers)

    def delete_backup(self, backup: BackupInfo, ctx: JobContext) -> None:
        container, prefix = self._where(backup)
        gc.delete_backup(self.store, container, prefix, volume_prefix(backup.volume_id), ctx)

    def export_record(self, backup: BackupInfo) -> dict[str, Any]:
        container, prefix = self._where(backup)
        return {"container": container, "prefix": prefix, "format": "ashvault-backup/1"}

    def import_record(self, backup: BackupInfo, driver_info: dict[str, Any]) -> None:
        manifest = self.read_manifest(backup)
        if manifest.backup_id != backup.id:
            raise exceptions.InvalidBackup(reason=f"the manifest found belongs to backup {manifest.backup_id}")

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
