"""The driver contract: what a backup driver offers the core, in two tiers.

Tier 1: a driver that moves some volumes natively (Ceph RBD to RBD, TSM) names the source schemes it moves
(``capabilities.native_sources``) and the format tag its backups carry (``native_format``), and implements
``backup``, ``restore``, ``delete_backup`` (and ``verify``, ``export_record``, ``import_record``) for them.

Tier 2: a driver that offers an object store (``make_object_store``; :class:`ashvault.chunked.ChunkedBackupDriver`
is the usual base) gets the core's chunked engine (format ``chunked/1``) for every other source.

A driver may be both (ceph). The core picks the path, not the driver: :mod:`ashvault.formats` routes a backup by
the volume's source scheme and every later operation by the format tag the catalog recorded.

A driver never touches the catalog: the manager hands it a :class:`BackupInfo` and a :class:`JobContext`, and writes
what the driver returns. Every method states what it raises; anything else escaping a driver is a bug.
"""

from __future__ import annotations

import abc
import dataclasses
import datetime
from collections.abc import Callable
from typing import Any, ClassVar

from oslo_config import cfg

from ashvault import exceptions
from ashvault.objectstore import ObjectStore
from ashvault.sources import VolumeReader, VolumeWriter


@dataclasses.dataclass(frozen=True)
class Capabilities:
    """What a driver can do, as data the core and the CLI read instead of probing."""

    incremental: bool = True
    """Makes incremental backups (the API refuses ``--incremental`` otherwise)."""
    force_delete: bool = True
    """A running native backup can be cancelled by a force delete, and what it wrote removed (a chunked one
    always can)."""
    verify: bool = True
    """Its native backups can be verified (chunked backups always can)."""
    native_sources: frozenset[str] = frozenset()
    """Source schemes (``rbd``, ``file``) the driver moves natively, in its ``native_format``."""
    object_store: bool = False
    """Offers an object store (``make_object_store``) for the core's chunked engine: every source that is not
    native is backed up into it as ``chunked/1``."""
    cinder_native: bool = False
    """Adopts the backups Cinder's own driver for this backend wrote, in ``native_format``
    (:meth:`BackupDriver.find_cinder_backups`: Cinder's ceph RBD images); otherwise Cinder's chunked backups are read
    from the object store as ``cinder-chunked/1``."""

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["native_sources"] = sorted(self.native_sources)
        return d


@dataclasses.dataclass
class BackupInfo:
    """The part of a catalog record a driver may read."""

    id: str
    volume_id: str
    name: str | None = None
    description: str | None = None
    container: str | None = None
    parent_id: str | None = None
    service_metadata: str | None = None
    format: str = "chunked/1"
    """The format tag the core recorded for this backup (:mod:`ashvault.formats`)."""
    size: int = 0
    """Volume size in bytes at backup time (0 until known)."""
    created_at: datetime.datetime | None = None
    manifest_hash: str | None = None
    """The content hash of a chunked backup's manifest, when the catalog recorded it."""
    parent: BackupInfo | None = None
    """The parent record, for incrementals."""

    @classmethod
    def of(cls, record: Any, parent: BackupInfo | None = None) -> BackupInfo:
        """The driver's view of a catalog record: every field of this class the record has."""
        return cls(**{f.name: getattr(record, f.name) for f in _INFO_FIELDS}, parent=parent)


_INFO_FIELDS = [f for f in dataclasses.fields(BackupInfo) if f.name != "parent"]


@dataclasses.dataclass
class BackupResult:
    """What a successful ``backup`` reports back to the catalog."""

    container: str
    service_metadata: str
    size: int
    object_count: int = 0
    stored_bytes: int = 0
    """Bytes this backup added to the backend (new objects only)."""
    read_bytes: int = 0
    """Bytes read from the source."""
    manifest_hash: str | None = None
    """Content hash of the manifest written (chunked backups), recorded to bind it to the backup."""


@dataclasses.dataclass
class VerifyReport:
    backup_id: str
    objects_checked: int = 0
    bytes_checked: int = 0
    corrupt: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    """(object name, reason) for every object that failed."""

    @property
    def ok(self) -> bool:
        return not self.corrupt


ProgressFn = Callable[[int, int], None]


class JobContext:
    """Handed to a driver for one operation: progress reporting and cancellation.

    ``check`` raises :class:`ashvault.exceptions.Cancelled` (or the subclass given at construction) once the
    operation has been cancelled; drivers call it once per object or chunk, so that a cancel takes effect at the
    next chunk.
    """

    def __init__(
        self,
        *,
        progress: ProgressFn | None = None,
        is_cancelled: Callable[[], bool] | None = None,
        cancel_error: type[exceptions.Cancelled] = exceptions.Cancelled,
    ) -> None:
        self._progress = progress
        self._is_cancelled = is_cancelled
        self._cancel_error = cancel_error
        self.cancelled = False

    def progress(self, done: int, total: int) -> None:
        if self._progress is not None:
            self._progress(done, total)

    def check(self) -> None:
        if self.cancelled or (self._is_cancelled is not None and self._is_cancelled()):
            self.cancelled = True
            raise self._cancel_error(reason="the record's status changed while it ran")


