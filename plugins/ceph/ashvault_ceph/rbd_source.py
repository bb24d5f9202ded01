"""The ``rbd`` volume source: Ceph RBD images named ``rbd:pool/image`` or ``rbd:pool/image@snapshot``.

A backup reads from a snapshot made when the reader opens (named like Cinder's, ``backup.<tag>.snap.<time>``), so
the volume stays in use. The snapshot is kept only when the backup succeeds (the engine asks for it as the change
marker); the next incremental then lists the changed extents since it with ``diff_iterate`` and reads only those.
A location with ``@snapshot`` reads that snapshot and never makes or removes one.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from typing import Any, ClassVar

from oslo_config import cfg

from ashvault import conf as conf_mod
from ashvault import exceptions
from ashvault.sources import Extent, VolumeReader, VolumeSource, VolumeWriter
from ashvault_ceph import opts
from ashvault_ceph.client import Connection, rbd, translate

SNAP_RE = re.compile(r"^backup\.([a-z0-9\-]+?)\.snap\.(.+)$")
"""Cinder's pattern of backup snapshot names; group 1 is the backup id (or ``ashvault-<hex>`` for the source)."""
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
_ZERO_STEP = 1 << 30
IMAGE_FEATURES = (rbd.RBD_FEATURE_LAYERING | rbd.RBD_FEATURE_EXCLUSIVE_LOCK | rbd.RBD_FEATURE_OBJECT_MAP
                  | rbd.RBD_FEATURE_FAST_DIFF | rbd.RBD_FEATURE_DEEP_FLATTEN)


def parse(location: str) -> tuple[str, str, str | None]:
    """``rbd:pool/image[@snap]`` -> (pool, image, snap). Raises ``InvalidVolume``."""
    rest = location[4:] if location.startswith("rbd:") else location
    rest = rest.lstrip("/") if rest.startswith("//") else rest
    spec, _, snap = rest.partition("@")
    pool, _, image = spec.partition("/")
    if not (_NAME.match(pool) and _NAME.match(image) and (not snap or _NAME.match(snap))) or "@" in snap:
        raise exceptions.InvalidVolume(reason=f"'{location}' is not rbd:POOL/IMAGE or rbd:POOL/IMAGE@SNAPSHOT")
    return pool, image, snap or None


def snap_name(tag: str) -> str:
    """A backup snapshot name in Cinder's form: ``backup.<tag>.snap.<time>``."""
    return f"backup.{tag}.snap.{time.time():.6f}"


def backup_snaps(image: Any) -> list[str]:
    """The backup snapshots of ``image``, oldest first."""
    snaps = sorted((s["id"], s["name"]) for s in image.list_snaps())
    return [name for _id, name in snaps if SNAP_RE.match(name)]


def prune_snaps(image: Any, keep: int) -> list[str]:
    """Remove the oldest backup snapshots of ``image`` so that ``keep`` remain (0 keeps all); return the removed."""
    snaps = backup_snaps(image)
    gone = snaps[: max(0, len(snaps) - keep)] if keep > 0 else []
    for name in gone:
        image.remove_snap(name)
    return gone


def extents(image: Any, size: int, since: str | None, *, data_only: bool,
            whole_object: bool = False) -> list[tuple[int, int, bool]]:
    """(offset, length, has data) of what changed since snapshot ``since`` (everything allocated when None).

    ``whole_object`` reports whole RADOS objects, from the object map when the image has fast-diff: quick, coarse.
    """
    out: list[tuple[int, int, bool]] = []

    def cb(off: int, length: int, exists: bool) -> int:
        if exists or not data_only:
            if out and out[-1][0] + out[-1][1] == off and out[-1][2] == exists:
                out[-1] = (out[-1][0], out[-1][1] + length, exists)
            else:
                out.append((off, length, exists))
        return 0

    image.diff_iterate(0, size, since, cb, whole_object=whole_object)
    return out


def open_image(conn: Connection, pool: str, name: str, *, snapshot: str | None = None,
               read_only: bool = False) -> Any:
    """Open an image. Raises ``InvalidVolume`` when it (or the snapshot) is missing, typed errors otherwise."""
    where = f"rbd:{pool}/{name}" + (f"@{snapshot}" if snapshot else "")
    try:
        return rbd.Image(conn.ioctx(pool), name, snapshot=snapshot, read_only=read_only)
    except rbd.ImageNotFound:
        raise exceptions.InvalidVolume(reason=f"{where} does not exist") from None
    except exceptions.ContainerNotFound:
        raise exceptions.InvalidVolume(reason=f"{where}: pool {pool} does not exist") from None
    except rbd.Error as exc:
        raise translate(exc, f"opening {where}") from exc


