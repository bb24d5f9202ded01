"""Mounting (mount point, reuse, lock, retries, dead mounts), Cinder's option names, and O_DIRECT on both mounts."""

from __future__ import annotations

import hashlib
import os
import pathlib
import signal
import subprocess
import sys
from typing import Any

import pytest

from ashvault import plugins
from ashvault.conf import make_config, register_group
from ashvault.directio import DirectReader, DirectWriter, aligned_buffer
from ashvault_posix.glusterfs import GlusterfsBackupDriver
from ashvault_posix.mount import Mounter, MountError, mount_point, mounted_at
from ashvault_posix.nfs import NFSBackupDriver
from ashvault_posix.objectstore import PosixObjectStore

LOGGING_MOUNT = """#!/bin/sh
echo "$$ $*" >> {log}
{fail}
exec mount -t glusterfs "$@"
"""


def logging_mount(tmp_path: pathlib.Path, *, fail_first: int = 0) -> tuple[str, pathlib.Path]:
    """A mount command that records each run, fails its first ``fail_first`` runs, then runs mount -t glusterfs."""
    log = tmp_path / "mount.log"
    fail = (f'[ "$(wc -l < {log})" -le {fail_first} ] && {{ echo "mount: try $(wc -l < {log}) refused" >&2; '
            "exit 32; }") if fail_first else ""
    script = tmp_path / "mount.sh"
    script.write_text(LOGGING_MOUNT.format(log=log, fail=fail))
    script.chmod(0o755)
    return str(script), log


