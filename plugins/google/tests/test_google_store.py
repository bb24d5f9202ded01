"""How the google store maps GCS answers to ashvault's typed errors, retries, and keeps concurrent writers apart.

403, 429 and 503 never come from an emulator: a forwarding proxy (faults.py) answers chosen requests with GCS error
bodies (data/) and passes the rest to gcp-storage-emulator. 404 is the emulator's own answer. Preconditions are
tested against fake-gcs-server, which honours ``if_generation_match``; gcp-storage-emulator ignores it, so the
412 path is also driven there by a recorded 412 answer.
"""

from __future__ import annotations

import base64
import logging
import os
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from ashvault import exceptions
from ashvault_google.objectstore import GoogleObjectStore

NewStore = Callable[..., GoogleObjectStore]
UPLOAD = r"^/upload/storage/v1/b/[^/]+/o\?"
MEDIA = r"^/(download/)?storage/v1/b/[^/]+/o/[^?]+\?.*alt=media"


def _bucket() -> str:
    return f"s-{uuid.uuid4().hex[:12]}"


def _hits(proxy: Any, status: int) -> int:
    return sum(1 for _m, _p, s in proxy.seen if s == status)


def test_403_is_permission_denied_and_not_retried(new_store: NewStore, proxy: Any) -> None:
    store, bucket = new_store(proxy.url), _bucket()
    store.put_container(bucket)
    proxy.fail("POST", UPLOAD, 403)
    with pytest.raises(exceptions.PermissionDenied, match=r"HTTP 403.*storage.objects.create") as err:
        store.put_object(bucket, "x", b"data")
    assert not err.value.transient and _hits(proxy, 403) == 1


def test_404_missing_bucket_and_object(new_store: NewStore) -> None:
    bucket = _bucket()
    store = new_store(create_containers=False, check_container=bucket)
    with pytest.raises(exceptions.ContainerNotFound):
        store.put_container(bucket)
    with pytest.raises(exceptions.ContainerNotFound):
        store.put_object(bucket, "x", b"data")
    with pytest.raises(exceptions.DriverSetupError, match=r"does not exist.*backup_create_containers"):
        store.check()
    assert store.list_objects(bucket) == []
    new_store().put_container(bucket)
    store.put_container(bucket)
    store.check()
    with pytest.raises(exceptions.ObjectNotFound):
        store.get_object(bucket, "nope")


def test_429_is_retried_by_the_client_then_transient(new_store: NewStore, proxy: Any) -> None:
    store, bucket = new_store(proxy.url, num_retries=2), _bucket()
    store.put_container(bucket)
    proxy.fail("POST", UPLOAD, 429, times=2)
    store.put_object(bucket, "x", b"after two 429s")
    assert _hits(proxy, 429) == 2
    assert store.get_object(bucket, "x") == b"after two 429s"
    proxy.fail("POST", UPLOAD, 429)
    with pytest.raises(exceptions.TransientDriverError, match=r"HTTP 429.*rate limit"):
        store.put_object(bucket, "y", b"never")
    assert _hits(proxy, 429) == 2 + 3, "one try and num_retries=2 retries"


def test_503_on_download_is_retried_then_transient(new_store: NewStore, proxy: Any) -> None:
    store, bucket = new_store(proxy.url, num_retries=1), _bucket()
    store.put_container(bucket)
    data = os.urandom(100_000)
    store.put_object(bucket, "x", data)
    proxy.fail("GET", MEDIA, 503, times=1)
    assert store.get_object(bucket, "x") == data
    proxy.fail("GET", MEDIA, 503)
    with pytest.raises(exceptions.TransientDriverError, match="HTTP 503"):
        store.get_object(bucket, "x")
    assert _hits(proxy, 503) == 1 + 2


def test_extra_retry_codes_are_transient_others_permanent(new_store: NewStore, proxy: Any) -> None:
    bucket = _bucket()
    new_store(proxy.url).put_container(bucket)
    proxy.fail("POST", UPLOAD, 403)
    with pytest.raises(exceptions.TransientDriverError, match="HTTP 403"):
        new_store(proxy.url, num_retries=1, retry_codes=[403]).put_object(bucket, "x", b"data")
    assert _hits(proxy, 403) == 2


def test_unreachable_endpoint_is_transient_and_says_where(new_store: NewStore) -> None:
    store = new_store("http://127.0.0.1:9", num_retries=1)
    with pytest.raises(exceptions.TransientDriverError,
                       match=r"cannot reach Google Cloud Storage at http://127.0.0.1:9: connection refused"):
        store.put_object(_bucket(), "x", b"data")


def test_bad_bucket_names_are_refused(new_store: NewStore) -> None:
    for bad in ("UPPER", "a", "-dash", "a_b/c"):
        with pytest.raises(exceptions.InvalidInput):
            new_store().put_container(bad)


def test_precondition_keeps_a_concurrent_writer_fake_gcs(new_store: NewStore, fake_gcs: Any) -> None:
    """Against fake-gcs-server, whose 412 answers to ``if_generation_match`` are real."""
    a, b, bucket = new_store(fake_gcs.url), new_store(fake_gcs.url), _bucket()
    a.put_container(bucket)
    a.put_object(bucket, "x", b"written by a")
    with pytest.raises(exceptions.DriverError, match=r"found generation .* another writer; not overwritten") as err:
        b.put_object(bucket, "x", b"written by b")
    assert not err.value.transient
    assert a.get_object(bucket, "x") == b"written by a"
    b.put_object(bucket, "same", b"s")
    a.put_object(bucket, "same", b"s")  # the name already holds exactly these bytes: an earlier try landed
    a.put_object(bucket, "x", b"a again")  # a knows the generation it wrote: a plain overwrite
    with pytest.raises(exceptions.DriverError, match="expected generation"):
        b.put_object(bucket, "x", b"b with the generation it saw before")
    assert a.get_object(bucket, "x") == b"a again"
    assert b.list_objects(bucket) == ["same", "x"]
    b.put_object(bucket, "x", b"b after listing")  # listing tells b the current generation
    assert a.get_object(bucket, "x") == b"b after listing"


