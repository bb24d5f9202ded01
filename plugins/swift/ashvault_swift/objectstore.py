"""SwiftObjectStore: containers are Swift containers, objects are Swift objects (``/`` is part of the name)."""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from requests import RequestException
from swiftclient import client as swift_client
from swiftclient.exceptions import ClientException
from urllib3.exceptions import HTTPError as Urllib3Error

from ashvault import exceptions
from ashvault.objectstore import ObjectStore, check_name
from ashvault_swift.auth import Credentials, network_reason

T = TypeVar("T")
# swiftclient logs every failed request as curl lines at INFO: the error we raise already says it in one line,
# and no token prefix may ever reach a log.
swift_client.logger_settings["reveal_sensitive_prefix"] = 0
if logging.getLogger("swiftclient").level == logging.NOTSET:
    logging.getLogger("swiftclient").setLevel(logging.WARNING)


def _translate(exc: ClientException, what: str, container: str, name: str | None) -> exceptions.DriverError:
    status = exc.http_status
    text = f"{what}: HTTP {status} {exc.http_reason or ''}".strip()
    if status == 401:
        return exceptions.AuthenticationFailed(reason=f"{text}: Swift refused the token")
    if status == 403:
        where = f"container '{container}'" if container else "the account"
        return exceptions.PermissionDenied(reason=f"{text}: the user has no rights on {where}")
    if status == 404:
        if name is None:
            return exceptions.ContainerNotFound(container=container)
        return exceptions.ObjectNotFound(name=name, container=container)
    if status in (413, 507):
        return exceptions.QuotaExceeded(reason=text)
    if status is None or status >= 500 or status in (408, 422, 429, 498, 499):
        return exceptions.TransientDriverError(reason=text if status else f"{what}: {exc.msg}")
    return exceptions.DriverError(reason=text)


class SwiftObjectStore(ObjectStore):
    """Objects in one Swift account, through python-swiftclient.

    Each call takes a pooled connection (calls run in several threads at once), authenticates on first use and
    once more when Swift refuses the token (401); a second 401 is ``AuthenticationFailed``. swiftclient's own
    retries are off: the core's retry wrapper retries every ``TransientDriverError`` (connection failures, 5xx,
    408, 422, 429), and each try sends ``data`` again from its start. 403 is ``PermissionDenied``, 404
    ``ObjectNotFound`` or ``ContainerNotFound``, 413 and 507 ``QuotaExceeded``; any other answer is a permanent
    ``DriverError``.
    """

    def __init__(self, credentials: Credentials, *, create_containers: bool = True,
                 storage_policy: str | None = None, check_container: str | None = None,
                 timeout: float = 60.0, insecure: bool = False, cacert: str | None = None) -> None:
        self.credentials = credentials
        self.create_containers = create_containers
        self.storage_policy = storage_policy
        self.check_container = check_container
        self._conn_args: dict[str, Any] = {"retries": 0, "timeout": timeout, "insecure": insecure,
                                           "cacert": cacert}
        self._idle: list[swift_client.Connection] = []
        self._lock = threading.Lock()
        self._known: set[str] = set()

    def _checkout(self, url: str, token: str) -> swift_client.Connection:
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            return swift_client.Connection(preauthurl=url, preauthtoken=token, **self._conn_args)
        conn.url, conn.token = url, token
        return conn

    def _call(self, what: str, fn: Callable[[swift_client.Connection], T], container: str,
              name: str | None = None) -> T:
        url, token = self.credentials.get()
        for attempt in (1, 2):
            conn = self._checkout(url, token)
            try:
                result = fn(conn)
            except ClientException as exc:
                if exc.http_status == 401 and attempt == 1:
                    self._checkin(conn)
                    url, token = self.credentials.renew(token)  # per_user cannot: it raises a clear error
                    continue
                if exc.http_status is None or exc.http_status >= 500:
                    conn.close()
                else:
                    self._checkin(conn)
                raise _translate(exc, what, container, name) from None
            except (OSError, RequestException, Urllib3Error) as exc:  # urllib3's: a body cut short
                conn.close()
                raise exceptions.TransientDriverError(
                    reason=f"{what}: cannot reach Swift at {url}: {network_reason(exc)}") from None
            self._checkin(conn)
            return result
        raise AssertionError("unreachable")

    def _checkin(self, conn: swift_client.Connection) -> None:
        with self._lock:
            self._idle.append(conn)

    @staticmethod
    def _container(container: str) -> str:
        check_name(container, what="container name")
        if "/" in container:
            raise exceptions.InvalidInput(reason=f"invalid container name '{container}': a Swift container "
                                                 "name has no '/'")
        return container

    def put_container(self, container: str) -> None:
        container = self._container(container)
        if container in self._known:
            return
        try:
            self._call(f"HEAD container {container}", lambda c: c.head_container(container), container)
        except exceptions.ContainerNotFound:
            if not self.create_containers:
                raise
            headers = {"X-Storage-Policy": self.storage_policy} if self.storage_policy else {}
            self._call(f"create container {container}", lambda c: c.put_container(container, headers=headers),
                       container)
        self._known.add(container)

    def list_objects(self, container: str, prefix: str = "") -> list[str]:
        container = self._container(container)
        try:
            _headers, listing = self._call(
                f"list {container}/{prefix}",
                lambda c: c.get_container(container, prefix=prefix or None, full_listing=True), container)
        except exceptions.ContainerNotFound:
            return []
        return sorted(entry["name"] for entry in listing)

    def put_object(self, container: str, name: str, data: bytes) -> None:
        """Upload ``data`` with its MD5 as ETag: Swift refuses a body that arrives changed (422, retried), and the
        ETag it answers must match too."""
        container, name = self._container(container), check_name(name)
        md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
        try:
            etag = self._call(
                f"upload {container}/{name}",
                lambda c: c.put_object(container, name, data, content_length=len(data), etag=md5,
                                       content_type="application/octet-stream"),
                container, name)
        except exceptions.ObjectNotFound:
            raise exceptions.ContainerNotFound(container=container) from None
        if etag != md5:
            raise exceptions.TransientDriverError(
                reason=f"upload {container}/{name}: Swift stored ETag {etag}, the data sent has MD5 {md5}")

    def get_object(self, container: str, name: str) -> bytes:
        container, name = self._container(container), check_name(name)
        headers, body = self._call(f"download {container}/{name}", lambda c: c.get_object(container, name),
                                   container, name)
        expected = headers.get("content-length")
        if expected is not None and int(expected) != len(body):
            raise exceptions.TransientDriverError(
                reason=f"download {container}/{name}: got {len(body)} of {expected} bytes")
        return bytes(body)

    def delete_object(self, container: str, name: str) -> None:
        container, name = self._container(container), check_name(name)
        self._call(f"delete {container}/{name}", lambda c: c.delete_object(container, name), container, name)

    def check(self) -> None:
        """Authenticate and read the account (and the container when it will not be created)."""
        try:
            self._call("read the account", lambda c: c.head_account(), "")
            if self.check_container and not self.create_containers:
                container = self._container(self.check_container)
                self._call(f"HEAD container {container}", lambda c: c.head_container(container), container)
        except exceptions.ContainerNotFound as exc:
            raise exceptions.DriverSetupError(
                reason=f"{exc}, and backup_create_containers is false: create it or allow creation") from None
        except exceptions.DriverError as exc:
            if isinstance(exc, exceptions.DriverSetupError):
                raise
            raise exceptions.DriverSetupError(reason=str(exc)) from None

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
