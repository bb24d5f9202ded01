"""Tier 2 of the driver contract: a handful of object primitives.

An :class:`ObjectStore` is all a new backend has to write: :class:`ashvault.chunked.ChunkedBackupDriver` turns it
into a full driver (chunking, hashing, compression, incrementals, verification, retries, parallel transfers and
progress are the core's). Objects are whole byte strings of at most the configured object size, so every call can be
retried as it is.

Names are ``/``-separated paths of safe components (see :func:`check_name`); a store may map them to directories,
keys or anything else, as long as :meth:`list_objects` gives them back unchanged.

Failure semantics, for every method: a failure that may pass (connection reset, timeout, 5xx) raises
:class:`~ashvault.exceptions.TransientDriverError` and is retried by the core; a permanent one raises another
:class:`~ashvault.exceptions.DriverError` (``PermissionDenied``, ``AuthenticationFailed``, ``ContainerNotFound``,
``QuotaExceeded``, ...) and is reported at once. Nothing else may escape.
"""

from __future__ import annotations

import abc
import re

from ashvault import exceptions

_COMPONENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


def check_name(name: str, *, what: str = "object name") -> str:
    """Refuse names that could escape a store's root: empty parts, ``..``, absolute paths, odd characters."""
    parts = name.split("/")
    if not name or name.startswith("/") or any(p in ("", ".", "..") or not _COMPONENT.match(p) for p in parts):
        raise exceptions.InvalidInput(
            reason=f"invalid {what} '{name}': use letters, digits, '_', '-', '.' in '/'-separated parts, "
            "with no empty, '.' or '..' part and no leading '/'"
        )
    return name


class ObjectStore(abc.ABC):
    """A flat namespace of containers holding named objects."""

    accepts_buffers: bool = False
    """:meth:`put_object` takes any contiguous buffer (a ``memoryview``) as ``data``, not only ``bytes``: the core
    then hands it what it read from the volume without copying it first. ``data`` must not be kept after the call."""

    @abc.abstractmethod
    def put_container(self, container: str) -> None:
        """Make sure ``container`` exists; no error when it does.

        Raises ``ContainerNotFound`` when it is missing and the store is configured not to create containers.
        """

    @abc.abstractmethod
    def list_objects(self, container: str, prefix: str = "") -> list[str]:
        """Names of the objects in ``container`` that start with ``prefix``, sorted.

        A missing container holds nothing: returns ``[]``.
        """

    @abc.abstractmethod
    def put_object(self, container: str, name: str, data: bytes) -> None:
        """Store ``data`` under ``name``, replacing any object of that name.

        Atomic: when it returns, a read gives exactly ``data``; when it fails, the name holds either its old content
        or nothing, never a part of ``data``.
        """

    @abc.abstractmethod
    def get_object(self, container: str, name: str) -> bytes | memoryview:
        """The whole content of an object. Raises ``ObjectNotFound`` when it is absent.

        ``bytes``, or a ``memoryview`` over them for a store that reads into memory of its own (the posix store
        reads into huge-page buffers with ``O_DIRECT``). Callers treat the result as read-only.
        """

    @abc.abstractmethod
    def delete_object(self, container: str, name: str) -> None:
        """Remove an object. Raises ``ObjectNotFound`` when it is absent."""

    def object_sizes(self, container: str, prefix: str = "") -> dict[str, int] | None:
        """The objects :meth:`list_objects` gives, each with its size in bytes, learnt without reading them; None
        when the store cannot tell sizes that way (the core then checks presence only). Fails as ``list_objects``.
        """
        return None

    def remove_temporaries(self, container: str, prefix: str, *, older_than: float) -> int:
        """Remove what writes that never finished (a killed process) left under ``prefix``, when last changed more
        than ``older_than`` seconds ago; returns how many went. A store whose writes leave nothing behind (an
        object store's uploads are atomic by themselves) keeps this default, which removes nothing. Raises
        ``DriverError`` like the other methods."""
        return 0

    def check(self) -> None:
        """Check that the store answers and accepts the configuration. Raises ``DriverSetupError``."""

    def close(self) -> None:
        """Release connections."""


class ObjectStoreWrapper(ObjectStore):
    """Passes every call to an inner store; wrappers override what they change."""

    def __init__(self, inner: ObjectStore) -> None:
        self.inner = inner

    @property
    def accepts_buffers(self) -> bool:  # type: ignore[override]
        return self.inner.accepts_buffers

    def put_container(self, container: str) -> None:
        self.inner.put_container(container)

    def list_objects(self, container: str, prefix: str = "") -> list[str]:
        return self.inner.list_objects(container, prefix)

    def put_object(self, container: str, name: str, data: bytes) -> None:
        self.inner.put_object(container, name, data)

    def get_object(self, container: str, name: str) -> bytes | memoryview:
        return self.inner.get_object(container, name)

    def delete_object(self, container: str, name: str) -> None:
        self.inner.delete_object(container, name)

    def object_sizes(self, container: str, prefix: str = "") -> dict[str, int] | None:
        return self.inner.object_sizes(container, prefix)

    def remove_temporaries(self, container: str, prefix: str, *, older_than: float) -> int:
        return self.inner.remove_temporaries(container, prefix, older_than=older_than)

    def check(self) -> None:
        self.inner.check()

    def close(self) -> None:
        self.inner.close()
