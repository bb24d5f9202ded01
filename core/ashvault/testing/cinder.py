"""Write backups the way Cinder's ``ChunkedBackupDriver`` does, into any ObjectStore, for tests.

Follows Cinder's algorithm step by step (``chunkeddriver.py``, version 1.0.0): the volume is read in
``object_size`` chunks; each chunk's ``block_size`` blocks are hashed with SHA-256; a full backup writes every
chunk as one object, an incremental writes each run of blocks whose hash differs from the parent's as its own
object (runs never cross a chunk); each object is compressed with the configured algorithm and stored compressed
only when that is smaller (else ``compression: "none"``); the MD5 is of the uncompressed bytes; the sha256 file
covers the whole volume; ``_sha256file`` then ``_metadata`` are written last with ``json.dumps(sort_keys=True,
indent=2)``. Zero data is stored like any other, as Cinder does. Cinder's ``zstd`` is the PyPI ``zstd`` package,
whose ``compress`` writes a standard frame with the content size, as ``zstandard`` does here.

``legacy=True`` writes what Cinder wrote before incrementals (2013-2014): no ``parent_id``, no ``volume_meta``, no
``_sha256file``.
"""

from __future__ import annotations

import base64
import bz2
import dataclasses
import datetime
import hashlib
import json
import uuid
import zlib
from typing import Any

from ashvault.cinder.layout import metadata_name, object_name, posix_container, sha256file_name
from ashvault.objectstore import ObjectStore


def compress(algorithm: str, data: bytes) -> bytes:
    """What Cinder's compressor for ``algorithm`` (as configured, any case) produces."""
    name = algorithm.lower()
    if name in ("zlib", "gzip"):
        return zlib.compress(data)
    if name in ("bz2", "bzip2"):
        return bz2.compress(data)
    if name == "zstd":
        import zstandard

        return zstandard.ZstdCompressor(write_content_size=True).compress(data)
    if name in ("none", "off", "no"):
        return data
    raise ValueError(f"unsupported compression algorithm {algorithm}")


