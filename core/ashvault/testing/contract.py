"""The conformance suites: every object store and every driver, ours or a third party's, runs them.

Subclass a suite in a test module and provide its fixtures:

- :class:`ObjectStoreContract` needs ``store``: a fresh :class:`~ashvault.objectstore.ObjectStore`.
- :class:`DriverContract` needs ``driver``: a configured :class:`~ashvault.driver.BackupDriver` whose backend is
  empty. It may override ``source``: the :class:`FileVolumes` (volumes in ``tmp_path``) by default, or volumes of
  another scheme, such as RBD images for the ceph driver. The suite runs every operation through the core's routing
  (:mod:`ashvault.formats`), as the manager does: a source the driver moves natively goes its native way, any other
  into the core's chunked engine over the driver's store. Chunked backups get the corruption and leftover tests
  through ``driver.store``; a native format overrides :meth:`DriverContract.corrupt_one_object` and
  :meth:`DriverContract.leftovers`.

A driver without a capability (``capabilities.incremental`` false, say) has the matching tests skipped, and the
suite checks instead that asking for it raises ``NotSupported``.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import pytest

from ashvault import exceptions, formats
from ashvault.driver import BackupDriver, BackupInfo, BackupResult, JobContext
from ashvault.objectstore import ObjectStore
from ashvault.sources import VolumeSource
from ashvault.sources.file import FileSource
from ashvault.testing import volumes
from ashvault.wrappers import RetryingObjectStore

MiB = 1 << 20


class ObjectStoreContract:
    container = "contract-test"

    @pytest.fixture
    def ready(self, store: ObjectStore) -> ObjectStore:
        store.put_container(self.container)
        return store

    def test_put_container_is_idempotent(self, store: ObjectStore) -> None:
        store.put_container(self.container)
        store.put_container(self.container)
        assert store.list_objects(self.container) == []

    def test_missing_container_lists_empty(self, store: ObjectStore) -> None:
        assert store.list_objects("never-made-" + uuid.uuid4().hex[:8]) == []

    @pytest.mark.parametrize("size", [0, 1, 65536, 5 * MiB + 3])
    def test_round_trip(self, ready: ObjectStore, size: int) -> None:
        data = os.urandom(size)
        ready.put_object(self.container, "obj/a", data)
        assert ready.get_object(self.container, "obj/a") == data

    def test_buffers_are_taken_as_bytes_and_not_kept(self, ready: ObjectStore) -> None:
        if not ready.accepts_buffers:
            pytest.skip("put_object takes bytes only (accepts_buffers is false)")
        want = os.urandom(MiB + 5)
        buf = bytearray(want)
        ready.put_object(self.container, "view", memoryview(buf)[1:])
        buf[:] = bytes(len(buf))
        assert ready.get_object(self.container, "view") == want[1:]

    def test_overwrite_replaces(self, ready: ObjectStore) -> None:
        ready.put_object(self.container, "x", b"first")
        ready.put_object(self.container, "x", b"second, longer")
        assert ready.get_object(self.container, "x") == b"second, longer"
        assert ready.list_objects(self.container) == ["x"]

    def test_list_by_prefix(self, ready: ObjectStore) -> None:
        names = ["v_1/b_1/d00000001", "v_1/b_1/manifest", "v_1/b_2/d00000001", "v_2/b_3/manifest", "top"]
        for n in names:
            ready.put_object(self.container, n, n.encode())
        assert ready.list_objects(self.container) == sorted(names)
        assert ready.list_objects(self.container, "v_1/") == sorted(names[:3])
        assert ready.list_objects(self.container, "v_1/b_1/") == sorted(names[:2])
        assert ready.list_objects(self.container, "v_1/b_1/man") == ["v_1/b_1/manifest"]
        assert ready.list_objects(self.container, "v_9/") == []

    def test_object_sizes_agree_with_the_listing(self, ready: ObjectStore) -> None:
        names = {"v_1/b_1/d00000001": b"", "v_1/b_1/manifest": b"m" * 1000, "v_2/b_3/d00000001": b"xyz"}
        for n, data in names.items():
            ready.put_object(self.container, n, data)
        sizes = ready.object_sizes(self.container, "v_1/")
        if sizes is None:
            pytest.skip("the store cannot tell sizes without reading (object_sizes gives None)")
        assert sizes == {"v_1/b_1/d00000001": 0, "v_1/b_1/manifest": 1000}
        assert ready.object_sizes(self.container, "v_9/") == {}

    def test_missing_object(self, ready: ObjectStore) -> None:
        with pytest.raises(exceptions.ObjectNotFound):
            ready.get_object(self.container, "nope")
        with pytest.raises(exceptions.ObjectNotFound):
            ready.delete_object(self.container, "nope")

    def test_delete(self, ready: ObjectStore) -> None:
        ready.put_object(self.container, "a/b/c", b"1")
        ready.put_object(self.container, "a/d", b"2")
        ready.delete_object(self.container, "a/b/c")
        assert ready.list_objects(self.container) == ["a/d"]
        with pytest.raises(exceptions.ObjectNotFound):
            ready.get_object(self.container, "a/b/c")

    @pytest.mark.parametrize("bad", ["../escape", "/abs", "a//b", "a/../../b", ".", ""])
    def test_names_that_escape_are_refused(self, store: ObjectStore, bad: str) -> None:
        with pytest.raises(exceptions.InvalidInput):
            store.put_container(bad)
        store.put_container(self.container)
        with pytest.raises(exceptions.InvalidInput):
            store.put_object(self.container, bad, b"x")

    def test_transient_errors_are_retried_permanent_ones_are_not(self, ready: ObjectStore) -> None:
        from ashvault.testing.fakes import FaultyObjectStore

        failures = {"put_object": 2}

        def fault(method: str, name: str) -> BaseException | None:
            if name == "perm":
                return exceptions.PermissionDenied(reason="no")
            if failures.get(method, 0) > 0:
                failures[method] -= 1
                return exceptions.TransientDriverError(reason="connection reset")
            return None

        faulty = FaultyObjectStore(ready, fault)
        retrying = RetryingObjectStore(faulty, attempts=3, backoff=0, sleep=lambda _s: None)
        retrying.put_object(self.container, "t", b"data")
        assert ready.get_object(self.container, "t") == b"data"
        assert [c for c in faulty.calls if c[0] == "put_object"] == [("put_object", "t")] * 3
        with pytest.raises(exceptions.PermissionDenied):
            retrying.get_object(self.container, "perm")
        assert faulty.calls.count(("get_object", "perm")) == 1


class FileVolumes:
    """Volumes of one source scheme for :class:`DriverContract`; this one makes files in ``directory``.

    Another scheme subclasses it (the ceph tests keep each RBD image equal to a file made here) and overrides
    ``scheme``, ``source`` and what touches a volume's content.
    """

    scheme = "file"

    def __init__(self, conf: Any, directory: str) -> None:
        self.maker = volumes.VolumeMaker(directory)
        self.source: VolumeSource = FileSource(conf)

    def mixed(self, name: str, size: int, *, seed: int, sparse: bool = False) -> str:
        """A volume of zero, text and random runs; returns its location."""
        return self.maker.mixed(name, size, seed=seed, sparse=sparse)

    def random(self, name: str, size: int, *, seed: int) -> str:
        return self.maker.random(name, size, seed=seed)

    def mutate(self, location: str, *, percent: float, seed: int) -> None:
        volumes.mutate(location, percent=percent, seed=seed)

    def new(self, name: str, size: int) -> str:
        """An empty volume (reads as zeros) to restore into."""
        path = os.path.join(self.maker.directory, name)
        self.source.create(path, size)
        return path

    def sha256(self, location: str) -> str:
        return volumes.sha256_file(location)

    def allocated(self, location: str) -> int | None:
        """Bytes the volume takes on its storage, or None when the scheme cannot tell."""
        return os.stat(location).st_blocks * 512


def route(driver: BackupDriver, info: BackupInfo) -> formats.Handler:
    """What the manager would run ``info``'s operations with."""
    return formats.handler(driver, info.format)


