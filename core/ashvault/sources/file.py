"""The ``file`` source: regular files (sparse or not) and block devices such as ``/dev/loop0``."""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import struct
from collections.abc import Iterator

from ashvault import exceptions
from ashvault.directio import BufferPool, DirectReader, DirectWriter
from ashvault.libc import fallocate
from ashvault.sources import Extent, VolumeReader, VolumeSource, VolumeWriter

_FALLOC_FL_KEEP_SIZE = 0x01
_FALLOC_FL_PUNCH_HOLE = 0x02
_BLKZEROOUT = 0x127F
_ZERO_WRITE = 4 << 20



def _path_of(location: str) -> str:
    if location.startswith("file://"):
        location = location[len("file://") :]
    return location


def _device_size(fd: int) -> int:
    return os.lseek(fd, 0, os.SEEK_END)


class FileReader(VolumeReader):
    def __init__(self, path: str) -> None:
        self.location = path
        try:
            self._fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise exceptions.InvalidVolume(reason=f"cannot open {path}: {exc.strerror}") from exc
        st = os.fstat(self._fd)
        self._regular = stat.S_ISREG(st.st_mode)
        self.size = st.st_size if self._regular else _device_size(self._fd)
        self._in = DirectReader(self._fd, path, pool=BufferPool())

    def pread(self, offset: int, length: int) -> bytes | memoryview:
        return self._in.pread(offset, length)

    def data_extents(self) -> Iterator[Extent] | None:
        if not self._regular:
            return None
        return self._seek_data_extents()

    def _seek_data_extents(self) -> Iterator[Extent]:
        pos = 0
        while pos < self.size:
            try:
                start = os.lseek(self._fd, pos, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno == errno.ENXIO:
                    return
                if exc.errno == errno.EINVAL:
                    yield pos, self.size - pos
                    return
                raise
            end = os.lseek(self._fd, start, os.SEEK_HOLE)
            yield start, min(end, self.size) - start
            pos = end

    def close(self) -> None:
        if self._fd >= 0:
            self._in.close()
            os.close(self._fd)
            self._fd = -1


class FileWriter(VolumeWriter):
    def __init__(self, path: str) -> None:
        self.location = path
        try:
            self._fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise exceptions.InvalidVolume(reason=f"cannot open {path} for writing: {exc.strerror}") from exc
        st = os.fstat(self._fd)
        self._regular = self.cheap_reset = stat.S_ISREG(st.st_mode)
        self.size = st.st_size if self._regular else _device_size(self._fd)
        # Restores run few writers, each with a whole object to write: larger writes keep the device busier.
        self._out = DirectWriter(self._fd, path, stage=4 << 20)

    def pwrite(self, offset: int, data: bytes | memoryview) -> None:
        self._out.pwrite(offset, data)

    def zero(self, offset: int, length: int) -> None:
        if length <= 0:
            return
        if self._regular:
            mode = _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE
            if fallocate(self._fd, mode, offset, length) == 0:
                return
        else:
            try:
                fcntl.ioctl(self._fd, _BLKZEROOUT, struct.pack("QQ", offset, length))
                return
            except OSError:
                pass
        zeros = bytes(min(length, _ZERO_WRITE))
        end = offset + length
        while offset < end:
            n = min(len(zeros), end - offset)
            self.pwrite(offset, memoryview(zeros)[:n])
            offset += n

    def reserve(self, offset: int, length: int) -> None:
        # Space allocated ahead (as unwritten extents, which read as zeros) lets ext4 and XFS run several O_DIRECT
        # writes to one file at once instead of one after another (docs/performance.md, "Reserving space").
        if self._regular and length > 0:
            fallocate(self._fd, 0, offset, length)

    def reset(self) -> None:
        if self._regular:
            os.ftruncate(self._fd, 0)
            os.ftruncate(self._fd, self.size)
        else:
            self.zero(0, self.size)

    def flush(self) -> None:
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            self._out.close()
            os.close(self._fd)
            self._fd = -1


class FileSource(VolumeSource):
    """Paths (``/var/lib/vols/a.img``, ``file:///dev/loop0``): regular files and block devices."""

    scheme = "file"
    host_local = True

    def normalize(self, location: str) -> str:
        path = os.path.abspath(_path_of(location))
        if not os.path.exists(path):
            raise exceptions.InvalidVolume(reason=f"{path} does not exist")
        mode = os.stat(path).st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISBLK(mode)):
            raise exceptions.InvalidVolume(reason=f"{path} is neither a regular file nor a block device")
        return path

    def size(self, location: str) -> int:
        path = _path_of(location)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise exceptions.InvalidVolume(reason=f"cannot open {path}: {exc.strerror}") from exc
        try:
            return _device_size(fd)
        finally:
            os.close(fd)

    def create(self, location: str, size: int) -> None:
        path = _path_of(location)
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except FileExistsError as exc:
            raise exceptions.InvalidVolume(reason=f"{path} already exists") from exc
        try:
            os.ftruncate(fd, size)
        finally:
            os.close(fd)

    def delete(self, location: str) -> None:
        try:
            os.unlink(_path_of(location))
        except FileNotFoundError:
            pass

    def open_reader(self, location: str) -> VolumeReader:
        return FileReader(_path_of(location))

    def open_writer(self, location: str) -> VolumeWriter:
        return FileWriter(_path_of(location))
