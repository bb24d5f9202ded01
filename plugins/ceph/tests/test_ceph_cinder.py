"""Backups made the way Cinder's ceph driver makes them (a base image in the backup pool, ``rbd export-diff |
rbd import-diff`` from the volume's snapshots, one snapshot per backup), adopted with ``ashvault backup cinder
import`` on the real test cluster and restored, verified and deleted through the ceph driver."""

from __future__ import annotations

import hashlib
import json
import pathlib
import random
import subprocess
import time
import uuid
from typing import Any

from clitools import Ashvault, one_line_error, sha256

MiB = 1 << 20


def cinder_ceph_chain(cluster: Any, rbdtool: Any, depth: int = 3) -> tuple[str, str, list[str], list[str]]:
    """Back up an RBD volume ``depth`` times as Cinder's ``_backup_rbd`` does. Returns (volume id, base image,
    backup ids, sha256 of the volume at each backup)."""
    vid = str(uuid.uuid4())
    volume = f"volume-{vid}"
    rbdtool.create("volumes", volume, 8 * MiB)
    rnd = random.Random(vid)
    rbdtool.write("volumes", volume, 0, rnd.randbytes(3 * MiB))
    ids = [str(uuid.uuid4()) for _ in range(depth)]
    base = f"volume-{vid}.backup.{ids[0]}"
    rbdtool.create("backups", base, 8 * MiB)
    rbd = ["rbd", "--conf", cluster.conf, "--id", "admin"]
    shas: list[str] = []
    previous = None
    for i, bid in enumerate(ids):
        if i:
            rbdtool.write("volumes", volume, rnd.randrange(8) * MiB, rnd.randbytes(64 << 10))
        snap = f"backup.{bid}.snap.{time.time():.2f}"
        with rbdtool.image("volumes", volume) as img:
            img.create_snap(snap)
        shas.append(rbdtool.sha("volumes", volume, snap))
        export = [*rbd, "export-diff", "--pool", "volumes", *(["--from-snap", previous] if previous else []),
                  f"volumes/{volume}@{snap}", "-"]
        src = subprocess.Popen(export, stdout=subprocess.PIPE)
        dst = subprocess.run([*rbd, "import-diff", "--pool", "backups", "-", f"backups/{base}"], stdin=src.stdout,
                             capture_output=True)
        assert src.stdout is not None
        src.stdout.close()
        assert src.wait() == 0 and dst.returncode == 0, dst.stderr
        previous = snap
    return vid, base, ids, shas


def ceph_av(tmp: pathlib.Path, cluster: Any) -> Ashvault:
    av = Ashvault(tmp)
    av.write_conf(f"[backup_ceph]\nconf = {cluster.conf}\nuser = admin\nconnect_timeout = 10\n"
                  f"[backup_posix]\npath = {tmp / 'backups'}\n",
                  driver="cinder.backup.drivers.ceph.CephBackupDriver")
    return av


def test_cinder_ceph_chain_imports_restores_and_deletes(ceph_cluster: Any, rbdtool: Any,
                                                        tmp_path: pathlib.Path) -> None:
    vid, base, ids, shas = cinder_ceph_chain(ceph_cluster, rbdtool)
    assert [s.split(".")[1] for s in rbdtool.snaps("backups", base)] == ids, "Cinder's layout: a snapshot a backup"
    av = ceph_av(tmp_path, ceph_cluster)
    rows = av.j("backup", "cinder", "import", "--backup-id", ids[-1], "--container", "backups")
    assert [r["id"] for r in rows] == ids and [r["parent_id"] for r in rows] == [None, *ids[:-1]]
    assert all(r["volume_id"] == vid and r["size_bytes"] == 8 * MiB for r in rows)
    assert {r["format"] for r in rows} == {"ceph-rbd/1"}, "the ceph driver's own format"
    for bid, want in zip(ids, shas, strict=True):
        out = av.j("backup", "restore", bid)
        assert sha256(out["volume_location"]) == want
    assert av.j("backup", "verify", ids[1])["result"] == "ok"
    av("backup", "delete", ids[0])
    assert [s.split(".")[1] for s in rbdtool.snaps("backups", base)] == ids[1:]
    assert sha256(av.j("backup", "restore", ids[2])["volume_location"]) == shas[2]
    av("backup", "delete", ids[2], ids[1])
    assert rbdtool.images("backups", f"volume-{vid}.") == [], "the base goes with its last backup"


def test_cinder_ceph_record_and_missing_backup(ceph_cluster: Any, rbdtool: Any, tmp_path: pathlib.Path) -> None:
    _vid, base, ids, shas = cinder_ceph_chain(ceph_cluster, rbdtool, depth=2)
    av = ceph_av(tmp_path, ceph_cluster)
    record = {"id": ids[1], "volume_id": _vid, "container": "backups", "parent_id": ids[0], "size": 1,
              "display_name": "nightly", "service": "cinder.backup.drivers.ceph.CephBackupDriver",
              "service_metadata": json.dumps({"base": base})}
    url = __import__("base64").b64encode(json.dumps(record).encode()).decode()
    rows = av.j("backup", "cinder", "import", url)
    assert [r["id"] for r in rows] == ids and rows[1]["name"] == "nightly"
    assert sha256(av.j("backup", "restore", "nightly")["volume_location"]) == shas[1]
    missing = str(uuid.uuid4())
    err = one_line_error(av("backup", "cinder", "import", "--backup-id", missing, ok=False))
    assert missing in err and "pool backups" in err
    assert hashlib.sha256(b"").hexdigest() not in err
