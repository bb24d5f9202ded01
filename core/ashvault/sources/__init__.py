"""Volume sources: where a volume's bytes are read from and restored to.

A source is found by the scheme of the volume's location (``file`` for paths, ``rbd:`` for Ceph images, ...)
through the ``ashvault.sources`` entry points. Reads and writes are positional and thread-safe, so the engine can
run them from several worker threads at once.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable
from typing import ClassVar

from oslo_config import cfg

Extent = tuple[int, int]
"""(offset, length) in bytes."""


class VolumeReader(abc.ABC):
    """Read access to a volume (or a snapshot of it) for the length of one backup."""

    size: int
    location: str

    @abc.abstractmethod
    def pread(self, offset: int, length: int) -> bytes | memoryview:
        """Read ``length`` bytes at ``offset``; short only at the end of the volume. Raises ``OSError``.

        The result may be a view of a buffer the reader will not touch again; the engine may keep it.
        """

    def advise(self, *, incremental: bool) -> None:
        """How the engine is about to read; a reader may choose its I/O path from it, and the default ignores it.

        An incremental mostly hashes what it reads, so the disk is the bound and bandwidth matters most; a full
        backup compresses what it reads, so CPU is the bound and cheap reads matter most.
        """

    def data_extents(self) -> Iterable[Extent] | None:
        """The regions that may hold data, in order; the rest reads as zeros and need not be read.

        ``None`` when the source cannot tell (then every byte is read).
        """
        return None

    def changed_extents(self, since: str | None) -> Iterable[Extent] | None:
        """Regions changed since the point ``since`` (a source-specific marker from an earlier backup).

        ``None`` when the source cannot tell, and the engine compares block hashes instead.
        """
        return None

    def change_marker(self) -> str | None:
        """A marker for this read's point in time, to be passed to a later :meth:`changed_extents`."""
        return None

    def close(self) -> None:
        """Release the volume; for snapshot-based sources, the snapshot may be kept as the next change marker."""

    def __enter__(self) -> VolumeReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class VolumeWriter(abc.ABC):
    """Write access to a restore target."""

    size: int
    location: str
    cheap_reset: bool = False
    """:meth:`reset` costs nothing (a file truncated to holes), so a full overwrite starts with it."""

    @abc.abstractmethod
    def pwrite(self, offset: int, data: bytes | memoryview) -> None:
        """Write all of ``data`` at ``offset``. Raises ``OSError``."""

    @abc.abstractmethod
    def zero(self, offset: int, length: int) -> None:
        """Make a region read as zeros, as a hole where the target supports it."""

    @abc.abstractmethod
    def reset(self) -> None:
        """Make the whole target read as zeros (holes where supported), before a full overwrite."""

    def reserve(self, offset: int, length: int) -> None:
        """A hint that a restore is about to write this region; a writer may allocate its space now.

        Must not change what the region reads as. Failing to reserve is never an error. The default does nothing.
        """

    def flush(self) -> None:
        """Make everything written durable."""

    def close(self) -> None:
        pass

    def __enter__(self) -> VolumeWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class VolumeSource(abc.ABC):
    """A kind of volume location, registered under ``ashvault.sources`` by its scheme."""

    scheme: ClassVar[str]
    host_local: ClassVar[bool] = False
    """Its volumes are reachable only from the host that registered them, so only that host's workers serve them."""

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        self.conf = conf

    @classmethod
    def get_options(cls) -> list[tuple[str, list[cfg.Opt]]]:
        """(group, options) pairs this source reads."""
        return []

    @abc.abstractmethod
    def normalize(self, location: str) -> str:
        """Check a user-given location and return its canonical form. Raises ``InvalidVolume``."""

    @abc.abstractmethod
    def size(self, location: str) -> int:
        """Current size in bytes. Raises ``InvalidVolume`` when the volume is missing."""

    @abc.abstractmethod
    def create(self, location: str, size: int) -> None:
        """Create an empty (all-zero) volume. Raises ``NotSupported`` where volumes cannot be created."""

    @abc.abstractmethod
    def delete(self, location: str) -> None:
        """Remove a volume this tool created."""

    @abc.abstractmethod
    def open_reader(self, location: str) -> VolumeReader:
        """Open for backup. Raises ``InvalidVolume``."""

    @abc.abstractmethod
    def open_writer(self, location: str) -> VolumeWriter:
        """Open for restore. Raises ``InvalidVolume``."""

