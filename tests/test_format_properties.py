"""The native format's promises, checked through the CLI on real files: zero regions, incrementals, chains,
corruption."""

from __future__ import annotations

import os
import pathlib

import pytest
from clitools import Ashvault, MiB, one_line_error, sha256

from ashvault.engine.layout import Manifest, read_index, read_manifest
from ashvault.testing import volumes
from ashvault_posix.objectstore import PosixObjectStore

GiB = 1 << 30


def manifest_of(av: Ashvault, backup: dict[str, str]) -> tuple[PosixObjectStore, Manifest]:
    store = PosixObjectStore(str(av.backups))
    prefix = f"volume_{backup['volume_id']}/backup_{backup['id']}"
    return store, read_manifest(store, backup["container"], prefix, backup["id"])


def nonzero_bytes(path: str, block: int = 64 * 1024) -> int:
    zero = bytes(block)
    total = 0
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(block), b""):
            if chunk != zero[: len(chunk)]:
                total += len(chunk)
    return total


@pytest.mark.slow
def test_one_gib_with_zero_regions_then_one_percent_incremental(av: Ashvault, tmp_path: pathlib.Path) -> None:
    path = str(tmp_path / "vol.img")
    volumes.write_mixed(path, GiB, seed=11, sparse=False)
    av.j("volume", "register", "big", path)
    full = av.j("backup", "create", "big")
    store, manifest = manifest_of(av, full)
    stored_data = sum(o.size for o in manifest.objects)
    assert stored_data == nonzero_bytes(path), "exactly the non-zero blocks are stored"
    assert stored_data < 0.65 * GiB
    restored = av.j("backup", "restore", full["id"])
    out = restored["volume_location"]
    assert sha256(out) == sha256(path)
    allocated = os.stat(out).st_blocks * 512
    assert allocated < 0.7 * GiB, f"restored file should be sparse, has {allocated} bytes allocated"

    volumes.mutate(path, percent=1, seed=12)
    inc = av.j("backup", "create", "big", "--incremental")
    assert inc["stored_bytes"] < 0.05 * GiB, inc["stored_bytes"]
    _store, inc_manifest = manifest_of(av, inc)
    new = [o for o in inc_manifest.objects if f"backup_{inc['id']}/" in o.name]
    assert sum(o.size for o in new) <= 0.011 * GiB, "only the changed 64 KiB blocks are stored"
    assert len(read_index(store, inc["container"], inc_manifest)) == GiB // (64 * 1024)
    again = av.j("backup", "restore", inc["id"])
    assert sha256(again["volume_location"]) == sha256(path)


def test_deleting_the_full_keeps_the_incrementals(av: Ashvault, tmp_path: pathlib.Path) -> None:
    path = str(tmp_path / "vol.img")
    volumes.write_mixed(path, 96 * MiB, seed=21, run=MiB)
    av.j("volume", "register", "v", path)
    full = av.j("backup", "create", "v", "--name", "full")
    volumes.mutate(path, percent=2, seed=22)
    inc1 = av.j("backup", "create", "v", "--name", "inc1", "--incremental")
    want1 = sha256(path)
    volumes.mutate(path, percent=2, seed=23)
    inc2 = av.j("backup", "create", "v", "--name", "inc2", "--incremental")
    want2 = sha256(path)
    assert inc2["parent_id"] == inc1["id"] and inc1["parent_id"] == full["id"]
    av("backup", "delete", "full")
    assert not (av.backups / "volumebackups" / f"volume_{full['volume_id']}" / f"backup_{full['id']}" /
                "manifest").exists()
    assert sha256(av.j("backup", "restore", "inc1")["volume_location"]) == want1
    assert sha256(av.j("backup", "restore", "inc2")["volume_location"]) == want2
    av("backup", "delete", "inc2")
    assert sha256(av.j("backup", "restore", "inc1")["volume_location"]) == want1
    av("backup", "delete", "inc1")
    assert list((av.backups / "volumebackups").rglob("*")) == []


def _flip(path: pathlib.Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x40
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("which", ["first data object", "last data object", "manifest", "index"])
def test_a_flipped_byte_is_named_and_never_restored(av: Ashvault, tmp_path: pathlib.Path, which: str) -> None:
    path = str(tmp_path / "vol.img")
    volumes.write_mixed(path, 32 * MiB, seed=31, run=MiB, zero=0.2)
    av.j("volume", "register", "v", path)
    b = av.j("backup", "create", "v")
    where = av.backups / "volumebackups" / f"volume_{b['volume_id']}" / f"backup_{b['id']}"
    data = sorted(where.glob("d*"))
    target = {"first data object": data[0], "last data object": data[-1], "manifest": where / "manifest",
              "index": where / "index"}[which]
    _flip(target)
    object_name = f"volume_{b['volume_id']}/backup_{b['id']}/{target.name}"
    for args in (("backup", "verify", b["id"]), ("backup", "restore", b["id"])):
        line = one_line_error(av(*args, ok=False))
        assert b["id"] in line and object_name in line, line
    assert [v["name"] for v in av.j("volume", "list")] == ["v"], "a failed restore leaves no new volume behind"
