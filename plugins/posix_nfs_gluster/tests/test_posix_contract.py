"""The posix store and driver pass the conformance suite."""

from __future__ import annotations

import os
import pathlib

import pytest

from ashvault.conf import make_config, register_group
from ashvault.testing.contract import DriverContract, ObjectStoreContract
from ashvault.testing.faults import FaultContract
from ashvault_posix.objectstore import PosixObjectStore
from ashvault_posix.posix import PosixBackupDriver

MiB = 1 << 20


def _posix_driver(tmp_path: pathlib.Path) -> PosixBackupDriver:
    conf = make_config([], config_files=[])
    conf.set_override("ashvault_state_path", str(tmp_path / "state"))
    register_group(conf, PosixBackupDriver.option_group, PosixBackupDriver.get_driver_options())
    conf.set_override("object_size", 1 << 20, group="backup_posix")
    return PosixBackupDriver(conf)


class TestPosixObjectStore(ObjectStoreContract):
    @pytest.fixture
    def store(self, tmp_path: pathlib.Path) -> PosixObjectStore:
        return PosixObjectStore(str(tmp_path / "backups"))


class TestPosixDriver(DriverContract):
    @pytest.fixture
    def driver(self, tmp_path: pathlib.Path) -> PosixBackupDriver:
        return _posix_driver(tmp_path)


class TestPosixDriverEncrypted(DriverContract):
    """The conformance suite with encryption on: every object sealed, read back through O_DIRECT buffers."""

    volume_size = 8 * MiB

    @pytest.fixture
    def driver(self, tmp_path: pathlib.Path) -> PosixBackupDriver:
        driver = _posix_driver(tmp_path)
        key = tmp_path / "key"
        key.write_bytes(os.urandom(32))
        driver.conf.set_override("encryption", "aes-256-gcm")
        driver.conf.set_override("encryption_key_file", str(key))
        return driver


class TestPosixDriverFaults(FaultContract):
    @pytest.fixture
    def driver(self, tmp_path: pathlib.Path) -> PosixBackupDriver:
        return _posix_driver(tmp_path)


def test_a_killed_write_does_not_keep_its_directory(tmp_path: pathlib.Path) -> None:
    store = PosixObjectStore(str(tmp_path / "backups"))
    store.put_container("c")
    store.put_object("c", "v_1/b_1/d00000001", b"data")
    store.put_object("c", "v_1/b_2/d00000001", b"other")
    abandoned = tmp_path / "backups" / "c" / "v_1" / "b_1" / ".tmp-d00000002.0123abcd"
    abandoned.write_bytes(b"half an object")
    assert store.list_objects("c", "v_1/b_1/") == ["v_1/b_1/d00000001"]
    store.delete_object("c", "v_1/b_1/d00000001")
    assert not abandoned.parent.exists()
    assert store.get_object("c", "v_1/b_2/d00000001") == b"other"
