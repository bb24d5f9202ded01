"""Make Cinder chunked backups with Cinder's own PosixBackupDriver (run by a Python that has ``cinder`` installed).

    python cinder_corpus.py BACKUP_PATH COMPRESSION VOLUME_FILE...

Backs up each volume file in turn, the first in full and each next one as an incremental on the previous (the files
are successive states of one volume), and restores each backup with Cinder's own restore into ``<file>.cinder``.
Prints one JSON object: the backups' records as ``cinder backup-export`` encodes them.

Cinder's database, notifications and volume-metadata API are out of reach here, so the backup objects are plain
records with the fields the driver reads; the driver's chunking, hashing, compression, naming, metadata and restore
code is Cinder's, unchanged.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import json
import os
import sys
import uuid
from typing import Any


class Record(dict):  # type: ignore[type-arg]
    """A Backup object as the chunked driver uses it: attributes and items, save/refresh that do nothing."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def save(self) -> None:
        pass

    def refresh(self) -> None:
        pass

    @contextlib.contextmanager
    def as_read_deleted(self) -> Any:
        yield


def main(path: str, compression: str, files: list[str]) -> None:
    from cinder import context, objects
    from cinder.backup import chunkeddriver
    from cinder.backup.drivers import posix
    from cinder.volume import volume_utils
    from oslo_config import cfg

    objects.register_all()
    conf = cfg.CONF
    conf([], project="cinder", default_config_files=[])
    conf.set_override("connection", "sqlite://", group="database")  # never used: the driver opens it at start
    conf.set_override("backup_posix_path", path)
    conf.set_override("backup_file_size", 1 << 20)
    conf.set_override("backup_sha_block_size_bytes", 32768)
    conf.set_override("backup_compression_algorithm", compression)
    conf.set_override("backup_enable_progress_timer", False)
    records: dict[str, Record] = {}
    volume_utils.notify_about_backup_usage = lambda *a, **k: None
    objects.Backup.get_by_id = staticmethod(lambda _ctx, bid: records[bid])  # type: ignore[method-assign]
    chunkeddriver.ChunkedBackupDriver.get_metadata = lambda self, vid: None  # type: ignore[method-assign]
    chunkeddriver.ChunkedBackupDriver.put_metadata = lambda self, vid, meta: None  # type: ignore[method-assign]
    ctx = context.get_admin_context()
    volume_id = str(uuid.uuid4())

    class DB:
        def volume_get(self, _ctx: Any, vid: str) -> dict[str, Any]:
            return {"id": vid, "size": 1, "availability_zone": "nova"}

    parent = None
    urls = []
    for f in files:
        bid = str(uuid.uuid4())
        now = datetime.datetime.now(datetime.UTC)
        rec = Record(id=bid, volume_id=volume_id, container=None, parent_id=parent, parent=None, size=1,
                     status="creating", display_name=f"cinder-{len(urls)}", display_description=None,
                     service_metadata=None, object_count=0, created_at=now, data_timestamp=now,
                     availability_zone="nova", snapshot_id=None, service="cinder.backup.drivers.posix")
        records[bid] = rec
        driver = posix.PosixBackupDriver(ctx)
        driver.db = DB()
        with open(f, "rb") as vol:
            driver.backup(rec, vol)
        rec.status = "available"
        parent = bid
        urls.append((rec, f))
    for rec, f in urls:
        rec.status = "restoring"
        driver = posix.PosixBackupDriver(ctx)
        driver.db = DB()
        with open(f + ".cinder", "wb") as out:
            out.truncate(os.path.getsize(f))
        with open(f + ".cinder", "r+b") as out:
            driver.restore(rec, volume_id, out, True)
    out = []
    for rec, _f in urls:
        doc = {k: (v.isoformat() if isinstance(v, datetime.datetime) else v) for k, v in rec.items()
               if k != "parent"}
        doc["driver_info"] = {}
        out.append(base64.b64encode(json.dumps(doc).encode()).decode())
    print(json.dumps({"volume_id": volume_id, "records": out}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
