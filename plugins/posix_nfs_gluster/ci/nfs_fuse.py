#!/usr/bin/env python3
"""A userspace NFSv3 client mounted through FUSE, used by the tests as the nfs driver's ``mount_command``.

The test machines' kernels have no NFS client, so ``mount -t nfs`` cannot work there. This client speaks NFSv3
to a real server through Debian's libnfs (ctypes) and offers it as a FUSE mount point (fusepy on libfuse2), so
everything above the mount is the real driver. It takes the arguments ``mount -t nfs`` takes::

    nfs_fuse.py [-o port=2049,mountport=20048,timeo=50,ro] host:/export/path /mount/point

``nodirect`` makes opens with O_DIRECT fail with EINVAL, as some FUSE file systems do (for the tests of the
fallback to ordinary I/O).

It returns once the share is mounted (exit 0), or prints one line and exits 32, as mount(8) does. The mount
behaves as a ``soft`` one: a call the server does not answer within ``timeo`` deciseconds fails with ETIMEDOUT,
a lost connection fails the call, and the next call reconnects, so a restarted server is used again.
Production uses the kernel's ``mount -t nfs``.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
import sys
import threading
from typing import Any

from fuse import FUSE, FuseOSError, Operations

MOUNT_FAILED = 32
_FS_ERRORS = {errno.ENOENT, errno.EEXIST, errno.ENOTEMPTY, errno.EACCES, errno.EPERM, errno.EISDIR, errno.ENOTDIR,
              errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EINVAL, errno.ENAMETOOLONG, errno.EFBIG, errno.EXDEV,
              errno.EOPNOTSUPP, errno.ENOTSUP}
"""Errors that say something about the file system; any other one means the connection is no longer usable."""


class Stat64(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in (
        "dev", "ino", "mode", "nlink", "uid", "gid", "rdev", "size", "blksize", "blocks",
        "atime", "mtime", "ctime", "atime_nsec", "mtime_nsec", "ctime_nsec", "used")]


class StatVfs64(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in (
        "f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files", "f_ffree", "f_favail", "f_fsid",
        "f_flag", "f_namemax")]


class DirEnt(ctypes.Structure):
    pass


DirEnt._fields_ = [("next", ctypes.POINTER(DirEnt)), ("name", ctypes.c_char_p)]


class Url(ctypes.Structure):
    _fields_ = [("server", ctypes.c_char_p), ("path", ctypes.c_char_p), ("file", ctypes.c_char_p)]


class TimeVal(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


def _load() -> ctypes.CDLL:
    lib = ctypes.CDLL("libnfs.so.13", use_errno=True)
    P, Int, U64, S = ctypes.c_void_p, ctypes.c_int, ctypes.c_uint64, ctypes.c_char_p
    PP = ctypes.POINTER(ctypes.c_void_p)
    sigs: dict[str, tuple[Any, list[Any]]] = {
        "nfs_init_context": (P, []),
        "nfs_destroy_context": (None, [P]),
        "nfs_get_error": (S, [P]),
        "nfs_parse_url_dir": (ctypes.POINTER(Url), [P, S]),
        "nfs_destroy_url": (None, [ctypes.POINTER(Url)]),
        "nfs_set_autoreconnect": (None, [P, Int]),
        "nfs_set_timeout": (None, [P, Int]),
        "nfs_set_version": (Int, [P, Int]),
        "nfs_mount": (Int, [P, S, S]),
        "nfs_lstat64": (Int, [P, S, ctypes.POINTER(Stat64)]),
        "nfs_statvfs64": (Int, [P, S, ctypes.POINTER(StatVfs64)]),
        "nfs_open": (Int, [P, S, Int, PP]),
        "nfs_create": (Int, [P, S, Int, Int, PP]),
        "nfs_close": (Int, [P, P]),
        "nfs_pread": (Int, [P, P, U64, U64, P]),
        "nfs_pwrite": (Int, [P, P, U64, U64, P]),
        "nfs_fsync": (Int, [P, P]),
        "nfs_truncate": (Int, [P, S, U64]),
        "nfs_ftruncate": (Int, [P, P, U64]),
        "nfs_mkdir2": (Int, [P, S, Int]),
        "nfs_rmdir": (Int, [P, S]),
        "nfs_unlink": (Int, [P, S]),
        "nfs_rename": (Int, [P, S, S]),
        "nfs_chmod": (Int, [P, S, Int]),
        "nfs_chown": (Int, [P, S, Int, Int]),
        "nfs_utimes": (Int, [P, S, ctypes.POINTER(TimeVal)]),
        "nfs_opendir": (Int, [P, S, PP]),
        "nfs_readdir": (ctypes.POINTER(DirEnt), [P, P]),
        "nfs_closedir": (None, [P, P]),
    }
    for name, (res, args) in sigs.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = res, args
    return lib


class MountFailed(Exception):
    pass


class Handle:
    """An open file: reopened by path after a reconnect."""

    def __init__(self, path: str, flags: int, fh: ctypes.c_void_p, generation: int) -> None:
        self.path, self.flags, self.fh, self.generation = path, flags, fh, generation


class NfsClient:
    """One libnfs context, serialised by a lock (libnfs contexts are not thread-safe), reconnected on demand."""

    def __init__(self, url: str, *, timeout_ms: int) -> None:
        self.lib = _load()
        self.url = url
        self.timeout_ms = timeout_ms
        self.lock = threading.RLock()
        self.ctx: int | None = None
        self.generation = 0
        self.connect()

    def connect(self) -> None:
        lib = self.lib
        ctx = lib.nfs_init_context()
        if not ctx:
            raise MountFailed("cannot create an NFS context")
        lib.nfs_set_autoreconnect(ctx, 0)
        lib.nfs_set_timeout(ctx, self.timeout_ms)
        lib.nfs_set_version(ctx, 3)
        url = lib.nfs_parse_url_dir(ctx, self.url.encode())
        if not url:
            err = (lib.nfs_get_error(ctx) or b"").decode(errors="replace")
            lib.nfs_destroy_context(ctx)
            raise MountFailed(f"bad share URL {self.url}: {err}")
        try:
            server, path = url.contents.server, url.contents.path
            ret = lib.nfs_mount(ctx, server, path)
            if ret < 0:
                err = (lib.nfs_get_error(ctx) or b"").decode(errors="replace") or os.strerror(-ret)
                lib.nfs_destroy_context(ctx)
                raise MountFailed(f"mounting {server.decode()}:{path.decode()} failed: {err}")
        finally:
            lib.nfs_destroy_url(url)
        self.ctx = ctx
        self.generation += 1

    def _live(self) -> int:
        if self.ctx is None:
            try:
                self.connect()
            except MountFailed:
                raise FuseOSError(errno.EIO) from None
        assert self.ctx is not None
        return self.ctx

    def call(self, name: str, *args: Any) -> int:
        """Call ``nfs_<name>(ctx, *args)``; a negative result raises FuseOSError and may drop the connection."""
        with self.lock:
            ret = getattr(self.lib, f"nfs_{name}")(self._live(), *args)
            if isinstance(ret, int) and ret < 0:
                code = -ret
                if code not in _FS_ERRORS:
                    self.lib.nfs_destroy_context(self.ctx)
                    self.ctx = None
                raise FuseOSError(code)
            return ret

    def handle(self, h: Handle) -> ctypes.c_void_p:
        """``h``'s libnfs file handle, reopened when the connection was replaced since it was opened."""
        with self.lock:
            self._live()
            if h.generation != self.generation:
                fh = ctypes.c_void_p()
                self.call("open", h.path.encode(), h.flags & ~(os.O_CREAT | os.O_EXCL | os.O_TRUNC),
                          ctypes.byref(fh))
                h.fh, h.generation = fh, self.generation
            return h.fh


