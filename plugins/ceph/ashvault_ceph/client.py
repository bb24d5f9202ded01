"""Connecting to a Ceph cluster, and turning librados/librbd errors into ashvault's typed errors.

Importing this module fails with an ImportError naming the Debian packages when the bindings are missing (PyPI has
none), so ``ashvault driver list`` says what to install.
"""

from __future__ import annotations

import errno
import threading
from typing import Any

try:
    import rados
    import rbd
except ImportError as _exc:  # pragma: no cover - depends on the machine
    raise ImportError(
        "the Ceph bindings are missing: apt-get install python3-rados python3-rbd, then link them into this "
        "virtualenv (plugins/ceph/ci/install.sh does both)"
    ) from _exc

from ashvault import exceptions

__all__ = ["Connection", "rados", "rbd", "translate"]

_TRANSIENT = {errno.ETIMEDOUT, errno.EINTR, errno.EAGAIN, errno.ESHUTDOWN, errno.ENOTCONN, errno.ECONNRESET,
              errno.ECONNREFUSED, errno.EIO}


def translate(exc: BaseException, what: str) -> exceptions.AshvaultError:
    """A one-line typed error for a failed librados/librbd call; ``what`` says what was being done."""
    if isinstance(exc, exceptions.AshvaultError):
        return exc
    code = getattr(exc, "errno", None)
    code = abs(code) if isinstance(code, int) else None
    detail = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, rados.PermissionDeniedError | rados.PermissionError | rbd.PermissionError) or code in (
        errno.EPERM, errno.EACCES
    ):
        return exceptions.PermissionDenied(reason=f"{what}: the cephx user lacks the rights (errno {code or 1})")
    if isinstance(exc, rados.NoSpace | rbd.NoSpace | rbd.DiskQuotaExceeded) or code in (errno.ENOSPC, errno.EDQUOT):
        return exceptions.QuotaExceeded(reason=f"{what}: {detail}")
    if isinstance(exc, rados.TimedOut | rados.InterruptedOrTimeoutError | rados.ConnectionShutdown | rbd.Timeout
                  | rbd.ConnectionShutdown) or code in _TRANSIENT:
        return exceptions.TransientDriverError(reason=f"{what}: {detail}")
    return exceptions.DriverError(reason=f"{what}: {detail}")


class Connection:
    """A lazily opened cluster handle plus one I/O context per (pool, namespace); thread-safe, reused by all calls.

    Every RADOS operation gets ``op_timeout``, and connecting ``connect_timeout``, so a cluster or OSD that does not
    answer gives an error, never a hang.
    """

    def __init__(self, conffile: str, user: str, *, connect_timeout: int = 30, op_timeout: int = 60) -> None:
        self.conffile = conffile
        self.user = user
        self.connect_timeout = connect_timeout
        self.op_timeout = op_timeout
        self._cluster: Any = None
        self._ioctxs: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    @property
    def cluster(self) -> Any:
        with self._lock:
            if self._cluster is None:
                self._cluster = self._connect()
            return self._cluster

    def _connect(self) -> Any:
        conf = {
            "rados_osd_op_timeout": str(self.op_timeout),
            "rados_mon_op_timeout": str(self.op_timeout),
            "client_mount_timeout": str(self.connect_timeout),
            # How long librbd waits for an image's lock owner to answer (default 30 s); a dead one never does.
            "rbd_request_timed_out_seconds": str(min(self.op_timeout, 30)),
            # librados/librbd would print their own errors on stderr; ours are typed and one line.
            "log_to_stderr": "false",
            "err_to_stderr": "false",
        }
        try:
            cluster = rados.Rados(conffile=self.conffile, rados_id=self.user, conf=conf)
        except rados.Error as exc:
            raise exceptions.DriverSetupError(reason=f"cannot read Ceph configuration {self.conffile}: {exc}") from exc
        try:
            cluster.connect(timeout=self.connect_timeout)
        except rados.Error as exc:
            cluster.shutdown()
            err = translate(exc, f"connecting to the Ceph cluster of {self.conffile} as client.{self.user}")
            if isinstance(err, exceptions.PermissionDenied):
                raise exceptions.AuthenticationFailed(
                    reason=f"the Ceph cluster of {self.conffile} refused client.{self.user} (unknown user, or no "
                    "or a wrong key in the keyring)"
                ) from exc
            raise exceptions.DriverSetupError(
                reason=f"cannot connect to the Ceph cluster of {self.conffile} as client.{self.user} within "
                f"{self.connect_timeout}s: {' '.join(str(exc).split())}"
            ) from exc
        return cluster

    def pool_exists(self, pool: str) -> bool:
        try:
            return bool(self.cluster.pool_exists(pool))
        except rados.Error as exc:
            raise translate(exc, f"looking up pool {pool}") from exc

    def ioctx(self, pool: str, namespace: str = "") -> Any:
        """The I/O context of ``pool`` (in ``namespace``). Raises ``ContainerNotFound`` for a missing pool."""
        key = (pool, namespace)
        ctx = self._ioctxs.get(key)
        if ctx is not None:
            return ctx
        cluster = self.cluster
        with self._lock:
            ctx = self._ioctxs.get(key)
            if ctx is None:
                try:
                    ctx = cluster.open_ioctx(pool)
                except rados.ObjectNotFound:
                    raise exceptions.ContainerNotFound(container=pool) from None
                except rados.Error as exc:
                    raise translate(exc, f"opening pool {pool}") from exc
                ctx.set_namespace(namespace)
                self._ioctxs[key] = ctx
            return ctx

    def forget(self, pool: str) -> None:
        with self._lock:
            for key in [k for k in self._ioctxs if k[0] == pool]:
                self._ioctxs.pop(key).close()

    def close(self) -> None:
        with self._lock:
            for ctx in self._ioctxs.values():
                ctx.close()
            self._ioctxs.clear()
            if self._cluster is not None:
                self._cluster.shutdown()
                self._cluster = None
