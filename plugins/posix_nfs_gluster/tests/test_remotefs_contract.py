"""The nfs and glusterfs drivers, and the posix store on their mount points, pass the conformance suite against a
real nfs-ganesha and a real GlusterFS volume."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from ashvault.testing.contract import DriverContract, MiB, ObjectStoreContract
from ashvault_posix.mount import MountedBackupDriver
from ashvault_posix.objectstore import PosixObjectStore


@pytest.fixture(params=["nfs", "glusterfs"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class TestMountedObjectStore(ObjectStoreContract):
    @pytest.fixture
    def store(self, kind: str, make_driver: Callable[..., MountedBackupDriver]) -> Iterator[PosixObjectStore]:
        self.container = f"contract-{uuid.uuid4().hex[:12]}"
        driver = make_driver(kind)
        store = driver.make_object_store()
        assert isinstance(store, PosixObjectStore) and store.root == driver.mounter.path
        assert driver.mounter.is_mounted()
        yield store
        for name in store.list_objects(self.container):
            store.delete_object(self.container, name)


class TestMountedDriver(DriverContract):
    volume_size = 16 * MiB

    @pytest.fixture
    def driver(self, kind: str, make_driver: Callable[..., MountedBackupDriver]) -> MountedBackupDriver:
        return make_driver(kind)
