"""The native format on the backend: object names, the manifest and the block index (see FORMAT.md)."""

from __future__ import annotations

import array
import dataclasses
import json
import sys
from typing import Any

import blake3
import zstandard

from ashvault import blocks, exceptions
from ashvault.objectstore import ObjectStore

FORMAT_NAME = "ashvault-backup"
FORMAT_VERSION = 1
HASH_NAME = "blake3"
FINGERPRINT_NAME = "blake3-64"

MANIFEST = "manifest"
INDEX = "index"
TOMBSTONE = "tombstone"


def volume_prefix(volume_id: str) -> str:
    return f"volume_{volume_id}"


def backup_prefix(volume_id: str, backup_id: str) -> str:
    return f"{volume_prefix(volume_id)}/backup_{backup_id}"


def data_name(prefix: str, seq: int) -> str:
    return f"{prefix}/d{seq:08d}"


def namespace_of(name: str) -> str:
    """The backup prefix an object name lives under."""
    return name.rsplit("/", 1)[0]


def content_hash(data: bytes | memoryview) -> str:
    return blake3.blake3(data).hexdigest()


def fingerprint(block: bytes | memoryview) -> int:
    """64-bit change-detection fingerprint of one block; never 0, which stands for an all-zero block."""
    return int.from_bytes(blake3.blake3(block).digest(8), "little") or 1


@dataclasses.dataclass
class ObjectEntry:
    name: str
    stored_size: int
    size: int
    compression: str
    hash: str

    def as_list(self) -> list[Any]:
        return [self.name, self.stored_size, self.size, self.compression, self.hash]


Extent = tuple[int, int, int, int]
"""(volume offset, length, object index, offset in the object's uncompressed data)."""


@dataclasses.dataclass
class Manifest:
    backup_id: str
    volume_id: str
    size: int
    block_size: int
    objects: list[ObjectEntry]
    extents: list[Extent]
    index: ObjectEntry | None
    parent_id: str | None = None
    name: str | None = None
    description: str | None = None
    created_at: str | None = None
    source_marker: str | None = None
    stats: dict[str, int] = dataclasses.field(default_factory=dict)

    def to_json(self) -> bytes:
        doc = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "backup_id": self.backup_id,
            "volume_id": self.volume_id,
            "parent_id": self.parent_id,
            "name": self.name,
            "description": self.description,
            "created_at": self.created_at,
            "size": self.size,
            "block_size": self.block_size,
            "hash": HASH_NAME,
            "fingerprint": FINGERPRINT_NAME,
            "source_marker": self.source_marker,
            "index": self.index.as_list() if self.index else None,
            "objects": [o.as_list() for o in self.objects],
            "extents": [list(e) for e in self.extents],
            "stats": self.stats,
        }
        return json.dumps(doc, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Manifest:
        doc = json.loads(raw)
        if doc.get("format") != FORMAT_NAME:
            raise ValueError("not an ashvault manifest")
        if doc.get("version") != FORMAT_VERSION:
            raise ValueError(f"unsupported format version {doc.get('version')}")
        return cls(
            backup_id=doc["backup_id"],
            volume_id=doc["volume_id"],
            parent_id=doc.get("parent_id"),
            name=doc.get("name"),
            description=doc.get("description"),
            created_at=doc.get("created_at"),
            size=int(doc["size"]),
            block_size=int(doc["block_size"]),
            source_marker=doc.get("source_marker"),
            index=ObjectEntry(*doc["index"]) if doc.get("index") else None,
            objects=[ObjectEntry(*o) for o in doc["objects"]],
            extents=[tuple(e) for e in doc["extents"]],  # type: ignore[misc]
            stats=doc.get("stats") or {},
        )

    def referenced_names(self) -> set[str]:
        names = {o.name for o in self.objects}
        if self.index:
            names.add(self.index.name)
        return names


_manifest_cctx = zstandard.ZstdCompressor(level=9, write_checksum=True)


def encode_manifest(manifest: Manifest) -> bytes:
    return _manifest_cctx.compress(manifest.to_json())


def read_manifest(store: ObjectStore, container: str, prefix: str, backup_id: str) -> Manifest:
    """Load and check a backup's manifest. Raises ``InvalidBackup`` / ``IntegrityError``."""
    return read_manifest_sized(store, container, prefix, backup_id)[0]


def read_manifest_sized(store: ObjectStore, container: str, prefix: str, backup_id: str) -> tuple[Manifest, int]:
    """:func:`read_manifest`, and the size of the manifest object as stored."""
    name = f"{prefix}/{MANIFEST}"
    try:
        raw = store.get_object(container, name)
    except exceptions.ObjectNotFound as exc:
        raise exceptions.InvalidBackup(
            reason=f"backup {backup_id} has no manifest in container '{container}' (it never completed, or its "
            "data was removed)"
        ) from exc
    except exceptions.ObjectAuthenticationFailed as exc:
        raise exceptions.IntegrityError(backup=backup_id, object=name, reason=exc.kwargs["reason"]) from exc
    try:
        return Manifest.from_json(zstandard.ZstdDecompressor().decompress(raw, max_output_size=1 << 31)), len(raw)
    except (zstandard.ZstdError, ValueError, KeyError, TypeError) as exc:
        raise exceptions.IntegrityError(backup=backup_id, object=name, reason=str(exc)) from exc


def encode_index(fps: array.array) -> bytes:  # type: ignore[type-arg]
    if sys.byteorder != "little":
        fps = array.array("Q", fps)
        fps.byteswap()
    return zstandard.ZstdCompressor(level=3).compress(memoryview(fps).cast("B"))


def read_index(store: ObjectStore, container: str, manifest: Manifest) -> array.array:  # type: ignore[type-arg]
    """The parent's block fingerprints, checked against the manifest. Raises ``IntegrityError``."""
    entry = manifest.index
    nblocks = blocks.count(manifest.size, manifest.block_size)
    if entry is None:
        return array.array("Q", [0]) * nblocks
    try:
        raw = store.get_object(container, entry.name)
    except exceptions.ObjectAuthenticationFailed as exc:
        raise exceptions.IntegrityError(backup=manifest.backup_id, object=entry.name, reason=exc.kwargs["reason"]) \
            from exc
    if content_hash(raw) != entry.hash:
        raise exceptions.IntegrityError(backup=manifest.backup_id, object=entry.name, reason="hash mismatch")
    fps = array.array("Q")
    fps.frombytes(zstandard.ZstdDecompressor().decompress(raw, max_output_size=entry.size))
    if sys.byteorder != "little":
        fps.byteswap()
    if len(fps) != nblocks:
        raise exceptions.IntegrityError(backup=manifest.backup_id, object=entry.name, reason="wrong length")
    return fps
