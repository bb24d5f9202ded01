"""Checks and disaster recovery through the ``ashvault`` command (posix driver): a verify marks what it finds
damaged, ``backup verify --all`` in its three depths, and the catalog rebuilt from the backend alone."""

from __future__ import annotations

import os
import pathlib
import pty
import re
import sqlite3
import subprocess

import pytest
from clitools import BIN, Ashvault, MiB, one_line_error, sha256

from ashvault.testing import volumes


def small_objects(tmp: pathlib.Path, extra: str = "") -> Ashvault:
    """An ``ashvault`` whose backups are made of 1 MiB objects, so a few MiB give several."""
    return Ashvault(tmp, f"{extra}\n[backup_posix]\npath = {tmp / 'backups'}\nobject_size = 1048576\n")


def random_volume(av: Ashvault, name: str, size: int, seed: int) -> str:
    path = str(av.tmp / f"{name}.img")
    volumes.write_mixed(path, size, seed=seed, run=MiB, zero=0, text=0.3)
    av.j("volume", "register", name, path)
    return path


def overwrite(path: str, offset: int, length: int, seed: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(os.urandom(length) if seed < 0 else bytes([seed % 256]) * length)


def objects_of(av: Ashvault, backup_id: str) -> list[pathlib.Path]:
    return sorted(p for p in av.backups.rglob(f"backup_{backup_id}/d*") if p.is_file())


def flip(path: pathlib.Path) -> bytes:
    """Flip one byte in the middle of a stored object; returns its old content."""
    old = path.read_bytes()
    data = bytearray(old)
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    return old


def test_verify_marks_a_damaged_backup_and_a_clean_verify_clears_it(tmp_path: pathlib.Path) -> None:
    av = small_objects(tmp_path)
    path = random_volume(av, "v", 6 * MiB, seed=1)
    full = av.j("backup", "create", "v", "--name", "full")
    overwrite(path, 5 * MiB, MiB, seed=-1)  # the first MiB is unchanged: the incremental shares its object
    av.j("backup", "create", "v", "--incremental", "--name", "inc")
    first = objects_of(av, full["id"])[0]
    good = flip(first)
    rel = str(first.relative_to(av.backups / "volumebackups"))

    res = av("backup", "verify", "full", ok=False)
    assert res.rc == 4 and rel in one_line_error(res)
    shown = av.j("backup", "show", "full")
    assert shown["status"] == "error" and shown["fail_reason"].startswith(f"verify failed: {rel}: hash mismatch")
    listed = {b["name"]: b["status"] for b in av.j("backup", "list")}
    assert listed == {"full": "error", "inc": "available"}, "only the verified backup is marked"
    assert av("backup", "verify", "inc", ok=False).rc == 4, "the incremental reads its parent's damaged object"
    assert av.j("backup", "show", "inc")["status"] == "error"

    line = one_line_error(av("backup", "restore", "full", "--name", "nope", ok=False))
    assert "verify failed" in line and "only an available backup restores" in line
    assert [v["name"] for v in av.j("volume", "list")] == ["v"], "a refused restore creates no volume"
    create = av("backup", "create", "v", "--incremental", ok=False)
    assert "no available backup" in one_line_error(create), "no incremental is based on a damaged backup"

    again = av("backup", "verify", "full", ok=False)
    assert again.rc == 4, "a backup marked by verify may be verified again"
    assert av.j("backup", "verify", "full", "--metadata-only")["result"] == "ok", "same size: no data read"
    assert av.j("backup", "show", "full")["status"] == "error", "a metadata-only check clears nothing"

    first.write_bytes(good)  # repaired
    assert av.j("backup", "verify", "full")["result"] == "ok"
    shown = av.j("backup", "show", "full")
    assert shown["status"] == "available" and shown["fail_reason"] is None
    assert sha256(av.j("backup", "restore", "full")["volume_location"]) != sha256(path)
    reset = av.j("backup", "reset-state", "inc", "--state", "available")
    assert reset[0]["status"] == "available", "reset-state still clears a verify mark"
    assert sha256(av.j("backup", "restore", "inc")["volume_location"]) == sha256(path)

    av("backup", "reset-state", "inc", "--state", "error")
    line = one_line_error(av("backup", "verify", "inc", ok=False))
    assert "is error; only an available backup verifies" in line, "an error not from verify is not re-verified"
    assert av("backup", "verify", ok=False).rc == 2
    first.unlink()
    res = av("backup", "verify", "full", "--metadata-only", ok=False)
    assert res.rc == 4 and "object is missing" in one_line_error(res)
    assert av.j("backup", "show", "full")["fail_reason"] == f"verify failed: {rel}: object is missing"
    (av.backups / "volumebackups" / rel).parent.joinpath("manifest").unlink()
    res = av("backup", "verify", "full", ok=False)
    assert "no manifest" in one_line_error(res), "a damaged backup with no manifest left still says why"


def test_verify_all_full_sample_and_metadata_only(tmp_path: pathlib.Path) -> None:
    av = small_objects(tmp_path)
    paths = [random_volume(av, f"v{n}", 8 * MiB, seed=10 + n) for n in range(2)]
    av.j("backup", "create", "v0", "--name", "a0")
    overwrite(paths[0], 0, 2 * MiB, seed=-1)
    av.j("backup", "create", "v0", "--incremental", "--name", "a1")
    av.j("backup", "create", "v1", "--name", "b0", "--container", "other")
    ids = {b["name"]: b["id"] for b in av.j("backup", "list")}

    full = {r["backup_id"]: r for r in av.j("backup", "verify", "--all")}
    assert set(full) == set(ids.values()) and all(r["result"] == "ok" and r["problem"] is None
                                                  for r in full.values())
    stored = sum(p.stat().st_size for p in av.backups.rglob("*") if p.is_file() and p.name != "manifest")
    assert sum(r["bytes_read"] for r in full.values()) == stored, "every object read, a shared one once"
    a1 = full[ids["a1"]]
    assert a1["objects_checked"] == 9, "8 data objects, 2 of them its own, and its index"

    sample = av.j("backup", "verify", "--all", "--sample", "25", "--seed", "7")
    assert [r["objects_checked"] for r in sample] == [3, 3, 3], "ceil(25% of 8) objects and the index"
    assert sum(r["bytes_read"] for r in sample) < 0.5 * sum(r["bytes_read"] for r in full.values())
    assert av.j("backup", "verify", "--all", "--sample", "25", "--seed", "7") == sample, "seeded: repeatable"

    meta = {r["backup_id"]: r for r in av.j("backup", "verify", "--all", "--metadata-only")}
    assert all(r["result"] == "ok" for r in meta.values())
    assert meta[ids["a1"]]["objects_checked"] == 9 and meta[ids["a1"]]["bytes_read"] < 4096, "indexes only"

    only = av.j("backup", "verify", "--all", "--volume", "v0", "--metadata-only")
    assert {r["backup_id"] for r in only} == {ids["a0"], ids["a1"]}
    assert [r["backup_id"] for r in av.j("backup", "verify", "--all", "--container", "other")] == [ids["b0"]]

    victim = objects_of(av, ids["a0"])[-1]
    victim.write_bytes(victim.read_bytes()[:-1])
    res = av("backup", "verify", "--all", "--metadata-only", "-f", "json", ok=False)
    assert res.rc == 4 and one_line_error(res) == "ashvault: error: 2 of 3 backups failed verification"
    rows = {r["backup_id"]: r for r in res.json()}
    assert rows[ids["b0"]]["result"] == "ok"
    for name in ("a0", "a1"):
        assert rows[ids[name]]["result"] == "failed" and victim.name in rows[ids[name]]["problem"]
        assert "bytes stored, the manifest records" in rows[ids[name]]["problem"]
    statuses = {b["name"]: b["status"] for b in av.j("backup", "list")}
    assert statuses == {"a0": "error", "a1": "error", "b0": "available"}
    again = av("backup", "verify", "--all", ok=False)
    assert again.rc == 4 and len(again.out.splitlines()) > 3, "marked backups are checked again, in a table"
    rows = {r["backup_id"]: r for r in av("backup", "verify", "--all", "-f", "json", ok=False).json()}
    assert [rows[ids[n]]["result"] for n in ("a0", "a1", "b0")] == ["failed", "failed", "ok"], \
        "a damaged object is read again by every backup that shares it"


@pytest.mark.parametrize("args, needle", [
    (("--all", "--sample", "0"), "--sample"),
    (("--all", "--sample", "101"), "--sample"),
    (("--all", "--sample", "lots"), "--sample"),
    (("--all", "--seed", "3"), "--seed goes with --sample"),
    (("--all", "--sample", "5", "--metadata-only"), "not allowed with"),
    (("x", "--all"), "not both"),
    (("x", "--volume", "v"), "go with --all"),
    ((), "give a BACKUP"),
    (("--all", "--container", "../up"), "invalid container name"),
])
def test_verify_bad_input_is_one_line(av: Ashvault, args: tuple[str, ...], needle: str) -> None:
    res = av("backup", "verify", *args, ok=False)
    assert res.rc == 2 and needle in res.err and "Traceback" not in res.err, res.err


def manifest_hashes(av: Ashvault) -> dict[str, str]:
    db = sqlite3.connect(av.state / "ashvault.sqlite")
    try:
        return dict(db.execute("SELECT id, manifest_hash FROM backups WHERE deleted = 0"))
    finally:
        db.close()


def test_rebuild_the_catalog_from_the_backend(tmp_path: pathlib.Path) -> None:
    av = small_objects(tmp_path)
    paths = [random_volume(av, f"v{n}", 4 * MiB, seed=20 + n) for n in range(2)]
    want: dict[str, str] = {}
    for step in range(3):
        for n, path in enumerate(paths[: 2 if step < 2 else 1]):
            if step:
                overwrite(path, step * MiB, MiB // 2, seed=-1)
            args = ["--incremental"] if step else []
            b = av.j("backup", "create", f"v{n}", "--name", f"v{n}-{step}", "--description", f"step {step}", *args)
            want[b["id"]] = sha256(path)
    doomed = av.j("backup", "create", "v1", "--incremental", "--name", "doomed")
    av("backup", "delete", doomed["id"])
    before = {b["id"]: b for b in av.j("backup", "list", "--long")}
    assert len(before) == 5
    bound = manifest_hashes(av)
    assert set(bound) == set(before) and all(bound.values())

    for f in av.state.glob("ashvault.sqlite*"):
        f.unlink()
    assert av.j("backup", "list") == []
    dry = av.j("backup", "rebuild", "--dry-run")
    assert len(dry) == 7 and {r["action"] for r in dry} == {"would create"}
    assert av.j("backup", "list") == [] and av.j("volume", "list") == [], "a dry run records nothing"
    rows = av.j("backup", "rebuild")
    created = {(r["kind"], r["id"]) for r in rows if r["action"] == "created"}
    vol_ids = {b["volume_id"] for b in before.values()}
    assert created == {("volume", v) for v in vol_ids} | {("backup", b) for b in before}
    assert doomed["id"] not in {r["id"] for r in rows}, "a deleted backup stays deleted"

    after = {b["id"]: b for b in av.j("backup", "list", "--long")}
    assert set(after) == set(before)
    for bid, b in before.items():
        got = after[bid]
        for key in ("name", "description", "volume_id", "parent_id", "status", "size", "container", "created_at"):
            assert got[key] == b[key], (key, got[key], b[key])
    assert manifest_hashes(av) == bound, "a rebuilt record is bound to its manifest as the original was"
    vols = av.j("volume", "list")
    assert {v["id"] for v in vols} == vol_ids and {v["status"] for v in vols} == {"unavailable"}
    again = av.j("backup", "rebuild")
    assert {r["action"] for r in again} == {"skipped"} and len(again) == len(rows)
    line = one_line_error(av("backup", "create", vols[0]["id"], "--force", ok=False))
    assert "location is unknown" in line and len(av.j("backup", "list")) == 5, "no error record left"

    for bid in before:
        restored = av.j("backup", "restore", bid, f"r-{bid[:8]}")
        assert restored["volume_created"] and sha256(restored["volume_location"]) == want[bid], bid
    assert av.j("backup", "verify", "--all", "--metadata-only")[0]["result"] == "ok"
    line = one_line_error(av("backup", "rebuild", "--container", "../x", ok=False))
    assert "invalid container name" in line


def test_rebuild_an_encrypted_container(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    av = small_objects(tmp_path, "encryption = aes-256-gcm")
    monkeypatch.setenv("ASHVAULT_PASSPHRASE", "rebuild me")
    path = random_volume(av, "v", 3 * MiB, seed=5)
    full = av.j("backup", "create", "v")
    overwrite(path, 0, MiB, seed=-1)
    inc = av.j("backup", "create", "v", "--incremental")
    assert av.j("backup", "verify", "--all", "--metadata-only")[1]["result"] == "ok", "sizes net of encryption"
    for f in av.state.glob("ashvault.sqlite*"):
        f.unlink()
    monkeypatch.delenv("ASHVAULT_PASSPHRASE")
    res = av("backup", "rebuild", ok=False)
    assert res.rc == 77 and "ASHVAULT_PASSPHRASE" in one_line_error(res)
    assert av.j("backup", "list") == [] and av.j("volume", "list") == [], "nothing recorded without the key"
    monkeypatch.setenv("ASHVAULT_PASSPHRASE", "rebuild me")
    rows = av.j("backup", "rebuild")
    assert [r["action"] for r in rows] == ["created"] * 3
    listed = av.j("backup", "list")
    assert [b["id"] for b in listed] == [full["id"], inc["id"]] and listed[1]["parent_id"] == full["id"]
    assert sha256(av.j("backup", "restore", inc["id"], "back")["volume_location"]) == sha256(path)


def test_verify_all_draws_progress_on_a_terminal_only(tmp_path: pathlib.Path) -> None:
    av = small_objects(tmp_path)
    random_volume(av, "v", 3 * MiB, seed=30)
    for name in ("one", "two"):
        av.j("backup", "create", "v", "--name", name)
    primary, secondary = pty.openpty()
    proc = subprocess.Popen([str(BIN / "ashvault"), "--config-file", str(av.conf), "backup", "verify", "--all",
                             "-f", "value", "-c", "result"], stdout=subprocess.PIPE, stderr=secondary)
    os.close(secondary)
    seen = b""
    while chunk := _read(primary):
        seen += chunk
    out, _ = proc.communicate(timeout=120)
    os.close(primary)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", seen.decode())
    summaries = [line.strip() for line in text.replace("\r", "\n").split("\n") if " in " in line]
    assert out.decode().split() == ["ok", "ok"] and proc.returncode == 0
    assert [s.split(":")[0] for s in summaries] == ["verify one", "verify two"], text
    assert av("backup", "verify", "--all").err == "", "nothing drawn when stderr is not a terminal"


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 4096)
    except OSError:
        return b""
