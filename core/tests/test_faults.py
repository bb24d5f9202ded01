"""The fault-injecting store on the in-memory driver, and what it injects."""

from __future__ import annotations

import pytest

from ashvault import exceptions
from ashvault.conf import make_config, register_group
from ashvault.testing.fakes import MemoryBackupDriver, MemoryObjectStore
from ashvault.testing.faults import FaultContract, FaultInjectingObjectStore, FaultPlan


class TestMemoryDriverFaults(FaultContract):
    @pytest.fixture
    def driver(self) -> MemoryBackupDriver:
        conf = make_config([], config_files=[])
        register_group(conf, MemoryBackupDriver.option_group, MemoryBackupDriver.get_driver_options())
        MemoryBackupDriver.shared_buckets.clear()
        return MemoryBackupDriver(conf)


def test_each_fault_does_what_it_says() -> None:
    inner = MemoryObjectStore()
    inner.put_container("c")
    store = FaultInjectingObjectStore(inner, FaultPlan(seed=1, partial_write=1.0))
    with pytest.raises(exceptions.TransientDriverError):
        store.put_object("c", "a", b"0123456789")
    assert b"0123456789".startswith(inner.get_object("c", "a")) and len(inner.get_object("c", "a")) < 10
    store.plan.partial_write, store.plan.torn_write = 0.0, 1.0
    store.put_object("c", "b", b"0123456789")
    assert len(inner.get_object("c", "b")) < 10
    store.plan.torn_write, store.plan.corrupt_read = 0.0, 1.0
    inner.put_object("c", "x", bytes(64))
    flipped = store.get_object("c", "x")
    assert len(flipped) == 64 and sum(bin(b).count("1") for b in flipped) == 1
    store.plan.corrupt_read, store.plan.permanent = 0.0, 1.0
    with pytest.raises(exceptions.QuotaExceeded):
        store.list_objects("c")
    store.plan.permanent, store.plan.reorder_window = 0.0, 2
    for n in "pqrs":
        store.put_object("c", n, n.encode())
    assert len([n for n in inner.list_objects("c") if n in "pqrs"]) == 2
    assert len(store.crash()) == 2 and store.injected["lost_write"] == 2
    assert store.injected["partial_write"] == store.injected["torn_write"] == store.injected["corrupt_read"] == 1
