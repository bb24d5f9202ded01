"""Backups written in Cinder's chunked format to a posix directory (Cinder's posix/nfs/glusterfs layout), imported
with ``ashvault backup cinder import`` and then listed, verified, restored and deleted through the command."""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import random

import pytest
from clitools import Ashvault, one_line_error, sha256

from ashvault.cinder import layout
from ashvault.testing.cinder import CinderBackup, CinderWriter
from ashvault.testing.volumes import text_run
from ashvault_posix.objectstore import PosixObjectStore

MiB = 1 << 20
VOLUME = "5d2c7a9e-1f0b-4c1e-8a57-3a6c2b9f0e11"


def volume_bytes(size: int = 4 * MiB, seed: int = 3) -> bytearray:
    rnd = random.Random(seed)
    vol = bytearray(size)
    for i, off in enumerate(range(0, size, 512 << 10)):
        if i % 3 == 1:
            vol[off : off + (512 << 10)] = text_run(rnd, 512 << 10)
        elif i % 3 == 2:
            vol[off : off + (512 << 10)] = rnd.randbytes(512 << 10)
    return vol


def write_chain(av: Ashvault, algorithm: str, depth: int = 3) -> tuple[list[CinderBackup], list[bytes]]:
    store = PosixObjectStore(str(av.backups), fsync=False, direct_io=False)
    writer = CinderWriter(store, style="posix", object_size=MiB, compression=algorithm)
    vol = volume_bytes()
    rnd = random.Random(algorithm)
    chain: list[CinderBackup] = []
    states: list[bytes] = []
    for i in range(depth):
        if i:
            for b in rnd.sample(range(len(vol) // 32768), 4):
                vol[b * 32768 : (b + 1) * 32768] = rnd.randbytes(32768)
        chain.append(writer.backup(bytes(vol), volume_id=VOLUME, parent=chain[-1] if chain else None,
                                   name=f"cinder-{algorithm}-{i}"))
        states.append(bytes(vol))
    return chain, states


def restored(av: Ashvault, backup_id: str) -> pathlib.Path:
    out = av.j("backup", "restore", backup_id)
    return pathlib.Path(out["volume_location"])


@pytest.mark.parametrize("algorithm", ["zlib", "bzip2", "zstd", "none"])
def test_posix_chain_imports_and_restores_byte_identical(av: Ashvault, algorithm: str) -> None:
    chain, states = write_chain(av, algorithm)
    rows = av.j("backup", "cinder", "import", "--backup-id", chain[-1].id)
    assert [r["id"] for r in rows] == [b.id for b in chain], "parents first"
    assert [r["parent_id"] for r in rows] == [None, chain[0].id, chain[1].id]
    assert {r["format"] for r in rows} == {"cinder-chunked/1"}
    listed = {b["id"]: b for b in av.j("backup", "list")}
    assert set(listed) == {b.id for b in chain} and all(b["status"] == "available" for b in listed.values())
    shown = av.j("backup", "show", chain[1].id)
    assert shown["name"] == f"cinder-{algorithm}-1" and shown["size_bytes"] == len(states[0])
    for backup, state in zip(chain, states, strict=True):
        path = restored(av, backup.id)
        assert sha256(path) == hashlib.sha256(state).hexdigest()
        assert os.stat(path).st_blocks * 512 <= len(state) - MiB, "zero regions stay holes"
        assert av.j("backup", "verify", backup.id)["result"] == "ok"


def test_records_and_deletes_keep_what_children_need(av: Ashvault) -> None:
    chain, states = write_chain(av, "gzip")
    full_files = set(os.listdir(av.backups / chain[0].container))
    rows = av.j("backup", "cinder", "import", *(b.record() for b in chain))
    assert [r["id"] for r in rows] == [b.id for b in chain]
    err = one_line_error(av("backup", "delete", chain[0].id, ok=False))
    assert chain[1].id in err and "incrementals first" in err
    av("backup", "delete", chain[2].id)
    assert os.listdir(av.backups / chain[2].container) == [], "its own objects are gone"
    assert set(os.listdir(av.backups / chain[0].container)) == full_files
    assert sha256(restored(av, chain[1].id)) == hashlib.sha256(states[1]).hexdigest()
    again = av("backup", "cinder", "import", chain[1].record(), ok=False)
    assert "already in the catalog" in one_line_error(again)


def test_child_record_links_to_a_parent_imported_before(av: Ashvault) -> None:
    chain, states = write_chain(av, "zlib", depth=2)
    av("backup", "cinder", "import", chain[0].record())
    rows = av.j("backup", "cinder", "import", chain[1].record())
    assert [r["id"] for r in rows] == [chain[1].id]
    assert sha256(restored(av, chain[1].id)) == hashlib.sha256(states[1]).hexdigest()
    exported = av.j("backup", "record", "export", chain[1].id)
    doc = json.loads(__import__("base64").b64decode(exported["backup_url"]))
    assert doc["parent_id"] == chain[0].id and doc["format"] == "cinder-chunked/1"
    (av.tmp / "site-b").mkdir()
    other = Ashvault(av.tmp / "site-b")
    other.write_conf(f"[backup_posix]\npath = {av.backups}\n")
    parent = av.j("backup", "record", "export", chain[0].id)
    for rec in (parent, exported):
        other("backup", "record", "import", rec["backup_service"], rec["backup_url"])
    assert sha256(restored(other, chain[1].id)) == hashlib.sha256(states[1]).hexdigest()
    err = one_line_error(other("backup", "delete", chain[0].id, ok=False))
    assert chain[1].id in err and "incrementals first" in err


def _objects(av: Ashvault, b: CinderBackup) -> list[str]:
    path = av.backups / b.container / layout.metadata_name(b.prefix)
    return [next(iter(o)) for o in json.loads(path.read_text())["objects"]]


def test_corrupt_object_is_named_on_restore_and_verify(av: Ashvault) -> None:
    chain, _states = write_chain(av, "none", depth=2)
    av("backup", "cinder", "import", "--backup-id", chain[1].id)
    name = _objects(av, chain[0])[2]
    path = av.backups / chain[0].container / name
    data = bytearray(path.read_bytes())
    data[1000] ^= 0x40
    path.write_bytes(bytes(data))
    err = one_line_error(av("backup", "verify", chain[1].id, ok=False))
    assert name in err and "md5 mismatch" in err
    (av.tmp / "site-b").mkdir()
    other = Ashvault(av.tmp / "site-b")
    other.write_conf(f"[backup_posix]\npath = {av.backups}\n")
    err = one_line_error(other("backup", "cinder", "import", "--verify", "--backup-id", chain[1].id, ok=False))
    assert chain[0].id in err and name in err and "md5 mismatch" in err
    assert other.j("backup", "list") == [], "nothing half imported"
    err = one_line_error(av("backup", "restore", chain[1].id, ok=False))
    assert chain[0].id in err and name in err


def test_broken_backups_are_refused_and_nothing_is_half_imported(av: Ashvault) -> None:
    chain, _states = write_chain(av, "zstd")
    victim = av.backups / chain[1].container / _objects(av, chain[1])[0]
    os.rename(victim, str(victim) + ".away")
    err = one_line_error(av("backup", "cinder", "import", "--backup-id", chain[2].id, ok=False))
    assert chain[1].id in err and victim.name in err and "missing" in err
    assert av.j("backup", "list") == []
    os.rename(str(victim) + ".away", victim)

    meta = av.backups / chain[1].container / layout.metadata_name(chain[1].prefix)
    text = meta.read_bytes()
    meta.write_bytes(text[: len(text) // 2])
    err = one_line_error(av("backup", "cinder", "import", "--backup-id", chain[2].id, ok=False))
    assert chain[1].id in err and "not valid JSON" in err
    assert av.j("backup", "list") == []
    meta.write_bytes(text)

    parent_dir = av.backups / chain[0].container
    os.rename(parent_dir, str(parent_dir) + ".away")
    err = one_line_error(av("backup", "cinder", "import", "--backup-id", chain[2].id, ok=False))
    assert chain[1].id in err and f"parent {chain[0].id} was not found" in err
    assert av.j("backup", "list") == []
    os.rename(str(parent_dir) + ".away", parent_dir)

    rows = av.j("backup", "cinder", "import", "--container", chain[2].container, "--prefix", chain[2].prefix)
    assert len(rows) == 3
    bad = one_line_error(av("backup", "cinder", "import", "bm90IGpzb24=", ok=False))
    assert "not base64 of JSON" in bad
