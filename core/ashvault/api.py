"""The API: validates requests, resolves names, writes catalog records and hands jobs to the dispatcher.

It never touches volume data itself; the manager does, in the dispatcher's threads. Every method raises a typed
:class:`~ashvault.exceptions.AshvaultError` whose text is one line for a person.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
import logging
import os
import re
import uuid
from collections.abc import Callable
from typing import Any

from oslo_config import cfg

from ashvault import accounting, check, cinder, exceptions, formats, retention
from ashvault.catalog import Backup, BackupStatus, Catalog, JobState, Volume, VolumeStatus
from ashvault.catalog.models import utcnow
from ashvault.conf import make_config
from ashvault.driver import BackupInfo, ProgressFn, VerifyReport
from ashvault.jobs.detached import DetachedDispatcher
from ashvault.jobs.dispatcher import LocalDispatcher
from ashvault.jobs.job import Job, Kind, Observers
from ashvault.jobs.manager import Manager
from ashvault.locks import owner_alive
from ashvault.objectstore import check_name
from ashvault.records import check_location, parse_record

BS = BackupStatus
LOG = logging.getLogger(__name__)
GiB = 1 << 30
_SCHEME = re.compile(r"^([a-z][a-z0-9+.\-]*):(?!//)|^([a-z][a-z0-9+.\-]*)://")

RECORD_FIELDS = (
    "id", "volume_id", "name", "description", "container", "parent_id", "size", "service", "service_metadata",
    "format", "object_count", "stored_bytes", "availability_zone", "created_at", "data_timestamp", "manifest_hash",
)


def split_location(location: str) -> tuple[str, str]:
    """(source scheme, location): ``rbd:pool/img`` -> ``rbd``; a plain path or ``file://`` -> ``file``."""
    m = _SCHEME.match(location)
    if m is None:
        return "file", location
    scheme = m.group(1) or m.group(2)
    return scheme, location


