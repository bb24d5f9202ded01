"""The chunked engine over the in-memory store: compression, zero and hole handling, write-once restores."""

from __future__ import annotations

import itertools
import os
import pathlib
import uuid

import pytest

from ashvault import exceptions
from ashvault.chunked import ChunkedFormat
from ashvault.conf import make_config, register_group
from ashvault.driver import BackupInfo, JobContext
from ashvault.engine.layout import read_manifest
from ashvault.objectstore import ObjectStore, ObjectStoreWrapper
from ashvault.sources import VolumeWriter
from ashvault.sources.file import FileSource
from ashvault.testing import volumes
from ashvault.testing.fakes import MemoryBackupDriver

MiB = 1 << 20


def make_driver(**overrides: object) -> MemoryBackupDriver:
    conf = make_config([], config_files=[])
    register_group(conf, MemoryBackupDriver.option_group, MemoryBackupDriver.get_driver_options())
    for key, value in overrides.items():
        conf.set_override(key, value)
    MemoryBackupDriver.shared_buckets.clear()
    return MemoryBackupDriver(conf)


def chunked(driver: MemoryBackupDriver) -> ChunkedFormat:
    """The core's chunked format over the driver's store, as the manager routes a ``chunked/1`` backup."""
    return ChunkedFormat.for_driver(driver)


def backup(driver: MemoryBackupDriver, path: str, parent: BackupInfo | None = None,
           volume_id: str = "vol") -> BackupInfo:
    info = BackupInfo(id=str(uuid.uuid4()), volume_id=volume_id, parent=parent,
                      parent_id=parent.id if parent else None)
    with FileSource(driver.conf).open_reader(path) as reader:
        res = chunked(driver).backup(info, reader, JobContext())
    info.container, info.service_metadata, info.size = res.container, res.service_metadata, res.size
    info.read_bytes = res.read_bytes  # type: ignore[attr-defined]
    return info


class CountingWriter(VolumeWriter):
    def __init__(self, size: int) -> None:
        self.size = size
        self.location = "memory"
        self.data = bytearray(size)
        self.writes: list[tuple[int, int]] = []
        self.reserved: list[tuple[int, int]] = []

    def pwrite(self, offset: int, data: bytes | memoryview) -> None:
        self.data[offset : offset + len(data)] = data
        self.writes.append((offset, len(data)))

    def reserve(self, offset: int, length: int) -> None:
        assert not self.writes, "space is reserved before the first write"
        self.reserved.append((offset, length))

    def zero(self, offset: int, length: int) -> None:
        self.data[offset : offset + length] = bytes(length)

    def reset(self) -> None:
        self.data[:] = bytes(self.size)


@pytest.mark.parametrize("algo", ["none", "zlib", "gzip", "bz2", "bzip2", "zstd", "off"])
def test_every_compressor_round_trips(tmp_path: pathlib.Path, algo: str) -> None:
    driver = make_driver(backup_compression_algorithm=algo)
    path = volumes.write_mixed(str(tmp_path / "v.img"), 6 * MiB, seed=1, run=MiB, zero=0.2, text=0.5)
    info = backup(driver, path)
    manifest = chunked(driver).read_manifest(info)
    used = {o.compression for o in manifest.objects}
    expected = {"gzip": "zlib", "bzip2": "bz2", "off": "none"}.get(algo, algo)
    assert expected in used
    out = CountingWriter(info.size)
    chunked(driver).restore(info, out, JobContext(), volume_is_new=True)
    assert bytes(out.data) == pathlib.Path(path).read_bytes()


def test_incompressible_objects_are_stored_raw(tmp_path: pathlib.Path) -> None:
    driver = make_driver(backup_compression_algorithm="zstd")
    path = volumes.write_mixed(str(tmp_path / "v.img"), 4 * MiB, seed=2, run=MiB, zero=0, text=0)
    manifest = chunked(driver).read_manifest(backup(driver, path))
    assert {o.compression for o in manifest.objects} == {"none"}
    assert all(o.stored_size == o.size for o in manifest.objects)


def test_a_chain_may_mix_algorithms(tmp_path: pathlib.Path) -> None:
    driver = make_driver(backup_compression_algorithm="bz2")
    path = volumes.write_mixed(str(tmp_path / "v.img"), 4 * MiB, seed=3, run=MiB, zero=0, text=1)
    full = backup(driver, path)
    driver.conf.set_override("backup_compression_algorithm", "zlib")
    volumes.mutate(path, percent=20, seed=4)
    with open(path, "r+b") as f:
        f.write(volumes.text_run(__import__("random").Random(5), MiB))
    inc = backup(driver, path, parent=full)
    assert {o.compression for o in chunked(driver).read_manifest(inc).objects} >= {"bz2", "zlib"}
    out = CountingWriter(inc.size)
    chunked(driver).restore(inc, out, JobContext(), volume_is_new=True)
    assert bytes(out.data) == pathlib.Path(path).read_bytes()


def test_holes_are_not_read_and_zeros_not_stored(tmp_path: pathlib.Path) -> None:
    driver = make_driver()
    path = str(tmp_path / "sparse.img")
    with open(path, "wb") as f:
        f.truncate(64 * MiB)
        f.seek(10 * MiB)
        f.write(os.urandom(MiB))
        f.seek(40 * MiB)
        f.write(bytes(2 * MiB))
    info = backup(driver, path)
    assert info.read_bytes <= 3 * MiB + 128 * 1024, "only the allocated regions are read"  # type: ignore[attr-defined]
    manifest = chunked(driver).read_manifest(info)
    assert sum(o.size for o in manifest.objects) == MiB, "written zeros are not stored either"
    assert manifest.extents == [(10 * MiB, MiB, 0, 0)]


