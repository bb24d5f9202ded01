"""The manager owns a job's whole life: it admits the job (takes its lock, makes its status visible), runs it
(loads the driver, routes to the format's handler, opens the volume, reports progress, honours cancellation, limits
concurrent operations), moves the record to its final status with a reason, and releases everything. At start-up it
resolves the jobs a dead process left behind.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from oslo_config import cfg

from ashvault import check, exceptions, formats, plugins
from ashvault.catalog import Backup, BackupStatus, Catalog, JobState, VolumeStatus
from ashvault.driver import BackupDriver, BackupInfo, JobContext, VerifyReport
from ashvault.jobs.job import Job, Kind, Observers
from ashvault.locks import FileLock, SlotSemaphore, owner_alive
from ashvault.sources import VolumeSource

LOG = logging.getLogger(__name__)

BS = BackupStatus
VS = VolumeStatus


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
        self._admitted: dict[str, FileLock] = {}
        self._verify_runs: dict[str, check.Verified] = {}
        self._lock = threading.Lock()

    # plugins

    def driver(self, name: str | None = None) -> BackupDriver:
        name = plugins.driver_name(name or self.conf.backup_driver)
        with self._lock:
            drv = self._drivers.get(name)
            if drv is None:
                drv = self._drivers[name] = plugins.load_driver(self.conf, name)
            return drv

    def source(self, scheme: str) -> VolumeSource:
        with self._lock:
            src = self._sources.get(scheme)
            if src is None:
                src = self._sources[scheme] = plugins.load_source(self.conf, scheme)
            return src

    def close(self) -> None:
        for drv in self._drivers.values():
            drv.close()
        self._drivers.clear()

    # helpers

    def job_lock(self, backup_id: str) -> FileLock:
        """The lock a backup's job holds from admission to its end. :meth:`cleanup_incomplete` leaves a job alone
        while it is held, so a job's status only becomes visible under it."""
        return FileLock(os.path.join(self.lock_dir, f"backup-{backup_id}.lock"))

    def info(self, b: Backup, *, with_parent: bool = True) -> BackupInfo:
        parent = None
        if with_parent and b.parent_id:
            p = self.catalog.find_backup(b.parent_id)
            if p is not None:
                parent = BackupInfo.of(p)
        return BackupInfo.of(b, parent)

    def handler(self, record: Backup) -> formats.Handler:
        """What reads and writes ``record``'s data: its driver, or the core over the driver's store."""
        return formats.handler(self.driver(record.service), record.format)

    def _slot(self, on_wait: Callable[[], None] | None, cancelled: Callable[[], bool]) -> SlotSemaphore:
        """An operation slot, or none if the job is cancelled while it waits (a force delete need not wait)."""
        sem = SlotSemaphore(self.lock_dir, self.conf.backup_max_operations)
        sem.acquire(on_wait, cancelled=cancelled)
        return sem

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

    # admission: in the caller's thread, before the job is queued

    def admit(self, job: Job, record: Backup | None = None, *, force: bool = False) -> None:
        """Make ``job`` visible under its lock, which the job keeps until it ends.

        backup and import: ``record`` (status creating) is added, for a backup once its volume is claimed (a busy
        volume passes with ``force``, and is then left as it is); restore: the volume and the backup move to
        restoring; delete: the backup moves to deleting, which cancels a job still running on it. Raises
        ``InvalidState`` when the volume or the backup is busy.
        """
        if job.kind == Kind.DELETE:
            if not self.catalog.update_backup(job.backup_id, job.options["allowed"], status=BS.DELETING,
                                              fail_reason=None):
                raise exceptions.InvalidState(reason=f"backup {job.backup_id} changed status; try again")
            return
        if job.kind == Kind.VERIFY:
            return
        lock = self.job_lock(job.backup_id)
        if job.kind == Kind.RESTORE:
            self._claim_volume(job, [VS.AVAILABLE, VS.ERROR_RESTORING, VS.ERROR], VS.RESTORING, force=False)
            if not lock.acquire(blocking=False) or not self.catalog.update_backup(
                job.backup_id, [BS.AVAILABLE], status=BS.RESTORING, restore_volume_id=job.volume_id
            ):
                lock.release()
                self.catalog.set_volume_status(job.volume_id or "", [VS.RESTORING], VS.AVAILABLE)
                raise exceptions.InvalidState(reason=f"backup {job.backup_id} is busy")
        else:
            assert record is not None, "a backup or import job is admitted with its record"
            if job.kind == Kind.BACKUP and job.options.get("volume_claimed"):
                self._claim_volume(job, [VS.AVAILABLE], VS.BACKING_UP, force=force)
            lock.acquire()
            try:
                self.catalog.add(record)
            except Exception:
                lock.release()
                self._release_volume(job, VS.BACKING_UP, VS.AVAILABLE)
                raise
        self._admitted[job.backup_id] = lock

    def _claim_volume(self, job: Job, expected: list[str], status: str, *, force: bool) -> None:
        vid = job.volume_id or ""
        if self.catalog.set_volume_status(vid, expected, status):
            return
        vol = self.catalog.get_volume(vid)
        if job.kind == Kind.BACKUP and force and vol.status != VS.RESTORING:
            job.options["volume_claimed"] = False
            return
        if job.kind != Kind.BACKUP:
            raise exceptions.InvalidState(reason=f"volume {vol.name or vol.id} is busy ({vol.status})")
        hint = "" if vol.status == VS.RESTORING else " (or --force)"
        raise exceptions.InvalidState(
            reason=f"volume {vol.name or vol.id} is {vol.status}; a backup needs it available{hint}"
        )

    def _release_volume(self, job: Job, expected: str, status: str) -> None:
        if job.volume_id and (job.kind != Kind.BACKUP or job.options.get("volume_claimed")):
            self.catalog.set_volume_status(job.volume_id, [expected], status)

    def admitted_lock(self, job: Job) -> FileLock | None:
        """The lock :meth:`admit` took for ``job``, while this process holds it."""
        return self._admitted.get(job.backup_id)

    def adopt(self, job: Job, fd: int) -> None:
        """Hold ``job``'s lock through ``fd``, inherited from the process that admitted the job, so that :meth:`run`
        runs it here as if it had been admitted here."""
        self._admitted[job.backup_id] = FileLock.adopt(self.job_lock(job.backup_id).path, fd)

    def abandon(self, job: Job) -> None:
        """Undo :meth:`admit` for a job that could not be queued."""
        lock = self._admitted.pop(job.backup_id, None)
        if lock is not None:
            lock.release()

    # running: in the dispatcher's worker

    def run(self, job: Job, observers: Observers | None = None) -> Any:
        """Run an admitted job to its end; the job's lock is released when it returns or raises."""
        obs = observers or Observers()
        if job.kind == Kind.VERIFY:
            return self._verify(job, obs)
        lock = None if job.kind == Kind.DELETE else self._admitted.pop(job.backup_id, None)
        try:
            if job.kind == Kind.DELETE:
                # Waits for a job still running on the backup: the delete's new status makes it stop at its next
                # chunk, remove what it wrote and release the lock.
                lock = self.job_lock(job.backup_id)
                if not lock.acquire(timeout=job.options.get("wait")):
                    raise exceptions.InvalidState(
                        reason=f"backup {job.backup_id} is still running; it will stop at its next chunk"
                    )
                return self._delete(job)
            if lock is None:  # a job admitted elsewhere (another dispatcher's worker)
                lock = self.job_lock(job.backup_id)
                lock.acquire()
            if job.kind == Kind.BACKUP:
                return self._backup(job, obs)
            if job.kind == Kind.RESTORE:
                return self._restore(job, obs)
            if job.kind == Kind.IMPORT:
                return self._import(job)
            raise exceptions.InvalidInput(reason=f"unknown job kind '{job.kind}'")
        finally:
            if lock is not None:
                lock.release()

    def _backup(self, job: Job, obs: Observers) -> Backup:
        slot = None
        try:
            watch = self._watch(job.backup_id, BS.CREATING)
            slot = self._slot(obs.on_wait, watch)
            record = self.catalog.get_backup(job.backup_id)
            if record.status != BS.CREATING:
                raise exceptions.BackupCancelled(reason=f"backup {job.backup_id} is {record.status}")
            ctx = JobContext(progress=obs.progress, is_cancelled=watch, cancel_error=exceptions.BackupCancelled)
            handler = None
            try:
                # Everything that can fail once the record is visible ends it as error, the handler's set-up (a
                # share to mount, a cluster to reach) included.
                volume = self.catalog.get_volume(record.volume_id)
                handler = self.handler(record)
                with self.source(volume.source).open_reader(volume.location) as reader:
                    result = handler.backup(self.info(record), reader, ctx)
            except exceptions.BackupCancelled:
                self._finish_cancelled_backup(record)
                raise
            except Exception as exc:
                if not self.catalog.update_backup(job.backup_id, [BS.CREATING], status=BS.ERROR,
                                                  fail_reason=one_line(exc)):
                    self._finish_cancelled_backup(record)
                    raise
                if handler is not None:
                    self._discard_failed_backup(handler, record)
                raise
            won = self.catalog.update_backup(
                job.backup_id, [BS.CREATING], status=BS.AVAILABLE, container=result.container,
                service_metadata=result.service_metadata, size=result.size, object_count=result.object_count,
                stored_bytes=result.stored_bytes, read_bytes=result.read_bytes, fail_reason=None,
                manifest_hash=result.manifest_hash,
            )
            if not won:
                record.container, record.service_metadata = result.container, result.service_metadata
                self._finish_cancelled_backup(record)
                raise exceptions.BackupCancelled(reason="the backup was deleted while it ran")
            return self.catalog.get_backup(job.backup_id)
        finally:
            if slot is not None:
                slot.release()
            self._release_volume(job, VS.BACKING_UP, VS.AVAILABLE)

    def _discard_failed_backup(self, handler: formats.Handler, record: Backup) -> None:
        """Remove at once what a failed backup wrote, so that a full backend gets its space back (as Cinder's chunked
        driver does); the record stays ``error`` with its reason until it is deleted. A failure here is only logged
        (the backup's own error is the one to report): that later delete removes what is left."""
        try:
            handler.delete_backup(self.info(record, with_parent=False), JobContext())
        except Exception as exc:
            LOG.info("could not remove what the failed backup %s wrote: %s", record.id, one_line(exc))

    def _finish_cancelled_backup(self, record: Backup) -> None:
        """A force delete stopped this backup: remove what it wrote and retire the record."""
        if record.container is None:
            record.container = self.catalog.get_backup(record.id, deleted=True).container
        try:
            self.handler(record).delete_backup(self.info(record, with_parent=False), JobContext())
        except Exception as exc:
            self.catalog.update_backup(record.id, None, status=BS.ERROR_DELETING, fail_reason=one_line(exc))
            raise
        self.catalog.update_backup(record.id, None, status=BS.DELETED)

    def _restore(self, job: Job, obs: Observers) -> None:
        slot = None
        ok = False
        new = bool(job.options.get("volume_is_new"))
        try:
            watch = self._watch(job.backup_id, BS.RESTORING)
            slot = self._slot(obs.on_wait, watch)
            record = self.catalog.get_backup(job.backup_id)
            if record.status != BS.RESTORING:
                raise exceptions.RestoreCancelled(reason=f"backup {job.backup_id} is {record.status}")
            volume = self.catalog.get_volume(job.volume_id or "")
            handler = self.handler(record)
            ctx = JobContext(progress=obs.progress, is_cancelled=watch, cancel_error=exceptions.RestoreCancelled)
            with self.source(volume.source).open_writer(volume.location) as writer:
                handler.restore(self.info(record), writer, ctx, volume_is_new=new)
            ok = True
        finally:
            if slot is not None:
                slot.release()
            self.catalog.update_backup(job.backup_id, [BS.RESTORING], status=BS.AVAILABLE, restore_volume_id=None)
            self.catalog.set_volume_status(
                job.volume_id or "", [VS.RESTORING],
                VS.AVAILABLE if ok else (VS.ERROR if new else VS.ERROR_RESTORING),
            )

    def _delete(self, job: Job) -> None:
        record = self.catalog.get_backup(job.backup_id, deleted=True)
        if record.status != BS.DELETING:
            return
        if record.service:
            try:
                self.handler(record).delete_backup(self.info(record, with_parent=False), JobContext())
            except Exception as exc:
                self.catalog.update_backup(job.backup_id, [BS.DELETING], status=BS.ERROR_DELETING,
                                           fail_reason=one_line(exc))
                raise
        self.catalog.update_backup(job.backup_id, [BS.DELETING], status=BS.DELETED)

    def _verify(self, job: Job, obs: Observers) -> VerifyReport:
        """Check the backup as deep as the job's options say (:mod:`ashvault.check`) and record the outcome: damage
        found marks an available backup error ("verify failed: OBJECT: ..."), a clean full verify clears that mark.
        A backend that fails (unreachable, no key) marks nothing."""
        record = self.catalog.get_backup(job.backup_id)
        driver = self.driver(record.service)
        if record.format == driver.native_format and not driver.capabilities.verify:
            raise exceptions.NotSupported(reason=f"driver '{driver.name}' cannot verify backups")
        mode = check.CheckMode.of(job.options)
        ctx = JobContext(progress=obs.progress)
        what = f"backup {record.id} (driver '{driver.name}', format {record.format})"
        try:
            report = check.run(self.handler(record), self.info(record), ctx, mode, what=what,
                               verified=self._verified_in(job.options.get("run")))
        except (exceptions.IntegrityError, exceptions.InvalidBackup) as exc:
            why = check.problem(exc)
            self.catalog.update_backup(record.id, [BS.AVAILABLE], status=BS.ERROR,
                                       fail_reason=f"{check.VERIFY_FAILED} {why}")
            raise
        if not report.ok:
            self.catalog.update_backup(record.id, [BS.AVAILABLE], status=BS.ERROR,
                                       fail_reason=f"{check.VERIFY_FAILED} {check.damage(report)}")
        elif record.status == BS.ERROR and check.failed_verify(record.fail_reason) and mode.clears:
            self.catalog.update_backup(record.id, [BS.ERROR], status=BS.AVAILABLE, fail_reason=None)
        return report

    def _verified_in(self, run: str | None) -> check.Verified | None:
        """What the verify jobs of one ``backup verify --all`` run found whole in this process (the newest few runs
        are kept); None for a verify on its own."""
        if not run:
            return None
        with self._lock:
            found = self._verify_runs.pop(run, None) or check.Verified()
            self._verify_runs[run] = found
            while len(self._verify_runs) > 4:
                self._verify_runs.pop(next(iter(self._verify_runs)))
            return found

    def _import(self, job: Job) -> Backup:
        record = self.catalog.get_backup(job.backup_id)
        try:
            if not job.options.get("checked"):  # the API checked the backend before recording
                self.handler(record).import_record(self.info(record), job.options.get("driver_info") or {})
        except Exception as exc:
            self.catalog.purge_backup(record.id)
            if isinstance(exc, exceptions.AshvaultError):
                raise
            raise exceptions.InvalidBackup(reason=str(exc)) from exc
        self.catalog.update_backup(record.id, [BS.CREATING], status=BS.AVAILABLE)
        return self.catalog.get_backup(record.id)

    def export_record(self, record: Backup) -> dict[str, Any]:
        return self.handler(record).export_record(self.info(record))

    # start-up

    def cleanup_incomplete(self) -> list[str]:
        """Resolve jobs of this host whose owner is dead: creating -> error, restoring -> available,
        deleting -> finished. Jobs whose lock is held are alive and left alone. Returns what was done."""
        done = []
        for b in self.catalog.incomplete(self.conf.host):
            lock = self.job_lock(b.id)
            if owner_alive(lock.path) or not lock.acquire(blocking=False):
                continue
            try:
                if b.status == BS.CREATING:
                    if self.catalog.update_backup(
                        b.id, [BS.CREATING], status=BS.ERROR,
                        fail_reason="incomplete backup: the process running it stopped before it finished",
                    ):
                        self.catalog.set_volume_status(b.volume_id, [VS.BACKING_UP], VS.AVAILABLE)
                        done.append(f"backup {b.id}: creating -> error")
                elif b.status == BS.RESTORING and self.catalog.update_backup(
                    b.id, [BS.RESTORING], status=BS.AVAILABLE, restore_volume_id=None
                ):
                    if b.restore_volume_id:
                        self.catalog.set_volume_status(b.restore_volume_id, [VS.RESTORING], VS.ERROR_RESTORING)
                    done.append(f"backup {b.id}: restoring -> available")
                elif b.status == BS.DELETING:
                    try:
                        self._delete(Job(Kind.DELETE, b.id))
                        done.append(f"backup {b.id}: deleting -> deleted")
                    except Exception as exc:
                        LOG.warning("resuming the delete of backup %s failed: %s", b.id, one_line(exc))
                self._end_job_rows(b.id)
            finally:
                lock.release()
        for line in done:
            LOG.info("%s", line)
        return done

    def _end_job_rows(self, backup_id: str) -> None:
        """End the rows of detached jobs (:mod:`ashvault.jobs.detached`) still running for a backup whose job died."""
        result = json.dumps({"error": "AshvaultError",
                             "message": "the process running the job stopped before it finished"})
        for rec in self.catalog.list_jobs(backup_id=backup_id, state=JobState.RUNNING):
            self.catalog.end_job(rec.id, None, JobState.ERROR, result)
