"""PosixObjectStore: containers are directories, objects are files, ``/`` in a name is a subdirectory."""

from __future__ import annotations

import errno
import os
import secrets
import time

from ashvault import exceptions
from ashvault.directio import DirectReader, DirectWriter
from ashvault.objectstore import ObjectStore, check_name

_TMP = ".tmp-"


def _translate(exc: OSError, what: str) -> exceptions.DriverError:
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return exceptions.PermissionDenied(reason=f"{what}: {exc.strerror}")
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return exceptions.QuotaExceeded(reason=f"{what}: {exc.strerror}")
    if exc.errno in (errno.EIO, errno.ETIMEDOUT, errno.EAGAIN, errno.ESTALE, errno.EINTR, errno.ENOTCONN,
                     errno.ECONNREFUSED, errno.ECONNRESET, errno.EHOSTUNREACH):
        return exceptions.TransientDriverError(reason=f"{what}: {exc.strerror}")
    return exceptions.DriverError(reason=f"{what}: {exc.strerror or exc}")


class PosixObjectStore(ObjectStore):
    """Objects under ``root``. A write goes to a temporary name, is fsynced, then renamed into place."""

    accepts_buffers = True

    def __init__(
        self, root: str, *, create_containers: bool = True, fsync: bool = True, direct_io: bool = True
    ) -> None:
        self.root = os.path.abspath(root)
        self.create_containers = create_containers
        self.fsync = fsync
        self.direct_io = direct_io

    def _container_dir(self, container: str) -> str:
        return os.path.join(self.root, check_name(container, what="container name"))

    def _path(self, container: str, name: str) -> str:
        return os.path.join(self._container_dir(container), check_name(name))

    def _fsync_dir(self, path: str) -> None:
        if self.fsync:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def put_container(self, container: str) -> None:
        path = self._container_dir(container)
        if os.path.isdir(path):
            return
        if not self.create_containers:
            raise exceptions.ContainerNotFound(container=container)
        try:
            os.makedirs(path, mode=0o770, exist_ok=True)
        except OSError as exc:
            raise _translate(exc, f"cannot create {path}") from exc

    def _walk(self, container: str, prefix: str) -> list[tuple[str, str]]:
        """(name, path) of every object whose name starts with ``prefix``, sorted by name."""
        base = self._container_dir(container)
        head = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        start = os.path.join(base, head) if head else base
        found = []
        try:
            for dirpath, _dirs, files in os.walk(start):
                rel = os.path.relpath(dirpath, base)
                for f in files:
                    if f.startswith(_TMP):
                        continue
                    name = f if rel == "." else f"{rel}/{f}"
                    if name.startswith(prefix):
                        found.append((name, os.path.join(dirpath, f)))
        except OSError as exc:
            raise _translate(exc, f"cannot list {start}") from exc
        return sorted(found)

    def list_objects(self, container: str, prefix: str = "") -> list[str]:
        return [name for name, _path in self._walk(container, prefix)]

    def object_sizes(self, container: str, prefix: str = "") -> dict[str, int] | None:
        sizes = {}
        for name, path in self._walk(container, prefix):
            try:
                sizes[name] = os.lstat(path).st_size
            except FileNotFoundError:
                continue  # deleted since the listing
            except OSError as exc:
                raise _translate(exc, f"cannot stat {path}") from exc
        return sizes

    def put_object(self, container: str, name: str, data: bytes | memoryview) -> None:
        path = self._path(container, name)
        directory = os.path.dirname(path)
        if not os.path.isdir(self._container_dir(container)):
            raise exceptions.ContainerNotFound(container=container)
        tmp = os.path.join(directory, f"{_TMP}{os.path.basename(path)}.{secrets.token_hex(4)}")
        try:
            os.makedirs(directory, mode=0o770, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o640)
            writer = DirectWriter(fd, tmp, enabled=self.direct_io)
            try:
                writer.pwrite(0, data)
                if self.fsync:
                    os.fsync(fd)
            finally:
                writer.close()
                os.close(fd)
            os.rename(tmp, path)
            self._fsync_dir(directory)
        except OSError as exc:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise _translate(exc, f"cannot write {path}") from exc

    def get_object(self, container: str, name: str) -> bytes | memoryview:
        path = self._path(container, name)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                reader = DirectReader(fd, path, enabled=self.direct_io)
                try:
                    return reader.pread(0, os.fstat(fd).st_size)
                finally:
                    reader.close()
            finally:
                os.close(fd)
        except FileNotFoundError:
            raise exceptions.ObjectNotFound(name=name, container=container) from None
        except OSError as exc:
            raise _translate(exc, f"cannot read {path}") from exc

    def delete_object(self, container: str, name: str) -> None:
        path = self._path(container, name)
        try:
            os.unlink(path)
        except FileNotFoundError:
            raise exceptions.ObjectNotFound(name=name, container=container) from None
        except OSError as exc:
            raise _translate(exc, f"cannot delete {path}") from exc
        base = self._container_dir(container)
        directory = os.path.dirname(path)
        self._drop_abandoned(directory)
        while directory != base and directory.startswith(base):
            try:
                left = os.listdir(directory)
                # Only temporaries left: those of a writer killed mid-object; their backup is going away too.
                if left and all(n.startswith(_TMP) for n in left):
                    for n in left:
                        os.unlink(os.path.join(directory, n))
                os.rmdir(directory)
            except OSError:
                break
            directory = os.path.dirname(directory)

    def _drop_abandoned(self, directory: str) -> None:
        """Remove the temporaries of writes that never finished (a killed process) once ``directory`` holds nothing
        else. The engine writes a directory's objects from one job and deletes them only after that job ended, so
        no live write is lost; without this, a backup killed mid-write kept its directory after being deleted."""
        try:
            entries = os.listdir(directory)
        except OSError:
            return
        if not entries or not all(e.startswith(_TMP) for e in entries):
            return
        for entry in entries:
            try:
                os.unlink(os.path.join(directory, entry))
            except OSError:
                return

    def remove_temporaries(self, container: str, prefix: str, *, older_than: float) -> int:
        """Unlink the ``.tmp-`` files of writes a killed process never finished, of objects under ``prefix``, older
        than ``older_than`` seconds; then the directories this left empty."""
        base = self._container_dir(container)
        head = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        start = os.path.join(base, check_name(head)) if head else base
        limit = time.time() - older_than
        removed = 0
        emptied = set()
        try:
            for dirpath, _dirs, files in os.walk(start):
                rel = os.path.relpath(dirpath, base)
                for f in files:
                    if not f.startswith(_TMP):
                        continue
                    obj = f[len(_TMP):].rsplit(".", 1)[0]
                    name = obj if rel == "." else f"{rel}/{obj}"
                    path = os.path.join(dirpath, f)
                    if not name.startswith(prefix) or os.lstat(path).st_mtime > limit:
                        continue
                    os.unlink(path)
                    removed += 1
                    emptied.add(dirpath)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise _translate(exc, f"cannot clean {start}") from exc
        for directory in sorted(emptied, key=len, reverse=True):
            while directory != base and directory.startswith(base + os.sep):
                try:
                    os.rmdir(directory)
                except OSError:
                    break
                directory = os.path.dirname(directory)
        return removed

    def check(self) -> None:
        try:
            os.makedirs(self.root, mode=0o770, exist_ok=True)
        except OSError as exc:
            raise exceptions.DriverSetupError(reason=f"cannot create {self.root}: {exc.strerror}") from exc
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise exceptions.DriverSetupError(reason=f"{self.root} is not writable")
