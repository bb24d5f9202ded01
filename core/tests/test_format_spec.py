"""FORMAT.md is precise enough to write a reader: one written from it alone reads what the engine wrote.

The reader below imports nothing of ashvault's engine: only json, zlib, bz2, zstandard and blake3, and the rules
of FORMAT.md, section chunked/1.
"""

from __future__ import annotations

import bz2
import json
import pathlib
import re
import zlib

import blake3
import zstandard

from ashvault.testing import volumes

from .test_engine import backup, make_driver

MiB = 1 << 20
NAME_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def decode(stored: bytes, entry: list) -> bytes:  # type: ignore[type-arg]
    name, stored_size, size, compression, digest = entry
    assert len(stored) == stored_size and blake3.blake3(stored).hexdigest() == digest, name
    content = {"none": lambda b: b, "zlib": zlib.decompress, "bz2": bz2.decompress,
               "zstd": lambda b: zstandard.ZstdDecompressor().decompress(b, max_output_size=size)}[compression](stored)
    assert len(content) == size, name
    return content


def read_backup(objects: dict[str, bytes], prefix: str) -> tuple[dict, bytes]:  # type: ignore[type-arg]
    doc = json.loads(zstandard.ZstdDecompressor().decompress(objects[f"{prefix}/manifest"], max_output_size=2 << 30))
    assert doc["format"] == "ashvault-backup" and doc["version"] == 1
    volume = bytearray(doc["size"])  # bytes no extent covers are zero
    pos = 0
    for off, length, _idx, _obj_off in doc["extents"]:
        assert off >= pos and length > 0 and off + length <= doc["size"]
        pos = off + length
    contents = {i: decode(objects[e[0]], e) for i, e in enumerate(doc["objects"])}
    for off, length, idx, obj_off in doc["extents"]:
        volume[off : off + length] = contents[idx][obj_off : obj_off + length]
    return doc, bytes(volume)


def fingerprints(volume: bytes, block_size: int) -> list[int]:
    out = []
    for i in range(0, len(volume), block_size):
        block = volume[i : i + block_size]
        fp = int.from_bytes(blake3.blake3(block).digest(8), "little") or 1
        out.append(0 if block == bytes(len(block)) else fp)
    return out


def test_a_reader_written_from_the_spec_reads_full_and_incremental_backups(tmp_path: pathlib.Path) -> None:
    driver = make_driver(backup_compression_algorithm="zlib")
    driver.conf.set_override("object_size", MiB, group="backup_memory")
    path = volumes.write_mixed(str(tmp_path / "v.img"), 6 * MiB + 12345, seed=7, run=MiB // 2, zero=0.3, text=0.4)
    full = backup(driver, path, volume_id="7a1b2c3d-0000-4000-8000-000000000001")
    volumes.mutate(path, percent=3, seed=8)
    driver.conf.set_override("backup_compression_algorithm", "zstd")
    incr = backup(driver, path, parent=full, volume_id=full.volume_id)

    objects = driver.shared_buckets[incr.container]
    for info in (full, incr):
        assert info.service_metadata == f"volume_{info.volume_id}/backup_{info.id}"
    assert all(p != ".." and NAME_PART.fullmatch(p) for n in objects for p in n.split("/"))
    doc, restored = read_backup(objects, incr.service_metadata)
    assert restored == pathlib.Path(path).read_bytes()
    assert doc["parent_id"] == full.id and doc["volume_id"] == full.volume_id
    assert {o[3] for o in doc["objects"]} == {"zlib", "none"}, "text compressed, the mutations' random data not"
    assert any(o[0].startswith(full.service_metadata + "/d") for o in doc["objects"])
    assert all(re.fullmatch(r".*/backup_[0-9a-f-]{36}/d\d{8,}", o[0]) for o in doc["objects"])

    index = decode(objects[doc["index"][0]], doc["index"])
    fps = [int.from_bytes(index[i : i + 8], "little") for i in range(0, len(index), 8)]
    assert len(fps) == -(-doc["size"] // doc["block_size"]) and 0 in fps
    assert fps == fingerprints(restored, doc["block_size"])


def test_the_spec_reader_decodes_every_compression(tmp_path: pathlib.Path) -> None:
    path = volumes.write_mixed(str(tmp_path / "v.img"), 3 * MiB, seed=9, run=MiB // 2, zero=0.2, text=0.6)
    for algo in ("none", "zlib", "bz2", "zstd"):
        driver = make_driver(backup_compression_algorithm=algo)
        info = backup(driver, path)
        doc, restored = read_backup(driver.shared_buckets[info.container], info.service_metadata)
        assert restored == pathlib.Path(path).read_bytes()
        assert algo in {o[3] for o in doc["objects"]}
