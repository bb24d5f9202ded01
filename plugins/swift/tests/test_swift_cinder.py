"""Backups in Cinder's chunked format written to the real Swift the way Cinder's swift driver lays them out, then
imported with ``ashvault backup cinder import`` and restored through the swift driver."""

from __future__ import annotations

import hashlib
import pathlib
import random
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from clitools import Ashvault, MiB, one_line_error, sha256

from ashvault.cinder import layout
from ashvault.testing.cinder import CinderBackup, CinderWriter
from ashvault.testing.volumes import text_run
from ashvault_swift.objectstore import SwiftObjectStore

VOLUMES = {"zlib": "1c7f4e0a-0d6e-4f6a-9d0b-2a51f3c9e101", "bz2": "1c7f4e0a-0d6e-4f6a-9d0b-2a51f3c9e102",
           "zstd": "1c7f4e0a-0d6e-4f6a-9d0b-2a51f3c9e103", "none": "1c7f4e0a-0d6e-4f6a-9d0b-2a51f3c9e104"}


@pytest.fixture
def container() -> str:
    return f"cinder-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def av(tmp_path: pathlib.Path, swift: Any, container: str) -> Ashvault:
    av = Ashvault(tmp_path)
    av.write_conf(f"backup_swift_auth = single_user\nbackup_swift_auth_version = 1\n"
                  f"backup_swift_auth_url = {swift.auth_url}\nbackup_swift_user = test:tester\n"
                  f"backup_swift_key = testing\nbackup_swift_container = {container}\n",
                  driver="cinder.backup.drivers.swift.SwiftBackupDriver")
    return av


def chain_of_three(store: SwiftObjectStore, container: str, algorithm: str) -> tuple[list[CinderBackup], list[bytes]]:
    writer = CinderWriter(store, style="swift", container=container, object_size=MiB, compression=algorithm)
    rnd = random.Random(algorithm)
    vol = bytearray(3 * MiB)
    vol[MiB : 2 * MiB] = text_run(rnd, MiB)
    vol[2 * MiB : 5 * MiB // 2] = rnd.randbytes(MiB // 2)
    chain: list[CinderBackup] = []
    states: list[bytes] = []
    for i in range(3):
        if i:
            for b in rnd.sample(range(len(vol) // 32768), 3):
                vol[b * 32768 : (b + 1) * 32768] = rnd.randbytes(32768)
        chain.append(writer.backup(bytes(vol), volume_id=VOLUMES[algorithm], parent=chain[-1] if chain else None))
        states.append(bytes(vol))
    return chain, states


def test_swift_chains_of_each_compression_import_and_restore(
    av: Ashvault, new_store: Callable[..., SwiftObjectStore], container: str
) -> None:
    store = new_store()
    chains = {alg: chain_of_three(store, container, alg) for alg in VOLUMES}
    for alg, (chain, states) in chains.items():
        rows = av.j("backup", "cinder", "import", *(b.record() for b in chain))
        assert [r["id"] for r in rows] == [b.id for b in chain], alg
        out = av.j("backup", "restore", chain[-1].id)
        assert sha256(out["volume_location"]) == hashlib.sha256(states[-1]).hexdigest(), alg
        assert av.j("backup", "verify", chain[-1].id)["result"] == "ok"
    chain, states = chains["zstd"]
    out = av.j("backup", "restore", chain[0].id)
    assert sha256(out["volume_location"]) == hashlib.sha256(states[0]).hexdigest()
    assert len(av.j("backup", "list")) == 12


def test_swift_corrupt_object_and_missing_parent(
    av: Ashvault, new_store: Callable[..., SwiftObjectStore], container: str
) -> None:
    store = new_store()
    chain, _states = chain_of_three(store, container, "zlib")
    orphan_store_objects = store.list_objects(container, chain[0].prefix)
    saved = {n: bytes(store.get_object(container, n)) for n in orphan_store_objects}
    for name in orphan_store_objects:
        store.delete_object(container, name)
    err = one_line_error(av("backup", "cinder", "import", "--backup-id", chain[2].id, ok=False))
    assert f"parent {chain[0].id} was not found" in err and chain[1].id in err
    assert av.j("backup", "list") == []
    for name, data in saved.items():
        store.put_object(container, name, data)
    av("backup", "cinder", "import", "--backup-id", chain[2].id)
    name = layout.object_name(chain[1].prefix, 1)
    data = bytearray(store.get_object(container, name))
    data[-5] ^= 0xFF
    store.put_object(container, name, bytes(data))
    err = one_line_error(av("backup", "verify", chain[2].id, ok=False))
    assert name in err
    err = one_line_error(av("backup", "restore", chain[2].id, ok=False))
    assert chain[1].id in err and name in err
