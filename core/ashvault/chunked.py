"""The core's chunked engine as a backup format (``chunked/1``, FORMAT.md) over any driver's object store, and
:class:`ChunkedBackupDriver`, the base of drivers that only offer an object store.

A chunked plugin is a small file: an object store, the driver subclass naming it, and its options (see the posix
plugin). Everything else, chunking, hashing, compression, incrementals, verification, garbage collection, retries,
bandwidth limits, parallel transfers and progress, lives in the core.
"""

from __future__ import annotations

import abc
import dataclasses
import os
from typing import Any, ClassVar

from oslo_config import cfg

from ashvault import exceptions
from ashvault.conf import MAX_OBJECT_SIZE
from ashvault.driver import BackupDriver, BackupInfo, BackupResult, Capabilities, JobContext, VerifyReport
from ashvault.engine import gc
from ashvault.engine import restore as restore_mod
from ashvault.engine.backup import BackupRun, Parent, Settings
from ashvault.engine.compression import get_compressor
from ashvault.engine.layout import (
    MANIFEST,
    Binding,
    Manifest,
    backup_prefix,
    content_hash,
    read_index,
    read_manifest,
    read_manifest_sized,
    volume_prefix,
)
from ashvault.formats import CHUNKED as TAG
from ashvault.objectstore import ObjectStore, check_name
from ashvault.sources import VolumeReader, VolumeWriter


def binding(backup: BackupInfo) -> Binding:
    """What a backup's manifest must agree with: its id, volume and size, and the hash recorded at backup time."""
    return Binding(backup.id, backup.volume_id, backup.size, backup.manifest_hash)


def pipeline_threads(conf: cfg.ConfigOpts) -> int:
    """Threads of the backup pipeline: ``backup_pipeline_threads``, or one per CPU."""
    return int(conf.backup_pipeline_threads or os.cpu_count() or 2)