def runs(log: pathlib.Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def test_mount_point_is_the_md5_of_the_share_as_os_brick_names_it() -> None:
    share = "192.168.0.10:/srv/backups"
    assert mount_point("/var/lib/cinder/backup_mount", share) == os.path.join(
        "/var/lib/cinder/backup_mount", hashlib.md5(share.encode()).hexdigest())
    assert mount_point("/b", share) != mount_point("/b", share + "/")


def test_a_mounted_share_is_reused_and_never_mounted_twice(gluster: Any, mount_base: str,
                                                           tmp_path: pathlib.Path) -> None:
    command, log = logging_mount(tmp_path)
    first = Mounter(gluster.share, mount_base, command=command, lock_dir=str(tmp_path / "locks"))
    path = first.ensure()
    assert path == mount_point(mount_base, gluster.share) and mounted_at(path) == gluster.share
    again = Mounter(gluster.share, mount_base, command=command, lock_dir=str(tmp_path / "locks"))
    assert again.ensure() == path
    assert runs(log) == 1
    with open("/proc/self/mountinfo") as f:
        assert sum(line.split()[4] == path for line in f) == 1


def test_two_processes_mount_a_share_once(gluster: Any, mount_base: str, tmp_path: pathlib.Path) -> None:
    command, log = logging_mount(tmp_path)
    code = ("import sys; from ashvault_posix.mount import Mounter; "
            "print(Mounter(sys.argv[1], sys.argv[2], command=sys.argv[3], lock_dir=sys.argv[4]).ensure())")
    procs = [subprocess.Popen([sys.executable, "-c", code, gluster.share, mount_base, command,
                               str(tmp_path / "locks")], stdout=subprocess.PIPE, text=True) for _ in range(3)]
    outs = {p.communicate(timeout=120)[0].strip() for p in procs}
    assert all(p.returncode == 0 for p in procs)
    assert outs == {mount_point(mount_base, gluster.share)}
    assert runs(log) == 1, log.read_text()


def test_mount_retries_with_backoff_then_succeeds(gluster: Any, mount_base: str, tmp_path: pathlib.Path) -> None:
    command, log = logging_mount(tmp_path, fail_first=2)
    slept: list[float] = []
    m = Mounter(gluster.share, mount_base, command=command, attempts=3, backoff=0.5,
                lock_dir=str(tmp_path / "locks"), sleep=slept.append)
    assert m.usable() is False
    m.ensure()
    assert m.usable() and runs(log) == 3 and slept == [0.5, 1.0]


def test_mount_failing_every_time_names_share_and_the_commands_error(gluster: Any, mount_base: str,
                                                                     tmp_path: pathlib.Path) -> None:
    command, log = logging_mount(tmp_path, fail_first=5)
    slept: list[float] = []
    m = Mounter(gluster.share, mount_base, command=command, attempts=3, backoff=0.25,
                lock_dir=str(tmp_path / "locks"), sleep=slept.append)
    with pytest.raises(MountError) as err:
        m.ensure()
    assert str(err.value) == (f"cannot mount {gluster.share} on {m.path}: mount: try 3 refused (after 3 attempts)")
    assert runs(log) == 3 and slept == [0.25, 0.5] and not m.is_mounted()
    missing = Mounter(gluster.share, mount_base, command="/nonexistent/mount.tool", attempts=1,
                      lock_dir=str(tmp_path / "locks"))
    with pytest.raises(MountError, match=r"mount\.tool"):
        missing.ensure()


def test_a_dead_mount_is_detached_and_mounted_again(ganesha: Any, mount_base: str, tmp_path: pathlib.Path) -> None:
    m = Mounter(ganesha.share, mount_base, command=ganesha.mount_command(), options=ganesha.mount_options,
                lock_dir=str(tmp_path / "locks"))
    path = m.ensure()
    client = subprocess.run(["pgrep", "-f", f"nfs_fuse.py .* {path}$"], capture_output=True, text=True)
    pid = int(client.stdout.split()[0])
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(OSError):
        os.listdir(path)
    assert m.is_mounted() and not m.usable()
    assert m.ensure() == path and m.usable()
    with open(os.path.join(path, "after"), "w") as f:
        f.write("ok")
    assert os.path.exists(os.path.join(ganesha.export, "after"))
    os.unlink(os.path.join(path, "after"))


def test_cinder_option_names_and_class_paths() -> None:
    conf_file_text = (
        "[DEFAULT]\nbackup_share = nas:/backups\nbackup_mount_options = vers=3,tcp\n"
        "backup_mount_point_base = /srv/mnt\nbackup_mount_attempts = 5\nbackup_file_size = 8388608\n"
        "backup_sha_block_size_bytes = 65536\nbackup_container = cinder\n"
        "glusterfs_backup_share = gl:/vol\nglusterfs_backup_mount_point = /srv/gmnt\n"
    )
    import tempfile
    with tempfile.NamedTemporaryFile("w", suffix=".conf") as f:
        f.write(conf_file_text)
        f.flush()
        conf = make_config([], config_files=[f.name])
        for cls in (NFSBackupDriver, GlusterfsBackupDriver):
            register_group(conf, cls.option_group, cls.get_driver_options())
        nfs, gl = conf.backup_nfs, conf.backup_glusterfs
        assert (nfs.share, nfs.mount_options, nfs.mount_point_base, nfs.mount_attempts) == (
            "nas:/backups", "vers=3,tcp", "/srv/mnt", 5)
        assert (nfs.object_size, nfs.block_size, nfs.container) == (8388608, 65536, "cinder")
        assert nfs.mount_command == "mount -t nfs" and gl.mount_command == "mount -t glusterfs"
        assert (gl.share, gl.mount_point_base, gl.mount_options) == ("gl:/vol", "/srv/gmnt", None)
    defaults = make_config([], config_files=[])
    register_group(defaults, NFSBackupDriver.option_group, NFSBackupDriver.get_driver_options())
    assert defaults.backup_nfs.mount_point_base == os.path.join(defaults.ashvault_state_path, "backup_mount")
    assert defaults.backup_nfs.mount_attempts == 3
    assert plugins.driver_name("cinder.backup.drivers.nfs.NFSBackupDriver") == "nfs"
    assert plugins.driver_name("cinder.backup.drivers.glusterfs.GlusterfsBackupDriver") == "glusterfs"
    assert plugins.load_class(plugins.DRIVERS, "nfs", kind="backup driver") is NFSBackupDriver
    assert plugins.load_class(plugins.DRIVERS, "glusterfs", kind="backup driver") is GlusterfsBackupDriver
    assert plugins.install_hint(plugins.DRIVERS, "nfs") == (
        "install ashvault-posix: pip install ./plugins/posix_nfs_gluster from a clone of the ashvault repository")


def _round_trip(root: str) -> bool:
    """Write an aligned buffer plus an unaligned tail with O_DIRECT asked for, read it back; True if O_DIRECT
    was used."""
    data = aligned_buffer(1 << 20)
    data[:] = os.urandom(1 << 20)
    tail = os.urandom(1000)
    path = os.path.join(root, "direct.bin")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o640)
    try:
        writer = DirectWriter(fd, path, enabled=True)
        writer.pwrite(0, data)
        writer.pwrite(1 << 20, tail)
        used = writer.direct
        writer.close()
        os.fsync(fd)
        reader = DirectReader(fd, path, enabled=True)
        got = bytes(reader.pread(0, (1 << 20) + 1000))
        reader.close()
    finally:
        os.close(fd)
        os.unlink(path)
    assert got == bytes(data) + tail
    return used