class NfsFs(Operations):  # type: ignore[misc]
    # No attribute may be named after a FUSE operation it does not implement (fusepy would dispatch to it).

    def __init__(self, client: NfsClient, *, refuse_direct: bool = False) -> None:
        self.nfs = client
        self.refuse_direct = refuse_direct
        self.files: dict[int, Handle] = {}
        self.next_fh = 1
        self.table_guard = threading.Lock()

    def _add(self, path: str, flags: int, fh: ctypes.c_void_p) -> int:
        with self.table_guard:
            n = self.next_fh
            self.next_fh += 1
            self.files[n] = Handle(path, flags, fh, self.nfs.generation)
            return n

    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        st = Stat64()
        self.nfs.call("lstat64", path.encode(), ctypes.byref(st))
        mode = st.mode
        if not stat.S_IFMT(mode):
            mode |= stat.S_IFREG
        return {"st_mode": mode, "st_ino": st.ino, "st_nlink": st.nlink, "st_uid": st.uid, "st_gid": st.gid,
                "st_size": st.size, "st_blocks": st.blocks, "st_blksize": st.blksize,
                "st_atime": st.atime + st.atime_nsec / 1e9, "st_mtime": st.mtime + st.mtime_nsec / 1e9,
                "st_ctime": st.ctime + st.ctime_nsec / 1e9}

    def statfs(self, path: str) -> dict[str, int]:
        sv = StatVfs64()
        self.nfs.call("statvfs64", path.encode(), ctypes.byref(sv))
        return {name: getattr(sv, name) for name in ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail",
                                                      "f_files", "f_ffree", "f_favail", "f_namemax")}

    def readdir(self, path: str, fh: int) -> list[str]:
        d = ctypes.c_void_p()
        names = []
        with self.nfs.lock:
            self.nfs.call("opendir", path.encode(), ctypes.byref(d))
            try:
                while True:
                    ent = self.nfs.lib.nfs_readdir(self.nfs.ctx, d)
                    if not ent:
                        break
                    names.append(ent.contents.name.decode(errors="surrogateescape"))
            finally:
                self.nfs.lib.nfs_closedir(self.nfs.ctx, d)
        return names

    def open(self, path: str, flags: int) -> int:
        fh = ctypes.c_void_p()
        if flags & getattr(os, "O_DIRECT", 0) and self.refuse_direct:
            raise FuseOSError(errno.EINVAL)
        flags &= ~getattr(os, "O_DIRECT", 0)
        self.nfs.call("open", path.encode(), flags, ctypes.byref(fh))
        return self._add(path, flags, fh)

    def create(self, path: str, mode: int, fi: Any = None) -> int:
        fh = ctypes.c_void_p()
        flags = os.O_RDWR | os.O_CREAT | os.O_TRUNC
        self.nfs.call("create", path.encode(), flags, stat.S_IMODE(mode), ctypes.byref(fh))
        return self._add(path, os.O_RDWR, fh)

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        buf = ctypes.create_string_buffer(size)
        with self.nfs.lock:
            n = self.nfs.call("pread", self.nfs.handle(self.files[fh]), offset, size, buf)
        return buf.raw[:n]

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        view = memoryview(data)
        done = 0
        with self.nfs.lock:
            while done < len(view):
                chunk = bytes(view[done:])
                n = self.nfs.call("pwrite", self.nfs.handle(self.files[fh]), offset + done, len(chunk), chunk)
                if n == 0:
                    raise FuseOSError(errno.EIO)
                done += n
        return done

    def fsync(self, path: str, datasync: int, fh: int) -> None:
        with self.nfs.lock:
            self.nfs.call("fsync", self.nfs.handle(self.files[fh]))

    def flush(self, path: str, fh: int) -> None:
        return None

    def release(self, path: str, fh: int) -> None:
        with self.table_guard:
            h = self.files.pop(fh, None)
        if h is not None:
            with self.nfs.lock:
                if h.generation == self.nfs.generation and self.nfs.ctx is not None:
                    self.nfs.lib.nfs_close(self.nfs.ctx, h.fh)

    def truncate(self, path: str, length: int, fh: int | None = None) -> None:
        if fh is not None and fh in self.files:
            with self.nfs.lock:
                self.nfs.call("ftruncate", self.nfs.handle(self.files[fh]), length)
        else:
            self.nfs.call("truncate", path.encode(), length)

    def mkdir(self, path: str, mode: int) -> None:
        self.nfs.call("mkdir2", path.encode(), stat.S_IMODE(mode))

    def rmdir(self, path: str) -> None:
        self.nfs.call("rmdir", path.encode())

    def unlink(self, path: str) -> None:
        self.nfs.call("unlink", path.encode())

    def rename(self, old: str, new: str) -> None:
        self.nfs.call("rename", old.encode(), new.encode())

    def chmod(self, path: str, mode: int) -> None:
        self.nfs.call("chmod", path.encode(), stat.S_IMODE(mode))

    def chown(self, path: str, uid: int, gid: int) -> None:
        self.nfs.call("chown", path.encode(), uid, gid)

    def utimens(self, path: str, times: tuple[float, float] | None = None) -> None:
        if times is None:
            return
        tv = (TimeVal * 2)(*(TimeVal(int(t), int((t % 1) * 1e6)) for t in times))
        self.nfs.call("utimes", path.encode(), tv)

    def access(self, path: str, amode: int) -> None:
        self.getattr(path)