@dataclasses.dataclass
class CinderBackup:
    id: str
    volume_id: str
    container: str
    prefix: str
    parent_id: str | None
    size: int
    object_count: int
    created_at: datetime.datetime
    name: str | None
    description: str | None
    sha256s: list[str]
    block_size: int
    service: str

    def record(self, **extra: Any) -> str:
        """The ``backup_url`` ``cinder backup-export`` gives for it: base64 of every Backup field as JSON."""
        when = self.created_at.strftime("%Y-%m-%dT%H:%M:%SZ")
        doc = {
            "id": self.id, "user_id": "u", "project_id": "p", "volume_id": self.volume_id, "host": "cinder-host",
            "availability_zone": "nova", "container": self.container, "parent_id": self.parent_id,
            "status": "available", "fail_reason": None, "size": max(1, -(-self.size // (1 << 30))),
            "display_name": self.name, "display_description": self.description,
            "service_metadata": self.prefix, "service": self.service, "object_count": self.object_count,
            "temp_volume_id": None, "temp_snapshot_id": None, "num_dependent_backups": 0, "snapshot_id": None,
            "data_timestamp": when, "restore_volume_id": None, "metadata": {}, "encryption_key_id": None,
            "created_at": when, "updated_at": when, "deleted_at": None, "deleted": False, "driver_info": {},
        }
        doc.update(extra)
        return base64.b64encode(json.dumps(doc).encode()).decode()


class CinderWriter:
    """Makes Cinder chunked backups in ``store``.

    ``style`` is ``"swift"`` (prefix ``volume_<vid>/<ts>/az_<az>_backup_<id>``, one container for all, as swift,
    s3 and google do) or ``"posix"`` (prefix ``volume_<vid>_<ts>_backup_<id>`` in the directory
    ``<id[0:2]>/<id[2:4]>/<id>``, as posix, nfs and glusterfs do when no container is given).
    """

    SERVICES = {"swift": "cinder.backup.drivers.swift.SwiftBackupDriver",
                "posix": "cinder.backup.drivers.posix.PosixBackupDriver"}

    def __init__(self, store: ObjectStore, *, style: str = "swift", container: str | None = None,
                 object_size: int = 1 << 20, block_size: int = 32768, compression: str = "zlib",
                 az: str = "nova") -> None:
        if object_size % block_size:
            raise ValueError("object_size must be a multiple of block_size, as Cinder requires")
        self.store = store
        self.style = style
        self.container = container
        self.object_size = object_size
        self.block_size = block_size
        self.compression = compression
        self.az = az
        self._clock = datetime.datetime(2024, 5, 1, 12, 0, 0, tzinfo=datetime.UTC)

    def _prefix(self, volume_id: str, backup_id: str, when: datetime.datetime) -> str:
        ts = when.strftime("%Y%m%d%H%M%S")
        if self.style == "posix":
            return f"volume_{volume_id}_{ts}_backup_{backup_id}"
        return f"volume_{volume_id}/{ts}/az_{self.az}_backup_{backup_id}"

    def backup(self, volume: bytes, *, volume_id: str, parent: CinderBackup | None = None,
               backup_id: str | None = None, name: str | None = "backup", description: str | None = None,
               compression: str | None = None, legacy: bool = False, version: str = "1.0.0",
               extra_metadata: Any = None, volume_meta: str | None = None) -> CinderBackup:
        bid = backup_id or str(uuid.uuid4())
        self._clock += datetime.timedelta(minutes=1)
        when = self._clock
        algorithm = (compression or self.compression).lower()
        container = self.container or (posix_container(bid) if self.style == "posix" else "volumebackups")
        if parent is not None and parent.block_size != self.block_size:
            raise ValueError("Cinder refuses an incremental whose parent has another block size")
        prefix = self._prefix(volume_id, bid, when)
        self.store.put_container(container)
        entries: list[dict[str, Any]] = []
        shas: list[str] = []
        number = 1

        def put(data: bytes, offset: int) -> None:
            nonlocal number
            name = object_name(prefix, number)
            packed = compress(algorithm, data)
            used = algorithm
            if algorithm in ("none", "off", "no") or len(packed) >= len(data):
                packed, used = data, "none"
            self.store.put_object(container, name, packed)
            entry: dict[str, Any] = {"offset": offset, "length": len(data), "md5": hashlib.md5(data).hexdigest()}
            if not legacy or used != "none":
                entry["compression"] = used
            entries.append({name: entry})
            number += 1

        for offset in range(0, len(volume), self.object_size):
            chunk = volume[offset : offset + self.object_size]
            chunk_shas = [hashlib.sha256(chunk[i : i + self.block_size]).hexdigest()
                          for i in range(0, len(chunk), self.block_size)]
            first = len(shas)
            shas += chunk_shas
            if parent is None:
                put(chunk, offset)
                continue
            run = None
            for j, digest in enumerate(chunk_shas):
                changed = first + j >= len(parent.sha256s) or parent.sha256s[first + j] != digest
                if changed and run is None:
                    run = j
                elif not changed and run is not None:
                    put(chunk[run * self.block_size : j * self.block_size], offset + run * self.block_size)
                    run = None
            if run is not None:
                put(chunk[run * self.block_size :], offset + run * self.block_size)

        common = {"backup_id": bid, "volume_id": volume_id, "backup_name": name, "backup_description": description,
                  "created_at": str(when), "version": version}
        meta: dict[str, Any] = {**common, "objects": entries}
        if not legacy:
            meta["parent_id"] = parent.id if parent else None
            meta["volume_meta"] = volume_meta
            sha_doc = {**common, "chunk_size": self.block_size, "sha256s": shas}
            self.store.put_object(container, sha256file_name(prefix),
                                  json.dumps(sha_doc, sort_keys=True, indent=2).encode())
        if extra_metadata is not None:
            meta["extra_metadata"] = extra_metadata
        self.store.put_object(container, metadata_name(prefix), json.dumps(meta, sort_keys=True, indent=2).encode())
        return CinderBackup(bid, volume_id, container, prefix, parent.id if parent else None, len(volume),
                            len(entries), when, name, description, shas, self.block_size, self.SERVICES[self.style])