class RbdReader(VolumeReader):
    """Reads one snapshot of an image; thread-safe positional reads; counts the bytes read in ``bytes_read``."""

    def __init__(self, conn: Connection, pool: str, image: str, snap: str | None, *, max_snapshots: int = 0) -> None:
        self.conn, self.pool, self.image = conn, pool, image
        self.location = f"rbd:{pool}/{image}" + (f"@{snap}" if snap else "")
        self.max_snapshots = max_snapshots
        self.owned = snap is None
        self.keep = False
        self.bytes_read = 0
        self._lock = threading.Lock()
        self._img: Any = None
        try:
            if snap is None:
                snap = snap_name(f"ashvault-{uuid.uuid4().hex[:12]}")
                head = open_image(conn, pool, image)
                try:
                    head.create_snap(snap)
                except rbd.Error as exc:
                    raise translate(exc, f"snapshotting {self.location}") from exc
                finally:
                    head.close()
            self.snap = snap
            self._img = open_image(conn, pool, image, snapshot=snap, read_only=True)
            self.size = int(self._img.size())
        except BaseException:
            self.close()
            raise

    def head(self) -> Any:
        """The image itself (not the snapshot), opened for writing; the caller closes it."""
        return open_image(self.conn, self.pool, self.image)

    def rename_snapshot(self, name: str) -> None:
        """Give this reader's snapshot another name (the ceph driver names it after the backup, as Cinder does)."""
        if not self.owned:
            raise exceptions.NotSupported(reason=f"{self.location} is a snapshot ashvault did not make")
        head = self.head()
        try:
            head.rename_snap(self.snap, name)
        except rbd.Error as exc:
            raise translate(exc, f"renaming snapshot {self.snap} of {self.location}") from exc
        finally:
            head.close()
        self.snap = name
        self._img.close()
        self._img = open_image(self.conn, self.pool, self.image, snapshot=name, read_only=True)

    def has_snapshot(self, name: str) -> bool:
        try:
            return bool(self._img.snap_exists(name))
        except rbd.Error as exc:
            raise translate(exc, f"looking for snapshot {name} of {self.location}") from exc

    def diff(self, since: str | None) -> list[tuple[int, int, bool]]:
        """(offset, length, has data) changed since snapshot ``since``; every allocated extent when None."""
        try:
            return extents(self._img, self.size, since, data_only=since is None)
        except rbd.Error as exc:
            raise translate(exc, f"diffing {self.location}") from exc

    def pread(self, offset: int, length: int) -> bytes:
        length = max(0, min(length, self.size - offset))
        try:
            data: bytes = self._img.read(offset, length)
        except rbd.Error as exc:
            raise translate(exc, f"reading {self.location}") from exc
        with self._lock:
            self.bytes_read += len(data)
        return data

    def data_extents(self) -> list[Extent]:
        try:
            found = extents(self._img, self.size, None, data_only=True)
        except rbd.Error as exc:
            raise translate(exc, f"listing the extents of {self.location}") from exc
        return [(off, length) for off, length, _data in found]

    def changed_extents(self, since: str | None) -> list[Extent] | None:
        if not since:
            return None
        try:
            if not self._img.snap_exists(since):
                return None
            found = extents(self._img, self.size, since, data_only=False)
        except rbd.Error as exc:
            raise translate(exc, f"diffing {self.location} against {since}") from exc
        return [(off, length) for off, length, _data in found]

    def change_marker(self) -> str | None:
        self.keep = True
        return self.snap

    def close(self) -> None:
        if self._img is not None:
            self._img.close()
            self._img = None
        if self.owned and getattr(self, "snap", None):
            try:
                head = self.head()
                try:
                    if not self.keep:
                        head.remove_snap(self.snap)
                    elif self.max_snapshots:
                        prune_snaps(head, self.max_snapshots)
                finally:
                    head.close()
            except (rbd.Error, exceptions.AshvaultError):
                pass  # a snapshot left behind is pruned later; never hide the backup's own outcome
            self.owned = False
        self.conn.close()