def test_recorded_412_is_settled_by_reading_back(new_store: NewStore, proxy: Any) -> None:
    """gcp-storage-emulator ignores preconditions: the proxy answers the upload with a recorded 412 instead."""
    store, bucket = new_store(proxy.url), _bucket()
    store.put_container(bucket)
    new_store().put_object(bucket, "landed", b"same bytes")
    proxy.fail("POST", UPLOAD + r".*ifGenerationMatch=0", 412, times=1)
    store.put_object(bucket, "landed", b"same bytes")
    assert _hits(proxy, 412) == 1
    new_store().put_object(bucket, "other", b"another writer's")
    proxy.fail("POST", UPLOAD + r".*ifGenerationMatch=0", 412, times=1)
    with pytest.raises(exceptions.DriverError, match="expected no object but found generation"):
        store.put_object(bucket, "other", b"ours")
    assert store.get_object(bucket, "other") == b"another writer's"


def test_uploads_carry_a_checksum_the_server_checks(new_store: NewStore, proxy: Any) -> None:
    store, bucket = new_store(proxy.url), _bucket()
    store.put_container(bucket)
    store.put_object(bucket, "small", b"x" * 1000)
    store.put_object(bucket, "big", os.urandom(9 << 20))  # over 8 MiB: a resumable upload
    blob = store.client.bucket(bucket).get_blob("big")
    assert blob is not None and blob.crc32c == store._digest(store.get_object(bucket, "big"))
    uploads = [p for m, p, _s in proxy.seen if m in ("POST", "PUT") and "/upload/" in p]
    assert any("uploadType=multipart" in p for p in uploads) and any("uploadType=resumable" in p for p in uploads)
    assert all("ifGenerationMatch=0" in p for p in uploads if "uploadType=" in p)


@pytest.mark.parametrize("as_view", [False, True], ids=["bytes", "view"])
def test_resumable_upload_in_pieces_survives_a_503_on_one_piece(new_store: NewStore, proxy: Any, as_view: bool
                                                                 ) -> None:
    """A view (accepts_buffers) is sent from its memory: the piece after the 503 is found again by seeking it."""
    store, bucket = new_store(proxy.url, chunk_size=1 << 20), _bucket()
    store.put_container(bucket)
    data = os.urandom((9 << 20) + 12345)
    proxy.fail("PUT", r"upload_id=", 503, times=1)
    store.put_object(bucket, "pieces", memoryview(bytearray(b"-" + data))[1:] if as_view else data)
    assert _hits(proxy, 503) == 1
    assert sum(1 for m, p, s in proxy.seen if m == "PUT" and s in (200, 308)) >= 10, "sent in 1 MiB pieces"
    assert store.get_object(bucket, "pieces") == data


def test_a_resumable_upload_carries_our_crc32c_and_a_wrong_one_is_refused(new_store: NewStore,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Over 8 MiB the client does not compute the CRC32C again: the value we send is what the server checks."""
    store, bucket = new_store(), _bucket()
    store.put_container(bucket)
    data = os.urandom((8 << 20) + 1)
    monkeypatch.setattr(store, "_digest", lambda _data: base64.b64encode(b"\0\0\0\1").decode())
    with pytest.raises(exceptions.DriverError, match="HTTP 400"):
        store.put_object(bucket, "wrong", data)
    assert store.list_objects(bucket) == []
    monkeypatch.undo()
    store.put_object(bucket, "right", data)
    assert store.get_object(bucket, "right") == data


def test_request_bodies_are_not_parsed_for_debug_logging(new_store: NewStore, monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    """cliff sets the root logger to DEBUG; google-auth would then decode every body it sends or receives."""
    from google.auth import _helpers

    parsed: list[int] = []
    real = _helpers._parse_request_body
    monkeypatch.setattr(_helpers, "_parse_request_body",
                        lambda body, **kw: parsed.append(len(body or b"")) or real(body, **kw))
    root, google = logging.getLogger(), logging.getLogger("google")
    transport = logging.getLogger("google.auth.transport.requests")
    saved, handler = (root.level, transport.level), logging.NullHandler()
    monkeypatch.setattr(google, "handlers", [])  # nobody configured google's loggers (pytest may have)
    root.setLevel(logging.DEBUG)
    transport.setLevel(logging.NOTSET)
    try:
        store, bucket = new_store(), _bucket()
        store.put_container(bucket)
        store.put_object(bucket, "big", os.urandom(9 << 20))
        assert store.get_object(bucket, "big") and parsed == []
        google.addHandler(handler)  # someone configured google's loggers: their debug lines stay
        transport.setLevel(logging.NOTSET)
        new_store().list_objects(bucket)
        assert parsed, "google-auth's debug logging is left alone when the google logger is configured"
    finally:
        google.removeHandler(handler)
        root.setLevel(saved[0])
        transport.setLevel(saved[1])
