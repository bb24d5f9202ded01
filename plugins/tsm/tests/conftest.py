"""The dsmc simulator on a PATH of the tests' own, a driver configured for it, and loop devices.

No TSM server can run here, so ``ci/dsmc_sim/dsmc`` plays the client and the server: each test gets an empty
simulated server (a directory) and a ``dsmc`` on PATH that reaches it. Loop devices stand in for block volumes;
when ``losetup`` cannot make one the tests that need it are skipped, except under ``CI=true``, where that is a
failure.
"""

from __future__ import annotations

import json
import os
import pathlib
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from oslo_config import cfg

from ashvault.conf import make_config, register_group
from ashvault_tsm import opts
from ashvault_tsm.tsm import TSMBackupDriver

HERE = pathlib.Path(__file__).resolve().parent
SIMULATOR = HERE.parent / "ci" / "dsmc_sim" / "dsmc"
PASSWORD = "Tsm-s3cret-9f2c"
MiB = 1 << 20


class Sim:
    """One simulated TSM server and the ``dsmc`` that reaches it."""

    def __init__(self, root: pathlib.Path) -> None:
        self.dir = root / "server"
        self.password = PASSWORD
        self.bin = root / "bin"
        self.dir.mkdir(parents=True)
        self.bin.mkdir()
        dsmc = self.bin / "dsmc"
        dsmc.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{SIMULATOR}" "$@"\n')
        dsmc.chmod(dsmc.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        (self.dir / "password").write_text(PASSWORD + "\n")

    def inject(self, op: str, **fault: Any) -> None:
        path = self.dir / "inject.json"
        faults = json.loads(path.read_text()) if path.exists() else {}
        faults[op] = fault
        path.write_text(json.dumps(faults))

    def calls(self) -> list[dict[str, Any]]:
        path = self.dir / "calls.log"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def objects(self) -> dict[str, list[dict[str, Any]]]:
        path = self.dir / "catalog.json"
        return json.loads(path.read_text())["objects"] if path.exists() else {}

    def keys_for(self, backup_id: str) -> list[str]:
        return [k for k in self.objects() if backup_id in k]

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Call the simulated dsmc directly, as an operator would."""
        return subprocess.run([str(self.bin / "dsmc"), *args], capture_output=True, text=True, timeout=120,
                              stdin=subprocess.DEVNULL)


@pytest.fixture
def sim(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> Sim:
    s = Sim(tmp_path / "tsm")
    monkeypatch.setenv("PATH", f"{s.bin}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("DSMC_SIM_DIR", str(s.dir))
    monkeypatch.delenv("DSM_CONFIG", raising=False)
    return s


def tsm_config(state: pathlib.Path, **backup_tsm: Any) -> cfg.ConfigOpts:
    conf = make_config([], config_files=[])
    conf.set_override("ashvault_state_path", str(state))
    register_group(conf, opts.GROUP, opts.tsm_opts)
    conf.set_override("password", PASSWORD, group=opts.GROUP)
    for key, value in backup_tsm.items():
        conf.set_override(key, value, group=opts.GROUP)
    return conf


@pytest.fixture
def make_driver(sim: Sim, tmp_path: pathlib.Path) -> Callable[..., TSMBackupDriver]:
    def make(**backup_tsm: Any) -> TSMBackupDriver:
        return TSMBackupDriver(tsm_config(tmp_path / "state", **backup_tsm))

    return make


@pytest.fixture
def driver(make_driver: Callable[..., TSMBackupDriver]) -> TSMBackupDriver:
    return make_driver()


def _losetup_unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"no loop device under CI: {reason}")
    pytest.skip(f"no loop device: {reason}")


@pytest.fixture
def loopdev(tmp_path: pathlib.Path) -> Iterator[Callable[[int], str]]:
    """Makes loop devices over sparse files in ``tmp_path``; detached at the end."""
    made: list[str] = []

    def make(size: int) -> str:
        backing = tmp_path / f"loop{len(made)}.img"
        with open(backing, "wb") as f:
            f.truncate(size)
        try:
            proc = subprocess.run(["losetup", "--find", "--show", str(backing)], capture_output=True, text=True,
                                  timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            _losetup_unavailable(str(exc))
        if proc.returncode != 0:
            _losetup_unavailable(proc.stderr.strip() or f"losetup exited {proc.returncode}")
        dev = proc.stdout.strip()
        made.append(dev)
        return dev

    yield make
    for dev in made:
        subprocess.run(["losetup", "--detach", dev], capture_output=True, timeout=60)
