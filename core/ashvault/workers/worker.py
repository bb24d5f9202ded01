"""One backup worker process: takes jobs off the bus, claims each in the catalog once, runs it with the manager,
beats its heart in the catalog, and resolves the jobs of workers whose heart stopped.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from typing import Any

from oslo_config import cfg

from ashvault import exceptions
from ashvault.catalog import Backup, BackupStatus, Catalog, JobRecord, JobState, Service, VolumeStatus
from ashvault.catalog.models import utcnow
from ashvault.driver import JobContext
from ashvault.jobs import detached
from ashvault.jobs.job import Job, Kind, Observers
from ashvault.jobs.manager import Manager, one_line
from ashvault.workers import messaging
from ashvault.workers.dispatcher import encode_error, encode_result

LOG = logging.getLogger(__name__)
BINARY = "ashvault-backup"
BS = BackupStatus
VS = VolumeStatus


def service_status(service: Service, down_time: float) -> str:
    if service.stopped:
        return "stopped"
    age = (utcnow() - service.heartbeat_at).total_seconds()
    return "up" if age <= down_time else "down"


def resolve(manager: Manager, job: Job, reason: str) -> None:
    """Leave what ``job`` left behind consistent after it failed where it could not say so itself: a backup's data
    removed and the backup in error, a restore's backup available again and its volume in error, a delete
    finished. ``reason`` becomes the backup's ``fail_reason``."""
    catalog = manager.catalog
    b = catalog.find_backup(job.backup_id)
    if b is None:
        return
    if job.kind == Kind.BACKUP and b.status == BS.CREATING:
        reason = _remove_data(manager, b, reason)
        won = catalog.update_backup(b.id, [BS.CREATING], status=BS.ERROR, fail_reason=reason)
        if won and job.options.get("volume_claimed") and job.volume_id:
            catalog.set_volume_status(job.volume_id, [VS.BACKING_UP], VS.AVAILABLE)
    elif job.kind == Kind.RESTORE and b.status == BS.RESTORING:
        if catalog.update_backup(b.id, [BS.RESTORING], status=BS.AVAILABLE, restore_volume_id=None,
                                 fail_reason=reason):
            bad = VS.ERROR if job.options.get("volume_is_new") else VS.ERROR_RESTORING
            catalog.set_volume_status(job.volume_id or "", [VS.RESTORING], bad)
    elif job.kind == Kind.DELETE and b.status == BS.DELETING:
        try:
            manager.run(job)
        except Exception as exc:
            LOG.warning("backup %s: finishing its delete failed: %s", b.id, one_line(exc))
    elif job.kind == Kind.IMPORT and b.status == BS.CREATING:
        catalog.purge_backup(b.id)


def _remove_data(manager: Manager, b: Backup, reason: str) -> str:
    try:
        manager.handler(b).delete_backup(manager.info(b, with_parent=False), JobContext())
    except Exception as exc:
        return f"{reason}; what it wrote could not be removed: {one_line(exc)}"
    return reason


class Endpoint:
    """What the bus calls on a worker."""

    def __init__(self, worker: Worker) -> None:
        self._worker = worker

    def run_job(self, ctxt: dict[str, Any], job_id: str) -> None:
        self._worker.run_job(job_id)


