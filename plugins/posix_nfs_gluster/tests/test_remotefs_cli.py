"""The nfs and glusterfs drivers through the ``ashvault`` command, configured as Cinder operators have them,
against the real servers: the walk-through, 256 MiB round trips, a server killed mid-backup, and bad shares."""

from __future__ import annotations

import os
import pathlib
import subprocess
import time
from typing import Any

import pytest
from clitools import Ashvault, MiB, one_line_error, sha256

from ashvault.testing import volumes
from ashvault_posix.mount import mount_point, mounted_at

CLASS_PATHS = {"nfs": "cinder.backup.drivers.nfs.NFSBackupDriver",
               "glusterfs": "cinder.backup.drivers.glusterfs.GlusterfsBackupDriver"}


class Setup:
    """One driver's server, share and ``ashvault`` command, with the config written in Cinder's names."""

    def __init__(self, kind: str, server: Any, tmp: pathlib.Path, base: str) -> None:
        self.kind, self.server, self.base = kind, server, base
        self.av = Ashvault(tmp)
        self.container = "backups"
        self.share = server.share
        self.write()

    def write(self, *, share: str | None = None, base: str | None = None, mount_options: str | None = None,
              extra: str = "") -> None:
        share = share or self.share
        base = base or self.base
        common = f"backup_file_size = {4 * MiB}\nbackup_container = {self.container}\n{extra}"
        if self.kind == "nfs":
            opts = self.server.mount_options if mount_options is None else mount_options
            text = (f"backup_share = {share}\nbackup_mount_point_base = {base}\nbackup_mount_options = {opts}\n"
                    f"backup_mount_attempts = 2\n{common}\n[backup_nfs]\n"
                    f"mount_command = {self.server.mount_command()}\n")
        else:
            text = f"glusterfs_backup_share = {share}\nglusterfs_backup_mount_point = {base}\n{common}\n"
            text += "[backup_glusterfs]\nmount_attempts = 2\n"
            if mount_options:
                text += f"mount_options = {mount_options}\n"
        text += "mount_retry_backoff = 0.2\nretry_backoff = 0.2\nretry_attempts = 3\n"
        self.av.write_conf(text, driver=CLASS_PATHS[self.kind])

    @property
    def mount_point(self) -> str:
        return mount_point(self.base, self.share)


@pytest.fixture(params=["nfs", "glusterfs"])
def setup(request: pytest.FixtureRequest, tmp_path: pathlib.Path, mount_base: str) -> Setup:
    kind = str(request.param)
    server = request.getfixturevalue("ganesha" if kind == "nfs" else "gluster")
    return Setup(kind, server, tmp_path, mount_base)


def fill(path: str, size: int, seed: int) -> None:
    """Mixed data (random, text, holes) over the start of an existing sparse volume file."""
    tmp = path + ".seed"
    volumes.write_mixed(tmp, size, seed=seed, run=MiB, sparse=True)
    with open(tmp, "rb") as src, open(path, "r+b") as dst:
        while chunk := src.read(MiB):
            if chunk.count(0) == len(chunk):
                dst.seek(len(chunk), os.SEEK_CUR)
            else:
                dst.write(chunk)
    os.unlink(tmp)


