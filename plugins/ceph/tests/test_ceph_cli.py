"""End to end through the ``ashvault`` command: an RBD volume registered, backed up by the ceph driver as a cephx
user limited to ``profile rbd``, restored to a file and to another RBD image; a user without rights is refused in one
line."""

from __future__ import annotations

import pathlib
import random
from typing import Any

from clitools import Ashvault, one_line_error, sha256

MiB = 1 << 20


def ceph_cli(tmp: pathlib.Path, cluster: Any, *, user: str = "ashvault", source_user: str | None = None) -> Ashvault:
    tmp.mkdir(parents=True, exist_ok=True)
    av = Ashvault(tmp)
    av.write_conf(
        f"[backup_ceph]\nconf = {cluster.conf}\nuser = {user}\nconnect_timeout = 10\n"
        f"[rbd]\nceph_conf = {cluster.conf}\nuser = {source_user or user}\nconnect_timeout = 10\n"
        f"[backup_posix]\npath = {tmp / 'backups'}\n",
        driver="ceph",
    )
    return av


def test_rbd_volume_backup_restore_with_profile_rbd_user(ceph_cluster: Any, rbdtool: Any,
                                                        tmp_path: pathlib.Path) -> None:
    av = ceph_cli(tmp_path, ceph_cluster)
    name = f"cli-{tmp_path.name[-8:]}".replace("_", "-")
    rbdtool.create("volumes", name, 16 * MiB)
    rnd = random.Random(3)
    rbdtool.write("volumes", name, 0, rnd.randbytes(6 * MiB))
    want_full = rbdtool.sha("volumes", name)

    vol = av.j("volume", "register", "vol1", f"rbd:volumes/{name}")
    assert vol["location"] == f"rbd:volumes/{name}" and vol["size_bytes"] == 16 * MiB
    full = av.j("backup", "create", "vol1", "--name", "full")
    assert full["status"] == "available" and full["container"] == "backups"
    rbdtool.write("volumes", name, 9 * MiB, rnd.randbytes(4096))
    want_inc = rbdtool.sha("volumes", name)
    inc = av.j("backup", "create", "vol1", "--name", "inc", "--incremental")
    assert inc["status"] == "available" and inc["parent_id"] == full["id"]
    assert inc["stored_bytes"] <= 64 * 1024
    assert av.j("backup", "verify", "inc")["result"] == "ok"

    restored = av.j("backup", "restore", "inc")  # no target: a new file volume
    assert sha256(restored["volume_location"]) == want_inc
    rbdtool.create("volumes", f"{name}-r", 16 * MiB)
    av.j("volume", "register", "r1", f"rbd:volumes/{name}-r")
    av.j("backup", "restore", "full", "r1", "--force")
    assert rbdtool.sha("volumes", f"{name}-r") == want_full

    assert [d["status"] for d in av.j("backup", "delete", "inc", "full")] == ["deleted", "deleted"]
    assert rbdtool.images("backups", f"volume-{vol['id']}.") == []
    assert rbdtool.snaps("volumes", name) == []


def test_user_without_rights_gets_one_line_permission_error(ceph_cluster: Any, rbdtool: Any,
                                                           tmp_path: pathlib.Path) -> None:
    name = f"cli-{tmp_path.name[-8:]}".replace("_", "-")
    rbdtool.create("volumes", name, 4 * MiB)
    rbdtool.write("volumes", name, 0, b"x" * 65536)

    nobody = ceph_cli(tmp_path / "a", ceph_cluster, user="norights")
    line = one_line_error(nobody("volume", "register", "vol1", f"rbd:volumes/{name}", ok=False))
    assert "permission denied" in line and "AQ" not in line  # never a key

    # The source is readable, the backup pool is not: the backup ends in error with the reason, in one line.
    av = ceph_cli(tmp_path / "b", ceph_cluster, user="norights", source_user="ashvault")
    av.j("volume", "register", "vol1", f"rbd:volumes/{name}")
    line = one_line_error(av("backup", "create", "vol1", ok=False))
    assert "permission denied" in line
    [rec] = av.j("backup", "list")
    assert rec["status"] == "error"
    assert rbdtool.snaps("volumes", name) == []
