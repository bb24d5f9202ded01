"""Tier 1 of the driver contract: a backup driver moves a whole volume to and from a backend.

Drivers that move volumes natively (Ceph RBD to RBD, TSM) implement :class:`BackupDriver` directly. Drivers over an
object store subclass :class:`ashvault.chunked.ChunkedBackupDriver` and only provide an
:class:`ashvault.objectstore.ObjectStore`.

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
from ashvault.sources import VolumeReader, VolumeWriter


@dataclasses.dataclass(frozen=True)
class Capabilities:
    """What a driver can do, as data the core and the CLI read instead of probing."""

    incremental: bool = True
    force_delete: bool = True
    """A running backup can be cancelled by a force delete, and what it wrote removed."""
    record_export: bool = True
    verify: bool = True
    native_diff: bool = False
    """Incrementals come from the backend's own diff (RBD export-diff) rather than from block hashes."""
    delete_any: bool = True
    """Any backup of a chain may be deleted while the others stay restorable."""
    max_connections: int = 4

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


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
    size: int = 0
    """Volume size in bytes at backup time (0 until known)."""
    created_at: datetime.datetime | None = None
    parent: BackupInfo | None = None
    """The parent record, for incrementals."""


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

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        self.conf = conf

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

    @abc.abstractmethod
    def backup(self, backup: BackupInfo, source: VolumeReader, ctx: JobContext) -> BackupResult:
        """Back up ``source`` as ``backup``; incremental when ``backup.parent`` is set.

        Nothing this writes may damage another backup. On any failure the backup is unusable, and what it wrote is
        removed by a later :meth:`delete_backup` of the same record.

        Raises :class:`~ashvault.exceptions.BackupCancelled` when ``ctx`` reports a cancel,
        :class:`~ashvault.exceptions.NotSupported` for an incremental the driver cannot make,
        :class:`~ashvault.exceptions.DriverError` (or a subclass) when the backend fails for good.
        """

    @abc.abstractmethod
    def restore(self, backup: BackupInfo, target: VolumeWriter, ctx: JobContext, *, volume_is_new: bool) -> None:
        """Write the volume as it was at ``backup`` into ``target``, every byte of it.

        When ``volume_is_new`` the target reads as zeros already and zero regions may be left unwritten.
        Data is checked against its stored hash before it is written.

        Raises :class:`~ashvault.exceptions.IntegrityError` naming the backup and the object when stored data is
        corrupt, :class:`~ashvault.exceptions.RestoreCancelled` on cancel,
        :class:`~ashvault.exceptions.InvalidBackup` when the backup's data is missing or unreadable,
        :class:`~ashvault.exceptions.DriverError` when the backend fails.
        """

    @abc.abstractmethod
    def delete_backup(self, backup: BackupInfo, ctx: JobContext) -> None:
        """Remove what belongs to ``backup`` alone, leaving every other backup restorable.

        Idempotent: data already gone is not an error, and a backup that failed half-way is cleaned up too.
        Raises :class:`~ashvault.exceptions.DriverError` when the backend fails.
        """

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

    def close(self) -> None:
        """Release connections. The driver is not used afterwards."""
