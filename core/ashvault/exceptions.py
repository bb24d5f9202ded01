"""Typed errors raised across ashvault.

Every error a user can meet is an :class:`AshvaultError`: its ``str()`` is one line meant for a person, and its
``exit_code`` is what the command-line tool exits with: 1 for any error, 2 only for a command line that is wrong
in itself (a malformed or missing argument: "not found" is not one), 4 when stored data is corrupt. Drivers
translate their SDK's errors into these at the boundary, so that the core can tell a transient failure (retried)
from a permanent one (reported at once).
"""

from __future__ import annotations

from typing import Any


class AshvaultError(Exception):
    """Root of every error ashvault raises on purpose."""

    message = "an unexpected error occurred"
    exit_code = 1

    def __init__(self, message: str | None = None, **kwargs: Any) -> None:
        self.kwargs = kwargs
        if message is None:
            try:
                message = self.message % kwargs
            except (KeyError, TypeError, ValueError):
                message = self.message
        super().__init__(" ".join(str(message).split()))

    @property
    def msg(self) -> str:
        return str(self)


class ConfigurationError(AshvaultError):
    message = "invalid configuration: %(reason)s"


class CatalogError(AshvaultError):
    """The catalog's database refused or failed a query (locked too long, disk full, connection lost)."""

    message = "catalog error: %(reason)s"


class PluginNotFound(ConfigurationError):
    message = "%(kind)s '%(name)s' is not installed"


class PluginUnavailable(ConfigurationError):
    message = "%(kind)s '%(name)s' is installed but cannot be loaded: %(reason)s"


class NotFound(AshvaultError):
    message = "%(what)s not found"


class VolumeNotFound(NotFound):
    message = "volume '%(volume)s' not found"


class BackupNotFound(NotFound):
    message = "backup '%(backup)s' not found"


class AmbiguousName(AshvaultError):
    message = "more than one %(kind)s is named '%(name)s': use its id"


class InvalidInput(AshvaultError):
    message = "%(reason)s"
    exit_code = 2


class InvalidState(AshvaultError):
    """An operation was asked of a record whose status does not allow it."""

    message = "%(reason)s"


class InvalidVolume(AshvaultError):
    message = "invalid volume: %(reason)s"


class InvalidBackup(AshvaultError):
    message = "invalid backup: %(reason)s"


class DriverError(AshvaultError):
    """A backend failed. Subclasses say whether trying again may help."""

    message = "backend error: %(reason)s"
    transient = False


class DriverSetupError(DriverError):
    """The driver's configuration or the backend's reachability is wrong."""

    message = "driver is not usable: %(reason)s"


class TransientDriverError(DriverError):
    """A failure that may go away: a connection reset, a timeout, a 5xx answer."""

    message = "temporary backend failure: %(reason)s"
    transient = True


class ObjectNotFound(DriverError, FileNotFoundError):
    message = "object '%(name)s' not found in container '%(container)s'"


class ContainerNotFound(DriverError):
    message = "container '%(container)s' does not exist"


class PermissionDenied(DriverError, PermissionError):
    message = "permission denied: %(reason)s"


class AuthenticationFailed(DriverError):
    message = "authentication failed: %(reason)s"


class QuotaExceeded(DriverError):
    message = "backend is full or over quota: %(reason)s"


class NotSupported(AshvaultError):
    """The driver lacks a capability the request needs."""

    message = "not supported: %(reason)s"


class IntegrityError(AshvaultError):
    """Stored data does not match its recorded hash, or cannot be decoded."""

    message = "backup %(backup)s: object %(object)s is corrupt: %(reason)s"
    exit_code = 4


class ObjectAuthenticationFailed(IntegrityError):
    """An encrypted object does not open with its container's data key: altered, truncated, swapped or foreign.

    Raised by the encryption wrapper, which knows no backup; the engine names the backup when it passes it on.
    """

    message = "object %(object)s in container %(container)s is corrupt: %(reason)s"


class EncryptionKeyError(AshvaultError):
    """No key was given, or the key given does not open the container's key object."""

    message = "encryption: %(reason)s"
    exit_code = 77


class Cancelled(AshvaultError):
    """The job's record was moved away from its running status (force delete, reset)."""

    message = "operation cancelled: %(reason)s"


class BackupCancelled(Cancelled):
    pass


class RestoreCancelled(Cancelled):
    pass
