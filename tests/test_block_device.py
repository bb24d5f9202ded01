"""A block device (/dev/loopN) as a volume: backed up through the file source and restored onto."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
from collections.abc import Iterator

import pytest
from clitools import Ashvault, MiB, sha256

from ashvault.testing import volumes


@pytest.fixture
def loop_device(tmp_path: pathlib.Path) -> Iterator[str]:
    ci = os.environ.get("CI") == "true"
    if os.geteuid() != 0 or shutil.which("losetup") is None:
        (pytest.fail if ci else pytest.skip)("loop devices need root and losetup")
    backing = tmp_path / "backing.img"
    volumes.write_mixed(str(backing), 32 * MiB, seed=91, run=MiB)
    dev = subprocess.run(["losetup", "-f", "--show", str(backing)], capture_output=True, text=True)
    if dev.returncode != 0:
        (pytest.fail if ci else pytest.skip)(f"no loop device: {dev.stderr.strip()}")
    try:
        yield dev.stdout.strip()
    finally:
        subprocess.run(["losetup", "-d", dev.stdout.strip()], check=False)


def test_loop_device_backup_and_restore(av: Ashvault, loop_device: str) -> None:
    vol = av.j("volume", "register", "loop", loop_device)
    assert vol["location"] == loop_device and vol["size_bytes"] == 32 * MiB
    want = sha256(loop_device)
    full = av.j("backup", "create", "loop")
    restored = av.j("backup", "restore", full["id"])
    assert sha256(restored["volume_location"]) == want
    with open(loop_device, "r+b") as dev:
        dev.write(os.urandom(32 * MiB))
        os.fsync(dev.fileno())
    assert sha256(loop_device) != want
    av("backup", "restore", full["id"], "loop", "--force")
    assert sha256(loop_device) == want