class Worker:
    def __init__(self, conf: cfg.ConfigOpts, catalog: Catalog) -> None:
        self.conf = conf
        self.catalog = catalog
        self.manager = Manager(conf, catalog)
        self.host: str = conf.host
        self.id = f"{self.host}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.pool = conf.backup_max_operations or 16
        self._running: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: Any = None
        self._transport: Any = None
        self._sender: messaging.Sender | None = None

    # life

    def start(self) -> None:
        self.catalog.add(Service(id=self.id, host=self.host, binary_name=BINARY, pid=os.getpid()))
        om = messaging._messaging()
        self._transport = messaging.transport(self.conf, self.pool)
        self._sender = messaging.Sender(self._transport)
        target = om.Target(topic=messaging.TOPIC, server=self.host)
        self._server = om.get_rpc_server(self._transport, target, [Endpoint(self)], executor="threading",
                                         access_policy=om.rpc.DefaultRPCAccessPolicy)
        self._server.start()
        for target, name in ((self._beat_loop, "ashvault-heartbeat"), (self._watch_loop, "ashvault-watch")):
            threading.Thread(target=target, name=name, daemon=True).start()
        LOG.info("worker %s: listening on %s and %s.%s", self.id, messaging.TOPIC, messaging.TOPIC, self.host)

    def stop(self) -> None:
        """Take no more jobs, let the running ones finish for ``graceful_shutdown_timeout`` seconds, then hand back
        the rest (marked error, what they wrote removed)."""
        LOG.info("worker %s: stopping", self.id)
        if self._server is not None:
            self._server.stop()
        deadline = time.monotonic() + self.conf.graceful_shutdown_timeout
        while self.running() and time.monotonic() < deadline:
            time.sleep(0.1)
        self._stopping.set()
        for job_id in self.running():
            rec = self.catalog.get_job(job_id)
            reason = f"worker {self.id} was stopped before the job finished"
            if self.catalog.end_job(job_id, self.id, JobState.ERROR, encode_error(exceptions.AshvaultError(), reason)):
                resolve(self.manager, Job.from_json(rec.body), reason)
                LOG.warning("job %s: handed back (%s)", job_id, reason)
        self._heartbeat(stopped=True)
        if self._server is not None and not self.running():
            self._server.wait()
        if self._transport is not None:
            self._transport.cleanup()
        self.manager.close()

    def running(self) -> list[str]:
        with self._lock:
            return list(self._running)

    # jobs

    def run_job(self, job_id: str) -> None:
        if self._stopping.is_set():
            return
        if not self.catalog.claim_job(job_id, self.id):
            LOG.info("job %s: already claimed, not run again", job_id)
            return
        with self._lock:
            self._running[job_id] = threading.current_thread()
        try:
            rec = self.catalog.get_job(job_id)
            job = Job.from_json(rec.body)
            LOG.info("job %s: claimed: %s of backup %s", job_id, job.kind, job.backup_id)
            if job.kind == Kind.BACKUP:
                self.catalog.update_backup(job.backup_id, None, host=self.host)
            self._run(rec, job)
        finally:
            with self._lock:
                self._running.pop(job_id, None)

    def _run(self, rec: JobRecord, job: Job) -> None:
        try:
            value = self.manager.run(job, Observers(progress=self._progress(rec.id)))
        except Exception as exc:
            text = one_line(exc)
            LOG.info("job %s: failed: %s", rec.id, text)
            self._settle(rec, job, exc, text)
            return
        self._retry(lambda: self.catalog.end_job(rec.id, self.id, JobState.DONE, encode_result(job.kind, value)))
        LOG.info("job %s: done", rec.id)

    def _settle(self, rec: JobRecord, job: Job, exc: Exception, text: str) -> None:
        """Record a failed job; when the catalog itself failed, wait for it to come back and then leave the
        backup in error rather than half recorded."""

        def record() -> None:
            # A backup still creating (or a restore still restoring) after its job failed is half recorded: the
            # catalog failed under the manager before it could say so.
            if job.kind != Kind.DELETE or isinstance(exc, exceptions.CatalogError):
                resolve(self.manager, job, f"the job failed: {text}")
            self.catalog.end_job(rec.id, self.id, JobState.ERROR, encode_error(exc, text))

        self._retry(record)

    def _retry(self, action: Any) -> None:
        """Run ``action`` until the catalog takes it (it may be restarting), for at most ``service_down_time``."""
        deadline = time.monotonic() + self.conf.service_down_time
        while True:
            try:
                action()
                return
            except exceptions.CatalogError as exc:
                if time.monotonic() > deadline:
                    LOG.error("giving up recording a job's end: %s", exc)
                    return
                time.sleep(0.5)

    def _progress(self, job_id: str) -> Any:
        state = {"at": 0.0}

        def report(done: int, total: int) -> None:
            now = time.monotonic()
            if now - state["at"] >= 0.5 or done >= total:
                state["at"] = now
                try:
                    self.catalog.job_progress(job_id, done, total)
                except exceptions.CatalogError:
                    pass

        return report

    # liveness

    def _heartbeat(self, **fields: Any) -> None:
        self.catalog.heartbeat(self.id, jobs_running=len(self.running()), **fields)

    def _beat_loop(self) -> None:
        """Heartbeats, in a thread of their own so that resolving others' jobs never delays them."""
        self._every(self._heartbeat, "heartbeat")

    def _watch_loop(self) -> None:
        def watch() -> None:
            self.take_over()
            self.resend()

        self._every(watch, "watch")

    def _every(self, action: Any, what: str) -> None:
        while not self._stopping.wait(self.conf.report_interval):
            try:
                action()
            except exceptions.CatalogError as exc:
                LOG.warning("worker %s: the catalog did not answer (%s); trying again", self.id, exc)
            except Exception:
                LOG.exception("worker %s: %s failed", self.id, what)

    def take_over(self) -> list[str]:
        """Mark error the running jobs of workers that are down (or stopped), once each; returns their ids."""
        down_time = self.conf.service_down_time
        services = {s.id: s for s in self.catalog.list_services()}
        done = []
        for rec in self.catalog.list_jobs(state=JobState.RUNNING):
            owner = services.get(rec.worker or "")
            if rec.worker == self.id or (owner is not None and service_status(owner, down_time) == "up"):
                continue
            if detached.is_detached(rec.worker):
                continue  # run by a process with no heartbeat: its host's next command resolves it, by its lock
            who = f"{owner.host} pid {owner.pid}" if owner else rec.worker
            reason = (f"the worker running it ({who}) sent no heartbeat for {down_time} s; worker {self.id} "
                      "marked it error")
            if not self.catalog.end_job(rec.id, rec.worker, JobState.ERROR,
                                        encode_error(exceptions.AshvaultError(), reason)):
                continue
            LOG.warning("job %s: taken over: %s", rec.id, reason)
            resolve(self.manager, Job.from_json(rec.body), reason)
            done.append(rec.id)
        return done

    def resend(self) -> list[str]:
        """Send again the jobs queued longer than ``job_resend_interval`` (the bus may have lost them)."""
        assert self._sender is not None
        now = utcnow()
        sent = []
        for rec in self.catalog.list_jobs(state=JobState.QUEUED):
            if (now - rec.sent_at).total_seconds() < self.conf.job_resend_interval:
                continue
            if self.catalog.resend_job(rec.id, rec.sent_at):
                LOG.info("job %s: still queued; sent again", rec.id)
                self._sender.cast(rec.id, rec.topic_host)
                sent.append(rec.id)
        return sent
