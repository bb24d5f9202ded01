"""GoogleObjectStore: containers are buckets, objects are GCS objects (``/`` is part of the name)."""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import google_crc32c
from google.api_core import exceptions as api_exceptions
from google.api_core.retry import Retry
from google.auth import exceptions as auth_exceptions
from google.cloud import storage
from google.cloud.storage.exceptions import DataCorruption, InvalidResponse
from google.cloud.storage.retry import ConditionalRetryPolicy, is_generation_specified

from ashvault import exceptions
from ashvault.objectstore import ObjectStore, check_name

T = TypeVar("T")

ALWAYS_RETRIED = frozenset({408, 429, 500, 502, 503, 504})
"""The status codes Google's client retries by itself (``google.cloud.storage.retry``)."""

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9_.\-]{1,61}[a-z0-9]$")
_CONTENT_TYPE = "application/octet-stream"
_MULTIPART_LIMIT = 8 << 20
"""Google's client sends an object of at most this many bytes in one multipart request, larger ones resumable."""
_CRC_PIECE = 256 << 10


def status_of(exc: BaseException) -> int | None:
    """The HTTP status an error of Google's client carries, if any."""
    if isinstance(exc, api_exceptions.GoogleAPICallError):
        return int(exc.code) if exc.code is not None else None
    if isinstance(exc, InvalidResponse):
        return int(exc.response.status_code)
    return None


def is_network_error(exc: BaseException) -> bool:
    """A failure to reach the server or to get its whole answer (never an HTTP status)."""
    import http.client

    import requests
    import urllib3

    if isinstance(exc, auth_exceptions.TransportError):
        return True
    return isinstance(exc, ConnectionError | requests.ConnectionError | requests.Timeout
                      | requests.exceptions.ChunkedEncodingError | http.client.HTTPException
                      | urllib3.exceptions.HTTPError | TimeoutError)


