"""RBD volumes: the ceph driver from RBD to RBD (conformance suite, diff sizes, names, deletes, pruning), and an RBD
source with the posix driver reading only the changed extents."""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from oslo_config import cfg

from ashvault import exceptions, formats
from ashvault.conf import register_group
from ashvault.driver import BackupDriver, BackupInfo, BackupResult, JobContext
from ashvault.testing.contract import DriverContract, FileVolumes, route
from ashvault_ceph.blockindex import BLOCK, BlockIndex
from ashvault_ceph.ceph import CephBackupDriver, rbd_meta
from ashvault_ceph.rbd_source import SNAP_RE, RbdReader, RbdSource

MiB = 1 << 20
POOL = "volumes"


def _sha(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(4 * MiB), b""):
            h.update(chunk)
    return h.hexdigest()


def backup_rbd(driver: BackupDriver, location: str, volume_id: str, parent: BackupInfo | None = None,
               ) -> tuple[BackupInfo, BackupResult, int]:
    """Back up an rbd: volume as the manager does; returns the record, the result and the bytes the reader read."""
    info = BackupInfo(id=str(uuid.uuid4()), volume_id=volume_id, parent=parent,
                      parent_id=parent.id if parent else None, format=formats.for_backup(driver, "rbd"))
    with RbdSource(driver.conf).open_reader(location) as reader:
        result = route(driver, info).backup(info, reader, JobContext())
        read = reader.bytes_read  # type: ignore[attr-defined]
    info.container, info.service_metadata, info.size = result.container, result.service_metadata, result.size
    return info, result, read


def restore_rbd(driver: BackupDriver, info: BackupInfo, rbdtool: Any, *, name: str | None = None,
                new: bool = True) -> str:
    """Restore into an RBD image (a new one unless ``name`` is given with ``new=False``); returns its name."""
    name = name or f"restore-{uuid.uuid4().hex[:8]}"
    if new:
        rbdtool.create(POOL, name, info.size)
    with RbdSource(driver.conf).open_writer(f"rbd:{POOL}/{name}") as writer:
        route(driver, info).restore(info, writer, JobContext(), volume_is_new=new)
    return name


class RbdVolumes(FileVolumes):
    """Contract volumes that are RBD images, each kept equal to a file made by the file volumes."""

    scheme = "rbd"

    def __init__(self, conf: cfg.ConfigOpts, directory: str, tool: Any, prefix: str) -> None:
        super().__init__(conf, directory)
        self.source = RbdSource(conf)
        self.tool = tool
        self.prefix = prefix
        self.files: dict[str, str] = {}

    def _image(self, name: str) -> str:
        return f"{self.prefix}-{name.replace('.', '-')}"

    def _sync(self, path: str, name: str) -> str:
        self.tool.sync_from_file(path, POOL, self._image(name))
        location = f"rbd:{POOL}/{self._image(name)}"
        self.files[location] = path
        return location

    def mixed(self, name: str, size: int, *, seed: int, sparse: bool = False) -> str:
        return self._sync(super().mixed(name, size, seed=seed, sparse=sparse), name)

    def random(self, name: str, size: int, *, seed: int) -> str:
        return self._sync(super().random(name, size, seed=seed), name)

    def mutate(self, location: str, *, percent: float, seed: int) -> None:
        path = self.files[location]
        super().mutate(path, percent=percent, seed=seed)
        self.tool.sync_from_file(path, POOL, location.split("/", 1)[1])

    def new(self, name: str, size: int) -> str:
        return str(self.tool.create(POOL, self._image(name), size))

    def sha256(self, location: str) -> str:
        pool, image = location[4:].split("/", 1)
        return str(self.tool.sha(pool, image))

    def allocated(self, location: str) -> int | None:
        return None


