"""Catalog records: volumes and backups, with Cinder's backup statuses.

Plain dataclasses, and the code's whole view of the schema: each field is a column, its type (``str``, ``int``,
``bool``, ``datetime``, or one of them ``| None`` for a nullable column) says how it is stored and read back
(``schema.py``). A column added here needs an alembic migration in ``migrations/versions``, and a test fails until
the migrated database and these fields agree.
"""

import dataclasses
import datetime
import json


class BackupStatus:
    CREATING = "creating"
    AVAILABLE = "available"
    DELETING = "deleting"
    DELETED = "deleted"
    RESTORING = "restoring"
    ERROR = "error"
    ERROR_DELETING = "error_deleting"
    ALL = (CREATING, AVAILABLE, DELETING, DELETED, RESTORING, ERROR, ERROR_DELETING)


class VolumeStatus:
    AVAILABLE = "available"
    BACKING_UP = "backing-up"
    RESTORING = "restoring-backup"
    ERROR = "error"
    ERROR_RESTORING = "error_restoring"
    UNAVAILABLE = "unavailable"
    """Recorded by a catalog rebuild, which cannot know where the volume is (``location`` is empty)."""


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclasses.dataclass(kw_only=True, eq=False)
class Volume:
    id: str
    location: str
    name: str | None = None
    description: str | None = None
    source: str = "file"
    managed: bool = False
    """Created by ashvault (its data is removed with the record) rather than registered."""
    host: str | None = None
    """The host that registered or created it: a host-local volume (a file) is served by that host's workers."""
    size: int = 0
    status: str = VolumeStatus.AVAILABLE
    created_at: datetime.datetime = dataclasses.field(default_factory=utcnow)
    updated_at: datetime.datetime = dataclasses.field(default_factory=utcnow)


@dataclasses.dataclass(kw_only=True, eq=False)
class Backup:
    id: str
    volume_id: str
    status: str
    name: str | None = None
    description: str | None = None
    container: str | None = None
    parent_id: str | None = None
    fail_reason: str | None = None
    size: int = 0
    """Volume size in bytes."""
    service: str | None = None
    """Name of the driver that holds the data."""
    service_metadata: str | None = None
    format: str = "chunked/1"
    """How the backup's data is laid out on the backend (``chunked/1``, ``ceph-rbd/1``, ...); written by the core."""
    object_count: int = 0
    stored_bytes: int = 0
    read_bytes: int = 0
    host: str | None = None
    restore_volume_id: str | None = None
    availability_zone: str | None = None
    data_timestamp: datetime.datetime | None = None
    created_at: datetime.datetime = dataclasses.field(default_factory=utcnow)
    updated_at: datetime.datetime = dataclasses.field(default_factory=utcnow)
    deleted_at: datetime.datetime | None = None
    deleted: bool = False
    protected: bool = False
    """Kept by ``backup prune`` and refused by ``backup delete`` without ``--force``."""
    properties: str = "{}"
    """A JSON object of string keys and values (``backup set --property``); read it through :attr:`props`."""
    manifest_hash: str | None = None
    """Content hash of a chunked backup's manifest as written; restore and verify refuse any other manifest."""

    @property
    def is_incremental(self) -> bool:
        return self.parent_id is not None

    @property
    def props(self) -> dict[str, str]:
        return dict(json.loads(self.properties or "{}"))

class JobState:
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    ERROR = "error"
    ACTIVE = (QUEUED, RUNNING)


@dataclasses.dataclass(kw_only=True, eq=False)
class JobRecord:
    """A job sent to the backup workers (``ashvault_transport_url`` set): the catalog's copy is the truth, the message
    a hint. Without workers, a job started with ``--no-wait`` has a row too, running under ``<host>:detached``
    (:mod:`ashvault.jobs.detached`), for its progress.

    A worker runs it only after moving it from queued to running with its own ``worker`` id in one conditional
    update, so a message delivered twice runs once.
    """

    id: str
    kind: str
    backup_id: str
    body: str
    """The job as JSON (:meth:`ashvault.jobs.job.Job.to_json`)."""
    topic_host: str | None = None
    """Only workers of this host may run it (its volume is a file there); None: any worker."""
    state: str = JobState.QUEUED
    worker: str | None = None
    """Id of the service running or having run it."""
    done_bytes: int = 0
    total_bytes: int = 0
    result: str | None = None
    """JSON: the outcome for the caller (a verify report), or the error's class and message."""
    sent_at: datetime.datetime = dataclasses.field(default_factory=utcnow)
    created_at: datetime.datetime = dataclasses.field(default_factory=utcnow)
    claimed_at: datetime.datetime | None = None
    finished_at: datetime.datetime | None = None


@dataclasses.dataclass(kw_only=True, eq=False)
class Service:
    """One ``ashvault-backup`` worker process, with its heartbeat."""

    id: str
    host: str
    binary_name: str
    pid: int
    stopped: bool = False
    jobs_running: int = 0
    heartbeat_at: datetime.datetime = dataclasses.field(default_factory=utcnow)
    created_at: datetime.datetime = dataclasses.field(default_factory=utcnow)
