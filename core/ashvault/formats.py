"""Format tags and their handlers: the core, not the driver, decides which code reads and writes a backup.

Every backup record carries a format tag (``Backup.format``), written by the core when the backup is recorded:

- ``chunked/1``: the core's chunked engine over the driver's object store (FORMAT.md), for every driver that
  offers one (``capabilities.object_store``);
- a driver's ``native_format`` (``ceph-rbd/1``, ``tsm/1``): the driver's own methods, for the source schemes in
  ``capabilities.native_sources``;
- any tag registered here with :func:`register`: a handler the core builds over the driver (``cinder-chunked/1``,
  the reader of Cinder's chunked format over the driver's store, :mod:`ashvault.cinder.handler`).

A backup goes native when its volume's scheme is one the driver moves natively, and chunked otherwise; restore,
verify, delete, export and import follow the recorded tag. No driver looks at ``service_metadata`` to guess.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, Protocol

from ashvault import cinder, exceptions
from ashvault.driver import BackupDriver, BackupInfo, BackupResult, JobContext, VerifyReport
from ashvault.sources import VolumeReader, VolumeWriter

__all__ = ["CHUNKED", "Handler", "for_backup", "handler", "register"]


class Handler(Protocol):
    """What reads and writes backups of one format; a Tier 1 driver is the handler of its ``native_format``."""

    def backup(self, backup: BackupInfo, source: VolumeReader, ctx: JobContext) -> BackupResult: ...

    def restore(self, backup: BackupInfo, target: VolumeWriter, ctx: JobContext, *,
                volume_is_new: bool) -> None: ...

    def verify(self, backup: BackupInfo, ctx: JobContext) -> VerifyReport: ...

    def delete_backup(self, backup: BackupInfo, ctx: JobContext) -> None: ...

    def export_record(self, backup: BackupInfo) -> dict[str, Any]: ...

    def import_record(self, backup: BackupInfo, driver_info: dict[str, Any]) -> None: ...


Factory = Callable[[BackupDriver], Handler]

CHUNKED = "chunked/1"

_FACTORIES: dict[str, Factory | str] = {}


def register(tag: str, factory: Factory | str) -> None:
    """Let backups tagged ``tag`` be read by ``factory(driver)`` (for a driver that offers an object store).

    ``factory`` may be ``"module:Class.method"``, imported on first use: a command that never touches a backup's
    data (``backup list``) then never imports the engine."""
    if tag in _FACTORIES and _FACTORIES[tag] != factory:
        raise exceptions.ConfigurationError(reason=f"format '{tag}' is registered twice")
    _FACTORIES[tag] = factory


def _factory(tag: str) -> Factory | None:
    found = _FACTORIES.get(tag)
    if isinstance(found, str):
        module, _, path = found.partition(":")
        obj: Any = importlib.import_module(module)
        for part in path.split("."):
            obj = getattr(obj, part)
        found = _FACTORIES[tag] = obj
    return found


register(CHUNKED, "ashvault.chunked:ChunkedFormat.for_driver")
register(cinder.FORMAT, "ashvault.cinder.handler:CinderChunkedFormat.for_driver")


def for_backup(driver: BackupDriver, scheme: str) -> str:
    """The tag a new backup of a ``scheme`` volume gets with ``driver``. Raises ``NotSupported``."""
    caps = driver.capabilities
    if scheme in caps.native_sources and driver.native_format:
        return driver.native_format
    if caps.object_store:
        return CHUNKED
    moves = ", ".join(sorted(caps.native_sources)) or "none"
    raise exceptions.NotSupported(
        reason=f"driver '{driver.name}' cannot back up {scheme} volumes (it moves {moves} natively and offers "
        "no object store)"
    )


def handler(driver: BackupDriver, tag: str) -> Handler:
    """What reads and writes ``tag`` backups with ``driver``. Raises ``NotSupported``."""
    if driver.native_format is not None and tag == driver.native_format:
        return driver
    factory = _factory(tag)
    if factory is None or not driver.capabilities.object_store:
        raise exceptions.NotSupported(reason=f"driver '{driver.name}' cannot read backups of format '{tag}'")
    return factory(driver)