class RbdWriter(VolumeWriter):
    """Writes an image in place; zeroing deallocates (``write_zeroes``), so a full reset is cheap."""

    cheap_reset = True

    def __init__(self, conn: Connection, pool: str, image: str) -> None:
        self.conn, self.pool, self.image = conn, pool, image
        self.location = f"rbd:{pool}/{image}"
        try:
            self._img = open_image(conn, pool, image)
            self.size = int(self._img.size())
        except BaseException:
            conn.close()
            raise

    def pwrite(self, offset: int, data: bytes | memoryview) -> None:
        try:
            self._img.write(bytes(data), offset)
        except rbd.Error as exc:
            raise translate(exc, f"writing {self.location}") from exc

    def zero(self, offset: int, length: int) -> None:
        end = min(offset + length, self.size)
        try:
            while offset < end:
                n = min(_ZERO_STEP, end - offset)
                self._img.write_zeroes(offset, n)
                offset += n
        except rbd.Error as exc:
            raise translate(exc, f"zeroing {self.location}") from exc

    def reset(self) -> None:
        self.zero(0, self.size)

    def flush(self) -> None:
        try:
            self._img.flush()
        except rbd.Error as exc:
            raise translate(exc, f"flushing {self.location}") from exc

    def close(self) -> None:
        if self._img is not None:
            self._img.close()
            self._img = None
        self.conn.close()


class RbdSource(VolumeSource):
    """``rbd:pool/image[@snapshot]``, reached with ``[rbd] ceph_conf`` and ``[rbd] user``."""

    scheme: ClassVar[str] = "rbd"

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        super().__init__(conf)
        conf_mod.register_group(conf, opts.SOURCE_GROUP, opts.rbd_opts)

    @classmethod
    def get_options(cls) -> list[tuple[str, list[cfg.Opt]]]:
        return [(opts.SOURCE_GROUP, opts.rbd_opts)]

    def connection(self) -> Connection:
        o = self.conf[opts.SOURCE_GROUP]
        return Connection(o.ceph_conf, o.user, connect_timeout=o.connect_timeout, op_timeout=o.op_timeout)

    def normalize(self, location: str) -> str:
        pool, image, snap = parse(location)
        conn = self.connection()
        try:
            open_image(conn, pool, image, snapshot=snap, read_only=True).close()
        finally:
            conn.close()
        return f"rbd:{pool}/{image}" + (f"@{snap}" if snap else "")

    def size(self, location: str) -> int:
        pool, image, snap = parse(location)
        conn = self.connection()
        try:
            img = open_image(conn, pool, image, snapshot=snap, read_only=True)
            try:
                return int(img.size())
            finally:
                img.close()
        finally:
            conn.close()

    def create(self, location: str, size: int) -> None:
        pool, image, snap = parse(location)
        if snap:
            raise exceptions.InvalidVolume(reason=f"cannot create a snapshot location {location}")
        conn = self.connection()
        try:
            rbd.RBD().create(conn.ioctx(pool), image, size, old_format=False, features=IMAGE_FEATURES)
        except rbd.ImageExists:
            raise exceptions.InvalidVolume(reason=f"{location} already exists") from None
        except exceptions.ContainerNotFound:
            raise exceptions.InvalidVolume(reason=f"{location}: pool {pool} does not exist") from None
        except rbd.Error as exc:
            raise translate(exc, f"creating {location}") from exc
        finally:
            conn.close()

    def delete(self, location: str) -> None:
        pool, image, _snap = parse(location)
        conn = self.connection()
        try:
            try:
                img = open_image(conn, pool, image)
            except exceptions.InvalidVolume:
                return
            try:
                for s in list(img.list_snaps()):
                    img.remove_snap(s["name"])
            finally:
                img.close()
            rbd.RBD().remove(conn.ioctx(pool), image)
        except rbd.ImageNotFound:
            pass
        except rbd.Error as exc:
            raise translate(exc, f"removing {location}") from exc
        finally:
            conn.close()

    def open_reader(self, location: str) -> VolumeReader:
        pool, image, snap = parse(location)
        return RbdReader(self.connection(), pool, image, snap,
                         max_snapshots=self.conf[opts.SOURCE_GROUP].max_snapshots)

    def open_writer(self, location: str) -> VolumeWriter:
        pool, image, snap = parse(location)
        if snap:
            raise exceptions.InvalidVolume(reason=f"{location} is a snapshot: it cannot be restored to")
        return RbdWriter(self.connection(), pool, image)
