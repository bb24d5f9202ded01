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
from ashvault.objectstore import ObjectStore, check_name

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


MIN_BLOCK = 512
MAX_OBJECT = 64 << 20
"""The largest object the engine writes (``ashvault.conf.MAX_OBJECT_SIZE``): a bigger one is not ours."""
MAX_VOLUME = 1 << 56

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
        """Parse and check a manifest: types, and every extent within the volume and its object (:meth:`check`).

        Raises ``ValueError`` saying what is wrong, and nothing else."""
        try:
            doc = json.loads(raw)
        except RecursionError:
            raise ValueError("the manifest nests too deeply") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT_NAME:
            raise ValueError("not an ashvault manifest")
        if doc.get("version") != FORMAT_VERSION:
            raise ValueError(f"unsupported format version {str(doc.get('version'))[:20]}")
        stats = doc.get("stats") or {}
        if not isinstance(stats, dict) or not all(isinstance(v, int) for v in stats.values()):
            raise ValueError("stats is not an object of numbers")
        index = doc.get("index")
        objects = doc.get("objects")
        extents = doc.get("extents")
        if not isinstance(objects, list) or not isinstance(extents, list):
            raise ValueError("objects or extents is not a list")
        manifest = cls(
            backup_id=_string(doc.get("backup_id"), "backup_id"),
            volume_id=_string(doc.get("volume_id"), "volume_id"),
            parent_id=_string(doc.get("parent_id"), "parent_id", optional=True),
            name=_string(doc.get("name"), "name", optional=True),
            description=_string(doc.get("description"), "description", optional=True),
            created_at=_string(doc.get("created_at"), "created_at", optional=True),
            size=_number(doc.get("size"), "size"),
            block_size=_number(doc.get("block_size"), "block_size"),
            source_marker=_string(doc.get("source_marker"), "source_marker", optional=True),
            index=_entry(index, "index") if index else None,
            objects=[_entry(o, f"object {i}") for i, o in enumerate(objects)],
            extents=[_extent(e, i) for i, e in enumerate(extents)],
            stats=stats,
        )
        manifest.check()
        return manifest

    def check(self) -> None:
        """Every extent inside the volume and inside its object, in order and disjoint; sane sizes. Raises
        ``ValueError`` naming the first that is not."""
        if self.size > MAX_VOLUME:
            raise ValueError(f"volume size {self.size} is out of range")
        if not MIN_BLOCK <= self.block_size <= MAX_OBJECT:
            raise ValueError(f"block_size {self.block_size} is out of range")
        for entry in self.objects:
            if entry.size > MAX_OBJECT or entry.stored_size > 2 * MAX_OBJECT:
                raise ValueError(f"object {entry.name} claims {entry.size} bytes, more than an object holds")
        if self.index is not None and self.index.size != 8 * blocks.count(self.size, self.block_size):
            raise ValueError(f"index {self.index.name} has the wrong size for the volume")
        end = 0
        for i, (off, length, idx, obj_off) in enumerate(self.extents):
            if length <= 0 or off < end:
                raise ValueError(f"extent {i} overlaps the one before it or is empty")
            end = off + length
            if end > self.size:
                raise ValueError(f"extent {i} ends at byte {end}, past the volume's end ({self.size})")
            if idx >= len(self.objects):
                raise ValueError(f"extent {i} names object {idx} of {len(self.objects)}")
            if obj_off + length > self.objects[idx].size:
                raise ValueError(f"extent {i} reads past the end of object {self.objects[idx].name}")

    def referenced_names(self) -> set[str]:
        names = {o.name for o in self.objects}
        if self.index:
            names.add(self.index.name)
        return names


def _string(value: Any, field: str, *, optional: bool = False) -> Any:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{field} is not a string")
    return value


def _number(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{field} is not a whole number of at least 0")
    return value


def _entry(value: Any, field: str) -> ObjectEntry:
    if not isinstance(value, list) or len(value) != 5:
        raise ValueError(f"{field} is not a list of five fields")
    name, stored, size, compression, digest = value
    try:
        check_name(_string(name, f"{field} name"))
    except exceptions.InvalidInput:
        raise ValueError(f"{field} has an invalid object name") from None
    return ObjectEntry(name, _number(stored, f"{field} stored size"),
                       _number(size, f"{field} size"), _string(compression, f"{field} compression"),
                       _string(digest, f"{field} hash"))


def _extent(value: Any, i: int) -> Extent:
    if not isinstance(value, list) or len(value) != 4:
        raise ValueError(f"extent {i} is not a list of four numbers")
    off, length, idx, obj_off = (_number(v, f"extent {i}") for v in value)
    return off, length, idx, obj_off


_manifest_cctx = zstandard.ZstdCompressor(level=9, write_checksum=True)


def encode_manifest(manifest: Manifest) -> bytes:
    return _manifest_cctx.compress(manifest.to_json())


@dataclasses.dataclass(frozen=True)
class Binding:
    """What the catalog knows of a backup, which its manifest must agree with."""

    backup_id: str
    volume_id: str | None = None
    size: int | None = None
    manifest_hash: str | None = None
    """Recorded since migration 0005; older backups are checked on id, volume and size only."""


def read_manifest(store: ObjectStore, container: str, prefix: str, backup_id: str | Binding | None) -> Manifest:
    """Load and check a backup's manifest. Raises ``InvalidBackup`` / ``IntegrityError``."""
    return read_manifest_sized(store, container, prefix, backup_id)[0]


def read_manifest_sized(store: ObjectStore, container: str, prefix: str,
                        expect: str | Binding | None) -> tuple[Manifest, int]:
    """:func:`read_manifest`, and the size of the manifest object as stored.

    ``expect`` is the backup's id, or its :class:`Binding`: a manifest that does not parse, has an extent out of
    bounds, or belongs to another backup (another id, volume, size or content hash than recorded) raises
    ``IntegrityError`` naming the manifest object; a missing one ``InvalidBackup``. ``None`` (the garbage
    collection, which knows no record) checks the manifest's own consistency only."""
    bound = expect if isinstance(expect, Binding) else Binding(expect or prefix)
    backup_id = bound.backup_id
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

    def corrupt(reason: str) -> exceptions.IntegrityError:
        shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in reason[:200])
        return exceptions.IntegrityError(backup=backup_id, object=name, reason=shown)

    if bound.manifest_hash is not None and content_hash(raw) != bound.manifest_hash:
        raise corrupt("it is not the manifest recorded for this backup (hash mismatch)")
    try:
        manifest = Manifest.from_json(zstandard.ZstdDecompressor().decompress(raw, max_output_size=1 << 31))
    except (zstandard.ZstdError, ValueError) as exc:
        raise corrupt(str(exc)[:200]) from exc
    if expect is not None and manifest.backup_id != backup_id:
        raise corrupt(f"it belongs to backup {manifest.backup_id[:40]!r}")
    if bound.volume_id is not None and manifest.volume_id != bound.volume_id:
        raise corrupt(f"it belongs to volume {manifest.volume_id[:40]!r}, the backup to {bound.volume_id}")
    if bound.size is not None and manifest.size != bound.size:
        raise corrupt(f"it maps {manifest.size} bytes, the backup recorded {bound.size}")
    return manifest, len(raw)


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