def parse_args(argv: list[str]) -> tuple[str, str, dict[str, str]]:
    """``[-o a=b,c] share mountpoint`` as mount(8) passes them."""
    opts: dict[str, str] = {}
    rest = []
    i = 0
    while i < len(argv):
        if argv[i] == "-o" and i + 1 < len(argv):
            for item in argv[i + 1].split(","):
                key, _, value = item.partition("=")
                if key:
                    opts[key] = value
            i += 2
        else:
            rest.append(argv[i])
            i += 1
    if len(rest) != 2 or ":" not in rest[0]:
        raise MountFailed("usage: nfs_fuse.py [-o options] host:/path mountpoint")
    return rest[0], rest[1], opts


def share_url(share: str, opts: dict[str, str]) -> str:
    host, _, path = share.rpartition(":")
    host = host.strip("[]")
    if opts.get("vers", opts.get("nfsvers", "3")) != "3":
        raise MountFailed("only NFSv3 is supported (vers=3)")
    query = [f"nfsport={opts['port']}" if "port" in opts else "",
             f"mountport={opts['mountport']}" if "mountport" in opts else ""]
    q = "&".join(p for p in query if p)
    return f"nfs://{host}{path}" + (f"?{q}" if q else "")


def main(argv: list[str]) -> int:
    try:
        share, mountpoint, opts = parse_args(argv)
        if not os.path.isdir(mountpoint):
            raise MountFailed(f"mount point {mountpoint} does not exist")
        client = NfsClient(share_url(share, opts), timeout_ms=int(opts.get("timeo", "50")) * 100)
    except MountFailed as exc:
        print(f"mount.nfs: {exc}", file=sys.stderr)
        return MOUNT_FAILED
    FUSE(NfsFs(client, refuse_direct="nodirect" in opts), mountpoint, foreground="foreground" in opts,
         nothreads=False, fsname=share, subtype="nfs", big_writes=True, max_write=1 << 20, ro="ro" in opts,
         allow_other=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