@dataclasses.dataclass
class ChunkedFormat:
    """Backups in ashvault's native format in ``store``: the handler of the ``chunked/1`` tag."""

    store: ObjectStore
    settings: Settings
    default_container: str

    @classmethod
    def for_driver(cls, driver: BackupDriver) -> ChunkedFormat:
        """Over ``driver.store``, with the options every store-offering driver has (``chunked_driver_opts``)."""
        opts, conf = driver.options, driver.conf
        settings = Settings(
            object_size=opts.object_size,
            block_size=opts.block_size,
            compressor=get_compressor(conf.backup_compression_algorithm, conf.backup_compression_level),
            threads=pipeline_threads(conf),
            transfers=opts.max_transfers,
        )
        return cls(driver.store, settings, driver.default_container or "volumebackups")

    @property
    def _workers(self) -> int:
        return max(self.settings.threads, self.settings.transfers)

    def _where(self, backup: BackupInfo) -> tuple[str, str]:
        container = check_name(backup.container or self.default_container, what="container name")
        return container, backup.service_metadata or backup_prefix(backup.volume_id, backup.id)

    def where(self, backup: BackupInfo) -> tuple[str, str]:
        """(container, prefix) of ``backup``'s objects. Raises ``InvalidInput`` for a bad container name."""
        return self._where(backup)

    def read_manifest(self, backup: BackupInfo) -> Manifest:
        """The backup's manifest, checked against its record (:func:`binding`). Raises ``IntegrityError``."""
        container, prefix = self._where(backup)
        return read_manifest(self.store, container, prefix, binding(backup))

    def backup(self, backup: BackupInfo, source: VolumeReader, ctx: JobContext) -> BackupResult:
        container, prefix = self._where(backup)
        parent = None
        if backup.parent is not None:
            if backup.parent.format != TAG:
                raise exceptions.InvalidState(
                    reason=f"parent backup {backup.parent.id} is {backup.parent.format}, not {TAG}: make a full backup"
                )
            pcontainer, pprefix = self._where(backup.parent)
            if pcontainer != container:
                raise exceptions.InvalidInput(
                    reason=f"an incremental backup must go to its parent's container '{pcontainer}'"
                )
            pmanifest = read_manifest(self.store, pcontainer, pprefix, binding(backup.parent))
            parent = Parent(pmanifest, read_index(self.store, pcontainer, pmanifest))
        self.store.put_container(container)
        if self.store.list_objects(container, f"{prefix}/{MANIFEST}"):
            raise exceptions.InvalidBackup(reason=f"container '{container}' already holds a backup at {prefix}")
        run = BackupRun(self.store, container, prefix, source, backup, self.settings, ctx, parent)
        manifest = run.run()
        return BackupResult(
            container=container,
            service_metadata=prefix,
            size=manifest.size,
            object_count=manifest.stats["new_objects"],
            stored_bytes=manifest.stats["new_bytes"] + manifest.stats.get("metadata_bytes", 0),
            read_bytes=manifest.stats["read_bytes"],
            manifest_hash=run.manifest_hash,
        )

    def restore(self, backup: BackupInfo, target: VolumeWriter, ctx: JobContext, *, volume_is_new: bool) -> None:
        container, _prefix = self._where(backup)
        restore_mod.restore(self.store, container, self.read_manifest(backup), target, ctx,
                            volume_is_new=volume_is_new, workers=self._workers)

    def verify(self, backup: BackupInfo, ctx: JobContext) -> VerifyReport:
        container, _prefix = self._where(backup)
        return restore_mod.verify(self.store, container, self.read_manifest(backup), ctx, workers=self._workers)

    def delete_backup(self, backup: BackupInfo, ctx: JobContext) -> None:
        container, prefix = self._where(backup)
        gc.delete_backup(self.store, container, prefix, volume_prefix(backup.volume_id), ctx)

    def object_usage(self, backup: BackupInfo) -> dict[str, int]:
        """Every object a backup needs, its own manifest included, with its stored size (for ``accounting``)."""
        container, prefix = self._where(backup)
        manifest, size = read_manifest_sized(self.store, container, prefix, binding(backup))
        held = {o.name: o.stored_size for o in manifest.objects}
        if manifest.index is not None:
            held[manifest.index.name] = manifest.index.stored_size
        held[f"{prefix}/{MANIFEST}"] = size
        return held

    def manifest_digest(self, backup: BackupInfo) -> str:
        """The content hash of the backup's manifest, once checked against its record: what an import records
        when the exported record carried none. Raises ``IntegrityError`` / ``InvalidBackup``."""
        container, prefix = self._where(backup)
        self.read_manifest(backup)
        return content_hash(self.store.get_object(container, f"{prefix}/{MANIFEST}"))

    def export_record(self, backup: BackupInfo) -> dict[str, Any]:
        container, prefix = self._where(backup)
        return {"container": container, "prefix": prefix}

    def import_record(self, backup: BackupInfo, driver_info: dict[str, Any]) -> None:
        """Check that the manifest found on the backend is this record's (id, volume, size, hash when the record
        carries one). Raises ``InvalidBackup``: it is the record that is wrong, not the data."""
        try:
            self.read_manifest(backup)
        except exceptions.IntegrityError as exc:
            raise exceptions.InvalidBackup(
                reason=f"the record does not match the backup on the backend: {exc.kwargs.get('reason', exc)}"
            ) from exc


class ChunkedBackupDriver(BackupDriver):
    """A driver that offers only an object store: every backup is ``chunked/1`` (FORMAT.md)."""

    capabilities: ClassVar[Capabilities] = Capabilities(object_store=True)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.capabilities.object_store:  # a subclass that sets its own capabilities still offers its store
            cls.capabilities = dataclasses.replace(cls.capabilities, object_store=True)

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        super().__init__(conf)
        size = self.options.object_size
        if size > MAX_OBJECT_SIZE:
            opt = next(o for o in self.get_driver_options() if o.dest == "object_size")
            also = "".join(f" (or [DEFAULT] {d.name})" for d in opt.deprecated_opts[:1])
            raise exceptions.ConfigurationError(
                reason=f"[{self.option_group}] object_size{also} is {size} bytes; the largest accepted is "
                f"{MAX_OBJECT_SIZE} (64 MiB), since about a dozen objects are in memory at once"
            )

    @abc.abstractmethod
    def make_object_store(self) -> ObjectStore:
        """Build the backend's object store from ``self.options``. Raises ``DriverSetupError``."""

    @property
    def default_container(self) -> str:
        return str(self.options.container or "volumebackups")

    def check_for_setup_error(self) -> None:
        check_chunked_setup(self)


def check_chunked_setup(driver: BackupDriver) -> None:
    """The configuration checks of the chunked engine, then the store's own."""
    opts = driver.options
    if opts.object_size % opts.block_size:
        raise exceptions.DriverSetupError(
            reason=f"[{driver.option_group}] object_size ({opts.object_size}) must be a multiple of "
            f"block_size ({opts.block_size})"
        )
    get_compressor(driver.conf.backup_compression_algorithm, driver.conf.backup_compression_level)
    driver.store.check()