def test_restore_writes_each_byte_once_whatever_the_chain(tmp_path: pathlib.Path) -> None:
    driver = make_driver()
    path = volumes.write_mixed(str(tmp_path / "v.img"), 16 * MiB, seed=6, run=MiB)
    chain = [backup(driver, path)]
    for seed in range(7, 12):
        volumes.mutate(path, percent=10, seed=seed)
        chain.append(backup(driver, path, parent=chain[-1]))
    out = CountingWriter(chain[-1].size)
    chunked(driver).restore(chain[-1], out, JobContext(), volume_is_new=True)
    assert bytes(out.data) == pathlib.Path(path).read_bytes()
    covered = sorted(out.writes)
    for (a, alen), (b, _blen) in itertools.pairwise(covered):
        assert a + alen <= b, "two writes overlap"
    nonzero = sum(1 for i in range(0, len(out.data), 65536) if out.data[i : i + 65536] != bytes(65536))
    assert sum(n for _o, n in out.writes) <= nonzero * 65536
    assert sum(n for _o, n in out.reserved) == sum(n for _o, n in out.writes), "only what is written is reserved"
    for off, n in out.writes:
        assert any(r <= off and off + n <= r + rn for r, rn in out.reserved), "every write lands in reserved space"


def test_volume_that_grew_and_shrank(tmp_path: pathlib.Path) -> None:
    driver = make_driver()
    path = volumes.write_mixed(str(tmp_path / "v.img"), 8 * MiB, seed=13, run=MiB, zero=0)
    full = backup(driver, path)
    with open(path, "ab") as f:
        f.write(os.urandom(3 * MiB + 5))
    grown = backup(driver, path, parent=full)
    out = CountingWriter(grown.size)
    chunked(driver).restore(grown, out, JobContext(), volume_is_new=True)
    assert bytes(out.data) == pathlib.Path(path).read_bytes()
    os.truncate(path, 5 * MiB + 7)
    shrunk = backup(driver, path, parent=grown)
    out = CountingWriter(shrunk.size)
    chunked(driver).restore(shrunk, out, JobContext(), volume_is_new=True)
    assert bytes(out.data) == pathlib.Path(path).read_bytes()


def test_manifest_is_self_describing(tmp_path: pathlib.Path) -> None:
    driver = make_driver()
    path = volumes.write_mixed(str(tmp_path / "v.img"), 4 * MiB, seed=14, run=MiB)
    info = backup(driver, path, volume_id="v-42")
    m = read_manifest(driver.store, info.container or "", info.service_metadata or "", info.id)
    assert (m.backup_id, m.volume_id, m.size, m.block_size) == (info.id, "v-42", 4 * MiB, 16 * 1024)


def test_target_too_small_is_refused(tmp_path: pathlib.Path) -> None:
    driver = make_driver()
    path = volumes.write_mixed(str(tmp_path / "v.img"), 4 * MiB, seed=15, run=MiB)
    info = backup(driver, path)
    with pytest.raises(exceptions.InvalidVolume):
        chunked(driver).restore(info, CountingWriter(MiB), JobContext(), volume_is_new=True)


def test_object_size_must_be_a_multiple_of_block_size() -> None:
    driver = make_driver()
    driver.conf.set_override("object_size", 100_000, group="backup_memory")
    with pytest.raises(exceptions.DriverSetupError):
        driver.check_for_setup_error()


class BufferTakingStore(ObjectStoreWrapper):
    """The memory store, saying it takes buffers or not, and recording the type of what each put receives."""

    def __init__(self, inner: ObjectStore, accepts: bool) -> None:
        super().__init__(inner)
        self.accepts = accepts
        self.received: dict[str, type] = {}

    @property
    def accepts_buffers(self) -> bool:  # type: ignore[override]
        return self.accepts

    def put_object(self, container: str, name: str, data: bytes) -> None:
        self.received[name] = type(data)
        self.inner.put_object(container, name, bytes(data))


@pytest.mark.parametrize("accepts", [True, False])
def test_segments_reach_a_store_uncopied_only_if_it_takes_buffers(tmp_path: pathlib.Path, accepts: bool) -> None:
    driver = make_driver(backup_compression_algorithm="none")
    recording = BufferTakingStore(driver.make_object_store(), accepts)
    driver.make_object_store = lambda: recording  # type: ignore[method-assign]
    path = volumes.write_mixed(str(tmp_path / "v.img"), 8 * MiB, seed=15, run=MiB, zero=0, text=0)
    with open(path, "ab") as f:
        f.write(os.urandom(4096))
    info = backup(driver, path)
    manifest = chunked(driver).read_manifest(info)
    assert sorted(o.size for o in manifest.objects) == [4096] + [MiB] * 8, "each whole segment is an object"
    kinds = {recording.received[o.name] for o in manifest.objects}
    assert kinds == ({memoryview} if accepts else {bytes})
    out = CountingWriter(info.size)
    chunked(driver).restore(info, out, JobContext(), volume_is_new=True)
    assert bytes(out.data) == pathlib.Path(path).read_bytes()
