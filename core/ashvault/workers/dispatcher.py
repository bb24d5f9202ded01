"""The RPC dispatcher: records a job in the catalog and casts it to the backup workers; the caller may wait for it.

It stands where :class:`ashvault.jobs.dispatcher.LocalDispatcher` stands when ``ashvault_transport_url`` is set. The
catalog
row is the job's truth (a worker claims it there, once); the message only wakes a worker, and is sent again from the
row if the bus lost it.
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from typing import Any

from oslo_config import cfg

from ashvault import exceptions
from ashvault.catalog import Catalog, JobRecord, JobState
from ashvault.driver import VerifyReport
from ashvault.jobs.job import Job, Kind, Observers
from ashvault.jobs.manager import Manager


def encode_result(kind: str, value: Any) -> str | None:
    if kind == Kind.VERIFY and isinstance(value, VerifyReport):
        return json.dumps({"report": dataclasses.asdict(value)})
    return None


def encode_error(exc: BaseException, text: str) -> str:
    name = type(exc).__name__ if isinstance(exc, exceptions.AshvaultError) else "DriverError"
    return json.dumps({"error": name, "message": text})


def decode_error(result: str | None) -> exceptions.AshvaultError:
    doc = json.loads(result or "{}")
    cls = getattr(exceptions, str(doc.get("error")), None)
    if not (isinstance(cls, type) and issubclass(cls, exceptions.AshvaultError)):
        cls = exceptions.DriverError
    exc = cls.__new__(cls)
    exceptions.AshvaultError.__init__(exc, doc.get("message") or "the job failed on its worker")
    return exc


class RemoteJob:
    """A job sent to the workers: :meth:`result` waits for its end in the catalog, reporting its progress."""

    def __init__(self, catalog: Catalog, job: Job, job_id: str, observers: Observers) -> None:
        self.catalog = catalog
        self.job = job
        self.id = job_id
        self._observers = observers

    def result(self, timeout: float | None = None) -> Any:
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.005
        progress = self._observers.progress
        while True:
            rec = self.catalog.get_job(self.id)
            if progress is not None and rec.total_bytes:
                progress(rec.done_bytes, rec.total_bytes)
            if rec.state == JobState.DONE:
                return self._value(rec)
            if rec.state == JobState.ERROR:
                raise decode_error(rec.result)
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {self.id} is still {rec.state}")
            time.sleep(pause)
            pause = min(pause * 2, 0.25)

    def _value(self, rec: JobRecord) -> Any:
        if self.job.kind in (Kind.BACKUP, Kind.IMPORT):
            return self.catalog.get_backup(self.job.backup_id)
        if self.job.kind == Kind.VERIFY:
            doc = json.loads(rec.result or "{}")["report"]
            doc["corrupt"] = [tuple(pair) for pair in doc.get("corrupt", [])]
            return VerifyReport(**doc)
        return None


class RpcDispatcher:
    """Sends jobs to ``ashvault-backup`` workers over oslo.messaging."""

    def __init__(self, conf: cfg.ConfigOpts, manager: Manager) -> None:
        self.conf = conf
        self.manager = manager
        self.catalog = manager.catalog
        self._transport: Any = None
        self._sender: Any = None

    def _send(self, job_id: str, host: str | None) -> None:
        # Connected on first use: listing or showing needs no bus.
        from ashvault.workers import messaging

        if self._sender is None:
            self._transport = messaging.transport(self.conf)
            self._sender = messaging.Sender(self._transport)
        self._sender.cast(job_id, host)

    def target_host(self, job: Job) -> str | None:
        """The host whose workers must run ``job``: its volume's, when that volume is a file there."""
        if job.volume_id is None or job.kind not in (Kind.BACKUP, Kind.RESTORE):
            return None
        volume = self.catalog.get_volume(job.volume_id)
        return volume.host if self.manager.source(volume.source).host_local else None

    def submit(self, job: Job, observers: Observers | None = None) -> RemoteJob:
        host = self.target_host(job)
        rec = JobRecord(id=str(uuid.uuid4()), kind=job.kind, backup_id=job.backup_id, body=job.to_json(),
                        topic_host=host)
        self.catalog.add(rec)
        # The worker holds the job from here; this process's lock would only outlive its interest.
        self.manager.abandon(job)
        self._send(rec.id, host)
        return RemoteJob(self.catalog, job, rec.id, observers or Observers())

    def shutdown(self) -> None:
        if self._transport is not None:
            self._transport.cleanup()