@pytest.mark.parametrize("kind", ["nfs", "glusterfs", "nfs-refusing-o-direct"])
def test_o_direct_where_allowed_and_a_clean_fallback_where_not(kind: str, request: pytest.FixtureRequest,
                                                               mount_base: str, tmp_path: pathlib.Path) -> None:
    server = request.getfixturevalue("gluster" if kind == "glusterfs" else "ganesha")
    if kind == "glusterfs":
        m = Mounter(server.share, mount_base, command="mount -t glusterfs", lock_dir=str(tmp_path))
    else:
        opts = server.mount_options + (",nodirect" if kind.endswith("o-direct") else "")
        m = Mounter(server.share, mount_base, command=server.mount_command(), options=opts, lock_dir=str(tmp_path))
    root = m.ensure()
    used = _round_trip(root)
    if kind.endswith("o-direct"):
        assert not used, "the mount refuses O_DIRECT: ordinary I/O was used"
    store = PosixObjectStore(os.path.join(root, f"store-{os.getpid()}"), direct_io=True)
    store.check()
    store.put_container("c")
    blob = os.urandom(3 * (1 << 20) + 17)
    store.put_object("c", "a/b", memoryview(bytearray(blob)))
    assert bytes(store.get_object("c", "a/b")) == blob
    store.delete_object("c", "a/b")
    assert store.list_objects("c") == []


def test_a_driver_whose_mount_died_mounts_again_and_carries_on(make_driver: Any, mount_base: str,
                                                                 tmp_path: pathlib.Path) -> None:
    from ashvault.driver import BackupInfo, JobContext
    from ashvault.sources.file import FileSource
    from ashvault.testing import volumes
    from ashvault.testing.contract import route

    driver = make_driver("nfs", mount_point_base=mount_base)
    path = volumes.write_mixed(str(tmp_path / "v.img"), 8 * (1 << 20), seed=41, run=1 << 20)
    info = BackupInfo(id="b1", volume_id="v1", name="b1")
    with FileSource(driver.conf).open_reader(path) as reader:
        result = route(driver, info).backup(info, reader, JobContext())
    info.container, info.service_metadata, info.size = result.container, result.service_metadata, result.size
    mnt = driver.mounter.path
    pid = int(subprocess.run(["pgrep", "-f", f"nfs_fuse.py .* {mnt}$"], capture_output=True,
                             text=True).stdout.split()[0])
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(OSError):
        os.listdir(mnt)
    report = route(driver, info).verify(info, JobContext())
    assert report.ok and report.objects_checked > 0
    assert driver.mounter.usable()
