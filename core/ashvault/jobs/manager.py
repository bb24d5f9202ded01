"""The manager runs one job: it loads the driver, opens the volume, reports progress, honours cancellation, limits
concurrent operations, and moves the record to its final status with a reason. At start-up it resolves the jobs a
dead process left behind.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

from oslo_config import cfg

from ashvault import conf as conf_mod
from ashvault import exceptions, plugins
from ashvault.catalog import Backup, BackupStatus, Catalog, Volume, VolumeStatus
from ashvault.driver import BackupDriver, BackupInfo, JobContext, ProgressFn, VerifyReport
from ashvault.locks import FileLock, SlotSemaphore, owner_alive
from ashvault.sources import VolumeSource

LOG = logging.getLogger(__name__)

BS = BackupStatus


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if isinstance(exc, exceptions.AshvaultError) else f"{type(exc).__name__}: {text}"


class Manager:
    def __init__(self, conf: cfg.ConfigOpts, catalog: Catalog) -> None:
        self.conf = conf
        self.catalog = catalog
        self.lock_dir = os.path.join(conf.ashvault_state_path, "locks")
        self._drivers: dict[str, BackupDriver] = {}
        self._sources: dict[str, VolumeSource] = {}
        self._lock = threading.Lock()

    # plugins

    def driver(self, name: str | None = None) -> BackupDriver:
        name = plugins.driver_name(name or self.conf.backup_driver)
        with self._lock:
            drv = self._drivers.get(name)
            if drv is None:
                cls = plugins.load_class(plugins.DRIVERS, name, kind="backup driver")
                if not (isinstance(cls, type) and issubclass(cls, BackupDriver)):
                    raise exceptions.PluginUnavailable(kind="backup driver", name=name,
                                                       reason="it is not a BackupDriver")
                conf_mod.register_group(self.conf, cls.option_group, cls.get_driver_options())
                drv = self._drivers[name] = cls(self.conf)
            return drv

    def source(self, scheme: str) -> VolumeSource:
        with self._lock:
            src = self._sources.get(scheme)
            if src is None:
                cls = plugins.load_class(plugins.SOURCES, scheme, kind="volume source")
                for group, opts in cls.get_options():
                    conf_mod.register_group(self.conf, group, opts)
                src = self._sources[scheme] = cls(self.conf)
            return src

    def close(self) -> None:
        for drv in self._drivers.values():
            drv.close()
        self._drivers.clear()

    # helpers

    def job_lock(self, backup_id: str) -> FileLock:
        """The lock a job holds while it runs. :meth:`cleanup_incomplete` leaves a job alone while it is held, so
        whoever makes a job's status visible takes the lock first."""
        return FileLock(os.path.join(self.lock_dir, f"backup-{backup_id}.lock"))

    def _held(self, backup_id: str, lock: FileLock | None) -> FileLock:
        if lock is None:
            lock = self.job_lock(backup_id)
        if not lock.held:
            lock.acquire()
        return lock

    def _slot(self, on_wait: Callable[[], None] | None, cancelled: Callable[[], bool]) -> SlotSemaphore:
        """An operation slot, or none if the job is cancelled while it waits (a force delete need not wait)."""
        sem = SlotSemaphore(self.lock_dir, self.conf.backup_max_operations)
        sem.acquire(on_wait, cancelled=cancelled)
        return sem

    def info(self, b: Backup, *, with_parent: bool = True) -> BackupInfo:
        parent = None
        if with_parent and b.parent_id:
            p = self.catalog.find_backup(b.parent_id)
            if p is not None:
                parent = self.info(p, with_parent=False)
        return BackupInfo(id=b.id, volume_id=b.volume_id, name=b.name, description=b.description,
                          container=b.container, parent_id=b.parent_id, service_metadata=b.service_metadata,
                          size=b.size, created_at=b.created_at, parent=parent)

    def _watch(self, backup_id: str, running: str) -> Callable[[], bool]:
        """A cheap cancellation probe: the record left ``running`` (checked at most twice a second)."""
        state = {"at": 0.0, "cancelled": False}

        def cancelled() -> bool:
            now = time.monotonic()
            if not state["cancelled"] and now - state["at"] >= 0.5:
                state["at"] = now
                state["cancelled"] = self.catalog.backup_status(backup_id) != running
            return bool(state["cancelled"])

        return cancelled

    # jobs

    def run_backup(self, backup_id: str, volume: Volume, *, progress: ProgressFn | None = None,
                   on_wait: Callable[[], None] | None = None, set_volume_status: bool = True,
                   lock: FileLock | None = None) -> Backup:
        """Run a backup recorded as creating. ``lock``, when given, is the backup's job lock, already held by the
        caller since before the record became visible; the job releases it when it ends."""
        lock = self._held(backup_id, lock)
        slot = None
        try:
            watch = self._watch(backup_id, BS.CREATING)
            slot = self._slot(on_wait, watch)
            record = self.catalog.get_backup(backup_id)
            if record.status != BS.CREATING:
                raise exceptions.BackupCancelled(reason=f"backup {backup_id} is {record.status}")
            driver = self.driver(record.service)
            ctx = JobContext(progress=progress, is_cancelled=watch, cancel_error=exceptions.BackupCancelled)
            try:
                with self.source(volume.source).open_reader(volume.location) as reader:
                    result = driver.backup(self.info(record), reader, ctx)
            except exceptions.BackupCancelled:
                self._finish_cancelled_backup(driver, record)
                raise
            except Exception as exc:
                reason = one_line(exc)
                if not self.catalog.update_backup(backup_id, [BS.CREATING], status=BS.ERROR, fail_reason=reason):
                    self._finish_cancelled_backup(driver, record)
                raise
            won = self.catalog.update_backup(
                backup_id, [BS.CREATING], status=BS.AVAILABLE, container=result.container,
                service_metadata=result.service_metadata, size=result.size, object_count=result.object_count,
                stored_bytes=result.stored_bytes, read_bytes=result.read_bytes, fail_reason=None,
            )
            if not won:
                record.container, record.service_metadata = result.container, result.service_metadata
                self._finish_cancelled_backup(driver, record)
                raise exceptions.BackupCancelled(reason="the backup was deleted while it ran")
            return self.catalog.get_backup(backup_id)
        finally:
            if set_volume_status:
                self.catalog.set_volume_status(volume.id, [VolumeStatus.BACKING_UP], VolumeStatus.AVAILABLE)
            if slot is not None:
                slot.release()
            lock.release()

    def _finish_cancelled_backup(self, driver: BackupDriver, record: Backup) -> None:
        """A force delete stopped this backup: remove what it wrote and retire the record."""
        if record.container is None:
            record.container = self.catalog.get_backup(record.id, deleted=True).container
        try:
            driver.delete_backup(self.info(record, with_parent=False), JobContext())
        except Exception as exc:
            self.catalog.update_backup(record.id, None, status=BS.ERROR_DELETING, fail_reason=one_line(exc))
            raise
        self.catalog.update_backup(record.id, None, status=BS.DELETED)

    def run_restore(self, backup_id: str, volume: Volume, *, volume_is_new: bool,
                    progress: ProgressFn | None = None, on_wait: Callable[[], None] | None = None,
                    lock: FileLock | None = None) -> None:
        """Restore a backup recorded as restoring; ``lock`` as for :meth:`run_backup`."""
        lock = self._held(backup_id, lock)
        slot = None
        ok = False
        try:
            watch = self._watch(backup_id, BS.RESTORING)
            slot = self._slot(on_wait, watch)
            record = self.catalog.get_backup(backup_id)
            if record.status != BS.RESTORING:
                raise exceptions.RestoreCancelled(reason=f"backup {backup_id} is {record.status}")
            driver = self.driver(record.service)
            ctx = JobContext(progress=progress, is_cancelled=watch, cancel_error=exceptions.RestoreCancelled)
            with self.source(volume.source).open_writer(volume.location) as writer:
                driver.restore(self.info(record), writer, ctx, volume_is_new=volume_is_new)
            ok = True
        finally:
            self.catalog.update_backup(backup_id, [BS.RESTORING], status=BS.AVAILABLE, restore_volume_id=None)
            self.catalog.set_volume_status(
                volume.id, [VolumeStatus.RESTORING],
                VolumeStatus.AVAILABLE if ok else (VolumeStatus.ERROR if volume_is_new else
                                                   VolumeStatus.ERROR_RESTORING),
            )
            if slot is not None:
                slot.release()
            lock.release()

    def run_delete(self, backup_id: str) -> None:
        """Delete a backup whose record is ``deleting``; its lock must not be held by a live job."""
        lock = self.job_lock(backup_id)
        lock.acquire()
        try:
            record = self.catalog.get_backup(backup_id, deleted=True)
            if record.status != BS.DELETING:
                return
            if record.service:
                driver = self.driver(record.service)
                try:
                    driver.delete_backup(self.info(record, with_parent=False), JobContext())
                except Exception as exc:
                    self.catalog.update_backup(backup_id, [BS.DELETING], status=BS.ERROR_DELETING,
                                               fail_reason=one_line(exc))
                    raise
            self.catalog.update_backup(backup_id, [BS.DELETING], status=BS.DELETED)
        finally:
            lock.release()

    def run_verify(self, backup_id: str, *, progress: ProgressFn | None = None) -> VerifyReport:
        record = self.catalog.get_backup(backup_id)
        driver = self.driver(record.service)
        if not driver.capabilities.verify:
            raise exceptions.NotSupported(reason=f"driver '{driver.name}' cannot verify backups")
        return driver.verify(self.info(record), JobContext(progress=progress))

    # start-up

    def cleanup_incomplete(self) -> list[str]:
        """Resolve jobs of this host whose owner is dead: creating -> error, restoring -> available,
        deleting -> finished. Jobs whose lock is held are alive and left alone. Returns what was done."""
        done = []
        for b in self.catalog.incomplete(self.conf.host):
            if owner_alive(os.path.join(self.lock_dir, f"backup-{b.id}.lock")):
                continue
            lock = self.job_lock(b.id)
            if not lock.acquire(blocking=False):
                continue
            try:
                if b.status == BS.CREATING:
                    if self.catalog.update_backup(
                        b.id, [BS.CREATING], status=BS.ERROR,
                        fail_reason="incomplete backup: the process running it stopped before it finished",
                    ):
                        self.catalog.set_volume_status(b.volume_id, [VolumeStatus.BACKING_UP],
                                                       VolumeStatus.AVAILABLE)
                        done.append(f"backup {b.id}: creating -> error")
                elif b.status == BS.RESTORING and self.catalog.update_backup(
                    b.id, [BS.RESTORING], status=BS.AVAILABLE, restore_volume_id=None
                ):
                    if b.restore_volume_id:
                        self.catalog.set_volume_status(b.restore_volume_id, [VolumeStatus.RESTORING],
                                                       VolumeStatus.ERROR_RESTORING)
                    done.append(f"backup {b.id}: restoring -> available")
            finally:
                lock.release()
            if b.status == BS.DELETING:
                try:
                    self.run_delete(b.id)
                    done.append(f"backup {b.id}: deleting -> deleted")
                except Exception as exc:
                    LOG.warning("resuming the delete of backup %s failed: %s", b.id, one_line(exc))
        for line in done:
            LOG.info("%s", line)
        return done
