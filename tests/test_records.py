"""Records and manifests as an attacker or an accident leaves them (issue 18): ``backup record import`` checks every
field before writing anything, a manifest is bound to its backup, a broken catalog row does not break listing, and
the temporaries of a killed backup are removed by its deletion and by the garbage collection."""

from __future__ import annotations

import base64
import json
import os
import pathlib
import signal
import sqlite3
import time
from typing import Any

import pytest
from clitools import Ashvault, MiB, one_line_error, sha256

from ashvault.testing import volumes


def register(av: Ashvault, name: str, size: int = 4 * MiB, seed: int = 1) -> str:
    path = str(av.tmp / f"{name}.img")
    volumes.write_mixed(path, size, seed=seed, run=MiB)
    av.j("volume", "register", name, path)
    return path


def encode(doc: dict[str, Any]) -> str:
    return base64.b64encode(json.dumps(doc).encode()).decode()


def decode(url: str) -> dict[str, Any]:
    return dict(json.loads(base64.b64decode(url)))


def files_under(root: pathlib.Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


BAD_FIELDS: list[tuple[str, Any, str]] = [
    ("id", "../../evil", "id must be a UUID"),
    ("id", "a\x00b", "id must be a UUID"),
    ("id", "x" * 300, "id must be a UUID"),
    ("id", 7, "id must be a string"),
    ("volume_id", "../outside", "volume_id must be a UUID"),
    ("size", "big", "size must be a whole number"),
    ("size", -5, "size must be between"),
    ("size", 1.5, "size must be a whole number"),
    ("size", 10**30, "size must be between"),
    ("size", True, "size must be a whole number"),
    ("created_at", "yesterday", "created_at must be an ISO 8601 time"),
    ("data_timestamp", 12, "data_timestamp must be an ISO 8601 time"),
    ("parent_id", "../p", "parent_id must be a UUID"),
    ("status", "bogus", "status must be one of"),
    ("driver_info", "text", "driver_info must be an object"),
    ("name", "\x1b[31mred", "name holds control characters"),
    ("description", "two\nlines \x1b]0;title\x07", "description holds control characters"),
    ("container", "../etc", "invalid container name"),
    ("service_metadata", "../../x", "invalid service_metadata"),
    ("manifest_hash", "zz", "manifest_hash must be 64"),
    ("object_count", -1, "object_count must be between"),
]


@pytest.fixture
def exported(av: Ashvault) -> tuple[Ashvault, dict[str, Any], Ashvault]:
    """A backup made on one site and its record; a second site over the same repository, empty."""
    register(av, "v")
    av.j("backup", "create", "v", "--name", "b")
    doc = decode(av.j("backup", "record", "export", "b")["backup_url"])
    (av.tmp / "site2").mkdir()
    site2 = Ashvault(av.tmp / "site2", f"[backup_posix]\npath = {av.backups}\n")
    site2.j("backup", "list")
    return av, doc, site2


def test_record_import_refuses_every_bad_field_before_writing(exported: tuple[Ashvault, dict[str, Any],
                                                                              Ashvault]) -> None:
    av, doc, site2 = exported
    before_state, before_repo = files_under(site2.state), files_under(av.backups)
    outside = files_under(av.tmp.parent)
    for field, value, said in BAD_FIELDS[::4]:  # every one through the API in test_record_fuzz.py
        res = site2("backup", "record", "import", "posix", encode({**doc, field: value}), ok=False)
        line = one_line_error(res)
        assert said in line and res.rc == 2, (field, value, line)
        assert "\x1b" not in res.err and "\x00" not in res.err
    for missing in ("id", "volume_id", "size"):
        res = site2("backup", "record", "import", "posix", encode({k: v for k, v in doc.items() if k != missing}),
                    ok=False)
        assert f"{missing} is missing" in one_line_error(res) and res.rc == 2
    assert files_under(site2.state) == before_state, "a refused import wrote in the state directory"
    assert files_under(av.backups) == before_repo, "a refused import wrote in the repository"
    assert files_under(av.tmp.parent) == outside
    assert site2.j("backup", "list") == []


def test_record_import_must_match_the_manifest_on_the_backend(exported: tuple[Ashvault, dict[str, Any],
                                                                               Ashvault]) -> None:
    _av, doc, site2 = exported
    assert len(doc["manifest_hash"]) == 64
    before = files_under(site2.state)
    wrong = {
        "size": ({"size": doc["size"] + 4096}, "maps"),
        "volume": ({"volume_id": "0" * 8 + doc["volume_id"][8:]}, "belongs to volume"),
        "hash": ({"manifest_hash": "0" * 64}, "hash mismatch"),
        "other backup": ({"service_metadata": doc["service_metadata"].replace(doc["id"], "0" * 36)},
                         "has no manifest"),
    }
    for what, (change, said) in wrong.items():
        res = site2("backup", "record", "import", "posix", encode({**doc, **change}), ok=False)
        line = one_line_error(res)
        assert said in line and res.rc == 1, (what, line)
    assert files_under(site2.state) == before
    assert site2.j("backup", "list") == []
    older = {k: v for k, v in doc.items() if k != "manifest_hash"}  # exported before migration 0005
    imported = site2.j("backup", "record", "import", "posix", encode(older))
    assert imported["status"] == "available"
    assert site2.j("backup", "verify", doc["id"])["result"] == "ok"
    with sqlite3.connect(site2.state / "ashvault.sqlite") as db:
        recorded = db.execute("SELECT manifest_hash FROM backups WHERE id = ?", (doc["id"],)).fetchone()[0]
    assert recorded == doc["manifest_hash"], "the import did not bind the manifest it found"


def test_a_broken_catalog_row_does_not_break_listing(av: Ashvault) -> None:
    register(av, "v")
    good = av.j("backup", "create", "v")
    bad = av.j("backup", "create", "v")
    with sqlite3.connect(av.state / "ashvault.sqlite") as db:  # as an older ashvault's import stored them
        db.execute("UPDATE backups SET size = 'big', created_at = 'yesterday' WHERE id = ?", (bad["id"],))
    res = av("backup", "list", "-f", "json")
    rows = {b["id"]: b for b in res.json()}
    assert rows[good["id"]]["status"] == "available"
    assert rows[bad["id"]]["status"] == "error"
    assert "unreadable created_at, size" in res.err
    shown = av.j("backup", "show", bad["id"])
    assert "catalog row unreadable" in shown["fail_reason"]
    av.j("backup", "delete", bad["id"])
    assert [b["id"] for b in av.j("backup", "list")] == [good["id"]]


def manifest_of(av: Ashvault, backup_id: str) -> pathlib.Path:
    return next(av.backups.rglob(f"backup_{backup_id}/manifest"))


def test_a_swapped_manifest_is_refused_and_nothing_restored(av: Ashvault) -> None:
    register(av, "a", seed=1)
    register(av, "b", size=8 * MiB, seed=2)
    a = av.j("backup", "create", "a")
    b = av.j("backup", "create", "b")
    manifest_of(av, a["id"]).write_bytes(manifest_of(av, b["id"]).read_bytes())
    target = av.tmp / "target.img"
    target.write_bytes(b"\x55" * (4 * MiB))
    before = sha256(str(target))
    av.j("volume", "register", "t", str(target))
    res = av("backup", "restore", a["id"], "--volume", "t", "--force", ok=False)
    assert res.rc == 4 and f"backup_{a['id']}/manifest" in one_line_error(res)
    assert sha256(str(target)) == before, "a refused restore changed the target"
    res = av("backup", "verify", a["id"], ok=False)
    assert res.rc == 4 and "manifest is corrupt" in one_line_error(res) and "hash mismatch" in res.err
    assert av.j("backup", "show", a["id"])["status"] == "error", "a backup that fails verify is marked"
    res = av("backup", "restore", a["id"], "--volume", "t", "--force", ok=False)
    assert res.rc != 0 and "verify failed" in one_line_error(res)
    assert sha256(str(target)) == before, "a refused restore changed the target"
    line = one_line_error(av("backup", "reset-state", a["id"], "--state", "available", ok=False))
    assert "hash mismatch" in line, "a backup bound to another manifest cannot be declared available"


def test_without_a_recorded_hash_id_size_and_extents_are_still_checked(av: Ashvault) -> None:
    """Backups made before migration 0005 have no manifest hash: the manifest's own fields bind it."""
    import zstandard

    register(av, "a", seed=1)
    register(av, "b", seed=3)
    a = av.j("backup", "create", "a")
    b = av.j("backup", "create", "b")
    with sqlite3.connect(av.state / "ashvault.sqlite") as db:
        db.execute("UPDATE backups SET manifest_hash = NULL")
    assert av.j("backup", "verify", a["id"])["result"] == "ok"
    path_a = manifest_of(av, a["id"])
    original = path_a.read_bytes()
    path_a.write_bytes(manifest_of(av, b["id"]).read_bytes())
    res = av("backup", "verify", a["id"], ok=False)
    assert res.rc == 4 and f"belongs to backup '{b['id']}'" in one_line_error(res)

    doc = json.loads(zstandard.ZstdDecompressor().decompress(original))
    doc["extents"][-1][1] += 64 * MiB  # a 68 MiB restore from a 4 MiB volume
    path_a.write_bytes(zstandard.ZstdCompressor().compress(json.dumps(doc).encode()))
    with sqlite3.connect(av.state / "ashvault.sqlite") as db:  # undo the mark of the failed verify
        db.execute("UPDATE backups SET status = 'available', fail_reason = NULL")
    for args in (("restore", a["id"], "--volume", "a", "--force"), ("verify", a["id"])):
        res = av("backup", *args, ok=False)
        assert res.rc == 4 and "past the volume's end" in one_line_error(res), args


def temporaries(root: pathlib.Path) -> list[pathlib.Path]:
    return sorted(root.rglob(".tmp-*"))


def test_temporaries_of_a_killed_backup_are_removed_by_its_delete_and_the_collection(av: Ashvault) -> None:
    av.write_conf(f"backup_pipeline_threads = 1\n[backup_posix]\npath = {av.backups}\nobject_size = 1048576\n"
                  "max_transfers = 1\n")
    register(av, "v", size=64 * MiB, seed=5)
    kept = av.j("backup", "create", "v")
    proc = av.popen("backup", "create", "v", "--force")

    def writing() -> list[pathlib.Path]:
        return [t for t in temporaries(av.backups) if f"backup_{kept['id']}" not in str(t)]

    deadline = time.monotonic() + 60
    mine: list[pathlib.Path] = []
    while time.monotonic() < deadline and proc.poll() is None and not mine:
        if writing():
            proc.send_signal(signal.SIGSTOP)  # then look again: the write may have ended in between
            time.sleep(0.05)
            mine = writing()
            if not mine:
                proc.send_signal(signal.SIGCONT)
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert mine, "the backup finished before it was caught mid-write"
    killed = next(b for b in av.j("backup", "list") if b["id"] != kept["id"])
    assert killed["status"] == "error"
    assert temporaries(av.backups), "the kill left no temporary file"

    # One a killed writer left under the kept backup long ago, and a fresh one a live writer could still own.
    space = manifest_of(av, kept["id"]).parent
    old, fresh = space / ".tmp-d00000099.0badf00d", space / ".tmp-d00000098.0badf00d"
    old.write_bytes(b"x")
    fresh.write_bytes(b"y")
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))

    av.j("backup", "delete", killed["id"])
    left = temporaries(av.backups)
    assert left == [fresh], f"left behind: {left}"
    assert not any(f"backup_{killed['id']}" in str(p) for p in av.backups.rglob("*"))
    assert av.j("backup", "verify", kept["id"])["result"] == "ok"


def test_restore_force_checks_the_manifest_and_every_object_before_touching_the_target(av: Ashvault) -> None:
    register(av, "v", seed=1)
    made = av.j("backup", "create", "v")
    lost = sorted(manifest_of(av, made["id"]).parent.glob("d*"))[-1]
    lost.unlink()
    target = av.tmp / "target.img"
    target.write_bytes(b"\x55" * (4 * MiB))
    before = sha256(str(target))
    av.j("volume", "register", "t", str(target))
    res = av("backup", "restore", made["id"], "--volume", "t", "--force", ok=False)
    assert res.rc == 4 and f"{lost.name} is corrupt: object is missing" in one_line_error(res)
    assert sha256(str(target)) == before, "the target was wiped before the missing object was found"
    assert "objects are checked first" in " ".join(av("backup", "restore", "--help").out.split())
