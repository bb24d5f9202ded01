"""What a backup killed mid-write leaves in a posix repository goes with the backup's deletion."""

from __future__ import annotations

import pathlib

from ashvault.driver import JobContext
from ashvault.engine import gc
from ashvault.engine.layout import backup_prefix, volume_prefix
from ashvault_posix.objectstore import PosixObjectStore

VOLUME, BACKUP, OTHER = "7b8c1d2e-0000-4000-8000-000000000001", "7b8c1d2e-0000-4000-8000-000000000002", "x"


def test_a_backup_with_only_temporaries_is_removed(tmp_path: pathlib.Path) -> None:
    store = PosixObjectStore(str(tmp_path), fsync=False, direct_io=False)
    store.put_container("c")
    store.put_object("c", f"{volume_prefix(VOLUME)}/backup_{OTHER}/d00000001", b"still being written")
    prefix = backup_prefix(VOLUME, BACKUP)
    where = tmp_path / "c" / prefix
    where.mkdir(parents=True)
    (where / ".tmp-d00000001.0badc0de").write_bytes(b"half an obj")
    (where / ".tmp-d00000002.0badc0df").write_bytes(b"")
    assert store.list_objects("c", prefix + "/") == []  # a store lists no temporaries

    gc.delete_backup(store, "c", prefix, volume_prefix(VOLUME), JobContext())
    assert not where.exists(), sorted(p.name for p in where.iterdir())
    assert store.list_objects("c") == [f"{volume_prefix(VOLUME)}/backup_{OTHER}/d00000001"], "another job's objects"


def test_a_backup_whose_container_never_existed(tmp_path: pathlib.Path) -> None:
    store = PosixObjectStore(str(tmp_path), create_containers=False, fsync=False, direct_io=False)
    gc.delete_backup(store, "missing", backup_prefix(VOLUME, BACKUP), volume_prefix(VOLUME), JobContext())
    assert not (tmp_path / "missing").exists()