def network_reason(exc: BaseException) -> str:
    """'connection refused', 'timed out', ... from the innermost cause, in a few words."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError):
            return "connection refused"
        if isinstance(seen, ConnectionResetError):
            return "connection reset"
        if isinstance(seen, TimeoutError) or "timed out" in str(seen).lower():
            return "timed out"
        seen = seen.__cause__ or seen.__context__
    text = str(exc)
    if "RemoteDisconnected" in text or "Connection aborted" in text:
        return "connection closed by the server"
    if "Connection refused" in text:
        return "connection refused"
    return type(exc).__name__


def one_line(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def quiet_request_logging() -> None:
    """Stop google-auth from parsing every request and response body for a debug line that is never shown.

    google-auth's ``AuthorizedSession`` calls ``request_log``/``response_log`` around every request; when its
    logger is enabled for DEBUG they decode the whole body as UTF-8 and JSON (a failed decode copies it into the
    exception) and run ``response.json()`` on every download. cliff sets the root logger to DEBUG, so in the shell
    that was on for every object: about 2 CPU seconds per GiB backed up (``py-spy``: the largest leaf of a backup
    was ``_parse_request_body``). The records go nowhere anyway: google-auth stops the ``google`` logger from
    propagating unless someone configured it. So unless the ``google`` logger or the transport's own logger was
    configured, the transport's logger is set to INFO.
    """
    base, transport = logging.getLogger("google"), logging.getLogger("google.auth.transport.requests")
    if base.level == logging.NOTSET and not base.handlers and transport.level == logging.NOTSET:
        transport.setLevel(logging.INFO)


def crc32c_of(data: bytes | memoryview) -> int:
    """CRC32C of any contiguous buffer.

    google-crc32c takes only buffers that need no release (``bytes``), so a view is checksummed in 256 KiB copies:
    they reuse the same warm heap memory, where one copy of a whole object would fault in fresh pages (2.5 times
    the CPU for a 50 MiB object here).
    """
    if isinstance(data, bytes):
        return int(google_crc32c.value(data))
    view, crc = memoryview(data).cast("B"), 0
    for at in range(0, len(view), _CRC_PIECE):
        crc = google_crc32c.extend(crc, bytes(view[at : at + _CRC_PIECE]))
    return int(crc)


class _ViewReader:
    """A read-only file over a buffer whose reads are views of it, not copies.

    Google's resumable upload reads each piece with ``read`` and hands it to requests, whose urllib3 sends any
    buffer with ``socket.sendall``; a failed piece is resent after a ``seek`` to where the server stopped.
    """

    def __init__(self, view: memoryview) -> None:
        self._view = view
        self._pos = 0

    def read(self, size: int = -1) -> memoryview:
        end = len(self._view) if size is None or size < 0 else min(len(self._view), self._pos + size)
        piece, self._pos = self._view[self._pos : end], max(self._pos, end)
        return piece

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: len(self._view)}[whence]
        self._pos = max(0, base + offset)
        return self._pos


class _Tries:
    """The retry predicate: transient failures, at most ``retries`` times for one operation.

    Google's ``Retry`` is bounded by a deadline, not a count; a fresh instance of this counter per operation gives
    Cinder's count (``backup_gcs_num_retries``) while the library keeps doing the backoff and the sleeping.
    """

    def __init__(self, retries: int, codes: frozenset[int]) -> None:
        self.left = retries
        self.codes = codes

    def __call__(self, exc: BaseException) -> bool:
        status = status_of(exc)
        transient = status in self.codes if status is not None else is_network_error(exc)
        if not transient or self.left <= 0:
            return False
        self.left -= 1
        return True


class GoogleObjectStore(ObjectStore):
    """Objects in Google Cloud Storage buckets, through ``google-cloud-storage``.

    **Retries, in two layers.** Each request is first retried by Google's client (``google.api_core.retry.Retry``
    with exponential backoff and jitter from ``initial_delay`` seconds), at most ``num_retries`` times, on 408, 429,
    500, 502, 503, 504, the extra ``retry_codes`` and connection errors; a resumable upload resumes from the
    last piece the server confirmed. What still fails is translated: transient failures become
    ``TransientDriverError``, which the core's ``RetryingObjectStore`` retries ``retry_attempts`` times (2 by
    default for this driver, 2 s apart) from the start of the object. So one object is tried at most
    ``(num_retries + 1) * retry_attempts`` times (8 with the defaults), with at most ``2 * (1 + 2 + 4) + 2.5``
    = 16.5 s of waiting (the client draws each wait at random up to 1, 2, 4 s; half that on average): enough for
    a restart of the endpoint or a burst of 429s, and never the core's default 5 tries each wrapped around the
    client's default 120 s of retrying. Permanent errors pass both layers at once: 401 and credential failures are
    ``AuthenticationFailed``, 403 ``PermissionDenied``, 404 ``ObjectNotFound`` (``ContainerNotFound`` for a
    bucket), 412 a conflict (below), any other 4xx a ``DriverError``.

    **Integrity.** Uploads carry the object's CRC32C (or MD5) to the server, which refuses a body that does not
    match it; the checksum the server answers must equal ours too. Downloads are read whole in one request and
    checked against the checksum the server sends (a ranged read would lose it); a mismatch is a transient
    ``DataCorruption`` and is retried. The body is taken in one read (``single_shot_download``) rather than the
    client's default 8 KiB pieces: objects are at most ``object_size`` and wanted whole anyway, and it saves
    most of the client's CPU per byte.

    **Preconditions.** Every upload is conditional, so it is idempotent (Google's
    ``ConditionalRetryPolicy`` then lets the client retry it) and never silently replaces a concurrent writer's
    object: ``if_generation_match`` is the generation this store last saw for the name (written, listed or read
    by it), or 0 (create only) for a name it has not seen. The chunked engine writes each name once per backup,
    so in practice every upload is a create. When the server answers 412, the object is read back: if it holds
    exactly our bytes (an earlier try of ours landed, though its answer was lost), that counts as success;
    otherwise it is a permanent ``DriverError`` naming the other generation, and nothing is overwritten.

    **Buffers.** ``put_object`` takes the engine's views of what it read (``accepts_buffers``): an object over
    8 MiB goes as one resumable upload whose body is sent from that memory, never copied into ``bytes`` first;
    with ``chunk_size`` unset, that is one request for the bytes after the one that opens the session.
    """

    accepts_buffers = True

    def __init__(self, client: storage.Client, *, create_containers: bool = True, location: str | None = None,
                 storage_class: str | None = None, check_container: str | None = None, num_retries: int = 3,
                 retry_codes: Iterable[int] = (), initial_delay: float = 1.0, chunk_size: int | None = None,
                 checksum: str = "crc32c", timeout: float = 60.0) -> None:
        self.client = client
        self.create_containers = create_containers
        self.location = location
        self.storage_class = storage_class
        self.check_container = check_container
        self.num_retries = num_retries
        self.retry_codes = ALWAYS_RETRIED | frozenset(retry_codes)
        self.initial_delay = initial_delay
        self.chunk_size = chunk_size
        self.checksum = checksum
        self.timeout = timeout
        self.endpoint = str(client.api_endpoint)
        self._lock = threading.Lock()
        self._generations: dict[tuple[str, str], int] = {}
        self._known: set[str] = set()
        quiet_request_logging()

    # -- plumbing -------------------------------------------------------------------------------------------

    def _retry(self) -> Retry:
        return Retry(predicate=_Tries(self.num_retries, self.retry_codes), initial=self.initial_delay,
                     maximum=max(self.initial_delay, 32.0), multiplier=2.0, timeout=600.0)

    def _upload_retry(self) -> ConditionalRetryPolicy:
        # Uploads always name a generation, so the policy always resolves to the retry: said here as Google's
        # client says it, so an upload without a precondition would not be retried.
        return ConditionalRetryPolicy(self._retry(), is_generation_specified, ["query_params"])

    def _call(self, what: str, fn: Callable[[], T], container: str, name: str | None = None) -> T:
        try:
            return fn()
        except exceptions.AshvaultError:
            raise
        except Exception as exc:  # translated at the boundary: nothing else may escape
            raise self._translate(exc, what, container, name) from None

    def _translate(self, exc: BaseException, what: str, container: str, name: str | None) -> exceptions.AshvaultError:
        if isinstance(exc, api_exceptions.RetryError) and exc.cause is not None:
            exc = exc.cause
        status = status_of(exc)
        if status is not None:
            message = exc.message if isinstance(exc, api_exceptions.GoogleAPICallError) else str(exc)
            text = one_line(f"{what}: HTTP {status} {message}")
            if status in self.retry_codes:
                return exceptions.TransientDriverError(reason=text)
            if status == 401:
                return exceptions.AuthenticationFailed(reason=f"{text}: check the credentials")
            if status == 403:
                where = f"bucket '{container}'" if container else "the project"
                return exceptions.PermissionDenied(reason=f"{text}: the credentials have no rights on {where}")
            if status == 404:
                if name is None:
                    return exceptions.ContainerNotFound(container=container)
                return exceptions.ObjectNotFound(name=name, container=container)
            return exceptions.DriverError(reason=text)
        if isinstance(exc, DataCorruption):
            return exceptions.TransientDriverError(reason=one_line(f"{what}: checksum mismatch in transfer: {exc}"))
        if isinstance(exc, auth_exceptions.RefreshError | auth_exceptions.DefaultCredentialsError):
            return exceptions.AuthenticationFailed(reason=one_line(f"{what}: {type(exc).__name__}: {exc}"))
        if is_network_error(exc):
            return exceptions.TransientDriverError(
                reason=f"{what}: cannot reach Google Cloud Storage at {self.endpoint}: {network_reason(exc)}")
        return exceptions.DriverError(reason=one_line(f"{what}: {type(exc).__name__}: {exc}"))

    def _bucket(self, container: str) -> storage.Bucket:
        check_name(container, what="container name")
        if not _BUCKET.match(container) or ".." in container:
            raise exceptions.InvalidInput(
                reason=f"invalid bucket name '{container}': 3 to 63 lowercase letters, digits, '-', '_' and '.', "
                       "starting and ending with a letter or digit")
        return self.client.bucket(container)

    def _remember(self, container: str, name: str, generation: int | None) -> None:
        with self._lock:
            if generation is None:
                self._generations.pop((container, name), None)
            else:
                self._generations[(container, name)] = int(generation)

    def _digest(self, data: bytes | memoryview) -> str:
        if self.checksum == "md5":
            raw = hashlib.md5(data, usedforsecurity=False).digest()
        else:
            raw = crc32c_of(data).to_bytes(4, "big")
        return base64.b64encode(raw).decode()

    def _server_digest(self, blob: storage.Blob) -> str | None:
        return blob.md5_hash if self.checksum == "md5" else blob.crc32c

    # -- the object store -----------------------------------------------------------------------------------

    def put_container(self, container: str) -> None:
        bucket = self._bucket(container)
        if container in self._known:
            return
        what = f"read bucket {container}"
        try:
            self._call(what, lambda: self.client.get_bucket(bucket, retry=self._retry(), timeout=self.timeout),
                       container)
        except exceptions.ContainerNotFound:
            if not self.create_containers:
                raise
            self._create_bucket(bucket)
        self._known.add(container)

    def _create_bucket(self, bucket: storage.Bucket) -> None:
        if self.client.project is None:
            raise exceptions.DriverSetupError(
                reason=f"bucket '{bucket.name}' does not exist and creating it needs a project: set project_id")
        if self.storage_class:
            bucket.storage_class = self.storage_class

        def create() -> None:
            try:
                self.client.create_bucket(bucket, location=self.location, retry=self._retry(),
                                          timeout=self.timeout)
            except api_exceptions.Conflict:
                # 409 is "you already own it" when another worker created it first; a name taken by someone
                # else answers 403 on the read above.
                self.client.get_bucket(bucket.name, retry=self._retry(), timeout=self.timeout)

        self._call(f"create bucket {bucket.name}", create, bucket.name)

    def list_objects(self, container: str, prefix: str = "") -> list[str]:
        bucket = self._bucket(container)

        def listing() -> list[tuple[str, int]]:
            blobs = self.client.list_blobs(bucket, prefix=prefix or None, retry=self._retry(), timeout=self.timeout,
                                           fields="items(name,generation),nextPageToken")
            return [(b.name, b.generation) for b in blobs]

        try:
            found = self._call(f"list {container}/{prefix}", listing, container)
        except exceptions.ContainerNotFound:
            return []
        for name, generation in found:
            self._remember(container, name, generation)
        return sorted(name for name, _gen in found)

    def put_object(self, container: str, name: str, data: bytes | memoryview) -> None:
        bucket, name = self._bucket(container), check_name(name)
        view = data if isinstance(data, bytes) else memoryview(data).cast("B")
        if len(view) <= _MULTIPART_LIMIT:
            view = bytes(view)  # one multipart request, built by joining bytes
        digest = self._digest(view)
        with self._lock:
            generation = self._generations.get((container, name), 0)
        blob = bucket.blob(name, chunk_size=self.chunk_size)
        what = f"upload {container}/{name}"

        # A resumable upload sends our CRC32C in the object's metadata for the server to check, so the client need
        # not compute it again (we compare the server's answer below); a multipart one takes no value, so the
        # client computes it there (8 MiB at most).
        crc32c = self.checksum == "crc32c"
        ours = crc32c and len(view) > _MULTIPART_LIMIT

        def upload() -> bool:
            try:
                stream = io.BytesIO(view) if isinstance(view, bytes) else _ViewReader(view)
                blob.upload_from_file(
                    stream, size=len(view), content_type=_CONTENT_TYPE,
                    if_generation_match=generation, checksum=None if ours else self.checksum,
                    crc32c_checksum_value=digest if crc32c else None, retry=self._upload_retry(),
                    timeout=self.timeout)
            except api_exceptions.PreconditionFailed:
                return False
            return True

        try:
            done = self._call(what, upload, container, name)
        except exceptions.ObjectNotFound:
            raise exceptions.ContainerNotFound(container=container) from None
        if not done:
            blob = self._settle_conflict(bucket, name, len(view), digest, generation, what)
        self._remember(container, name, blob.generation)
        stored = self._server_digest(blob)
        if stored is not None and stored != digest:
            raise exceptions.TransientDriverError(
                reason=f"{what}: the server stored {self.checksum} {stored}, the data sent has {digest}")

    def _settle_conflict(self, bucket: storage.Bucket, name: str, size: int, digest: str, generation: int,
                         what: str) -> storage.Blob:
        """After a 412: success when the object already holds exactly our bytes, else a permanent conflict."""
        current = self._call(f"{what} (read back after 412)",
                             lambda: bucket.get_blob(name, retry=self._retry(), timeout=self.timeout),
                             bucket.name, name)
        if current is None:
            self._remember(bucket.name, name, None)
            raise exceptions.TransientDriverError(
                reason=f"{what}: generation {generation} was deleted by another writer meanwhile")
        if current.size == size and self._server_digest(current) == digest:
            return current
        self._remember(bucket.name, name, current.generation)
        expected = f"generation {generation}" if generation else "no object"
        raise exceptions.DriverError(
            reason=f"{what}: expected {expected} but found generation {current.generation} written by another "
                   "writer; not overwritten")

    def get_object(self, container: str, name: str) -> bytes:
        bucket, name = self._bucket(container), check_name(name)
        blob = bucket.blob(name)
        data = self._call(f"download {container}/{name}",
                          lambda: blob.download_as_bytes(checksum=self.checksum, retry=self._retry(),
                                                         timeout=self.timeout, single_shot_download=True),
                          container, name)
        if blob.generation is not None:
            self._remember(container, name, blob.generation)
        return data

    def delete_object(self, container: str, name: str) -> None:
        bucket, name = self._bucket(container), check_name(name)
        self._call(f"delete {container}/{name}",
                   lambda: bucket.delete_blob(name, retry=self._retry(), timeout=self.timeout), container, name)
        self._remember(container, name, None)

    def check(self) -> None:
        """Reach the service with the credentials: read the bucket, which must exist unless it can be created."""
        if not self.check_container:
            return
        try:
            bucket = self._bucket(self.check_container)
            self._call(f"read bucket {bucket.name}",
                       lambda: self.client.get_bucket(bucket, retry=self._retry(), timeout=self.timeout),
                       bucket.name)
        except exceptions.ContainerNotFound as exc:
            if self.create_containers:
                return
            raise exceptions.DriverSetupError(
                reason=f"{exc}, and backup_create_containers is false: create it or allow creation") from None
        except exceptions.DriverSetupError:
            raise
        except exceptions.AshvaultError as exc:
            raise exceptions.DriverSetupError(reason=str(exc)) from None

    def close(self) -> None:
        self.client.close()


def parse_codes(values: Iterable[Any]) -> list[int]:
    """``backup_gcs_retry_error_codes`` (strings, as in Cinder) as integers; raises ``DriverSetupError``."""
    codes = []
    for value in values:
        text = str(value).strip()
        if not text.isdigit() or not 100 <= int(text) <= 599:
            raise exceptions.DriverSetupError(reason=f"retry_error_codes: '{text}' is not an HTTP status code")
        codes.append(int(text))
    return codes
