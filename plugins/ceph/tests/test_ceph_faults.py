"""Faults: a cluster that does not answer is an error within the connect timeout; an OSD killed during a backup
ends the backup in ``error`` within the operation timeout, and earlier backups still restore."""

from __future__ import annotations

import os
import pathlib
import random
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from ashvault import exceptions
from ashvault.api import API
from ashvault_ceph.ceph import CephBackupDriver
from ashvault_ceph.client import Connection

MiB = 1 << 20


def test_unreachable_cluster_is_an_error_not_a_hang(ceph_cluster: Any, cephkit: Any, tmp_path: pathlib.Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket closes
    conf_file = tmp_path / "ceph.conf"
    conf_file.write_text(f"[global]\nmon host = [v2:127.0.0.1:{port}]\nkeyring = {ceph_cluster.keyring}\n")
    conf = cephkit.config(ceph_cluster, tmp_path / "state")
    conf.set_override("conf", str(conf_file), group="backup_ceph")
    conf.set_override("connect_timeout", 2, group="backup_ceph")
    driver = CephBackupDriver(conf)
    start = time.monotonic()
    with pytest.raises(exceptions.DriverSetupError, match="cannot connect to the Ceph cluster") as err:
        driver.check_for_setup_error()
    assert time.monotonic() - start < 15
    assert "\n" not in str(err.value)
    driver.close()


@pytest.fixture
def durable_cluster(cephkit: Any, tmp_path: pathlib.Path) -> Iterator[Any]:
    """A cluster of its own whose OSD keeps its data when killed (bluestore on a sparse file, no mgr)."""
    cluster = cephkit.start(tmp_path / "cluster", objectstore="bluestore", mgr=False, osd_bytes=2 << 30)
    try:
        yield cluster
    finally:
        cluster.stop()


def _wait_osd_up(cluster: Any, timeout: float = 60) -> None:
    conn = Connection(cluster.conf, "admin", connect_timeout=10)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            import json

            ret, out, _err = conn.cluster.mon_command(json.dumps({"prefix": "osd dump", "format": "json"}), b"")
            if ret == 0 and any(o.get("up") for o in json.loads(out).get("osds", [])):
                return
            time.sleep(0.2)
        raise AssertionError("the OSD did not come back")
    finally:
        conn.close()


def test_osd_killed_during_backup(durable_cluster: Any, cephkit: Any, tmp_path: pathlib.Path) -> None:
    conf = cephkit.config(durable_cluster, tmp_path / "state", op_timeout=5)
    conf.set_override("op_timeout", 5, group="rbd")
    conf.set_override("backup_driver", "ceph")
    admin = Connection(durable_cluster.conf, "admin", connect_timeout=10)
    tool = cephkit.RbdTool(admin)
    rnd = random.Random(7)
    tool.create("volumes", "vol", 32 * MiB)
    tool.write("volumes", "vol", 0, rnd.randbytes(32 * MiB))
    want1 = tool.sha("volumes", "vol")
    api = API(conf)
    try:
        api.volume_register("vol1", "rbd:volumes/vol")
        b1 = api.backup_create("vol1", name="b1")
        assert b1.status == "available"
        for off in range(0, 32 * MiB, 2 * MiB):
            tool.write("volumes", "vol", off, rnd.randbytes(65536))
        admin.close()

        killed = threading.Event()

        def kill_osd(_done: int, _total: int) -> None:
            if not killed.is_set():
                killed.set()
                durable_cluster.kill_osd()

        start = time.monotonic()
        with pytest.raises(exceptions.AshvaultError):
            api.backup_create("vol1", name="b2", incremental=True, progress=kill_osd)
        assert killed.is_set()
        # Each of the few operations in flight (read, flush, close, unlock) gives up after op_timeout (5 s).
        assert time.monotonic() - start < 60, "a dead OSD must fail the backup within a few operation timeouts"
        b2 = next(b for b in api.backup_list(volume="vol1") if b.name == "b2")
        assert b2.status == "error" and b2.fail_reason
        durable_cluster.start_osd()
        _wait_osd_up(durable_cluster)
        tool = cephkit.RbdTool(admin)
        tool.create("volumes", "r1", 32 * MiB)
        api.volume_register("r1", "rbd:volumes/r1")
        api.backup_restore("b1", "r1", force=True)
        assert tool.sha("volumes", "r1") == want1
        # The failed incremental's writes to the base image are rolled back by the next one.
        want3 = tool.sha("volumes", "vol")
        b3 = api.backup_create("vol1", name="b3", incremental=True)
        assert b3.status == "available" and b3.parent_id == b1.id
        tool.create("volumes", "r3", 32 * MiB)
        api.volume_register("r3", "rbd:volumes/r3")
        api.backup_restore("b3", "r3", force=True)
        assert tool.sha("volumes", "r3") == want3
        assert os.path.isdir(str(tmp_path / "state"))
    finally:
        api.close()
        admin.close()


def test_unknown_user_is_refused_in_one_line(ceph_cluster: Any, cephkit: Any, tmp_path: pathlib.Path) -> None:
    conf = cephkit.config(ceph_cluster, tmp_path / "state", user="nobody")
    driver = CephBackupDriver(conf)
    with pytest.raises(exceptions.DriverSetupError, match=r"refused client\.nobody") as err:
        driver.check_for_setup_error()
    assert "\n" not in str(err.value)
    driver.close()