class BackupDriver(abc.ABC):
    """Base of every backup driver.

    ``name`` must equal the driver's entry-point name in ``ashvault.drivers``; ``option_group`` is the configuration
    group its options live in (``backup_<name>`` by convention).
    """

    name: ClassVar[str]
    option_group: ClassVar[str]
    capabilities: ClassVar[Capabilities] = Capabilities()
    native_format: ClassVar[str | None] = None
    """The format tag of the backups this driver writes natively (``ceph-rbd/1``); None for a Tier 2 driver."""

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        self.conf = conf
        self._store: ObjectStore | None = None

    @classmethod
    def get_driver_options(cls) -> list[cfg.Opt]:
        """The options of ``option_group``. Must not import the backend's SDK."""
        return []

    @property
    def options(self) -> Any:
        """This driver's option group, read from the configuration."""
        return self.conf[self.option_group]

    def check_for_setup_error(self) -> None:
        """Check configuration and that the backend answers.

        Raises :class:`~ashvault.exceptions.DriverSetupError` with a reason a person can act on
        (unreachable endpoint, bad credentials, missing container); never anything else.
        """

    @property
    def default_container(self) -> str | None:
        """The container (bucket, pool) a backup naming none goes to."""
        return None

    # Tier 2

    def make_object_store(self) -> ObjectStore:
        """Build the backend's object store from ``self.options`` (when ``capabilities.object_store``).

        Raises ``DriverSetupError``."""
        raise exceptions.NotSupported(reason=f"driver '{self.name}' offers no object store")

    @property
    def store(self) -> ObjectStore:
        """The object store, wrapped with the core's retry, bandwidth-limit and encryption behaviour
        (:func:`ashvault.wrappers.wrap`); made once."""
        if self._store is None:
            if not self.capabilities.object_store:
                raise exceptions.NotSupported(reason=f"driver '{self.name}' offers no object store")
            from ashvault.wrappers import wrap  # the wrappers load only once a store is made

            self._store = wrap(self.make_object_store(), self.conf, self.options)
        return self._store

    # Tier 1: the native path, for the sources in ``capabilities.native_sources``

    def backup(self, backup: BackupInfo, source: VolumeReader, ctx: JobContext) -> BackupResult:
        """Back up ``source`` as ``backup``; incremental when ``backup.parent`` is set.

        Nothing this writes may damage another backup. On any failure the backup is unusable, and what it wrote is
        removed by a later :meth:`delete_backup` of the same record.

        Raises :class:`~ashvault.exceptions.BackupCancelled` when ``ctx`` reports a cancel,
        :class:`~ashvault.exceptions.NotSupported` for an incremental the driver cannot make,
        :class:`~ashvault.exceptions.DriverError` (or a subclass) when the backend fails for good.
        """
        raise self._no_native("back up")

    def restore(self, backup: BackupInfo, target: VolumeWriter, ctx: JobContext, *, volume_is_new: bool) -> None:
        """Write the volume as it was at ``backup`` into ``target``, every byte of it.

        When ``volume_is_new`` the target reads as zeros already and zero regions may be left unwritten.
        Data is checked against its stored hash before it is written.

        Raises :class:`~ashvault.exceptions.IntegrityError` naming the backup and the object when stored data is
        corrupt, :class:`~ashvault.exceptions.RestoreCancelled` on cancel,
        :class:`~ashvault.exceptions.InvalidBackup` when the backup's data is missing or unreadable,
        :class:`~ashvault.exceptions.DriverError` when the backend fails.
        """
        raise self._no_native("restore")

    def delete_backup(self, backup: BackupInfo, ctx: JobContext) -> None:
        """Remove what belongs to ``backup`` alone, leaving every other backup restorable.

        Idempotent: data already gone is not an error, and a backup that failed half-way is cleaned up too.
        Raises :class:`~ashvault.exceptions.DriverError` when the backend fails.
        """
        raise self._no_native("delete")

    def verify(self, backup: BackupInfo, ctx: JobContext) -> VerifyReport:
        """Read every object ``backup`` needs and check it against its hash.

        Returns a report listing the corrupt objects (an empty list means the backup restores). Raises
        :class:`~ashvault.exceptions.InvalidBackup` when the backup's manifest is missing or unreadable,
        :class:`~ashvault.exceptions.NotSupported` when the driver has no way to check.
        """
        raise exceptions.NotSupported(reason=f"driver '{self.name}' cannot verify backups")

    def export_record(self, backup: BackupInfo) -> dict[str, Any]:
        """Driver data needed to import ``backup`` on another site (``driver_info``)."""
        return {}

    def import_record(self, backup: BackupInfo, driver_info: dict[str, Any]) -> None:
        """Check that an imported record's data is present on the backend.

        Raises :class:`~ashvault.exceptions.InvalidBackup` when it is not.
        """

    def find_cinder_backups(self, *, records: list[dict[str, Any]], backup_id: str | None,
                            container: str | None) -> list[BackupInfo]:
        """Backups Cinder's own driver for this backend wrote in ``container``, named by Cinder's exported
        ``records`` or by ``backup_id``, with the earlier backups of their chains, parents first, described as
        ``native_format`` backups (when ``capabilities.cinder_native``).

        Raises :class:`~ashvault.exceptions.InvalidBackup` naming the backup when it is not there.
        """
        raise self._no_native("adopt Cinder's")

    def _no_native(self, what: str) -> exceptions.NotSupported:
        return exceptions.NotSupported(reason=f"driver '{self.name}' cannot {what} backups natively")

    def close(self) -> None:
        """Release connections. The driver is not used afterwards."""
        if self._store is not None:
            self._store.close()
            self._store = None
