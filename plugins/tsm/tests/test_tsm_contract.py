"""The tsm driver through the core's conformance suite, against the dsmc simulator, twice: with file volumes (dsmc's
file mode, ``selective``) and with loop devices (image mode, ``backup image``). Both are ``file`` volumes, which the
driver moves natively, so the suite's routing sends every operation to the driver in its format ``tsm/1``.

What TSM cannot do, and how the suite meets it:

- incrementals (``capabilities.incremental`` is false): the suite checks that asking for one raises NotSupported;
- verify without a restore (``capabilities.verify`` is false): the suite's corruption test verifies first, so it is
  replaced here by one that damages the data on the simulated server and checks that verify is refused and the
  restore fails naming the backup and the object, writing nothing;
- sparse restores of an image: dsmc writes every byte of an image back, so the loop volumes cannot say what they
  allocate (``allocated`` is None) and the suite skips its sparseness check for them. File volumes keep it: dsmc
  restores a file's zero runs as holes.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
from collections.abc import Callable
from typing import Any

import pytest

from ashvault import exceptions
from ashvault.driver import BackupDriver, BackupInfo, JobContext
from ashvault.testing.contract import DriverContract, FileVolumes, route
from ashvault.testing.volumes import MiB
from ashvault_tsm.tsm import TSMBackupDriver


class LoopVolumes(FileVolumes):
    """Contract volumes that are loop devices, each filled with the bytes of a file the file volumes make."""

    def __init__(self, conf: Any, directory: str, loopdev: Callable[[int], str]) -> None:
        super().__init__(conf, directory)
        self.loopdev = loopdev

    def _device(self, path: str) -> str:
        dev = self.loopdev(os.path.getsize(path))
        with open(path, "rb") as fin, open(dev, "r+b") as fout:
            while data := fin.read(4 * MiB):
                fout.write(data)
            fout.flush()
            os.fsync(fout.fileno())
        os.unlink(path)
        return dev

    def mixed(self, name: str, size: int, *, seed: int, sparse: bool = False) -> str:
        return self._device(super().mixed(name, size, seed=seed, sparse=sparse))

    def random(self, name: str, size: int, *, seed: int) -> str:
        return self._device(super().random(name, size, seed=seed))

    def new(self, name: str, size: int) -> str:
        return self.loopdev(size)

    def allocated(self, location: str) -> int | None:
        return None


class TSMContract(DriverContract):
    volume_size = 16 * MiB

    @pytest.fixture(autouse=True)
    def _sim(self, sim: Any, tmp_path: pathlib.Path) -> None:
        self.sim = sim
        self.tmp = tmp_path

    def _backup(self, driver: BackupDriver, source: FileVolumes, location: str,
                parent: BackupInfo | None = None) -> BackupInfo:
        info = super()._backup(driver, source, location, parent)
        assert info.format == "tsm/1" and self.sim.keys_for(info.id), "a file volume takes the TSM path"
        return info

    def leftovers(self, driver: BackupDriver, info: BackupInfo) -> list[str]:
        """What the simulated server still holds under this backup's name (read from its catalog, not through the
        driver), plus any hard link or note of it left in the test's directory or in /dev."""
        left = [p for p in self.tmp.rglob(f"*{info.id}*") if p.is_file()]
        left += [p for p in pathlib.Path("/dev").glob(f"*{info.id}")]
        return self.sim.keys_for(info.id) + [str(p) for p in left]

    def corrupt_one_object(self, driver: BackupDriver, info: BackupInfo) -> str:
        """Flip one byte of the data the simulated server stores for ``info``; returns the TSM object's name."""
        [key] = self.sim.keys_for(info.id)
        blob = self.sim.dir / "blobs" / self.sim.objects()[key][-1]["blob"]
        with open(blob, "r+b") as f:
            f.seek(info.size // 2)
            byte = f.read(1)
            f.seek(info.size // 2)
            f.write(bytes([byte[0] ^ 0x01]))
        return key.split(":", 1)[1]

    def test_corruption_is_named_and_never_restored(self, driver: BackupDriver, source: FileVolumes) -> None:
        vol = source.random("src.img", self.volume_size, seed=10)
        info = self._backup(driver, source, vol)
        assert not driver.capabilities.verify
        with pytest.raises(exceptions.NotSupported):
            route(driver, info).verify(info, JobContext())
        name = self.corrupt_one_object(driver, info)
        target = source.new("bad.img", info.size)
        with pytest.raises(exceptions.IntegrityError) as err:
            self._restore(driver, source, info, target)
        assert name in str(err.value) and info.id in str(err.value) and "ANS1314E" in str(err.value)
        assert source.sha256(target) == hashlib.sha256(bytes(info.size)).hexdigest(), "nothing was written"


class TestTSMFileVolumes(TSMContract):
    """The default source: regular files in ``tmp_path``."""


class TestTSMBlockVolumes(TSMContract):
    @pytest.fixture
    def source(self, driver: TSMBackupDriver, tmp_path: pathlib.Path, loopdev: Callable[[int], str]) -> LoopVolumes:
        return LoopVolumes(driver.conf, str(tmp_path), loopdev)

    def _backup(self, driver: BackupDriver, source: FileVolumes, location: str,
                parent: BackupInfo | None = None) -> BackupInfo:
        info = super()._backup(driver, source, location, parent)
        assert self.sim.keys_for(info.id) == [f"image:/dev/backup-{info.id}"], "a block device is an image"
        return info
