"""Cinder's chunked format on the backend: object names, the ``_metadata`` and ``_sha256file`` documents.

Facts (Cinder's ``chunkeddriver.py``): a backup with object prefix ``P`` is the data objects ``P-00001``,
``P-00002``... (the width grows past 99999), ``P_sha256file`` and ``P_metadata``, all in one container. The
metadata lists every data object as a single-key dict ``{name: {offset, length, compression, md5}}`` where
``length`` is uncompressed and ``md5`` is of the uncompressed bytes; the sha256 file holds one SHA-256 per
``chunk_size`` bytes of the whole volume, for incrementals too. Cinder only ever wrote version ``1.0.0``; backups
from before incrementals (2015) lack ``parent_id`` and the sha256 file, and very old ones ``volume_meta`` and
``compression``.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import re
from typing import Any

from ashvault import exceptions

METADATA = "_metadata"
SHA256FILE = "_sha256file"
SUPPORTED_MAJOR = "1"

COMPRESSIONS = {"none": "none", "off": "none", "no": "none", "zlib": "zlib", "gzip": "zlib", "bz2": "bz2",
                "bzip2": "bz2", "zstd": "zstd"}
"""Cinder's ``backup_compression_algorithm`` names (as stored, lower-cased) and the codec each means. Cinder's
``gzip`` is ``zlib.compress`` (a zlib stream, not a gzip file) and ``bzip2`` is ``bz2.compress``."""

_DATA = re.compile(r"^(?P<prefix>.+)-(?P<n>\d{5,})$")
_BACKUP_ID = re.compile(r"backup_(?P<id>[0-9A-Za-z\-]+)$")


def object_name(prefix: str, number: int) -> str:
    return f"{prefix}-{number:05d}"


def metadata_name(prefix: str) -> str:
    return prefix + METADATA


def sha256file_name(prefix: str) -> str:
    return prefix + SHA256FILE


def is_own_object(prefix: str, name: str) -> bool:
    """Whether ``name`` is one of the objects Cinder writes for the backup with this prefix."""
    if name in (metadata_name(prefix), sha256file_name(prefix)):
        return True
    m = _DATA.match(name)
    return m is not None and m.group("prefix") == prefix


def posix_container(backup_id: str) -> str:
    """The directory Cinder's posix, nfs and glusterfs drivers use when the backup names no container."""
    return f"{backup_id[0:2]}/{backup_id[2:4]}/{backup_id}"


def prefix_of_metadata(name: str) -> str | None:
    return name[: -len(METADATA)] if name.endswith(METADATA) else None


def backup_id_of_prefix(prefix: str) -> str | None:
    """The backup id at the end of a prefix Cinder generated (``..._backup_<id>``), if it is one."""
    m = _BACKUP_ID.search(prefix)
    return m.group("id") if m else None


@dataclasses.dataclass(frozen=True)
class CinderObject:
    name: str
    offset: int
    length: int
    """Uncompressed bytes."""
    compression: str
    """Codec name as ashvault spells it (``none``, ``zlib``, ``bz2``, ``zstd``)."""
    md5: str | None


@dataclasses.dataclass
class Metadata:
    backup_id: str
    volume_id: str
    version: str
    objects: list[CinderObject]
    parent_id: str | None = None
    name: str | None = None
    description: str | None = None
    created_at: datetime.datetime | None = None
    volume_meta: str | None = None
    extra_metadata: Any = None

    @property
    def end(self) -> int:
        """One past the last byte any object covers."""
        return max((o.offset + o.length for o in self.objects), default=0)

    @property
    def prefix(self) -> str | None:
        """The common prefix of the data objects' names, when every name has Cinder's form."""
        prefixes = {m.group("prefix") for m in (_DATA.match(o.name) for o in self.objects) if m}
        return prefixes.pop() if len(prefixes) == 1 else None


@dataclasses.dataclass
class Sha256File:
    block_size: int
    digests: bytes
    """The SHA-256 digests, 32 bytes each, block after block."""

    @property
    def count(self) -> int:
        return len(self.digests) // 32

    def digest(self, index: int) -> bytes:
        return self.digests[index * 32 : index * 32 + 32]


def _bad(backup_id: str, what: str, reason: str) -> exceptions.InvalidBackup:
    return exceptions.InvalidBackup(reason=f"Cinder backup {backup_id}: {what} {reason}")