def test_walkthrough_create_incremental_verify_restore_delete(setup: Setup) -> None:
    av = setup.av
    shown = av.j("driver", "show", setup.kind, "--check")
    assert shown["check"] == "ok" and shown["default"] is True
    assert shown["options"]["share"] == setup.share and shown["options"]["object_size"] == 4 * MiB
    assert shown["options"]["mount_point_base"] == setup.base and shown["options"]["mount_attempts"] == 2
    assert mounted_at(setup.mount_point) is not None, "the check mounted the share on base/<md5 of the share>"
    assert os.listdir(setup.mount_point) == [], "the probe object and its directory are gone"
    vol = av.j("volume", "create", "volume1", "--size", "0.0625")
    fill(vol["location"], 40 * MiB, seed=1)
    full = av.j("backup", "create", "volume1", "--name", "full")
    assert full["status"] == "available" and full["service"] == setup.kind and full["container"] == "backups"
    objects = os.listdir(os.path.join(setup.mount_point, "backups"))
    assert objects == [f"volume_{vol['id']}"], "the backup is on the share"
    volumes.mutate(vol["location"], percent=3, seed=2)
    want = sha256(vol["location"])
    inc = av.j("backup", "create", "volume1", "--name", "inc", "--incremental")
    assert inc["is_incremental"] and inc["parent_id"] == full["id"]
    assert inc["stored_bytes"] < 0.1 * 64 * MiB, "only changed blocks are stored"
    assert av.j("backup", "verify", "inc")["result"] == "ok"
    restored = av.j("backup", "restore", "inc")
    assert sha256(restored["volume_location"]) == want
    with open(vol["location"], "r+b") as f:
        f.write(os.urandom(MiB))
    av("backup", "restore", "inc", "volume1", "--force")
    assert sha256(vol["location"]) == want
    assert [d["status"] for d in av.j("backup", "delete", "inc", "full")] == ["deleted", "deleted"]
    assert av.j("backup", "list") == []
    assert not os.listdir(os.path.join(setup.mount_point, "backups"))


def test_256_mib_full_incremental_restore_identical_and_sparse(setup: Setup, tmp_path: pathlib.Path) -> None:
    av = setup.av
    size = 256 * MiB
    path = str(tmp_path / "big.img")
    volumes.write_mixed(path, size, seed=7, run=MiB, sparse=True)
    av.j("volume", "register", "big", path)
    av.j("backup", "create", "big", "--name", "full")
    volumes.mutate(path, percent=2, seed=8)
    want = sha256(path)
    inc = av.j("backup", "create", "big", "--name", "inc", "--incremental")
    assert inc["is_incremental"] and inc["stored_bytes"] < 0.1 * size
    local = av.j("backup", "restore", "inc", "--name", "local")["volume_location"]
    assert sha256(local) == want
    assert os.stat(local).st_blocks * 512 < 0.8 * size, "holes in the restored volume (ext4)"
    # A restore into a volume on the share itself: holes there too where the file system keeps them.
    on_share = os.path.join(setup.mount_point, "volumes")
    setup.write(extra=f"ashvault_volumes_dir = {on_share}\n")
    remote = av.j("backup", "restore", "inc", "--name", "on-share")["volume_location"]
    assert remote.startswith(on_share) and sha256(remote) == want
    assert os.stat(remote).st_size == size
    assert os.stat(remote).st_blocks * 512 < 0.8 * size, f"holes in the volume restored onto {setup.kind}"
    os.unlink(remote)


def _wait_for_objects(directory: str, proc: subprocess.Popen[str], count: int) -> None:
    deadline = time.monotonic() + 60
    while _count(directory) < count:
        assert proc.poll() is None, f"the backup ended before the fault: {proc.communicate()}"
        assert time.monotonic() < deadline, "the backup made no progress"
        time.sleep(0.05)


def _count(directory: str) -> int:
    try:
        return sum(len(files) for _d, _s, files in os.walk(directory))
    except OSError:
        return 0


def _kill(setup: Setup) -> None:
    if setup.kind == "nfs":
        setup.server.kill_ganesha()
    else:
        setup.server.kill_brick()


def _revive(setup: Setup) -> None:
    if setup.kind == "nfs":
        if setup.server.ganesha is None:
            setup.server.start_ganesha()
    else:
        setup.server.start_brick()
    deadline = time.monotonic() + 60
    while True:
        try:
            os.listdir(setup.mount_point)
            probe = os.path.join(setup.mount_point, ".alive")
            with open(probe, "w") as f:
                f.write("x")
            os.unlink(probe)
            return
        except OSError:
            assert time.monotonic() < deadline, "the mount did not come back"
            time.sleep(0.2)


