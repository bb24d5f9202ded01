"""Backups made by Cinder's own PosixBackupDriver (cinder 29 from PyPI), imported and restored by ashvault, compared
with the volume and with Cinder's own restore of each backup.

Needs a Python with ``cinder`` installed, named by ``ASHVAULT_CINDER_PYTHON`` (cinder's dependencies conflict with
ashvault's, so it lives in a virtualenv of its own: ``python3.11 -m venv /opt/cinder-venv &&
/opt/cinder-venv/bin/pip install 'cinder>=29,<30'``). Skipped without it.
"""

from __future__ import annotations

import json
import os
import pathlib
import random
import subprocess

import pytest
from clitools import ROOT, Ashvault, sha256

CINDER_PYTHON = os.environ.get("ASHVAULT_CINDER_PYTHON")
MiB = 1 << 20

pytestmark = pytest.mark.skipif(not CINDER_PYTHON, reason="ASHVAULT_CINDER_PYTHON names no Python with cinder")


def states(directory: pathlib.Path, seed: int) -> list[pathlib.Path]:
    """Three successive states of a 3 MiB volume with zero regions."""
    rnd = random.Random(seed)
    vol = bytearray(3 * MiB)
    vol[MiB : MiB + 500_000] = rnd.randbytes(500_000)
    vol[2 * MiB : 2 * MiB + 300_000] = b"cinder volume backup " * (300_000 // 21) + bytes(300_000 % 21)
    paths = []
    for i in range(3):
        if i:
            start = rnd.randrange(len(vol) - 100_000)
            vol[start : start + 100_000] = rnd.randbytes(100_000)
        path = directory / f"state{i}"
        path.write_bytes(bytes(vol))
        paths.append(path)
    return paths


@pytest.mark.parametrize("algorithm", ["zlib", "bz2", "zstd", "none"])
def test_cinder_made_chain_restores_as_cinder_restores_it(av: Ashvault, tmp_path: pathlib.Path,
                                                         algorithm: str) -> None:
    files = states(tmp_path, seed=len(algorithm))
    proc = subprocess.run([str(CINDER_PYTHON), str(ROOT / "tests" / "cinder_corpus.py"), str(av.backups), algorithm,
                           *map(str, files)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    made = json.loads(proc.stdout.strip().splitlines()[-1])
    rows = av.j("backup", "cinder", "import", *made["records"])
    assert len(rows) == 3 and rows[2]["parent_id"] == rows[1]["id"]
    for row, path in zip(rows, files, strict=True):
        out = pathlib.Path(av.j("backup", "restore", row["id"])["volume_location"])
        assert sha256(out) == sha256(path) == sha256(f"{path}.cinder")
        assert os.stat(out).st_blocks * 512 < len(path.read_bytes()) - MiB
        assert av.j("backup", "verify", row["id"])["result"] == "ok"