def _load(raw: bytes | memoryview, backup_id: str, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(bytes(raw).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise _bad(backup_id, what, f"is not valid JSON (truncated or damaged): {exc}") from exc
    if not isinstance(doc, dict):
        raise _bad(backup_id, what, "is not a JSON object")
    return doc


def parse_time(value: Any) -> datetime.datetime | None:
    """Cinder's ``str(datetime)`` (``2026-01-01 12:00:00+00:00``, older ones without zone) or ISO 8601."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    try:
        when = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=datetime.UTC)


def _int(entry: dict[str, Any], key: str, backup_id: str, name: str) -> int:
    value = entry.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _bad(backup_id, f"_metadata entry of object {name}:", f"'{key}' is {value!r}, not a byte count")
    return value


def _object(item: Any, backup_id: str) -> CinderObject:
    if not isinstance(item, dict) or len(item) != 1:
        raise _bad(backup_id, "_metadata:", f"an 'objects' entry is not a single-key object: {str(item)[:80]}")
    ((name, entry),) = item.items()
    if not isinstance(entry, dict):
        raise _bad(backup_id, f"_metadata entry of object {name}", "is not an object")
    offset = _int(entry, "offset", backup_id, name)
    length = _int(entry, "length", backup_id, name)
    algorithm = str(entry.get("compression") or "none").strip().lower()
    if algorithm not in COMPRESSIONS:
        raise _bad(backup_id, f"object {name}:", f"unknown compression '{algorithm}'")
    md5 = entry.get("md5")
    if md5 is not None and not (isinstance(md5, str) and re.fullmatch(r"[0-9a-fA-F]{32}", md5)):
        raise _bad(backup_id, f"object {name}:", f"md5 '{md5}' is not 32 hex digits")
    return CinderObject(name, offset, length, COMPRESSIONS[algorithm], md5.lower() if md5 else None)


def parse_metadata(raw: bytes | memoryview, backup_id: str) -> Metadata:
    """Parse and check a ``_metadata`` document. Raises ``InvalidBackup`` naming the backup and what is wrong."""
    doc = _load(raw, backup_id, "_metadata")
    version = str(doc.get("version", ""))
    if version.split(".")[0] != SUPPORTED_MAJOR:
        raise _bad(backup_id, "_metadata", f"has version '{version}'; ashvault reads Cinder's 1.x.y")
    objects = doc.get("objects")
    if not isinstance(objects, list):
        raise _bad(backup_id, "_metadata", "has no 'objects' list")
    meta = Metadata(
        backup_id=str(doc.get("backup_id") or ""),
        volume_id=str(doc.get("volume_id") or ""),
        version=version,
        objects=[_object(item, backup_id) for item in objects],
        parent_id=doc.get("parent_id") or None,
        name=doc.get("backup_name"),
        description=doc.get("backup_description"),
        created_at=parse_time(doc.get("created_at")),
        volume_meta=doc.get("volume_meta"),
        extra_metadata=doc.get("extra_metadata"),
    )
    if meta.backup_id != backup_id:
        raise _bad(backup_id, "_metadata", f"belongs to backup '{meta.backup_id}'")
    if not meta.volume_id:
        raise _bad(backup_id, "_metadata", "names no volume_id")
    names = [o.name for o in meta.objects]
    if len(set(names)) != len(names):
        raise _bad(backup_id, "_metadata", "lists an object twice")
    return meta


def parse_sha256file(raw: bytes | memoryview, backup_id: str) -> Sha256File:
    """Parse and check a ``_sha256file`` document. Raises ``InvalidBackup``."""
    doc = _load(raw, backup_id, "_sha256file")
    block = doc.get("chunk_size")
    shas = doc.get("sha256s")
    if not isinstance(block, int) or block <= 0 or not isinstance(shas, list):
        raise _bad(backup_id, "_sha256file", "lacks a positive 'chunk_size' or the 'sha256s' list")
    if doc.get("backup_id") not in (None, backup_id):
        raise _bad(backup_id, "_sha256file", f"belongs to backup '{doc.get('backup_id')}'")
    if not all(isinstance(s, str) and len(s) == 64 for s in shas):
        raise _bad(backup_id, "_sha256file", "holds an entry that is not 64 hex digits")
    try:
        digests = bytes.fromhex("".join(shas))
    except ValueError as exc:
        raise _bad(backup_id, "_sha256file", "holds an entry that is not a SHA-256 in hex") from exc
    return Sha256File(block, digests)
