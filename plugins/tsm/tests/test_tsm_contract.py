"""The tsm driver through the core's conformance suite, against the dsmc simulator.

The suite makes its volumes as files today, so it runs the driver's file mode (``dsmc selective``); block devices
(image mode) are covered by test_tsm_block.py until the suite gets the ``source`` fixture of issue 13.
"""

from __future__ import annotations

import os
import pathlib
from typing import Any

import pytest

from ashvault import exceptions
from ashvault.driver import BackupInfo, JobContext
from ashvault.testing import volumes
from ashvault.testing.contract import DriverContract
from ashvault_tsm.tsm import TSMBackupDriver


class TestTSMContract(DriverContract):
    volume_size = 16 * volumes.MiB

    @pytest.fixture(autouse=True)
    def _sim(self, sim: Any) -> None:
        self.sim = sim

    def leftovers(self, driver: TSMBackupDriver, info: BackupInfo) -> list[str]:
        """What the simulated server still holds under this backup's name (read from its catalog, not through the
        driver), plus any hard link left beside the volume."""
        links = [p for p in pathlib.Path(self.sim.dir).parent.parent.rglob(f"*{info.id}") if p.is_file()]
        return self.sim.keys_for(info.id) + [str(p) for p in links]

    def test_corruption_is_named_and_never_restored(self, driver: TSMBackupDriver, vols: volumes.VolumeMaker,
                                                    tmp_path: pathlib.Path) -> None:
        """TSM cannot check a backup without restoring it (verify is declared unsupported), but data the server
        finds damaged fails the restore with an error naming the backup and the object, writing nothing."""
        path = vols.random("src.img", self.volume_size, seed=10)
        self.sim.inject("backup", mode="corrupt")
        info = self._backup(driver, path)
        assert not driver.capabilities.verify
        with pytest.raises(exceptions.NotSupported):
            driver.verify(info, JobContext())
        out = os.path.join(str(tmp_path), "bad.img")
        with pytest.raises(exceptions.IntegrityError) as err:
            self._restore(driver, info, out)
        link = os.path.join(os.path.dirname(path), f"backup-{info.id}")
        assert link in str(err.value) and info.id in str(err.value) and "ANS1314E" in str(err.value)
        assert os.stat(out).st_blocks == 0  # nothing was written
