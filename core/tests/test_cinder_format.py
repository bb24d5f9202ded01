"""Reading Cinder's chunked format: backups written by ashvault.testing.cinder (Cinder's algorithm, documented
layout) into a memory store, restored and verified by ashvault.cinder.reader."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
import random

import pytest
from oslo_config import cfg

from ashvault import exceptions, formats
from ashvault.cinder import FORMAT, layout, reader
from ashvault.cinder.handler import CinderChunkedFormat, service_metadata
from ashvault.cinder.reader import Link
from ashvault.conf import make_config, register_group
from ashvault.driver import BackupInfo, JobContext
from ashvault.sources.file import FileSource
from ashvault.testing.cinder import CinderBackup, CinderWriter
from ashvault.testing.fakes import MemoryBackupDriver, MemoryObjectStore
from ashvault.testing.volumes import text_run

MiB = 1 << 20
VOLUME = "0b6a1d4e-4b44-4d6c-9a59-6f3c1e0c0a01"


def make_volume(size: int = 6 * MiB, seed: int = 1) -> bytearray:
    """Zeros, text and random data in 512 KiB runs; the first and last runs are zero."""
    rnd = random.Random(seed)
    vol = bytearray(size)
    run = 512 << 10
    for i, off in enumerate(range(0, size, run)):
        kind = i % 3
        if kind == 1:
            vol[off : off + run] = text_run(rnd, run)
        elif kind == 2 and off + run < size:
            vol[off : off + run] = rnd.randbytes(run)
    return vol


def change(vol: bytearray, seed: int, blocks: int = 5, block: int = 32768) -> None:
    rnd = random.Random(seed)
    for b in rnd.sample(range(len(vol) // block), blocks):
        vol[b * block : b * block + block] = rnd.randbytes(block)


def links(*chain: CinderBackup) -> list[Link]:
    """Newest first."""
    return [Link(b.id, b.container, b.prefix) for b in reversed(chain)]


def restore_to(store: MemoryObjectStore, chain: list[Link], path: pathlib.Path, size: int, *,
               new: bool = True) -> bytes:
    src = FileSource(cfg.ConfigOpts())
    if new:
        with open(path, "wb") as f:
            f.truncate(size)
    with src.open_writer(str(path)) as w:
        reader.restore(store, chain, w, JobContext(), volume_is_new=new, workers=2)
    return path.read_bytes()


@pytest.mark.parametrize("algorithm", ["zlib", "gzip", "bz2", "bzip2", "zstd", "none"])
def test_chain_of_three_restores_each_member(algorithm: str, tmp_path: pathlib.Path) -> None:
    store = MemoryObjectStore()
    writer = CinderWriter(store, object_size=MiB, compression=algorithm)
    vol = make_volume(4 * MiB)
    states, chain = [], []
    for i in range(3):
        if i:
            change(vol, seed=i)
        chain.append(writer.backup(bytes(vol), volume_id=VOLUME, parent=chain[-1] if chain else None))
        states.append(bytes(vol))
    meta = json.loads(store.get_object("volumebackups", layout.metadata_name(chain[2].prefix)))
    kinds = {next(iter(o.values()))["compression"] for o in meta["objects"]}
    assert kinds <= {algorithm, "none"}
    assert len(meta["objects"]) <= 5, "an incremental stores only changed extents"
    for i in range(3):
        out = restore_to(store, links(*chain[: i + 1]), tmp_path / f"r{i}", len(vol))
        assert hashlib.sha256(out).digest() == hashlib.sha256(states[i]).digest()
    st = os.stat(tmp_path / "r2")
    assert st.st_blocks * 512 < len(vol) - MiB, "zero regions are left as holes on a new volume"
    report = reader.verify(store, links(*chain), JobContext(), workers=2)
    assert report.ok and report.objects_checked >= 6


def test_overwrite_of_existing_volume_zeroes_what_the_backup_holds_as_zeros(tmp_path: pathlib.Path) -> None:
    store = MemoryObjectStore()
    vol = make_volume(3 * MiB)
    full = CinderWriter(store, compression="zstd").backup(bytes(vol), volume_id=VOLUME)
    target = tmp_path / "old"
    target.write_bytes(random.Random(9).randbytes(len(vol)))
    assert restore_to(store, links(full), target, len(vol), new=False) == bytes(vol)


def test_legacy_metadata_and_extra_fields(tmp_path: pathlib.Path) -> None:
    store = MemoryObjectStore()
    vol = make_volume(2 * MiB)
    old = CinderWriter(store, compression="zlib").backup(bytes(vol), volume_id=VOLUME, legacy=True, name=None)
    meta = json.loads(store.get_object("volumebackups", layout.metadata_name(old.prefix)))
    assert "parent_id" not in meta and "volume_meta" not in meta
    assert not store.list_objects("volumebackups", layout.sha256file_name(old.prefix))
    assert restore_to(store, links(old), tmp_path / "a", len(vol)) == bytes(vol)
    extra = CinderWriter(store, compression="bz2").backup(
        bytes(vol), volume_id=VOLUME, extra_metadata={"kms": "x", "n": [1, 2]},
        volume_meta=json.dumps({"version": 2, "volume-base-metadata": {"k": "v"}}))
    parsed = reader.load(store, links(extra)[0]).meta
    assert parsed.extra_metadata == {"kms": "x", "n": [1, 2]} and parsed.created_at is not None
    assert restore_to(store, links(extra), tmp_path / "b", len(vol)) == bytes(vol)


def test_plan_takes_later_objects_over_earlier_ones() -> None:
    def loaded(bid: str, objs: list[tuple[int, int]], parent: str | None = None) -> reader.Loaded:
        meta = layout.Metadata(bid, VOLUME, "1.0.0", [layout.CinderObject(f"p{bid}-{i + 1:05d}", o, n, "none", None)
                                                     for i, (o, n) in enumerate(objs)], parent_id=parent)
        return reader.Loaded(Link(bid, "c", f"p{bid}"), meta, None)

    chain = [loaded("c", [(10, 5), (40, 30)], "b"), loaded("b", [(0, 20), (12, 2)], "a"), loaded("a", [(0, 100)])]
    got = [(p.offset, p.length, p.member, p.obj, p.obj_offset) for p in reader.plan(chain)]
    assert got == [(0, 10, 1, 0, 0), (10, 5, 0, 0, 0), (15, 5, 1, 0, 15), (20, 20, 2, 0, 20), (40, 30, 0, 1, 0),
                   (70, 30, 2, 0, 70)]


@pytest.fixture
def chain3() -> tuple[MemoryObjectStore, list[CinderBackup], bytearray]:
    store = MemoryObjectStore()
    writer = CinderWriter(store, object_size=MiB, compression="zlib")
    vol = make_volume(3 * MiB)
    full = writer.backup(bytes(vol), volume_id=VOLUME)
    change(vol, 1)
    inc = writer.backup(bytes(vol), volume_id=VOLUME, parent=full)
    return store, [full, inc], vol


def _objects(store: MemoryObjectStore, b: CinderBackup) -> list[str]:
    meta = json.loads(store.get_object(b.container, layout.metadata_name(b.prefix)))
    return [next(iter(o)) for o in meta["objects"]]


def test_corrupt_object_is_named_by_restore_and_verify(chain3: tuple, tmp_path: pathlib.Path) -> None:
    store, (full, inc), vol = chain3
    name = _objects(store, full)[1]
    raw = bytearray(store.get_object(full.container, name))
    raw[len(raw) // 2] ^= 0xFF
    store.buckets[full.container][name] = bytes(raw)
    with pytest.raises(exceptions.IntegrityError) as err:
        restore_to(store, links(full, inc), tmp_path / "r", len(vol))
    assert full.id in str(err.value) and name in str(err.value)
    report = reader.verify(store, links(full, inc), JobContext(), workers=2)
    assert [n for n, _why in report.corrupt] == [name]


def test_uncompressed_bit_flip_fails_md5(tmp_path: pathlib.Path) -> None:
    store = MemoryObjectStore()
    vol = make_volume(2 * MiB)
    full = CinderWriter(store, compression="none").backup(bytes(vol), volume_id=VOLUME)
    name = _objects(store, full)[0]
    raw = bytearray(store.get_object(full.container, name))
    raw[600 << 10] ^= 1
    store.buckets[full.container][name] = bytes(raw)
    with pytest.raises(exceptions.IntegrityError, match="md5 mismatch") as err:
        restore_to(store, links(full), tmp_path / "r", len(vol))
    assert name in str(err.value)


def test_block_hash_mismatch_is_named(chain3: tuple, tmp_path: pathlib.Path) -> None:
    store, (full, inc), vol = chain3
    key = layout.sha256file_name(inc.prefix)
    doc = json.loads(store.get_object(inc.container, key))
    doc["sha256s"][40] = "0" * 64
    store.buckets[inc.container][key] = json.dumps(doc).encode()
    with pytest.raises(exceptions.IntegrityError, match="block 40 ") as err:
        restore_to(store, links(full, inc), tmp_path / "r", len(vol))
    assert "volume offset 1310720" in str(err.value)


def test_missing_object_and_truncated_metadata(chain3: tuple, tmp_path: pathlib.Path) -> None:
    store, (full, inc), vol = chain3
    name = _objects(store, inc)[0]
    del store.buckets[inc.container][name]
    with pytest.raises(exceptions.IntegrityError, match="object is missing") as err:
        restore_to(store, links(full, inc), tmp_path / "r", len(vol))
    assert inc.id in str(err.value) and name in str(err.value)
    key = layout.metadata_name(full.prefix)
    store.buckets[full.container][key] = store.get_object(full.container, key)[:200]
    with pytest.raises(exceptions.InvalidBackup, match="not valid JSON") as err2:
        reader.verify(store, links(full, inc), JobContext(), workers=1)
    assert full.id in str(err2.value)


def test_bad_versions_and_compressions_are_refused() -> None:
    doc = {"version": "2.0.0", "backup_id": "b", "volume_id": "v", "objects": []}
    with pytest.raises(exceptions.InvalidBackup, match=r"version '2\.0\.0'"):
        layout.parse_metadata(json.dumps(doc).encode(), "b")
    doc.update(version="1.0.0", objects=[{"p-00001": {"offset": 0, "length": 5, "compression": "lz4"}}])
    with pytest.raises(exceptions.InvalidBackup, match="unknown compression 'lz4'"):
        layout.parse_metadata(json.dumps(doc).encode(), "b")
    doc["objects"] = [{"p-00001": {"offset": 0, "length": 5, "compression": "GZIP"}}]
    assert layout.parse_metadata(json.dumps(doc).encode(), "b").objects[0].compression == "zlib"


def test_delete_removes_only_that_backups_objects(chain3: tuple) -> None:
    store, (full, inc), _vol = chain3
    before = set(store.list_objects(full.container))
    reader.delete(store, inc.container, inc.prefix, JobContext())
    after = set(store.list_objects(full.container))
    assert after == {n for n in before if not n.startswith(inc.prefix)}
    assert all(n.startswith(full.prefix) for n in after) and after
    reader.delete(store, inc.container, inc.prefix, JobContext())


def test_the_cinder_tag_is_routed_to_the_reader_over_the_drivers_store(tmp_path: pathlib.Path) -> None:
    conf = make_config([], config_files=[])
    register_group(conf, MemoryBackupDriver.option_group, MemoryBackupDriver.get_driver_options())
    driver = MemoryBackupDriver(conf)
    MemoryBackupDriver.shared_buckets.clear()
    vol = make_volume(2 * MiB)
    writer = CinderWriter(driver.store, object_size=MiB, compression="zstd")
    full = writer.backup(bytes(vol), volume_id=VOLUME)
    change(vol, 3)
    inc = writer.backup(bytes(vol), volume_id=VOLUME, parent=full)
    h = formats.handler(driver, FORMAT)
    assert isinstance(h, CinderChunkedFormat) and h.store is driver.store
    parents = [Link(full.id, full.container, full.prefix)]
    info = BackupInfo(id=inc.id, volume_id=VOLUME, container=inc.container, parent_id=full.id, format=FORMAT,
                      service_metadata=service_metadata(Link(inc.id, inc.container, inc.prefix), parents))
    path = tmp_path / "r"
    with open(path, "wb") as f:
        f.truncate(len(vol))
    with FileSource(cfg.ConfigOpts()).open_writer(str(path)) as w:
        h.restore(info, w, JobContext(), volume_is_new=True)
    assert path.read_bytes() == bytes(vol)
    assert h.verify(info, JobContext()).ok
    assert h.export_record(info) == {"container": inc.container, "prefix": inc.prefix}
    with pytest.raises(exceptions.NotSupported):
        h.backup(info, None, JobContext())  # type: ignore[arg-type]
    h.delete_backup(info, JobContext())
    left = driver.store.list_objects(full.container)
    assert left and all(n.startswith(full.prefix) for n in left), "the parent's objects stay"
    with pytest.raises(exceptions.InvalidBackup) as err:
        h.verify(dataclasses.replace(info, service_metadata="volume_x/y"), JobContext())
    assert inc.id in str(err.value)
