"""A manifest is bound to its backup (issue 18): its hash as recorded, its backup id, volume and size, extents in
bounds; with encryption on as well, where the manifest is also authenticated under its name."""

from __future__ import annotations

import os
import pathlib
import uuid

import pytest

from ashvault import exceptions, keys
from ashvault.conf import make_config, register_group
from ashvault.driver import BackupInfo, JobContext
from ashvault.engine.layout import content_hash
from ashvault.sources.file import FileSource
from ashvault.testing import volumes
from ashvault.testing.contract import route
from ashvault.testing.fakes import MemoryBackupDriver

MiB = 1 << 20


@pytest.fixture(params=["plain", "encrypted"])
def driver(request: pytest.FixtureRequest, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> \
        MemoryBackupDriver:
    conf = make_config([], config_files=[])
    register_group(conf, MemoryBackupDriver.option_group, MemoryBackupDriver.get_driver_options())
    if request.param == "encrypted":
        monkeypatch.setattr(keys, "SCRYPT_N", 1 << 12)
        key = tmp_path / "key"
        key.write_bytes(os.urandom(32))
        conf.set_override("encryption", "aes-256-gcm")
        conf.set_override("encryption_key_file", str(key))
    MemoryBackupDriver.shared_buckets.clear()
    return MemoryBackupDriver(conf)


def backup(driver: MemoryBackupDriver, path: str) -> BackupInfo:
    info = BackupInfo(id=str(uuid.uuid4()), volume_id="vol")
    with FileSource(driver.conf).open_reader(path) as reader:
        res = route(driver, info).backup(info, reader, JobContext())
    info.container, info.service_metadata, info.size = res.container, res.service_metadata, res.size
    info.manifest_hash = res.manifest_hash
    return info


def restore(driver: MemoryBackupDriver, info: BackupInfo, path: str) -> str:
    src = FileSource(driver.conf)
    if not os.path.exists(path):
        src.create(path, info.size)
    with src.open_writer(path) as writer:
        route(driver, info).restore(info, writer, JobContext(), volume_is_new=True)
    return volumes.sha256_file(path)


def stored() -> dict[str, bytes]:
    return MemoryBackupDriver.shared_buckets["volumebackups"]


def test_the_recorded_hash_is_the_manifests_and_a_swap_is_refused(driver: MemoryBackupDriver,
                                                                    tmp_path: pathlib.Path) -> None:
    a_path, b_path = str(tmp_path / "a.img"), str(tmp_path / "b.img")
    volumes.write_mixed(a_path, 4 * MiB, seed=1, run=MiB)
    volumes.write_mixed(b_path, 4 * MiB, seed=2, run=MiB)
    a, b = backup(driver, a_path), backup(driver, b_path)
    manifest_a = f"{a.service_metadata}/manifest"
    assert a.manifest_hash == content_hash(driver.store.get_object("volumebackups", manifest_a))
    out = str(tmp_path / "out.img")
    assert restore(driver, a, out) == volumes.sha256_file(a_path)

    stored()[manifest_a] = stored()[f"{b.service_metadata}/manifest"]
    for unrecorded in (False, True):
        info = BackupInfo(**{**a.__dict__, "manifest_hash": None}) if unrecorded else a
        with pytest.raises(exceptions.IntegrityError) as caught:
            restore(driver, info, out)
        assert manifest_a in str(caught.value)
        with pytest.raises(exceptions.IntegrityError):
            route(driver, info).verify(info, JobContext())
    assert volumes.sha256_file(out) == volumes.sha256_file(a_path), "a refused restore wrote"


def test_a_record_of_another_size_or_hash_does_not_read_the_manifest(driver: MemoryBackupDriver,
                                                                       tmp_path: pathlib.Path) -> None:
    path = str(tmp_path / "a.img")
    volumes.write_mixed(path, 4 * MiB, seed=1, run=MiB)
    a = backup(driver, path)
    for change, said in (({"size": a.size + 4096}, "maps"), ({"volume_id": "other"}, "belongs to volume"),
                         ({"manifest_hash": "0" * 64}, "hash mismatch")):
        info = BackupInfo(**{**a.__dict__, **change})
        with pytest.raises(exceptions.IntegrityError, match=said):
            route(driver, info).verify(info, JobContext())


def test_an_incremental_refuses_a_parent_whose_manifest_was_swapped(driver: MemoryBackupDriver,
                                                                      tmp_path: pathlib.Path) -> None:
    a_path, b_path = str(tmp_path / "a.img"), str(tmp_path / "b.img")
    volumes.write_mixed(a_path, 4 * MiB, seed=1, run=MiB)
    volumes.write_mixed(b_path, 4 * MiB, seed=2, run=MiB)
    a, b = backup(driver, a_path), backup(driver, b_path)
    stored()[f"{a.service_metadata}/manifest"] = stored()[f"{b.service_metadata}/manifest"]
    child = BackupInfo(id=str(uuid.uuid4()), volume_id="vol", parent=a, parent_id=a.id)
    before = set(stored())
    with FileSource(driver.conf).open_reader(a_path) as reader, pytest.raises(exceptions.IntegrityError) as caught:
        route(driver, child).backup(child, reader, JobContext())
    assert f"{a.service_metadata}/manifest" in str(caught.value)
    assert set(stored()) == before, "the refused incremental wrote objects"
