"""The google store and driver pass the conformance suite against gcp-storage-emulator, through the real client."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
from oslo_config import cfg

from ashvault.testing.contract import DriverContract, ObjectStoreContract
from ashvault_google.google import GoogleBackupDriver
from ashvault_google.objectstore import GoogleObjectStore


class TestGoogleObjectStore(ObjectStoreContract):
    @pytest.fixture
    def store(self, new_store: Callable[..., GoogleObjectStore]) -> Iterator[GoogleObjectStore]:
        self.container = f"contract-{uuid.uuid4().hex[:12]}"
        store = new_store()
        yield store
        for name in store.list_objects(self.container):
            store.delete_object(self.container, name)
        store.close()


class TestGoogleDriver(DriverContract):
    @pytest.fixture
    def driver(self, driver_conf: Callable[..., cfg.ConfigOpts]) -> Iterator[GoogleBackupDriver]:
        driver = GoogleBackupDriver(driver_conf())
        yield driver
        driver.close()
