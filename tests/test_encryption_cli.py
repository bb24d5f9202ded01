"""Encryption at rest through the ``ashvault`` command on the posix driver, as a user runs it."""

from __future__ import annotations

import os
import pathlib
import pty
import select
import subprocess
import time

import pytest
from clitools import BIN, Ashvault, MiB, one_line_error, sha256

from ashvault.testing import volumes

PASSPHRASE = "s3cret passphrase for the test"


def test_encrypted_backup_restore_wrong_passphrase_and_no_leak(tmp_path: pathlib.Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    av = Ashvault(tmp_path, "encryption = aes-256-gcm\n")
    path = str(tmp_path / "disk.img")
    volumes.write_mixed(path, 16 * MiB, seed=1, run=MiB, zero=0.2, text=0.5)
    want = sha256(path)
    monkeypatch.setenv("ASHVAULT_PASSPHRASE", PASSPHRASE)
    av.j("volume", "register", "disk", path)
    full = av.j("backup", "create", "disk", "--name", "full")
    assert full["status"] == "available"
    volumes.mutate(path, percent=5, seed=2)
    inc = av.j("backup", "create", "disk", "--incremental")
    assert av.j("backup", "verify", full["id"])["result"] == "ok"
    restored = av.j("backup", "restore", full["id"])
    assert sha256(restored["volume_location"]) == want
    stored = [p for p in av.backups.rglob("*") if p.is_file()]
    assert any(p.parent.name == "ashvault-keys" for p in stored)
    assert all(not p.read_bytes().startswith(b"(\xb5/\xfd") for p in stored), "a zstd frame stored in the clear"

    monkeypatch.setenv("ASHVAULT_PASSPHRASE", "not the passphrase")
    res = av("backup", "restore", inc["id"], "--name", "wrong", ok=False)
    line = one_line_error(res)
    assert res.rc == 77 and "ashvault-keys/" in line and "wrong passphrase or key file" in line
    assert not any(v["name"] == "wrong" and os.path.getsize(v["location"]) for v in av.j("volume", "list")
                   if v.get("location"))
    monkeypatch.delenv("ASHVAULT_PASSPHRASE")
    res = av("backup", "verify", inc["id"], ok=False)
    assert "ASHVAULT_PASSPHRASE" in one_line_error(res)

    monkeypatch.setenv("ASHVAULT_PASSPHRASE", PASSPHRASE)
    assert av.j("backup", "verify", inc["id"])["result"] == "ok"
    shown = av("driver", "show", "posix").out + av("backup", "show", inc["id"], "-f", "json").out
    for where in [shown, *(p.read_bytes().decode("latin-1") for p in tmp_path.rglob("*")
                           if p.is_file() and p.suffix != ".img")]:
        assert PASSPHRASE not in where


def test_change_passphrase_rewrites_only_the_key_object(tmp_path: pathlib.Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    av = Ashvault(tmp_path, "encryption = aes-256-gcm\n")
    path = str(tmp_path / "disk.img")
    volumes.write_mixed(path, 8 * MiB, seed=3, run=MiB)
    monkeypatch.setenv("ASHVAULT_PASSPHRASE", PASSPHRASE)
    av.j("volume", "register", "disk", path)
    b = av.j("backup", "create", "disk")
    before = {p: p.read_bytes() for p in av.backups.rglob("*") if p.is_file()}
    res = one_line_error(av("encryption", "change-key", ok=False))
    assert "ASHVAULT_NEW_PASSPHRASE" in res
    monkeypatch.setenv("ASHVAULT_NEW_PASSPHRASE", "the new one")
    shown = av.j("encryption", "change-key")
    after = {p: p.read_bytes() for p in av.backups.rglob("*") if p.is_file()}
    changed = [p for p in after if after[p] != before.get(p)]
    assert after.keys() == before.keys() and len(changed) == 1 and changed[0].parent.name == "ashvault-keys"
    assert shown["key_objects_rewritten"] == f"ashvault-keys/{changed[0].name}"
    assert "wrong passphrase" in one_line_error(av("backup", "verify", b["id"], ok=False))
    monkeypatch.setenv("ASHVAULT_PASSPHRASE", "the new one")
    assert av.j("backup", "verify", b["id"])["result"] == "ok"


def test_interactive_shell_asks_for_the_passphrase_once(tmp_path: pathlib.Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    av = Ashvault(tmp_path, "encryption = aes-256-gcm\n")
    path = str(tmp_path / "disk.img")
    volumes.write_mixed(path, 4 * MiB, seed=4, run=MiB)
    monkeypatch.delenv("ASHVAULT_PASSPHRASE", raising=False)
    av.j("volume", "register", "disk", path)
    primary, secondary = pty.openpty()
    # A new session has no controlling terminal, so getpass reads the pty on stdin, with echo off.
    proc = subprocess.Popen([str(BIN / "ashvault"), "--config-file", str(av.conf)], stdin=secondary,
                            stdout=secondary, stderr=secondary, start_new_session=True)
    os.close(secondary)
    seen = b""

    def until(marker: bytes) -> None:
        nonlocal seen
        deadline = time.monotonic() + 60
        while marker not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([primary], [], [], 1)
            if ready:
                try:
                    seen += os.read(primary, 4096)
                except OSError:
                    break
        assert marker in seen, seen.decode(errors="replace")

    until(b"encryption passphrase:")
    os.write(primary, PASSPHRASE.encode() + b"\n")
    until(b"(Cmd)")
    os.write(primary, b"backup create disk --name typed -f value -c status\n")
    until(b"available")
    os.write(primary, b"exit\n")
    proc.wait(timeout=60)
    os.close(primary)
    assert PASSPHRASE.encode() not in seen, "the passphrase was echoed"
    assert seen.count(b"passphrase:") == 1
    monkeypatch.setenv("ASHVAULT_PASSPHRASE", PASSPHRASE)
    assert av.j("backup", "verify", "typed")["result"] == "ok"


def test_swapped_objects_are_named_by_verify_and_restore(tmp_path: pathlib.Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    av = Ashvault(tmp_path, "encryption = aes-256-gcm\n")
    path = str(tmp_path / "disk.img")
    volumes.write_mixed(path, 8 * MiB, seed=5, run=MiB, zero=0, text=0.5)
    monkeypatch.setenv("ASHVAULT_PASSPHRASE", PASSPHRASE)
    av.j("volume", "register", "disk", path)
    b = av.j("backup", "create", "disk")
    first, second = sorted(p for p in av.backups.rglob("d0*") if b["id"] in str(p))[:2]
    one, two = first.read_bytes(), second.read_bytes()
    first.write_bytes(two)
    second.write_bytes(one)
    res = av("backup", "verify", b["id"], ok=False)
    line = one_line_error(res)
    assert res.rc == 4 and (first.name in line or second.name in line) and "authentication failed" in line
    assert "verify failed" in one_line_error(av("backup", "restore", b["id"], ok=False)), "verify marked it"
    av("backup", "reset-state", b["id"], "--state", "available")  # so that restore meets the damage itself
    res = av("backup", "restore", b["id"], "--name", "from-swapped", ok=False)
    line = one_line_error(res)
    assert res.rc == 4 and b["id"] in line and (first.name in line or second.name in line)
