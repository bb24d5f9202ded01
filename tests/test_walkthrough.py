"""The seed's walk-through, in ashvault's own spelling and in Cinder's, end to end through the CLI."""

from __future__ import annotations

import os

from clitools import Ashvault, MiB, one_line_error, sha256

from ashvault.testing import volumes


def fill(path: str, seed: int) -> None:
    """Write mixed data into the first 48 MiB of an existing (sparse) volume file."""
    tmp = path + ".seed"
    volumes.write_mixed(tmp, 48 * MiB, seed=seed, run=MiB)
    with open(tmp, "rb") as src, open(path, "r+b") as dst:
        dst.write(src.read())
        dst.flush()
        os.fsync(dst.fileno())
    os.unlink(tmp)


def test_ashvault_spelling(av: Ashvault) -> None:
    vol = av.j("volume", "create", "volume1", "--size", "0.125")
    assert vol["status"] == "available" and vol["size_bytes"] == 128 * MiB
    fill(vol["location"], seed=1)
    full = av.j("backup", "create", "volume1", "--name", "full", "--container", "volumes_backup")
    assert full["status"] == "available" and full["container"] == "volumes_backup"
    assert not full["is_incremental"]
    volumes.mutate(vol["location"], percent=3, seed=2)
    want = sha256(vol["location"])
    inc = av.j("backup", "create", "volume1", "--name", "inc", "--incremental")
    assert inc["is_incremental"] and inc["parent_id"] == full["id"] and inc["container"] == "volumes_backup"
    assert inc["stored_bytes"] < 0.04 * 128 * MiB, "3% of the blocks changed"
    assert av.j("backup", "verify", "inc")["result"] == "ok"
    restored = av.j("backup", "restore", "inc")
    assert restored["volume_created"] and restored["volume_name"] == f"restore_backup_{inc['id']}"
    assert sha256(restored["volume_location"]) == want
    listed = {b["name"]: b for b in av.j("backup", "list", "--volume", "volume1")}
    assert set(listed) == {"full", "inc"} and all(b["status"] == "available" for b in listed.values())
    deleted = av.j("backup", "delete", "full", "inc")
    assert [d["status"] for d in deleted] == ["deleted", "deleted"]
    assert av.j("backup", "list") == []
    assert not any(files for _d, _s, files in os.walk(av.backups)), "delete left objects behind"
    shown = av.j("volume", "show", "volume1")
    assert shown["location"] == vol["location"]


def test_cinder_spelling(av: Ashvault) -> None:
    vol = av.j("create", "--display-name", "volume1", "1")
    assert vol["size_bytes"] == 1 << 30
    fill(vol["location"], seed=3)
    backup = av.j("backup-create", "--container", "volumes_backup", "--display-name", "backuptoswift", "volume1")
    assert backup["status"] == "available" and backup["name"] == "backuptoswift"
    want = sha256(vol["location"])
    with open(vol["location"], "r+b") as f:
        f.write(os.urandom(MiB))
    assert sha256(vol["location"]) != want
    restored = av.j("backup-restore", "--volume-id", vol["id"], backup["id"])
    assert restored["volume_id"] == vol["id"] and not restored["volume_created"]
    assert sha256(vol["location"]) == want
    assert [b["id"] for b in av.j("backup-list")] == [backup["id"]]
    av("backup-delete", backup["id"])
    assert av.j("backup-list") == []


def test_restore_over_existing_volume_needs_force(av: Ashvault) -> None:
    vol = av.j("volume", "create", "v", "--size", "0.0625")
    fill(vol["location"], seed=4)
    b = av.j("backup", "create", "v")
    with open(vol["location"], "r+b") as f:
        f.write(b"changed after the backup")
    before = sha256(vol["location"])
    res = av("backup", "restore", b["id"], "v", ok=False)
    assert "--force" in one_line_error(res)
    assert sha256(vol["location"]) == before
    av("backup", "restore", b["id"], "v", "--force")
    assert sha256(vol["location"]) != before


def test_bad_input_gives_one_line_errors(av: Ashvault) -> None:
    assert "not found" in one_line_error(av("backup", "show", "nope", ok=False))
    assert "not found" in one_line_error(av("backup", "create", "nope", ok=False))
    av.j("volume", "create", "v", "--size", "0.01")
    assert "container" in one_line_error(av("backup", "create", "v", "--container", "../escape", ok=False))
    assert "no available backup" in one_line_error(av("backup", "create", "v", "--incremental", ok=False))
    assert "does not exist" in one_line_error(av("volume", "register", "x", "/nonexistent/disk.img", ok=False))
    assert "positive" in one_line_error(av("volume", "create", "y", "--size", "0", ok=False))
    assert av("backup", "list").rc == 0


def test_register_file_and_list(av: Ashvault, tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "disk.img")
    volumes.write_mixed(path, 8 * MiB, seed=5, run=MiB)
    vol = av.j("volume", "register", "disk", path)
    assert vol["location"] == path and not vol["managed"] and vol["size_bytes"] == 8 * MiB
    assert [v["name"] for v in av.j("volume", "list")] == ["disk"]
    av.j("backup", "create", "disk")
    av("volume", "delete", "disk")
    assert os.path.exists(path), "deleting a registered volume must not remove its data"