def test_server_killed_mid_backup_fails_cleanly(setup: Setup, tmp_path: pathlib.Path) -> None:
    av = setup.av
    earlier_path = str(tmp_path / "earlier.img")
    volumes.write_mixed(earlier_path, 8 * MiB, seed=21, run=MiB)
    av.j("volume", "register", "earlier", earlier_path)
    earlier = av.j("backup", "create", "earlier", "--name", "earlier")
    setup.write(extra=f"backup_bandwidth_limit = {8 * MiB}\n")
    path = str(tmp_path / "doomed.img")
    volumes.write_mixed(path, 48 * MiB, seed=22, run=MiB, zero=0, text=0)
    av.j("volume", "register", "doomed", path)
    proc = av.popen("backup", "create", "doomed", "--name", "doomed", "-f", "json")
    container = os.path.join(setup.mount_point, "backups")
    try:
        _wait_for_objects(container, proc, _count(container) + 3)
        _kill(setup)
        out, err = proc.communicate(timeout=180)
        assert proc.returncode != 0, out
        lines = [ln for ln in err.splitlines() if ln.startswith("ashvault: error:")]
        assert len(lines) == 1, err
        doomed = av.j("backup", "show", "doomed")
        assert doomed["status"] == "error" and "\n" not in doomed["fail_reason"]
    finally:
        _revive(setup)
    setup.write()
    assert av.j("backup", "verify", "earlier")["result"] == "ok"
    assert sha256(av.j("backup", "restore", earlier["id"])["volume_location"]) == sha256(earlier_path)
    av("backup", "delete", "doomed")
    assert {b["name"]: b["status"] for b in av.j("backup", "list")} == {"earlier": "available"}


def test_bad_shares_are_one_line_and_lose_nothing(setup: Setup, tmp_path: pathlib.Path) -> None:
    av = setup.av
    path = str(tmp_path / "v.img")
    volumes.write_mixed(path, 8 * MiB, seed=31, run=MiB)
    av.j("volume", "register", "v", path)
    good = av.j("backup", "create", "v", "--name", "good")
    other = str(tmp_path / "other-mnt")
    if setup.kind == "nfs":
        unreachable = ("127.0.0.1:" + setup.server.export, "port=2050,mountport=20050,timeo=10")
        wrong = (f"127.0.0.1:{setup.server.base}/no-such-export", None)
        read_only = (setup.server.ro_share, None)
    else:
        unreachable = ("127.0.0.2:/vol", None)
        wrong = ("127.0.0.1:/no-such-volume", None)
        read_only = (setup.share, "ro")
    for label, (share, opts) in {"unreachable": unreachable, "wrong export": wrong}.items():
        setup.write(share=share, base=other, mount_options=opts)
        for args in (("driver", "show", setup.kind, "--check"), ("backup", "create", "v", "--name", label)):
            line = one_line_error(av(*args, ok=False, timeout=120))
            assert f"cannot mount {share} on {mount_point(other, share)}" in line, line
            assert "after 2 attempts" in line, line
        assert mounted_at(mount_point(other, share)) is None
    share, opts = read_only
    setup.write(share=share, base=other, mount_options=opts)
    line = one_line_error(av("driver", "show", setup.kind, "--check", ok=False))
    assert f"cannot create a directory on the {setup.kind} share {share}" in line, line
    assert "Read-only file system" in line or "Permission denied" in line, line
    line = one_line_error(av("backup", "create", "v", "--name", "ro", ok=False))
    assert "Read-only file system" in line or "Permission denied" in line, line
    for entry in os.listdir(other):
        if mounted_at(os.path.join(other, entry)):
            subprocess.run(["umount", "-l", os.path.join(other, entry)], check=True)
    setup.write()
    assert av.j("backup", "verify", "good")["result"] == "ok"
    assert sha256(av.j("backup", "restore", good["id"])["volume_location"]) == sha256(path)
    statuses = {b["name"]: b["status"] for b in av.j("backup", "list")}
    assert statuses["good"] == "available" and set(statuses.values()) <= {"available", "error"}
