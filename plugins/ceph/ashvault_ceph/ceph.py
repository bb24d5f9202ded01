"""The ceph driver: RBD volumes to RBD backup images through snapshot diffs, anything else into RADOS.

RBD source (Cinder's ``_backup_rbd``): a full backup creates the base image ``volume-<volume>.backup.<backup>`` in
the backup pool and copies the source snapshot ``backup.<backup>.snap.<time>`` into it; an incremental copies only
what changed between the parent's snapshot and the new one into the parent's base image. Either way the base then
gets a snapshot of the same name, so every backup is one snapshot of a base image, named as an operator who knows
Cinder expects. This is ``rbd export-diff | rbd import-diff`` done through the bindings (``diff_iterate`` plus
reads and writes) rather than two ``rbd`` processes: no key or configuration on a command line, a cancel takes
effect at the next chunk, progress and byte counts are exact, and one connection serves the whole job. Unlike
Cinder's, every RBD backup also records a checksum of each 64 KiB block (:mod:`ashvault_ceph.blockindex`), checked
on restore and by ``verify``.

For other sources the driver offers the core a RADOS object store (:class:`RadosObjectStore`): the core's chunked
engine then gives them incrementals, compression and verification that Cinder's ceph driver lacks. The core picks
the path (``capabilities.native_sources``) and records it as the backup's format tag; the RBD backups' own
``service_metadata`` is JSON with a ``base``, as Cinder stores it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

from oslo_config import cfg

from ashvault import exceptions
from ashvault.chunked import check_chunked_setup
from ashvault.driver import BackupDriver, BackupInfo, BackupResult, Capabilities, JobContext, VerifyReport
from ashvault.objectstore import ObjectStore, check_name
from ashvault.sources import VolumeReader, VolumeWriter
from ashvault_ceph import cinder_rbd, opts, transfer
from ashvault_ceph.blockindex import BLOCK, BlockIndex, align
from ashvault_ceph.client import Connection, rados, rbd, translate
from ashvault_ceph.rados_store import RadosObjectStore
from ashvault_ceph.rbd_source import (
    SNAP_RE,
    RbdReader,
    RbdSource,
    backup_snaps,
    extents,
    parse,
    prune_snaps,
    snap_name,
)

LOG = logging.getLogger(__name__)


def rbd_meta(service_metadata: str | None) -> dict[str, Any] | None:
    """An RBD backup's service metadata, or None when it has none (a backup that failed before recording it)."""
    if not service_metadata or not service_metadata.startswith("{"):
        return None
    try:
        doc = json.loads(service_metadata)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) and doc.get("base") else None


def base_name(volume_id: str, backup_id: str) -> str:
    return f"volume-{volume_id}.backup.{backup_id}"


def index_name(volume_id: str, backup_id: str) -> str:
    """The RADOS object (in ``[backup_ceph] namespace`` of the pool) holding a backup's block checksums."""
    return f"volume-{volume_id}.backup.{backup_id}.index"


