"""The in-memory store and driver pass the conformance suite that every driver runs."""

from __future__ import annotations

import pytest

from ashvault.conf import make_config, register_group
from ashvault.testing.contract import DriverContract, ObjectStoreContract
from ashvault.testing.fakes import MemoryBackupDriver, MemoryObjectStore


class TestMemoryObjectStore(ObjectStoreContract):
    @pytest.fixture
    def store(self) -> MemoryObjectStore:
        return MemoryObjectStore()


class TestMemoryDriver(DriverContract):
    @pytest.fixture
    def driver(self) -> MemoryBackupDriver:
        conf = make_config([], config_files=[])
        register_group(conf, MemoryBackupDriver.option_group, MemoryBackupDriver.get_driver_options())
        MemoryBackupDriver.shared_buckets.clear()
        return MemoryBackupDriver(conf)
