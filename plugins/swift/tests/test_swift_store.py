"""How the swift store maps Swift's answers to ashvault's typed errors, against the real Swift."""

from __future__ import annotations

import signal
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from ashvault import exceptions
from ashvault_swift.objectstore import SwiftObjectStore

NewStore = Callable[..., SwiftObjectStore]


def _name() -> str:
    return f"s-{uuid.uuid4().hex[:12]}"


def test_user_without_rights_gets_permission_denied(new_store: NewStore, swift: Any) -> None:
    store = new_store("test:tester3", "testing3")
    with pytest.raises(exceptions.PermissionDenied, match="HTTP 403"):
        store.put_container(_name())


def test_missing_container_is_not_created_when_creation_is_off(new_store: NewStore) -> None:
    container = _name()
    store = new_store(create_containers=False, check_container=container)
    with pytest.raises(exceptions.ContainerNotFound):
        store.put_container(container)
    with pytest.raises(exceptions.ContainerNotFound):
        store.put_object(container, "x", b"data")
    with pytest.raises(exceptions.DriverSetupError, match="does not exist"):
        store.check()
    new_store().put_container(container)
    store.put_container(container)
    store.check()


def test_storage_policy_is_given_to_new_containers(new_store: NewStore, swift: Any) -> None:
    container = _name()
    new_store(storage_policy="Policy-0").put_container(container)
    from swiftclient import client

    url, token = swift.token()
    assert client.head_container(url, token, container)["x-storage-policy"] == "Policy-0"
    with pytest.raises(exceptions.DriverError, match="HTTP 400") as err:
        new_store(storage_policy="no-such-policy").put_container(_name())
    assert not err.value.transient


def test_wrong_key_is_an_authentication_error(new_store: NewStore) -> None:
    store = new_store("test:tester", "wrong-key")
    with pytest.raises(exceptions.AuthenticationFailed, match="refused user 'test:tester'") as err:
        store.list_objects("anything")
    assert "wrong-key" not in str(err.value)
    with pytest.raises(exceptions.DriverSetupError, match="check user and key"):
        store.check()


def test_object_server_down_is_transient_5xx(new_store: NewStore, swift: Any) -> None:
    store = new_store()
    container = _name()
    store.put_container(container)
    store.put_object(container, "before", b"x" * 1000)
    swift.stop("object", signal.SIGKILL)
    try:
        with pytest.raises(exceptions.TransientDriverError, match="HTTP 503"):
            store.put_object(container, "during", b"y" * 1000)
        with pytest.raises(exceptions.TransientDriverError):
            store.get_object(container, "before")
    finally:
        swift.start("object")
        swift.wait_ready()
    assert store.get_object(container, "before") == b"x" * 1000


def test_container_names_with_a_slash_are_refused(new_store: NewStore) -> None:
    with pytest.raises(exceptions.InvalidInput, match="no '/'"):
        new_store().put_container("a/b")
