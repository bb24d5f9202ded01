"""Disk full: a posix repository, or a restore target, on an 8 MiB tmpfs.

A backup larger than the space ends with one line and exit 1, is recorded ``error`` with the reason, and what it
wrote is gone (the free space is back); the earlier backups of the repository still verify and restore. A restore
onto a target that fills up fails the same way and harms no backup. Mounting needs root (as in CI): skipped otherwise,
a failure under ``CI=true``.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
from collections.abc import Iterator

import pytest
from clitools import Ashvault, MiB, one_line_error, sha256

from ashvault.testing import volumes

SPACE = 8 * MiB


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
def small_fs(tmp_path: pathlib.Path) -> Iterator[pathlib.Path]:
    """An 8 MiB tmpfs mounted for the test."""
    if os.geteuid() != 0:
        _unavailable("mounting a small tmpfs needs root")
    where = tmp_path / "small"
    where.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SPACE},mode=0700", "tmpfs", str(where)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        _unavailable(f"cannot mount a tmpfs: {proc.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)


def _free(path: pathlib.Path) -> int:
    st = os.statvfs(path)
    return st.f_bfree * st.f_frsize


def _files(path: pathlib.Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())


def test_backup_larger_than_the_space(tmp_path: pathlib.Path, small_fs: pathlib.Path) -> None:
    av = Ashvault(tmp_path)
    av.write_conf(f"[backup_posix]\npath = {small_fs}\n")
    small = volumes.write_mixed(str(tmp_path / "small.img"), 2 * MiB, seed=1, run=MiB, zero=0, text=0)
    big = volumes.write_mixed(str(tmp_path / "big.img"), 32 * MiB, seed=2, run=MiB, zero=0, text=0)
    av.j("volume", "register", "small", small)
    av.j("volume", "register", "big", big)
    full = av.j("backup", "create", "small", "--name", "full")
    want = {full["id"]: sha256(small)}
    volumes.mutate(small, percent=10, seed=3)
    incr = av.j("backup", "create", "small", "--incremental", "--name", "incr")
    want[incr["id"]] = sha256(small)
    free, kept = _free(small_fs), _files(small_fs)

    failed = av("backup", "create", "big", "--name", "big", ok=False)
    assert failed.rc == 1
    line = one_line_error(failed)
    assert "full" in line and "No space left" in line, line
    record = av.j("backup", "show", "big")
    assert record["status"] == "error" and "full" in record["fail_reason"], record
    assert av.j("volume", "show", "big")["status"] == "available"
    assert _files(small_fs) == kept, "the failed backup left files behind"
    assert _free(small_fs) == free, "the failed backup's space was not given back"

    for backup_id, digest in want.items():
        assert av.j("backup", "verify", backup_id)["result"] == "ok"
        restored = av.j("backup", "restore", backup_id)
        assert sha256(restored["volume_location"]) == digest
    av("backup", "delete", "big")
    assert _files(small_fs) == kept
    assert sorted(b["name"] for b in av.j("backup", "list")) == ["full", "incr"]


def test_restore_target_fills_up(av: Ashvault, tmp_path: pathlib.Path, small_fs: pathlib.Path) -> None:
    source = volumes.write_mixed(str(tmp_path / "v.img"), 32 * MiB, seed=4, run=MiB, zero=0, text=0)
    av.j("volume", "register", "v", source)
    b = av.j("backup", "create", "v")
    target = small_fs / "target.img"
    with open(target, "wb") as f:
        f.truncate(32 * MiB)  # sparse: it fits until the restore fills it
    av.j("volume", "register", "target", str(target))

    failed = av("backup", "restore", b["id"], "target", "--force", ok=False)
    assert failed.rc == 1
    assert "No space left" in one_line_error(failed)
    assert av.j("backup", "show", b["id"])["status"] == "available"
    assert av.j("volume", "show", "target")["status"] == "error_restoring"
    assert av.j("backup", "verify", b["id"])["result"] == "ok"
    assert sha256(av.j("backup", "restore", b["id"])["volume_location"]) == sha256(source)
