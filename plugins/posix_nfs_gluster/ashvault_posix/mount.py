"""Mounting a remote share under a mount-point base, shared by the nfs and glusterfs drivers.

The mount point is ``<base>/<md5 hex of the share>``, as os-brick's RemoteFsClient (and so Cinder) derives it, so
two hosts, or ashvault and Cinder, agree on it. A share already mounted there is reused; otherwise the mount
command runs (never through a shell) under an inter-process lock, with retries and a doubling backoff.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shlex
import time
from collections.abc import Callable
from typing import Any, NoReturn

from oslo_concurrency import processutils
from oslo_config import cfg

from ashvault import exceptions
from ashvault.chunked import ChunkedBackupDriver
from ashvault.locks import FileLock
from ashvault.objectstore import ObjectStore
from ashvault_posix.objectstore import PosixObjectStore

MOUNTINFO = "/proc/self/mountinfo"


def mount_point(base: str, share: str) -> str:
    """Where ``share`` is mounted under ``base``: the md5 hex of the share string, as os-brick names it."""
    return os.path.join(base, hashlib.md5(share.encode("utf-8"), usedforsecurity=False).hexdigest())


def _unescape(field: str) -> str:
    # mountinfo writes space, tab, newline and backslash in paths as octal escapes.
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def mounted_at(path: str) -> str | None:
    """The source of the mount on ``path`` (the last one, if several are stacked), or ``None``."""
    path = os.path.realpath(path)
    found = None
    try:
        with open(MOUNTINFO, encoding="utf-8", errors="replace") as f:
            for line in f:
                fields = line.split()
                if len(fields) < 10 or _unescape(fields[4]) != path:
                    continue
                sep = fields.index("-", 6)
                found = _unescape(fields[sep + 2])
    except OSError:
        return None
    return found


class MountError(exceptions.DriverSetupError):
    message = "cannot mount %(share)s on %(path)s: %(reason)s"


class Mounter:
    """Mounts one share with one command; :meth:`ensure` returns the mount point, mounted."""

    def __init__(
        self,
        share: str,
        base: str,
        *,
        command: str,
        options: str | None = None,
        attempts: int = 3,
        backoff: float = 1.0,
        lock_dir: str,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not share:
            raise exceptions.DriverSetupError(reason="no share is configured")
        self.share = share
        self.base = os.path.abspath(base)
        self.path = mount_point(self.base, share)
        self.command = shlex.split(command)
        if not self.command:
            raise exceptions.DriverSetupError(reason="mount_command is empty")
        self.options = options
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.lock_path = os.path.join(lock_dir, f"mount-{os.path.basename(self.path)}.lock")
        self._sleep = sleep

    def argv(self) -> list[str]:
        """The mount command line: the configured command, ``-o options``, the share, the mount point."""
        opts = ["-o", self.options] if self.options else []
        return [*self.command, *opts, self.share, self.path]

    def is_mounted(self) -> bool:
        return mounted_at(self.path) is not None

    def usable(self) -> bool:
        """Whether something is mounted on the mount point and answers (a dead FUSE mount does not)."""
        if not self.is_mounted():
            return False
        try:
            os.listdir(self.path)
        except OSError:
            return False
        return True

    def ensure(self) -> str:
        """Mount the share unless it is mounted and answering already; returns the mount point.

        A mount that no longer answers (its client died, or a failed mount left it behind) is detached first.
        Raises :class:`MountError` with the command's own last error line once every attempt failed.
        """
        if self.usable():
            return self.path
        lock = FileLock(self.lock_path)
        lock.acquire()
        try:
            if self.usable():
                return self.path
            self._detach()
            try:
                os.makedirs(self.path, exist_ok=True)
            except OSError as exc:
                raise MountError(share=self.share, path=self.path, reason=exc.strerror) from exc
            delay = self.backoff
            for attempt in range(1, self.attempts + 1):
                reason = self._mount_once()
                if reason is None:
                    return self.path
                self._detach()
                if attempt == self.attempts:
                    raise MountError(share=self.share, path=self.path,
                                     reason=f"{reason} (after {attempt} attempt{'s' if attempt > 1 else ''})")
                self._sleep(delay)
                delay *= 2
        finally:
            lock.release()
        raise AssertionError("unreachable")

    def _mount_once(self) -> str | None:
        """Run the mount command once: ``None`` once the share is mounted and answers, else why it is not."""
        argv = self.argv()
        try:
            processutils.execute(*argv, check_exit_code=True)
        except processutils.ProcessExecutionError as exc:
            return _last_line(exc.stderr) or _last_line(exc.stdout) or f"{argv[0]} exited with {exc.exit_code}"
        except OSError as exc:
            return f"{argv[0]}: {exc.strerror}"
        if not self.is_mounted():
            return f"{' '.join(self.command)} returned 0 but nothing is mounted there"
        if not self.usable():
            return "the mount does not answer"
        return None

    def _detach(self) -> None:
        """Lazily unmount whatever is left on the mount point (a dead or half-made mount)."""
        while self.is_mounted():
            try:
                processutils.execute("umount", "-l", self.path, check_exit_code=True)
            except (processutils.ProcessExecutionError, OSError):
                return

    def unmount(self) -> None:
        """Unmount the share if it is mounted (used by tests and tools; the drivers leave it mounted)."""
        if self.is_mounted():
            try:
                processutils.execute("umount", self.path, check_exit_code=True)
            except processutils.ProcessExecutionError as exc:
                raise exceptions.DriverError(reason=f"cannot unmount {self.path}: {_last_line(exc.stderr)}") from exc


def _last_line(text: str | None) -> str:
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    return lines[-1] if lines else ""


class MountedObjectStore(PosixObjectStore):
    """The posix store on a mount point that mounts the share again when the mount stops answering.

    A transient failure on a mount that no longer answers (its FUSE client died, say) has the share mounted again
    before the error goes to the core's retry, so the retry finds a live mount; a mount that then fails is
    reported as such, in one line.
    """

    def __init__(self, mounter: Mounter, **kwargs: Any) -> None:
        super().__init__(mounter.ensure(), **kwargs)
        self.mounter = mounter

    def _recover(self, exc: exceptions.TransientDriverError) -> NoReturn:
        if not self.mounter.usable():
            self.mounter.ensure()
        raise exc

    def put_container(self, container: str) -> None:
        try:
            super().put_container(container)
        except exceptions.TransientDriverError as exc:
            self._recover(exc)

    def list_objects(self, container: str, prefix: str = "") -> list[str]:
        try:
            return super().list_objects(container, prefix)
        except exceptions.TransientDriverError as exc:
            self._recover(exc)

    def object_sizes(self, container: str, prefix: str = "") -> dict[str, int] | None:
        try:
            return super().object_sizes(container, prefix)
        except exceptions.TransientDriverError as exc:
            self._recover(exc)

    def put_object(self, container: str, name: str, data: bytes | memoryview) -> None:
        try:
            super().put_object(container, name, data)
        except exceptions.TransientDriverError as exc:
            self._recover(exc)

    def get_object(self, container: str, name: str) -> bytes | memoryview:
        try:
            return super().get_object(container, name)
        except exceptions.TransientDriverError as exc:
            self._recover(exc)

    def delete_object(self, container: str, name: str) -> None:
        try:
            super().delete_object(container, name)
        except exceptions.TransientDriverError as exc:
            self._recover(exc)


class MountedBackupDriver(ChunkedBackupDriver):
    """A posix-family driver that mounts ``[<group>] share`` first and keeps backups on the mount point.

    Subclasses name themselves and their options; the share is mounted on first use (not when the driver is only
    shown), then everything is the posix object store on the mount point.
    """

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        super().__init__(conf)
        self._mounter: Mounter | None = None

    @property
    def mounter(self) -> Mounter:
        if self._mounter is None:
            o = self.options
            self._mounter = Mounter(
                o.share, o.mount_point_base, command=o.mount_command, options=o.mount_options,
                attempts=o.mount_attempts, backoff=o.mount_retry_backoff,
                lock_dir=os.path.join(self.conf.ashvault_state_path, "locks"),
            )
        return self._mounter

    def make_object_store(self) -> ObjectStore:
        return MountedObjectStore(
            self.mounter,
            create_containers=self.conf.backup_create_containers,
            fsync=self.options.fsync,
            direct_io=self.options.direct_io,
        )

    def check_for_setup_error(self) -> None:
        """Mount the share, then write, read back and remove a probe object; says which step failed."""
        if not self.options.share:
            raise exceptions.DriverSetupError(reason=f"[{self.option_group}] share is not set")
        root = self.mounter.ensure()
        probe(root, self.share_label(), fsync=self.options.fsync, direct_io=self.options.direct_io)
        super().check_for_setup_error()

    def share_label(self) -> str:
        return f"{self.name} share {self.options.share}"


def probe(root: str, label: str, *, fsync: bool, direct_io: bool) -> None:
    """Write, read back and remove a small object under ``root`` as backups do; raises naming the failed step."""
    store = PosixObjectStore(root, create_containers=True, fsync=fsync, direct_io=direct_io)
    container = f"ashvault-probe-{secrets.token_hex(4)}"
    data = secrets.token_bytes(8192)
    step = "create a directory on"
    try:
        store.put_container(container)
        step = "write a probe object to"
        store.put_object(container, "probe", data)
        step = "read the probe object from"
        if bytes(store.get_object(container, "probe")) != data:
            raise exceptions.DriverError(reason="the bytes read back differ from those written")
        step = "remove the probe object from"
        store.delete_object(container, "probe")
        os.rmdir(os.path.join(root, container))
    except (exceptions.DriverError, OSError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and not isinstance(exc, exceptions.AshvaultError) else exc
        raise exceptions.DriverSetupError(reason=f"cannot {step} the {label} mounted on {root}: {reason}") from exc