class TestCephDriverRbdToRbd(DriverContract):
    """The driver suite, with every volume an RBD image, so that the core routes it to the RBD diff path."""

    @pytest.fixture
    def driver(self, conf: cfg.ConfigOpts, rbdtool: Any) -> Iterator[CephBackupDriver]:
        self.tool = rbdtool
        driver = CephBackupDriver(conf)
        yield driver
        driver.close()

    @pytest.fixture
    def source(self, driver: CephBackupDriver, tmp_path: pathlib.Path) -> RbdVolumes:
        return RbdVolumes(driver.conf, str(tmp_path), self.tool, self.volume_id[:8])

    def _backup(self, driver: BackupDriver, source: FileVolumes, location: str,
                parent: BackupInfo | None = None) -> BackupInfo:
        info = super()._backup(driver, source, location, parent)
        assert info.format == "ceph-rbd/1" and rbd_meta(info.service_metadata), "an RBD source takes the RBD path"
        return info

    def _index_io(self, info: BackupInfo) -> Any:
        return self.tool.conn.ioctx(info.container or "backups", "ashvault")

    def leftovers(self, driver: BackupDriver, info: BackupInfo) -> list[str]:
        prefix = f"volume-{info.volume_id}."
        indexes = sorted(o.key for o in self._index_io(info).list_objects() if o.key.startswith(prefix))
        return self.tool.images("backups", prefix) + indexes + super().leftovers(driver, info)

    def corrupt_one_object(self, driver: BackupDriver, info: BackupInfo) -> str:
        """A snapshot cannot be written, so the stored checksum of one data block is flipped instead."""
        meta = rbd_meta(info.service_metadata)
        assert meta and meta["index"]
        io = self._index_io(info)
        size, _mtime = io.stat(meta["index"])
        index = BlockIndex.decode(io.read(meta["index"], size), info.size)
        data_blocks = [b for b in range(index.blocks) if index.buf[b * 16 : (b + 1) * 16] != bytes(16)]
        block = data_blocks[len(data_blocks) // 2]
        index.buf[block * 16] ^= 0x01
        io.write_full(meta["index"], index.encode())
        return f"{meta['base']}@{meta['snap']}:{block * BLOCK}"


def test_rbd_to_rbd_full_and_incremental_move_only_changes(conf: cfg.ConfigOpts, rbdtool: Any) -> None:
    driver = CephBackupDriver(conf)
    vid = str(uuid.uuid4())
    name = f"vol-{vid[:8]}"
    size = 32 * MiB
    location = rbdtool.create(POOL, name, size)
    rnd = __import__("random").Random(5)
    for off in range(0, size, 8 * MiB):  # 16 MiB of data, the rest never written
        rbdtool.write(POOL, name, off, rnd.randbytes(4 * MiB))
    want_full = rbdtool.sha(POOL, name)
    full, res_full, read_full = backup_rbd(driver, location, vid)
    assert res_full.stored_bytes == 16 * MiB and read_full == 16 * MiB

    changed = 0
    for off in (100 * 4096, 9 * MiB + 12345, 30 * MiB):  # scattered small writes, one into a hole
        rbdtool.write(POOL, name, off, rnd.randbytes(8192))
        changed += 8192
    want_inc = rbdtool.sha(POOL, name)
    inc, res_inc, read_inc = backup_rbd(driver, location, vid, parent=full)
    # Only the changed 64 KiB blocks were written to the backup image.
    assert res_inc.stored_bytes <= 4 * 65536, res_inc.stored_bytes
    # librbd widens a write into a missing object to the object's start (services.md A.5.9): at most one object more.
    assert read_inc <= changed + 4 * MiB, read_inc

    meta_full, meta_inc = rbd_meta(full.service_metadata), rbd_meta(inc.service_metadata)
    assert meta_full and meta_inc
    assert meta_full["base"] == meta_inc["base"] == f"volume-{vid}.backup.{full.id}"
    assert SNAP_RE.match(meta_inc["snap"]).group(1) == inc.id  # type: ignore[union-attr]
    assert set(rbdtool.snaps("backups", meta_full["base"])) == {meta_full["snap"], meta_inc["snap"]}
    assert {meta_full["snap"], meta_inc["snap"]} <= set(rbdtool.snaps(POOL, name))

    assert rbdtool.sha(POOL, restore_rbd(driver, full, rbdtool)) == want_full
    assert rbdtool.sha(POOL, restore_rbd(driver, inc, rbdtool)) == want_inc
    assert driver.verify(inc, JobContext()).ok

    # Delete removes exactly that backup's snapshots (base and source), and the base with its last snapshot.
    driver.delete_backup(full, JobContext())
    assert rbdtool.snaps("backups", meta_full["base"]) == [meta_inc["snap"]]
    assert meta_full["snap"] not in rbdtool.snaps(POOL, name) and meta_inc["snap"] in rbdtool.snaps(POOL, name)
    assert rbdtool.sha(POOL, restore_rbd(driver, inc, rbdtool)) == want_inc
    driver.delete_backup(inc, JobContext())
    driver.delete_backup(inc, JobContext())
    assert rbdtool.images("backups", f"volume-{vid}.") == []
    assert rbdtool.snaps(POOL, name) == []
    assert [o.key for o in rbdtool.conn.ioctx("backups", "ashvault").list_objects()
            if o.key.startswith(f"volume-{vid}.")] == [], "the checksum objects go with their backups"
    driver.close()


def test_restore_to_file_and_over_a_larger_rbd_volume(conf: cfg.ConfigOpts, rbdtool: Any,
                                                      tmp_path: pathlib.Path) -> None:
    driver = CephBackupDriver(conf)
    vid = str(uuid.uuid4())
    name = f"vol-{vid[:8]}"
    location = rbdtool.create(POOL, name, 8 * MiB)
    rbdtool.write(POOL, name, 3 * MiB, os.urandom(MiB))
    want = rbdtool.sha(POOL, name)
    info, _res, _read = backup_rbd(driver, location, vid)

    from ashvault.sources.file import FileSource

    out = str(tmp_path / "out.img")
    FileSource(conf).create(out, info.size)
    with FileSource(conf).open_writer(out) as writer:
        driver.restore(info, writer, JobContext(), volume_is_new=True)
    assert _sha(out) == want

    big = f"big-{vid[:8]}"
    rbdtool.create(POOL, big, 12 * MiB)
    rbdtool.write(POOL, big, 0, os.urandom(12 * MiB))
    restore_rbd(driver, info, rbdtool, name=big, new=False)
    with rbdtool.image(POOL, big) as img:
        assert hashlib.sha256(img.read(0, 8 * MiB)).hexdigest() == want
        assert img.read(8 * MiB, 4 * MiB) == bytes(4 * MiB)  # restore_discard_excess_bytes
    driver.delete_backup(info, JobContext())
    driver.close()


def test_max_snapshots_prunes_source_and_forces_full(conf: cfg.ConfigOpts, rbdtool: Any) -> None:
    conf.set_override("max_snapshots", 1, group="backup_ceph")
    driver = CephBackupDriver(conf)
    vid = str(uuid.uuid4())
    name = f"vol-{vid[:8]}"
    location = rbdtool.create(POOL, name, 4 * MiB)
    rbdtool.write(POOL, name, 0, os.urandom(MiB))
    b1, _r, _n = backup_rbd(driver, location, vid)
    b2, _r, _n = backup_rbd(driver, location, vid, parent=b1)
    snaps = [s for s in rbdtool.snaps(POOL, name) if SNAP_RE.match(s)]
    assert snaps == [rbd_meta(b2.service_metadata)["snap"]]  # type: ignore[index]
    # b1's source snapshot is gone: an incremental on b1 becomes a full backup into a new base image.
    b3, res3, _n = backup_rbd(driver, location, vid, parent=b1)
    assert rbd_meta(b3.service_metadata)["base"] == f"volume-{vid}.backup.{b3.id}"  # type: ignore[index]
    assert res3.stored_bytes == MiB
    for b in (b1, b2, b3):
        driver.delete_backup(b, JobContext())
    assert rbdtool.images("backups", f"volume-{vid}.") == []
    driver.close()


def test_rbd_source_to_posix_reads_only_changed_extents(conf: cfg.ConfigOpts, rbdtool: Any,
                                                        tmp_path: pathlib.Path) -> None:
    from ashvault_posix.posix import PosixBackupDriver

    register_group(conf, PosixBackupDriver.option_group, PosixBackupDriver.get_driver_options())
    driver = PosixBackupDriver(conf)
    vid = str(uuid.uuid4())
    name = f"vol-{vid[:8]}"
    size = 48 * MiB
    location = rbdtool.create(POOL, name, size)
    for off in range(0, size, 4 * MiB):
        rbdtool.write(POOL, name, off, os.urandom(2 * MiB))
    full, res_full, read_full = backup_rbd(driver, location, vid)
    assert read_full == res_full.read_bytes == 24 * MiB  # holes of the image are never read
    for off in (5 * 65536, 17 * MiB + 4096, 40 * MiB):
        rbdtool.write(POOL, name, off, os.urandom(4096))
    want = rbdtool.sha(POOL, name)
    inc, res_inc, read_inc = backup_rbd(driver, location, vid, parent=full)
    # The engine read the changed 64 KiB blocks, not the 24 MiB of data: about 3 blocks, at most a few more.
    assert read_inc == res_inc.read_bytes <= 8 * 65536, read_inc
    assert rbdtool.sha(POOL, restore_rbd(driver, inc, rbdtool)) == want
    out = str(tmp_path / "out.img")
    from ashvault.sources.file import FileSource

    FileSource(conf).create(out, size)
    with FileSource(conf).open_writer(out) as writer:
        route(driver, inc).restore(inc, writer, JobContext(), volume_is_new=True)
    assert _sha(out) == want
    driver.close()


def test_failed_backup_leaves_no_snapshot(conf: cfg.ConfigOpts, rbdtool: Any) -> None:
    driver = CephBackupDriver(conf)
    vid = str(uuid.uuid4())
    name = f"vol-{vid[:8]}"
    location = rbdtool.create(POOL, name, 24 * MiB)
    rbdtool.write(POOL, name, 0, os.urandom(24 * MiB))
    info = BackupInfo(id=str(uuid.uuid4()), volume_id=vid)
    calls = {"n": 0}

    def cancelled() -> bool:
        calls["n"] += 1
        return calls["n"] > 1

    ctx = JobContext(is_cancelled=cancelled, cancel_error=exceptions.BackupCancelled)
    with RbdSource(conf).open_reader(location) as reader, pytest.raises(exceptions.BackupCancelled):
        assert isinstance(reader, RbdReader)
        driver.backup(info, reader, ctx)
    assert rbdtool.snaps(POOL, name) == []
    assert rbdtool.images("backups", f"volume-{vid}.") == []
    objects = rbdtool.conn.ioctx("backups", "ashvault").list_objects()
    assert not [o for o in objects if o.key.startswith(f"volume-{vid}.")]
    driver.delete_backup(info, JobContext())
    driver.close()


def test_bad_locations_are_one_line_errors(conf: cfg.ConfigOpts) -> None:
    src = RbdSource(conf)
    for bad in ("rbd:", "rbd:pool", "rbd:pool/", "rbd:/img", "rbd:po ol/img", "rbd:pool/img@"):
        with pytest.raises(exceptions.InvalidVolume):
            src.normalize(bad)
    with pytest.raises(exceptions.InvalidVolume, match="does not exist"):
        src.normalize(f"rbd:{POOL}/missing-{uuid.uuid4().hex[:6]}")
    with pytest.raises(exceptions.InvalidVolume, match="pool nopool does not exist"):
        src.normalize("rbd:nopool/img")
    assert json.dumps(src.normalize.__doc__)  # documented


def test_fixed_snapshot_location_is_read_never_touched(conf: cfg.ConfigOpts, rbdtool: Any) -> None:
    driver = CephBackupDriver(conf)
    vid = str(uuid.uuid4())
    name = f"vol-{vid[:8]}"
    rbdtool.create(POOL, name, 4 * MiB)
    rbdtool.write(POOL, name, 0, os.urandom(MiB))
    with rbdtool.image(POOL, name) as img:
        img.create_snap("mine")
    want = rbdtool.sha(POOL, name, "mine")
    rbdtool.write(POOL, name, 0, os.urandom(MiB))  # after the snapshot: not in the backup
    location = RbdSource(conf).normalize(f"rbd:{POOL}/{name}@mine")
    full, _res, _read = backup_rbd(driver, location, vid)
    assert rbdtool.sha(POOL, restore_rbd(driver, full, rbdtool)) == want
    with pytest.raises(exceptions.NotSupported):
        backup_rbd(driver, location, vid, parent=full)
    with pytest.raises(exceptions.InvalidVolume):
        RbdSource(conf).open_writer(location)
    driver.delete_backup(full, JobContext())
    assert rbdtool.snaps(POOL, name) == ["mine"]
    assert rbdtool.images("backups", f"volume-{vid}.") == []
    driver.close()


def test_restore_over_a_target_without_cheap_reset(conf: cfg.ConfigOpts, rbdtool: Any,
                                                   tmp_path: pathlib.Path) -> None:
    """A block device cannot be reset cheaply: the gaps between the backup's extents are zeroed one by one."""
    from ashvault.sources.file import FileWriter

    driver = CephBackupDriver(conf)
    vid = str(uuid.uuid4())
    name = f"vol-{vid[:8]}"
    location = rbdtool.create(POOL, name, 16 * MiB)
    rbdtool.write(POOL, name, 4 * MiB + 4096, os.urandom(MiB))
    rbdtool.write(POOL, name, 12 * MiB, os.urandom(8192))
    want = rbdtool.sha(POOL, name)
    info, _res, _read = backup_rbd(driver, location, vid)
    out = tmp_path / "dev.img"
    out.write_bytes(os.urandom(20 * MiB))
    writer = FileWriter(str(out))
    writer.cheap_reset = False
    with writer:
        driver.restore(info, writer, JobContext(), volume_is_new=False)
    data = out.read_bytes()
    assert hashlib.sha256(data[: 16 * MiB]).hexdigest() == want
    assert data[16 * MiB :] == bytes(4 * MiB)
    driver.delete_backup(info, JobContext())
    driver.close()


def test_volume_grown_between_backups(conf: cfg.ConfigOpts, rbdtool: Any) -> None:
    driver = CephBackupDriver(conf)
    vid = str(uuid.uuid4())
    name = f"vol-{vid[:8]}"
    location = rbdtool.create(POOL, name, MiB + 1000)  # a partial last 64 KiB block
    rbdtool.write(POOL, name, 0, os.urandom(MiB + 1000))
    full, _res, _read = backup_rbd(driver, location, vid)
    with rbdtool.image(POOL, name) as img:
        img.resize(3 * MiB)
    rbdtool.write(POOL, name, 2 * MiB, os.urandom(4096))
    want = rbdtool.sha(POOL, name)
    inc, res, _read = backup_rbd(driver, location, vid, parent=full)
    assert res.size == 3 * MiB
    assert driver.verify(inc, JobContext()).ok and driver.verify(full, JobContext()).ok
    assert rbdtool.sha(POOL, restore_rbd(driver, inc, rbdtool)) == want
    for b in (full, inc):
        driver.delete_backup(b, JobContext())
    driver.close()