class _Cancelled:
    def __init__(self, after: int) -> None:
        self.calls = 0
        self.after = after

    def __call__(self) -> bool:
        self.calls += 1
        return self.calls > self.after


class DriverContract:
    volume_size = 24 * MiB

    @pytest.fixture
    def source(self, driver: BackupDriver, tmp_path: object) -> FileVolumes:
        return FileVolumes(driver.conf, str(tmp_path))

    def _info(self, driver: BackupDriver, source: FileVolumes, parent: BackupInfo | None = None) -> BackupInfo:
        return BackupInfo(id=str(uuid.uuid4()), volume_id=self.volume_id, parent=parent,
                          parent_id=parent.id if parent else None, name="contract",
                          format=formats.for_backup(driver, source.scheme))

    def _backup(self, driver: BackupDriver, source: FileVolumes, location: str,
                parent: BackupInfo | None = None) -> BackupInfo:
        info = self._info(driver, source, parent)
        with source.source.open_reader(location) as reader:
            result: BackupResult = route(driver, info).backup(info, reader, JobContext())
        info.container, info.service_metadata, info.size = result.container, result.service_metadata, result.size
        return info

    def _restore(self, driver: BackupDriver, source: FileVolumes, info: BackupInfo, location: str | None = None,
                 ctx: JobContext | None = None) -> str:
        """Restore into ``location`` (over it), or into a new volume; returns the restored volume's location."""
        new = location is None
        if location is None:
            location = source.new(f"restore-{uuid.uuid4().hex[:8]}", info.size)
        with source.source.open_writer(location) as writer:
            route(driver, info).restore(info, writer, ctx or JobContext(), volume_is_new=new)
        return location

    def _delete(self, driver: BackupDriver, info: BackupInfo) -> None:
        route(driver, info).delete_backup(info, JobContext())

    @pytest.fixture(autouse=True)
    def _volume_id(self) -> None:
        self.volume_id = str(uuid.uuid4())

    def corrupt_one_object(self, driver: BackupDriver, info: BackupInfo) -> str:
        """Flip one byte of one data object of ``info``; return the object's name (as ``verify`` names it)."""
        assert info.format == formats.CHUNKED, "a native format overrides corrupt_one_object"
        store: ObjectStore = driver.store
        names = [n for n in store.list_objects(info.container or "", f"{info.service_metadata}/")
                 if n.rsplit("/", 1)[-1].startswith("d")]
        name = names[len(names) // 2]
        data = bytearray(store.get_object(info.container or "", name))
        data[len(data) // 2] ^= 0x01
        store.put_object(info.container or "", name, bytes(data))
        return name

    def leftovers(self, driver: BackupDriver, info: BackupInfo) -> list[str]:
        """What is left on the backend of ``info``'s volume (a native format adds its own)."""
        if not driver.capabilities.object_store:
            return []
        container = info.container or driver.default_container or ""
        return driver.store.list_objects(container, f"volume_{info.volume_id}/")

    def test_check_for_setup_error_passes(self, driver: BackupDriver) -> None:
        driver.check_for_setup_error()

    def test_full_backup_restores_byte_identical_and_sparse(self, driver: BackupDriver,
                                                            source: FileVolumes) -> None:
        vol = source.mixed("src.img", self.volume_size, seed=1, sparse=True)
        info = self._backup(driver, source, vol)
        out = self._restore(driver, source, info)
        assert source.sha256(out) == source.sha256(vol)
        allocated = source.allocated(out)
        if allocated is not None:
            assert allocated < 0.8 * self.volume_size

    def test_restore_over_existing_volume(self, driver: BackupDriver, source: FileVolumes) -> None:
        vol = source.mixed("src.img", self.volume_size, seed=2)
        info = self._backup(driver, source, vol)
        other = source.random("other.img", self.volume_size, seed=3)
        assert source.sha256(self._restore(driver, source, info, other)) == source.sha256(vol)

    def test_incremental_chain_and_deleting_any_member(self, driver: BackupDriver, source: FileVolumes) -> None:
        vol = source.mixed("src.img", self.volume_size, seed=4)
        full = self._backup(driver, source, vol)
        if not driver.capabilities.incremental:
            with pytest.raises(exceptions.NotSupported):
                self._backup(driver, source, vol, parent=full)
            return
        source.mutate(vol, percent=2, seed=5)
        inc1 = self._backup(driver, source, vol, parent=full)
        want1 = source.sha256(vol)
        source.mutate(vol, percent=2, seed=6)
        inc2 = self._backup(driver, source, vol, parent=inc1)
        want2 = source.sha256(vol)
        self._delete(driver, full)
        assert source.sha256(self._restore(driver, source, inc1)) == want1
        assert source.sha256(self._restore(driver, source, inc2)) == want2
        self._delete(driver, inc2)
        assert source.sha256(self._restore(driver, source, inc1)) == want1

    def test_delete_leaves_nothing_and_is_idempotent(self, driver: BackupDriver, source: FileVolumes) -> None:
        vol = source.mixed("src.img", self.volume_size, seed=7)
        full = self._backup(driver, source, vol)
        source.mutate(vol, percent=5, seed=8)
        inc = self._backup(driver, source, vol, parent=full if driver.capabilities.incremental else None)
        self._delete(driver, full)
        self._delete(driver, inc)
        self._delete(driver, inc)
        assert self.leftovers(driver, inc) == []

    def test_export_import_round_trip(self, driver: BackupDriver, source: FileVolumes) -> None:
        vol = source.mixed("src.img", self.volume_size, seed=9)
        info = self._backup(driver, source, vol)
        driver_info = route(driver, info).export_record(info)
        route(driver, info).import_record(info, driver_info)
        missing = BackupInfo(id=str(uuid.uuid4()), volume_id=self.volume_id, container=info.container,
                             format=info.format)
        with pytest.raises(exceptions.InvalidBackup):
            route(driver, missing).import_record(missing, driver_info)

    def test_corruption_is_named_and_never_restored(self, driver: BackupDriver, source: FileVolumes) -> None:
        vol = source.random("src.img", self.volume_size, seed=10)
        info = self._backup(driver, source, vol)
        assert route(driver, info).verify(info, JobContext()).ok
        name = self.corrupt_one_object(driver, info)
        report = route(driver, info).verify(info, JobContext())
        assert [n for n, _why in report.corrupt] == [name]
        with pytest.raises(exceptions.IntegrityError) as err:
            self._restore(driver, source, info)
        assert name in str(err.value) and info.id in str(err.value)

    def test_cancelled_restore_raises(self, driver: BackupDriver, source: FileVolumes) -> None:
        vol = source.random("src.img", self.volume_size, seed=11)
        info = self._backup(driver, source, vol)
        ctx = JobContext(is_cancelled=_Cancelled(1), cancel_error=exceptions.RestoreCancelled)
        with pytest.raises(exceptions.RestoreCancelled):
            self._restore(driver, source, info, ctx=ctx)

    def test_cancelled_backup_is_cleaned_by_delete(self, driver: BackupDriver, source: FileVolumes) -> None:
        if not driver.capabilities.force_delete:
            pytest.skip("driver declares no cancel support (capabilities.force_delete)")
        vol = source.random("src.img", self.volume_size, seed=12)
        info = self._info(driver, source)
        ctx = JobContext(is_cancelled=_Cancelled(2), cancel_error=exceptions.BackupCancelled)
        with source.source.open_reader(vol) as reader, pytest.raises(exceptions.BackupCancelled):
            route(driver, info).backup(info, reader, ctx)
        self._delete(driver, info)
        assert self.leftovers(driver, info) == []
