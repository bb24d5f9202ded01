"""The swift store and driver pass the conformance suite against a real Swift."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
from oslo_config import cfg

from ashvault.testing.contract import DriverContract, ObjectStoreContract
from ashvault.testing.faults import FaultContract
from ashvault_swift.objectstore import SwiftObjectStore
from ashvault_swift.swift import SwiftBackupDriver


class TestSwiftObjectStore(ObjectStoreContract):
    @pytest.fixture
    def store(self, new_store: Callable[..., SwiftObjectStore]) -> Iterator[SwiftObjectStore]:
        self.container = f"contract-{uuid.uuid4().hex[:12]}"
        store = new_store()
        yield store
        for name in store.list_objects(self.container):
            store.delete_object(self.container, name)
        store.close()


class TestSwiftDriver(DriverContract):
    @pytest.fixture
    def driver(self, driver_conf: Callable[..., cfg.ConfigOpts]) -> Iterator[SwiftBackupDriver]:
        driver = SwiftBackupDriver(driver_conf())
        yield driver
        driver.close()


class TestSwiftDriverFaults(FaultContract):
    """Faults under the core's wrappers of the Swift store: retried, reported, never a wrong byte restored."""

    driver = TestSwiftDriver.driver