class API:
    def __init__(self, conf: cfg.ConfigOpts | None = None, *, cleanup: bool = True) -> None:
        self.conf = conf if conf is not None else make_config()
        state = self.conf.ashvault_state_path
        try:
            os.makedirs(state, mode=0o700, exist_ok=True)
        except OSError as exc:
            raise exceptions.ConfigurationError(
                reason=f"cannot create ashvault_state_path {state}: {exc.strerror}"
            ) from exc
        url = self.conf.ashvault_database.connection or f"sqlite:///{os.path.join(state, 'ashvault.sqlite')}"
        self.catalog = Catalog(url, lock_dir=os.path.join(state, "locks"))
        LOG.info("state in %s, catalog on %s, driver %s", state, self.catalog.kind, self.conf.backup_driver)
        self.manager = Manager(self.conf, self.catalog)
        self.remote = bool(self.conf.ashvault_transport_url)
        self.dispatcher: Any
        if self.remote:
            # Jobs run in the ashvault-backup workers, which resolve each other's dead jobs themselves.
            from ashvault.workers.dispatcher import RpcDispatcher

            self.dispatcher = RpcDispatcher(self.conf, self.manager)
        else:
            self.dispatcher = LocalDispatcher(self.manager.run, self.conf.backup_max_operations)
            if cleanup:
                self.recovered = self.manager.cleanup_incomplete()

    def close(self) -> None:
        self.dispatcher.shutdown()
        self.manager.close()
        self.catalog.close()

    # volumes

    def volume_create(self, name: str, size_gib: float, *, description: str | None = None) -> Volume:
        if size_gib <= 0:
            raise exceptions.InvalidInput(reason="--size must be a positive number of GiB")
        size = int(size_gib * GiB)
        vid = str(uuid.uuid4())
        location = os.path.join(self.conf.ashvault_volumes_dir, f"volume-{vid}.img")
        self.manager.source("file").create(location, size)
        vol = Volume(id=vid, name=name, description=description, location=location, source="file", managed=True,
                     size=size, status=VolumeStatus.AVAILABLE, host=self.conf.host)
        self.catalog.add(vol)
        return vol

    def volume_register(self, name: str, location: str, *, description: str | None = None) -> Volume:
        scheme, location = split_location(location)
        src = self.manager.source(scheme)
        location = src.normalize(location)
        vol = Volume(id=str(uuid.uuid4()), name=name, description=description, location=location, source=scheme,
                     managed=False, size=src.size(location), status=VolumeStatus.AVAILABLE, host=self.conf.host)
        self.catalog.add(vol)
        return vol

    def volume_get(self, ident: str) -> Volume:
        vol = self.catalog.get_volume(ident)
        try:
            vol.size = self.manager.source(vol.source).size(vol.location)
        except exceptions.AshvaultError:
            pass
        return vol

    def volume_list(self) -> list[Volume]:
        return self.catalog.list_volumes()

    def volume_delete(self, ident: str, *, force: bool = False) -> Volume:
        vol = self.catalog.get_volume(ident)
        busy = (VolumeStatus.BACKING_UP, VolumeStatus.RESTORING)
        if vol.status in busy and not force:
            raise exceptions.InvalidState(reason=f"volume {vol.name or vol.id} is {vol.status}; wait, or use --force")
        if vol.managed:
            self.manager.source(vol.source).delete(vol.location)
        self.catalog.delete_volume(vol.id)
        return vol

    # backups

    def backup_get(self, ident: str) -> Backup:
        return self.catalog.get_backup(ident)

    def backup_list(self, *, volume: str | None = None, status: str | None = None) -> list[Backup]:
        volume_id = None
        if volume:
            found = self.catalog.find_volume(volume)
            volume_id = found.id if found else self.catalog.get_volume(volume).id
        if status and status not in BS.ALL:
            raise exceptions.InvalidInput(reason=f"--status must be one of {', '.join(BS.ALL)}")
        return self.catalog.list_backups(volume_id=volume_id, status=status, deleted=status == BS.DELETED)

    def backup_create(
        self,
        volume: str,
        *,
        name: str | None = None,
        description: str | None = None,
        container: str | None = None,
        incremental: bool = False,
        force: bool = False,
        progress: ProgressFn | None = None,
        on_wait: Callable[[], None] | None = None,
        wait: bool = True,
    ) -> Backup:
        """With ``wait`` false it returns the record, still creating, once the job is sent to the workers or, without
        them, started in a detached process (:mod:`ashvault.jobs.detached`)."""
        vol = self.catalog.get_volume(volume)
        if not vol.location:
            raise exceptions.InvalidState(reason=f"volume {vol.name or vol.id} was rebuilt from the backend and its "
                                          "location is unknown: restore its backups to a new volume")
        driver = self.manager.driver()
        if container is not None:
            check_name(container, what="container name")
        fmt = formats.for_backup(driver, vol.source)
        parent = None
        if incremental:
            if not driver.capabilities.incremental:
                raise exceptions.NotSupported(reason=f"driver '{driver.name}' makes no incremental backups")
            parent = self.catalog.latest_available(vol.id)
            if parent is None:
                raise exceptions.InvalidState(
                    reason=f"volume {vol.name or vol.id} has no available backup to base an incremental on"
                )
            if parent.service != driver.name or parent.format != fmt:
                raise exceptions.InvalidState(
                    reason=f"the latest backup of {vol.name or vol.id} was made by driver '{parent.service}' in "
                    f"format {parent.format}, not '{driver.name}' in {fmt}: make a full backup"
                )
            if container is not None and container != parent.container:
                raise exceptions.InvalidInput(
                    reason=f"an incremental backup goes to its parent's container '{parent.container}'"
                )
            container = parent.container
        if container is None:
            container = driver.default_container
        bid = str(uuid.uuid4())
        now = utcnow()
        record = Backup(
            id=bid, volume_id=vol.id, name=name, description=description, container=container,
            parent_id=parent.id if parent else None, status=BS.CREATING, size=vol.size, service=driver.name,
            format=fmt, object_count=0, stored_bytes=0, read_bytes=0, host=None if self.remote else self.conf.host,
            availability_zone=self.conf.storage_availability_zone, data_timestamp=now, created_at=now,
            updated_at=now, deleted=False,
        )
        job = Job(Kind.BACKUP, bid, vol.id, {"volume_claimed": True})
        done = self._run(job, Observers(progress, on_wait), record=record, force=force, wait=wait)
        return done if wait else self.catalog.get_backup(bid)

    def _run(self, job: Job, observers: Observers | None = None, *, record: Backup | None = None,
             force: bool = False, wait: bool = True) -> Any:
        """Admit ``job`` (its status visible under its lock), hand it to the dispatcher and, with ``wait``, wait
        for its end; without ``wait`` and workers, the job runs in a detached process."""
        self.manager.admit(job, record, force=force)
        dispatcher = self.dispatcher if wait or self.remote else DetachedDispatcher(self.conf, self.manager)
        try:
            future = dispatcher.submit(job, observers)
        except BaseException:
            self.manager.abandon(job)
            raise
        return future.result() if wait else None

    # services

    def service_list(self) -> list[dict[str, Any]]:
        """The backup workers known to the catalog, each with its status (up, down, stopped)."""
        from ashvault.workers.worker import service_status

        down = self.conf.service_down_time
        return [
            {"id": s.id, "host": s.host, "binary": s.binary_name, "pid": s.pid, "status": service_status(s, down),
             "heartbeat_at": s.heartbeat_at, "jobs_running": s.jobs_running}
            for s in self.catalog.list_services()
        ]

    def backup_progress(self, backup_id: str) -> str | None:
        """How far the backup's running worker job is ("37%"), from the catalog; None when none runs."""
        jobs = self.catalog.list_jobs(backup_id=backup_id, state=JobState.ACTIVE)
        if not jobs:
            return None
        job = jobs[-1]
        if job.state == JobState.QUEUED:
            return "queued"
        return f"{100 * job.done_bytes // job.total_bytes}%" if job.total_bytes else "0%"

    def backup_restore(
        self,
        backup: str,
        volume: str | None = None,
        *,
        name: str | None = None,
        force: bool = False,
        progress: ProgressFn | None = None,
        on_wait: Callable[[], None] | None = None,
        wait: bool = True,
    ) -> tuple[Backup, Volume]:
        rec = self.catalog.get_backup(backup)
        if rec.status != BS.AVAILABLE:
            why = f" ({rec.fail_reason})" if check.failed_verify(rec.fail_reason) else ""
            raise exceptions.InvalidState(
                reason=f"backup {rec.id} is {rec.status}{why}; only an available backup restores"
            )
        new = volume is None
        if volume is None:
            vol = self.volume_create(name or f"restore_backup_{rec.id}", rec.size / GiB)
        else:
            vol = self.volume_get(volume)
            if not force:
                raise exceptions.InvalidState(
                    reason=f"volume {vol.name or vol.id} exists: restoring would overwrite it; use --force"
                )
            if vol.size < rec.size:
                raise exceptions.InvalidVolume(
                    reason=f"volume {vol.name or vol.id} holds {vol.size} bytes, backup {rec.id} needs {rec.size}"
                )
        try:
            self._run(Job(Kind.RESTORE, rec.id, vol.id, {"volume_is_new": new}), Observers(progress, on_wait),
                      wait=wait)
        except Exception:
            if new:
                self.volume_delete(vol.id, force=True)
            raise
        return self.catalog.get_backup(rec.id), self.catalog.get_volume(vol.id)

    def backup_delete(self, backup: str, *, force: bool = False, wait: float = 600.0) -> Backup:
        rec = self.catalog.get_backup(backup, deleted=True)
        if rec.status == BS.DELETED:
            raise exceptions.BackupNotFound(backup=backup)
        creating_children = self.catalog.children(rec.id, [BS.CREATING])
        if creating_children:
            raise exceptions.InvalidState(
                reason=f"backup {rec.id} is the parent of backup {creating_children[0].id}, which is being created"
            )
        if rec.format == cinder.FORMAT:
            # A Cinder incremental reads what it did not store from its parent: as in Cinder, parents go last.
            live = [BS.CREATING, BS.AVAILABLE, BS.RESTORING, BS.ERROR, BS.DELETING, BS.ERROR_DELETING]
            kids = self.catalog.children(rec.id, live)
            if kids:
                raise exceptions.InvalidState(
                    reason=f"backup {rec.id} came from Cinder and backup {kids[0].id} is an incremental on it: "
                    "delete its incrementals first"
                )
        allowed = [BS.AVAILABLE, BS.ERROR, BS.ERROR_DELETING]
        if force:
            driver = self.manager.driver(rec.service) if rec.service else None
            native = driver is not None and rec.format == driver.native_format
            if rec.status == BS.CREATING and native and not driver.capabilities.force_delete:
                raise exceptions.NotSupported(reason=f"driver '{driver.name}' cannot stop a running backup")
            allowed += [BS.CREATING, BS.RESTORING, BS.DELETING]
        elif rec.status not in allowed:
            raise exceptions.InvalidState(
                reason=f"backup {rec.id} is {rec.status}; only available or error backups can be deleted "
                "(--force stops a running one)"
            )
        if rec.protected and not force:
            raise exceptions.InvalidState(
                reason=f"backup {rec.id} is protected: unprotect it (backup set --no-protect) or use --force"
            )
        self._run(Job(Kind.DELETE, rec.id, options={"allowed": allowed, "wait": wait}))
        final = self.catalog.get_backup(rec.id, deleted=True)
        if final.status != BS.DELETED:
            raise exceptions.DriverError(reason=f"backup {rec.id} could not be deleted: {final.fail_reason}")
        return final

    def backup_verify(self, backup: str, *, progress: ProgressFn | None = None,
                      mode: check.CheckMode | None = None) -> VerifyReport:
        """Check a backup (:mod:`ashvault.check`; full by default). Damage raises ``IntegrityError`` and marks the
        backup error; a backup so marked may be verified again, and a clean full verify makes it available."""
        rec = self.catalog.get_backup(backup)
        if not check.verifiable(rec):
            raise exceptions.InvalidState(reason=f"backup {rec.id} is {rec.status}; only an available backup verifies")
        opts = (mode or check.CheckMode()).as_options()
        report: VerifyReport = self._run(Job(Kind.VERIFY, rec.id, options=opts), Observers(progress))
        if not report.ok:
            name, why = report.corrupt[0]
            more = f" ({len(report.corrupt) - 1} more corrupt objects)" if len(report.corrupt) > 1 else ""
            raise exceptions.IntegrityError(backup=rec.id, object=name, reason=why + more)
        return report

    # records

    def backup_export(self, backup: str) -> dict[str, str]:
        rec = self.catalog.get_backup(backup)
        if rec.status != BS.AVAILABLE:
            raise exceptions.InvalidState(reason=f"backup {rec.id} is {rec.status}; only an available backup exports")
        driver = self.manager.driver(rec.service)
        doc: dict[str, Any] = {}
        for field in RECORD_FIELDS:
            value = getattr(rec, field)
            doc[field] = value.isoformat() if isinstance(value, datetime.datetime) else value
        doc["driver_info"] = self.manager.export_record(rec)
        url = base64.b64encode(json.dumps(doc, sort_keys=True).encode()).decode()
        return {"backup_service": driver.name, "backup_url": url}

    def backup_import(self, backup_service: str, backup_url: str) -> Backup:
        """Record a backup exported elsewhere whose data is on this site's backend.

        Every field is checked (:func:`ashvault.records.parse_record`), and for a chunked backup that the record
        matches the manifest found on the backend, before anything is written: a refusal raises ``InvalidInput``
        (a bad field), ``NotSupported`` (a format the driver does not read) or ``InvalidBackup`` (no manifest, or
        not this record's) and leaves no row and no lock file behind. With backup workers the backend is checked
        by the worker's job, which removes the row again when it refuses."""
        try:
            doc = json.loads(base64.b64decode(backup_url, validate=True))
        except (ValueError, binascii.Error, RecursionError) as exc:
            raise exceptions.InvalidInput(reason=f"the backup record is not valid: {str(exc)[:200]}") from exc
        now = utcnow()
        fields, driver_info = parse_record(doc, now)
        driver = self.manager.driver(backup_service)
        fields["service"] = driver.name
        fields["format"] = fields["format"] or _old_format(doc)
        record = Backup(**fields, status=BS.CREATING, host=self.conf.host, read_bytes=0, updated_at=now,
                        deleted=False)
        handler = formats.handler(driver, record.format)
        check_location(record, chunked=record.format == formats.CHUNKED)
        existing = self.catalog.find_backup(record.id)
        if existing is not None and not existing.deleted:
            raise exceptions.InvalidState(reason=f"backup {record.id} already exists here ({existing.status})")
        if not self.remote:
            handler.import_record(BackupInfo.of(record), driver_info)
            digest = getattr(handler, "manifest_digest", None)
            if record.manifest_hash is None and digest is not None:  # bind it from now on
                record.manifest_hash = digest(BackupInfo.of(record))
        if existing is not None:
            self.catalog.purge_backup(existing.id)
        options = {"driver_info": driver_info, "checked": not self.remote}
        imported: Backup = self._run(Job(Kind.IMPORT, record.id, options=options), record=record)
        return imported

    def backup_import_cinder(
        self,
        *,
        records: list[str] | None = None,
        backup_id: str | None = None,
        container: str | None = None,
        prefix: str | None = None,
        driver: str | None = None,
        verify: bool = False,
    ) -> list[Backup]:
        """Adopt backups written by Cinder, with their chains (parents first); see :mod:`ashvault.cinder.importer`.
        ``records`` are ``backup_url`` values of ``cinder backup-export``.

        A driver that reads Cinder's layout of its backend natively (``capabilities.cinder_native``: ceph) finds
        them and they are recorded in its ``native_format``; any other driver with an object store reads Cinder's
        chunked format from it, recorded as ``cinder-chunked/1``."""
        from ashvault.cinder.importer import Importer, decode_record

        docs = [decode_record(url) for url in records or []]
        if driver is None and docs and docs[0].get("service"):
            driver = str(docs[0]["service"])
        drv = self.manager.driver(driver)
        caps = drv.capabilities
        native = caps.cinder_native and drv.native_format is not None
        if not native and not caps.object_store:
            raise exceptions.NotSupported(
                reason=f"driver '{drv.name}' reads no Cinder backups; Cinder's chunked backups are read through the "
                "posix, nfs, glusterfs, swift or google driver, its Ceph backups through the ceph driver"
            )
        importer = Importer(None if native else drv.store, self.catalog, driver=drv.name,
                            default_container=drv.default_container or "volumebackups", host=self.conf.host,
                            job_lock=self.manager.job_lock)
        if native:
            found = drv.find_cinder_backups(records=docs, backup_id=backup_id, container=container)
            wanted = [d["id"] for d in docs] + ([backup_id] if backup_id else [])
            return importer.adopt_found(found, wanted, fmt=str(drv.native_format))
        plan = importer.plan(records=docs, backup_id=backup_id, container=container, prefix=prefix, verify=verify)
        return importer.adopt([importer.record(item) for item in plan])


    # listing, editing, repair and lifecycle: the verbs of python-openstackclient and cinderclient

    def backup_page(
        self,
        *,
        volume: str | None = None,
        status: str | None = None,
        name: str | None = None,
        marker: str | None = None,
        limit: int | None = None,
    ) -> list[Backup]:
        """:meth:`backup_list` filtered by ``name``, starting after the backup ``marker``, at most ``limit`` long."""
        rows = self.backup_list(volume=volume, status=status)
        if name is not None:
            rows = [b for b in rows if b.name == name]
        if marker is not None:
            ids = [b.id for b in rows]
            mark = self.catalog.find_backup(marker)
            if mark is None or mark.id not in ids:
                mark = next((b for b in rows if b.name == marker), mark)
            if mark is None or mark.id not in ids:
                raise exceptions.BackupNotFound(f"marker backup '{marker}' is not in this listing")
            rows = rows[ids.index(mark.id) + 1:]
        if limit is not None:
            if limit < 0:
                raise exceptions.InvalidInput(reason="--limit must be 0 or more")
            rows = rows[:limit]
        return rows

    def backup_update(
        self,
        backup: str,
        *,
        name: str | None = None,
        description: str | None = None,
        properties: dict[str, str] | None = None,
        unset: list[str] | None = None,
        protected: bool | None = None,
    ) -> Backup:
        """Change a backup's name, description, properties or protection; ``unset`` removes property keys."""
        rec = self.catalog.get_backup(backup)
        fields: dict[str, Any] = {}
        if name is not None:
            fields["name"] = name
        if description is not None:
            fields["description"] = description
        if properties or unset:
            props = rec.props
            for key in unset or []:
                if key not in props:
                    raise exceptions.InvalidInput(reason=f"backup {rec.id} has no property '{key}'")
                del props[key]
            props.update(properties or {})
            fields["properties"] = json.dumps(props, sort_keys=True)
        if protected is not None:
            fields["protected"] = protected
        if not fields:
            raise exceptions.InvalidInput(reason="nothing to change: give --name, --description, --property or "
                                          "--protect/--no-protect")
        if not self.catalog.update_backup(rec.id, None, **fields):
            raise exceptions.BackupNotFound(backup=backup)
        return self.catalog.get_backup(rec.id)

    def backup_reset_state(self, backup: str, state: str) -> Backup:
        """Cinder's ``backup-reset-state``: an administrator's repair of a record stuck in a status.

        Only ``available`` and ``error`` may be set, never while a job runs the backup, and ``available`` only when
        the backend holds the whole backup (its driver finds its manifest or snapshot).
        """
        if state not in (BS.AVAILABLE, BS.ERROR):
            raise exceptions.InvalidInput(reason=f"--state must be {BS.AVAILABLE} or {BS.ERROR}")
        rec = self.catalog.get_backup(backup)
        if owner_alive(self.manager.job_lock(rec.id).path):
            raise exceptions.InvalidState(reason=f"backup {rec.id} is {rec.status} and its job is running; "
                                          "stop it with backup delete --force")
        if state == BS.AVAILABLE and rec.status != BS.AVAILABLE:
            try:
                self.manager.handler(rec).import_record(self.manager.info(rec), {})
            except exceptions.AshvaultError as exc:
                raise exceptions.InvalidState(
                    reason=f"backup {rec.id} cannot be available: {exc}; reset it to error"
                ) from exc
        self.catalog.update_backup(rec.id, None, status=state,
                                   fail_reason=None if state == BS.AVAILABLE else "status reset by an administrator")
        return self.catalog.get_backup(rec.id)

    def backup_prune(
        self, policy: retention.Policy, *, volume: str | None = None, dry_run: bool = False
    ) -> list[tuple[retention.Decision, str | None]]:
        """Apply ``policy`` to each volume's available backups; delete the rest unless ``dry_run``.

        Returns each decision, newest first per volume, with the error that stopped a deletion (None when it went,
        or was kept). A failed deletion does not stop the others.
        """
        if policy.empty():
            raise exceptions.InvalidInput(reason="give at least one --keep-* rule (prune never removes everything)")
        by_volume: dict[str, list[Backup]] = {}
        for b in self.backup_list(volume=volume, status=BS.AVAILABLE):
            by_volume.setdefault(b.volume_id, []).append(b)
        out: list[tuple[retention.Decision, str | None]] = []
        for backups in by_volume.values():
            for decision in retention.decide(backups, policy):
                error = None
                if not decision.keep and not dry_run:
                    LOG.info("prune: deleting backup %s of volume %s (%s)", decision.backup.id,
                             decision.backup.volume_id, policy.describe())
                    try:
                        self.backup_delete(decision.backup.id)
                    except exceptions.AshvaultError as exc:
                        error = str(exc)
                out.append((decision, error))
        return out

    def storage_usage(self, volume_ids: set[str] | None = None) -> accounting.Usage:
        """What every available backup, volume and container holds on its backend (see ``ashvault.accounting``).

        With ``volume_ids``, only those volumes' backups are read: backups share objects only within a volume, so
        their figures are the same, and container totals cover those volumes alone.
        """

        def holdings(b: Backup) -> dict[str, int] | None:
            if b.format != formats.CHUNKED:
                return None
            try:
                handler = self.manager.handler(b)
            except exceptions.ConfigurationError:
                return None
            from ashvault.chunked import ChunkedFormat

            assert isinstance(handler, ChunkedFormat)
            try:
                return handler.object_usage(self.manager.info(b, with_parent=False))
            except exceptions.AshvaultError as exc:
                # One unreadable backup must not hide the others' figures; verify names what is wrong.
                LOG.warning("backup %s: counting what it recorded, its manifest cannot be read: %s", b.id, exc)
                return None

        live = [b for b in self.catalog.list_backups() if b.status in (BS.AVAILABLE, BS.RESTORING)
                and (volume_ids is None or b.volume_id in volume_ids)]
        return accounting.account(live, holdings)

    def backup_verify_all(
        self,
        *,
        volume: str | None = None,
        container: str | None = None,
        mode: check.CheckMode | None = None,
        progress: Callable[[Backup], ProgressFn | None] | None = None,
    ) -> list[check.Outcome]:
        """Verify every backup that :func:`check.verifiable` allows, oldest first, of one volume or container if
        given, each as deep as ``mode`` says. Each backup's outcome is returned; none stops the others."""
        if container is not None:
            check_name(container, what="container name")
        # One run id: the jobs read an object their chain shares once (in one process; each worker keeps its own).
        options = {**(mode or check.CheckMode()).as_options(), "run": uuid.uuid4().hex}
        out = []
        for b in self.backup_list(volume=volume):
            if not check.verifiable(b) or (container is not None and b.container != container):
                continue
            try:
                report = self._run(Job(Kind.VERIFY, b.id, options=options),
                                   Observers(progress(b) if progress else None))
            except exceptions.NotSupported as exc:
                out.append(check.Outcome(b, check.UNSUPPORTED, problem=check.problem(exc)))
            except (exceptions.IntegrityError, exceptions.InvalidBackup) as exc:
                out.append(check.Outcome(b, check.FAILED, problem=check.problem(exc)))
            except exceptions.AshvaultError as exc:
                out.append(check.Outcome(b, check.ERROR, problem=str(exc)))
            else:
                out.append(check.Outcome.of(b, report))
        return out

    def catalog_rebuild(self, *, container: str | None = None, driver: str | None = None,
                        dry_run: bool = False) -> list[Any]:
        """Re-create the volume and backup records of ``container``'s chunked backups that the catalog lacks, from
        their manifests (:mod:`ashvault.rebuild`); returns a :class:`ashvault.rebuild.Rebuilt` per record seen."""
        from ashvault import rebuild

        drv = self.manager.driver(driver)
        if not drv.capabilities.object_store:
            raise exceptions.NotSupported(reason=f"driver '{drv.name}' keeps no chunked backups to rebuild from")
        handler = formats.handler(drv, formats.CHUNKED)
        from ashvault.chunked import ChunkedFormat

        assert isinstance(handler, ChunkedFormat)
        where = check_name(container or handler.default_container, what="container name")
        return rebuild.rebuild(self.catalog, handler, where, driver=drv.name, host=self.conf.host,
                               zone=self.conf.storage_availability_zone, dry_run=dry_run)


def _old_format(doc: dict[str, Any]) -> str:
    """The format of a record exported before records carried one: only ceph's RBD backups said theirs."""
    info = doc.get("driver_info") or {}
    return "ceph-rbd/1" if isinstance(info, dict) and info.get("format") == "ashvault-ceph-rbd/1" else formats.CHUNKED
