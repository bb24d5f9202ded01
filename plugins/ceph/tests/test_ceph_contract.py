"""The RADOS object store and the ceph driver (file sources into RADOS) pass the conformance suites."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from oslo_config import cfg

from ashvault.testing.contract import DriverContract, ObjectStoreContract
from ashvault.testing.faults import FaultContract
from ashvault_ceph.ceph import CephBackupDriver
from ashvault_ceph.client import Connection
from ashvault_ceph.rados_store import RadosObjectStore


class TestRadosObjectStore(ObjectStoreContract):
    @pytest.fixture
    def store(self, ceph_cluster: Any) -> Iterator[RadosObjectStore]:
        conn = Connection(ceph_cluster.conf, "admin", connect_timeout=10)
        # A namespace per test: every test starts from an empty container, the pool is made once.
        store = RadosObjectStore(conn, namespace=f"contract-{uuid.uuid4().hex[:8]}")
        yield store
        store.close()


class TestCephDriverFileToRados(DriverContract):
    @pytest.fixture
    def driver(self, conf: cfg.ConfigOpts) -> Iterator[CephBackupDriver]:
        conf.set_override("namespace", f"contract-{uuid.uuid4().hex[:8]}", group="backup_ceph")
        driver = CephBackupDriver(conf)
        yield driver
        driver.close()


class TestCephDriverFaults(FaultContract):
    """Faults under the core's wrappers of the RADOS store the driver offers (file volumes, chunked/1)."""

    driver = TestCephDriverFileToRados.driver
