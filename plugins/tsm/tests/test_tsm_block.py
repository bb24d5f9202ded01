"""Block volumes (loop devices): image backups through a hard link in /dev, restores to devices and files."""

from __future__ import annotations

import os
import pathlib
import shutil
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from ashvault import exceptions
from ashvault.driver import BackupInfo, JobContext
from ashvault.sources.file import FileSource
from ashvault.testing import volumes
from ashvault_tsm.tsm import TSMBackupDriver

MiB = 1 << 20


def fill(dev: str, tmp_path: pathlib.Path, size: int, seed: int) -> str:
    """Write mixed data over all of ``dev``; returns its sha256."""
    src = volumes.write_mixed(str(tmp_path / f"fill{seed}.img"), size, seed=seed, run=MiB)
    with open(src, "rb") as fin, open(dev, "r+b") as fout:
        shutil.copyfileobj(fin, fout, 4 * MiB)
        fout.flush()
        os.fsync(fout.fileno())
    os.unlink(src)
    return volumes.sha256_file(dev)


def backup(driver: TSMBackupDriver, path: str) -> BackupInfo:
    info = BackupInfo(id=str(uuid.uuid4()), volume_id="v1", format="tsm/1")
    with FileSource(driver.conf).open_reader(path) as reader:
        result = driver.backup(info, reader, JobContext())
    info.container, info.service_metadata, info.size = result.container, result.service_metadata, result.size
    return info


def restore(driver: TSMBackupDriver, info: BackupInfo, path: str) -> str:
    with FileSource(driver.conf).open_writer(path) as writer:
        driver.restore(info, writer, JobContext(), volume_is_new=False)
    return volumes.sha256_file(path)


def test_image_backup_and_restore_to_a_device_and_a_file(driver: TSMBackupDriver, sim: Any,
                                                         loopdev: Callable[[int], str],
                                                         tmp_path: pathlib.Path) -> None:
    dev = loopdev(32 * MiB)
    want = fill(dev, tmp_path, 32 * MiB, seed=1)
    info = backup(driver, dev)
    link = f"/dev/backup-{info.id}"
    [call] = [c["argv"] for c in sim.calls() if c["argv"][0] == "backup"]
    assert call[:2] == ["backup", "image"] and "-snapshotproviderimage=none" in call and call[-1] == link
    assert sim.keys_for(info.id) == [f"image:{link}"]
    assert not os.path.exists(link)

    other = loopdev(32 * MiB)
    fill(other, tmp_path, 32 * MiB, seed=2)
    assert restore(driver, info, other) == want
    out = tmp_path / "out.img"
    FileSource(driver.conf).create(str(out), 32 * MiB)
    assert restore(driver, info, str(out)) == want

    driver.delete_backup(info, JobContext())
    assert sim.keys_for(info.id) == []
    deletes = [c["argv"] for c in sim.calls() if c["argv"][0] == "delete"]
    assert "-objtype=image" in deletes[0]


def test_restore_to_a_smaller_device_fails_with_dsmcs_message(driver: TSMBackupDriver, sim: Any,
                                                              loopdev: Callable[[int], str],
                                                              tmp_path: pathlib.Path) -> None:
    dev = loopdev(16 * MiB)
    fill(dev, tmp_path, 16 * MiB, seed=3)
    info = backup(driver, dev)
    small = loopdev(8 * MiB)
    with pytest.raises(exceptions.DriverError) as err:
        restore(driver, info, small)
    assert "ANS1065E" in str(err.value)


def test_a_file_backup_does_not_restore_into_a_device(driver: TSMBackupDriver, sim: Any,
                                                      loopdev: Callable[[int], str], tmp_path: pathlib.Path) -> None:
    path = volumes.write_mixed(str(tmp_path / "f.img"), 4 * MiB, seed=4, run=MiB)
    info = backup(driver, path)
    dev = loopdev(4 * MiB)
    with pytest.raises(exceptions.NotSupported):
        restore(driver, info, dev)


def test_backup_path_on_another_file_system_is_a_clear_error(make_driver: Callable[..., TSMBackupDriver],
                                                             sim: Any, loopdev: Callable[[int], str],
                                                             tmp_path: pathlib.Path) -> None:
    driver = make_driver(backup_path=str(tmp_path))
    dev = loopdev(4 * MiB)
    with pytest.raises(exceptions.InvalidVolume) as err:
        backup(driver, dev)
    assert "backup_path must be on the volume's file system" in str(err.value)
    assert sim.calls() == []
