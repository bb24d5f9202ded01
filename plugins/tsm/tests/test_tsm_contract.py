"""The tsm driver through the core's conformance suite, against the dsmc simulator.

The suite makes its volumes as files today (``VolumeMaker`` in ``tmp_path``, read and written through
``FileSource``), so every test here runs the driver's file mode (``dsmc selective``). With the ``source`` fixture of
issue 13 these tests would also run image mode (``dsmc backup image``) on loop devices:
test_full_backup_restores_byte_identical_and_sparse, test_restore_over_existing_volume,
test_incremental_chain_and_deleting_any_member (the NotSupported branch), test_delete_leaves_nothing_and_is_idempotent
(it also needs ``volumes.mutate`` to work on a device: it sizes the volume with ``os.path.getsize``, which is 0 for
a device), test_export_import_round_trip, test_corruption_is_named_and_never_restored (overridden below),
test_cancelled_restore_raises and test_cancelled_backup_is_cleaned_by_delete. In image mode the sparse assertion of
the first would need an exemption: dsmc restores an image by writing every byte. Until then test_tsm_block.py
covers image mode.
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