class CephBackupDriver(BackupDriver):
    """Backs up to a Ceph cluster (``[backup_ceph] conf``, ``user``, ``pool``)."""

    name = "ceph"
    option_group = opts.GROUP
    capabilities: ClassVar[Capabilities] = Capabilities(native_sources=frozenset({"rbd"}), object_store=True,
                                                         cinder_native=True)
    native_format: ClassVar[str] = "ceph-rbd/1"

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        super().__init__(conf)
        self._conn: Connection | None = None
        self._jobs = threading.local()

    @classmethod
    def get_driver_options(cls) -> list[cfg.Opt]:
        return opts.ceph_opts

    def new_connection(self) -> Connection:
        o = self.options
        return Connection(o.conf, o.user, connect_timeout=o.connect_timeout, op_timeout=o.op_timeout)

    @property
    def conn(self) -> Connection:
        """The connection shared by chunked (RADOS object) work and quick checks."""
        if self._conn is None:
            self._conn = self.new_connection()
        return self._conn

    @contextlib.contextmanager
    def _job(self) -> Iterator[Connection]:
        """Run RBD work on a connection of its own, shut down when the work ends.

        A job that fails on a dead OSD may leave its client holding the base image's lock or watch; the next job is
        then another client, so breaking that lock (:meth:`_prepare_incremental`) never hits a client still in use.
        """
        conn = self.new_connection()
        self._jobs.conn = conn
        try:
            yield conn
        finally:
            self._jobs.conn = None
            conn.close()

    @property
    def rconn(self) -> Connection:
        """The current RBD job's connection."""
        conn = getattr(self._jobs, "conn", None)
        return conn if conn is not None else self.conn

    def make_object_store(self) -> ObjectStore:
        """RADOS objects in ``[backup_ceph] namespace``, for the core's chunked engine (sources that are not RBD)."""
        return RadosObjectStore(self.conn, namespace=self.options.namespace,
                                create_containers=self.conf.backup_create_containers)

    @property
    def default_container(self) -> str:
        return str(self.options.pool)

    def _pool(self, backup: BackupInfo) -> str:
        return check_name(backup.container or self.default_container, what="pool name")

    def check_for_setup_error(self) -> None:
        o = self.options
        for key in ("conf", "user", "pool"):
            if not o[key]:
                raise exceptions.DriverSetupError(reason=f"[{self.option_group}] {key} is empty")
        check_chunked_setup(self)
        if not self.conn.pool_exists(o.pool):
            raise exceptions.DriverSetupError(reason=f"backup pool '{o.pool}' does not exist")
        if o.image_journals and not hasattr(rbd, "RBD_FEATURE_JOURNALING"):
            raise exceptions.DriverSetupError(reason="image_journals is set but librbd has no journaling")

    # backup

    def backup(self, backup: BackupInfo, source: VolumeReader, ctx: JobContext) -> BackupResult:
        if not isinstance(source, RbdReader):
            raise exceptions.NotSupported(reason=f"the ceph driver moves only RBD volumes natively, not {source}")
        with self._job():
            return self._backup_rbd(backup, source, ctx)

    def _features(self) -> tuple[int, int, int]:
        o = self.options
        features = rbd.RBD_FEATURE_LAYERING | rbd.RBD_FEATURE_EXCLUSIVE_LOCK | rbd.RBD_FEATURE_OBJECT_MAP \
            | rbd.RBD_FEATURE_FAST_DIFF
        if o.image_journals:
            features |= rbd.RBD_FEATURE_JOURNALING
        if o.stripe_unit or o.stripe_count:
            features |= rbd.RBD_FEATURE_STRIPINGV2
        return features, o.stripe_unit, o.stripe_count

    def _open_base(self, pool: str, base: str, *, snapshot: str | None = None, read_only: bool = False) -> Any:
        try:
            return rbd.Image(self.rconn.ioctx(pool), base, snapshot=snapshot, read_only=read_only)
        except rbd.ImageNotFound:
            at = f"@{snapshot}" if snapshot else ""
            raise exceptions.InvalidBackup(reason=f"backup image {pool}/{base}{at} does not exist") from None
        except rbd.Error as exc:
            raise translate(exc, f"opening backup image {pool}/{base}") from exc

    def _parent_point(self, backup: BackupInfo, reader: RbdReader, pool: str) -> tuple[str, str | None]:
        """(base image, snapshot to diff from) for this backup: a new base and None for a full backup."""
        full = base_name(backup.volume_id, backup.id), None
        if backup.parent is None:
            return full
        if not reader.owned:
            raise exceptions.NotSupported(reason=f"incremental backups of the fixed snapshot {reader.location}")
        meta = rbd_meta(backup.parent.service_metadata)
        if meta is None or backup.parent.format != self.native_format:
            raise exceptions.InvalidBackup(reason=f"parent backup {backup.parent.id} is not an RBD image backup")
        psnap = meta.get("source_snap") or meta["snap"]
        if not reader.has_snapshot(psnap):
            LOG.warning("snapshot %s of %s is gone: backup %s becomes a full backup", psnap, reader.location,
                        backup.id)
            return full
        base = self._open_base(pool, meta["base"])
        try:
            if not base.snap_exists(meta["snap"]):
                raise exceptions.InvalidBackup(reason=f"can't find snapshot {meta['snap']} of parent backup "
                                                      f"{backup.parent.id} on {pool}/{meta['base']}")
        finally:
            base.close()
        return meta["base"], psnap

    def _backup_rbd(self, backup: BackupInfo, reader: RbdReader, ctx: JobContext) -> BackupResult:
        pool = self._pool(backup)
        snap = snap_name(backup.id)
        if reader.owned:
            reader.rename_snapshot(snap)
        base, from_snap = self._parent_point(backup, reader, pool)
        index: BlockIndex | None = BlockIndex(reader.size)
        if from_snap is not None and backup.parent is not None:
            old_size = backup.parent.size or reader.size
            parent_index = self._load_index(pool, backup.parent, old_size)
            index = parent_index.resized(reader.size) if parent_index is not None else None
            if index is not None and old_size != reader.size and old_size % BLOCK:
                index.stale.append(old_size - old_size % BLOCK)  # its digest covered a shorter block
        iname = index_name(backup.volume_id, backup.id)
        created = indexed = False
        dest = None
        try:
            if from_snap is None:
                features, unit, count = self._features()
                try:
                    striping = {"stripe_unit": unit, "stripe_count": count} if unit or count else {}
                    rbd.RBD().create(self.rconn.ioctx(pool), base, reader.size, old_format=False, features=features,
                                     **striping)
                except rbd.Error as exc:
                    raise translate(exc, f"creating backup image {pool}/{base}") from exc
                created = True
            dest = self._open_base(pool, base)
            if from_snap is not None:
                self._prepare_incremental(dest, from_snap, reader.size)
            copied, read = self._copy_diff(reader, from_snap, dest, ctx, index)
            dest.flush()
            ctx.check()
            if index is not None:
                indexed = True
                self._index_io(pool, "writing the checksums", lambda io: io.write_full(iname, index.encode()))
            dest.create_snap(snap)
        except BaseException as exc:
            reader.keep = False
            if dest is not None:
                dest.close()
                dest = None
            self._undo(pool, base, created)
            if indexed:
                self._drop_index(pool, iname)
            if isinstance(exc, rbd.Error):
                raise translate(exc, f"copying {reader.location} to {pool}/{base}") from exc
            raise
        finally:
            if dest is not None:
                dest.close()
        reader.keep = reader.owned
        if self.options.max_snapshots and reader.owned:
            head = reader.head()
            try:
                pruned = prune_snaps(head, self.options.max_snapshots)
            except rbd.Error as exc:
                LOG.warning("pruning the backup snapshots of %s failed: %s", reader.location, exc)
                pruned = []
            finally:
                head.close()
            if pruned:
                LOG.info("removed %d old backup snapshots of %s", len(pruned), reader.location)
        source = reader.location[4:].split("@", 1)[0]
        meta = {"base": base, "snap": snap, "source": source, "source_snap": reader.snap if reader.owned else None,
                "index": iname if index is not None else None}
        return BackupResult(container=pool, service_metadata=json.dumps(meta, sort_keys=True), size=reader.size,
                            object_count=1 if created else 0, stored_bytes=copied, read_bytes=read)

    def _prepare_incremental(self, dest: Any, from_snap: str, size: int) -> None:
        """Make the base image's head equal its ``from_snap`` (a failed backup may have written to it), sized.

        Takes the image's exclusive lock first, breaking (and so blocklisting) any owner: that can only be a client
        that died mid-backup, since one backup of a volume runs at a time and this driver is the base's only writer.
        """
        # Asking a dead owner to hand the lock over would wait for its watch to expire (30 s after an OSD restart).
        for owner in dest.lock_get_owners():
            LOG.info("breaking the stale lock of %s on backup image %s", owner["owner"], dest.get_name())
            dest.lock_break(owner["mode"], owner["owner"])
        dest.lock_acquire(rbd.RBD_LOCK_MODE_EXCLUSIVE)
        if extents(dest, dest.size(), from_snap, data_only=False, whole_object=True):
            dest.rollback_to_snap(from_snap)
        if dest.size() != size:
            dest.resize(size)

    def _workers(self) -> int:
        """Pieces in flight: mostly waiting on the cluster, so at least 4 whatever the CPU count."""
        return self.conf.backup_pipeline_threads or max(4, min(os.cpu_count() or 1, 8))

    def _copy_diff(self, reader: RbdReader, from_snap: str | None, dest: Any, ctx: JobContext,
                   index: BlockIndex | None) -> tuple[int, int]:
        return transfer.copy_diff(reader, from_snap, dest, ctx, index=index, piece=self.options.chunk_size,
                                  workers=self._workers())

    # block checksums

    def _index_io(self, pool: str, what: str, fn: Callable[[Any], Any]) -> Any:
        try:
            return fn(self.rconn.ioctx(pool, self.options.namespace))
        except rados.ObjectNotFound:
            raise
        except rados.Error as exc:
            raise translate(exc, f"{what} of pool {pool}") from exc

    def _load_index(self, pool: str, backup: BackupInfo, size: int) -> BlockIndex | None:
        """The block checksums of ``backup``; None for a backup made without them. Raises ``InvalidBackup``."""
        meta = rbd_meta(backup.service_metadata) or {}
        name = meta.get("index")
        if not name:
            return None

        def read(io: Any) -> bytes:
            length, _mtime = io.stat(name)
            return bytes(io.read(name, length)) if length else b""

        try:
            return BlockIndex.decode(self._index_io(pool, "reading the checksums", read), size)
        except rados.ObjectNotFound:
            raise exceptions.InvalidBackup(reason=f"the checksums of backup {backup.id} ({pool}/{name}) are "
                                                  "missing") from None
        except (ValueError, zlib.error) as exc:
            raise exceptions.IntegrityError(backup=backup.id, object=name, reason=str(exc)) from exc

    def _drop_index(self, pool: str, name: str) -> None:
        try:
            self._index_io(pool, "removing the checksums", lambda io: io.remove_object(name))
        except (rados.ObjectNotFound, exceptions.ContainerNotFound):
            pass
        except exceptions.AshvaultError as exc:
            LOG.warning("could not remove %s/%s: %s", pool, name, exc)

    def _undo(self, pool: str, base: str, created: bool) -> None:
        """Remove the base image a failed full backup created; never raises (the backup's own error is what the
        user must see). A failed incremental leaves only writes to its base's head, which the next incremental
        rolls back (:meth:`_prepare_incremental`); its snapshot is made last, so it never exists."""
        if not created:
            return
        try:
            self._remove_image(pool, base)
        except (rbd.Error, exceptions.AshvaultError) as exc:
            LOG.warning("could not remove %s/%s after the failed backup: %s", pool, base, exc)

    def _remove_image(self, pool: str, name: str) -> None:
        for attempt in range(4):
            try:
                rbd.RBD().remove(self.rconn.ioctx(pool), name)
                return
            except rbd.ImageNotFound:
                return
            except rbd.ImageBusy:
                if attempt == 3:
                    raise
                time.sleep(1)

    # restore, verify

    def restore(self, backup: BackupInfo, target: VolumeWriter, ctx: JobContext, *, volume_is_new: bool) -> None:
        meta = self._meta(backup)
        pool = self._pool(backup)
        with self._job():
            img = self._open_base(pool, meta["base"], snapshot=meta["snap"], read_only=True)
            try:
                index = self._load_index(pool, backup, int(img.size()))
                transfer.restore_image(img, target, ctx, volume_is_new=volume_is_new,
                                       discard_excess=self.options.restore_discard_excess_bytes, index=index,
                                       label=f"{meta['base']}@{meta['snap']}", backup_id=backup.id,
                                       piece=self.options.chunk_size, workers=self._workers())
            except rbd.Error as exc:
                raise translate(exc, f"restoring {pool}/{meta['base']}@{meta['snap']}") from exc
            finally:
                img.close()

    def verify(self, backup: BackupInfo, ctx: JobContext) -> VerifyReport:
        """Read every allocated byte of the backup's snapshot back and check each 64 KiB block against its checksum
        (a backup made without checksums is only read back)."""
        meta = self._meta(backup)
        pool = self._pool(backup)
        with self._job():
            img = self._open_base(pool, meta["base"], snapshot=meta["snap"], read_only=True)
            try:
                return self._verify_image(img, pool, backup, meta, ctx)
            except rbd.Error as exc:
                raise translate(exc, f"verifying {pool}/{meta['base']}@{meta['snap']}") from exc
            finally:
                img.close()

    def _verify_image(self, img: Any, pool: str, backup: BackupInfo, meta: dict[str, Any],
                      ctx: JobContext) -> VerifyReport:
        size = int(img.size())
        label = f"{meta['base']}@{meta['snap']}"
        index = self._load_index(pool, backup, size)
        data = extents(img, size, None, data_only=True)
        report = VerifyReport(backup.id)
        if index is not None:
            data = align(data, size)
            report.corrupt += [(f"{label}:{off}", "the backup image lacks data its checksums record")
                               for off in index.data_outside(data)]
        bad: list[tuple[str, str]] = []

        def check(off: int, n: int, _has_data: bool) -> tuple[int, int]:
            buf = img.read(off, n)
            if index is not None:
                bad.extend((f"{label}:{o}", "the data does not match its checksum")
                           for o in index.mismatches(off, buf))
            return len(buf), 1

        report.bytes_checked, report.objects_checked = transfer.run_pieces(
            data, check, ctx, piece=self.options.chunk_size, workers=self._workers())
        report.corrupt += sorted(bad, key=lambda c: int(c[0].rsplit(":", 1)[1]))
        return report

    # delete

    def delete_backup(self, backup: BackupInfo, ctx: JobContext) -> None:
        meta = rbd_meta(backup.service_metadata)
        pool = self._pool(backup)
        if meta is None:
            # A process that died during a full RBD backup leaves its new base image: it is this backup's alone.
            with self._job():
                self._drop_snap(pool, base_name(backup.volume_id, backup.id), backup.id, None)
                self._drop_index(pool, index_name(backup.volume_id, backup.id))
            return
        with self._job():
            self._drop_snap(pool, meta["base"], backup.id, meta["snap"])
            if meta.get("index"):
                self._drop_index(pool, meta["index"])
        if meta.get("source_snap") and meta.get("source"):
            self._drop_source_snap(meta["source"], meta["source_snap"])

    def _drop_snap(self, pool: str, base: str, backup_id: str, snap: str | None) -> None:
        """Remove ``snap`` and any other snapshot of ``backup_id`` from ``base``, then ``base`` itself once no
        backup snapshot is left on it."""
        try:
            if not self.rconn.pool_exists(pool):
                return
            try:
                img = rbd.Image(self.rconn.ioctx(pool), base)
            except rbd.ImageNotFound:
                return
            try:
                for name in backup_snaps(img):
                    found = SNAP_RE.match(name)
                    if name == snap or (found and found.group(1) == backup_id):
                        img.remove_snap(name)
                left = backup_snaps(img)
            finally:
                img.close()
            if not left:
                self._remove_image(pool, base)
        except rbd.Error as exc:
            raise translate(exc, f"deleting {pool}/{base}@{snap}") from exc

    def _drop_source_snap(self, source: str, snap: str) -> None:
        """Remove the backup's snapshot from its source volume; a source that is gone or unreachable is no error."""
        src = RbdSource(self.conf)
        pool, image, _ = parse(f"rbd:{source}")
        conn = src.connection()
        try:
            img = rbd.Image(conn.ioctx(pool), image)
            try:
                if img.snap_exists(snap):
                    img.remove_snap(snap)
            finally:
                img.close()
        except (rbd.Error, exceptions.AshvaultError) as exc:
            LOG.warning("could not remove snapshot %s of rbd:%s: %s", snap, source, exc)
        finally:
            conn.close()

    # records

    def find_cinder_backups(self, *, records: list[dict[str, Any]], backup_id: str | None,
                            container: str | None) -> list[BackupInfo]:
        """Backups Cinder's ceph driver wrote in ``container`` (default: the backup pool), with the earlier backups
        of their chains, parents first (see :mod:`ashvault_ceph.cinder_rbd`)."""
        pool = check_name(container or self.default_container, what="pool name")
        with self._job():
            if not self.rconn.pool_exists(pool):
                raise exceptions.ContainerNotFound(container=pool)
            try:
                return cinder_rbd.find(self.rconn.ioctx(pool), pool, records=records, backup_id=backup_id)
            except rbd.Error as exc:
                raise translate(exc, f"looking for Cinder backups in pool {pool}") from exc

    def export_record(self, backup: BackupInfo) -> dict[str, Any]:
        meta = self._meta(backup)
        return {"pool": self._pool(backup), "base": meta["base"], "snap": meta["snap"]}

    def import_record(self, backup: BackupInfo, driver_info: dict[str, Any]) -> None:
        meta = self._meta(backup)
        with self._job():
            self._open_base(self._pool(backup), meta["base"], snapshot=meta["snap"], read_only=True).close()

    def _meta(self, backup: BackupInfo) -> dict[str, Any]:
        meta = rbd_meta(backup.service_metadata)
        if meta is None:
            raise exceptions.InvalidBackup(reason=f"backup {backup.id} records no RBD image")
        return meta

    def close(self) -> None:
        super().close()
        if self._conn is not None:
            self._conn.close()
            self._conn = None
