"""The conformance suites: every object store and every driver, ours or a third party's, runs them.

Subclass a suite in a test module and provide its fixtures:

- :class:`ObjectStoreContract` needs ``store``: a fresh :class:`~ashvault.objectstore.ObjectStore`.
- :class:`DriverContract` needs ``driver``: a configured :class:`~ashvault.driver.BackupDriver` whose backend is
  empty. Volumes are made in ``tmp_path`` by the suite. Chunked drivers get the corruption tests through
  ``driver.store``; other drivers override :meth:`DriverContract.corrupt_one_object`.

A driver without a capability (``capabilities.incremental`` false, say) has the matching tests skipped, and the
suite checks instead that asking for it raises ``NotSupported``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from ashvault import exceptions
from ashvault.driver import BackupDriver, BackupInfo, BackupResult, JobContext
from ashvault.objectstore import ObjectStore
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


_sha = volumes.sha256_file


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
    def vols(self, tmp_path: object) -> Iterator[volumes.VolumeMaker]:
        yield volumes.VolumeMaker(str(tmp_path))

    def _backup(self, driver: BackupDriver, path: str, parent: BackupInfo | None = None) -> BackupInfo:
        info = BackupInfo(id=str(uuid.uuid4()), volume_id=self.volume_id, parent=parent,
                          parent_id=parent.id if parent else None, name="contract")
        with FileSource(driver.conf).open_reader(path) as reader:
            result: BackupResult = driver.backup(info, reader, JobContext())
        info.container, info.service_metadata, info.size = result.container, result.service_metadata, result.size
        return info

    def _restore(self, driver: BackupDriver, info: BackupInfo, path: str, *, new: bool = True) -> str:
        src = FileSource(driver.conf)
        if new:
            src.create(path, info.size)
        with src.open_writer(path) as writer:
            driver.restore(info, writer, JobContext(), volume_is_new=new)
        return _sha(path)

    @pytest.fixture(autouse=True)
    def _volume_id(self) -> None:
        self.volume_id = str(uuid.uuid4())

    def corrupt_one_object(self, driver: BackupDriver, info: BackupInfo) -> str:
        """Flip one byte of one data object of ``info``; return the object's name."""
        store: ObjectStore = driver.store  # type: ignore[attr-defined]
        names = [n for n in store.list_objects(info.container or "", info.service_metadata + "/")
                 if n.rsplit("/", 1)[-1].startswith("d")]
        name = names[len(names) // 2]
        data = bytearray(store.get_object(info.container or "", name))
        data[len(data) // 2] ^= 0x01
        store.put_object(info.container or "", name, bytes(data))
        return name

    def leftovers(self, driver: BackupDriver, info: BackupInfo) -> list[str]:
        store: ObjectStore = driver.store  # type: ignore[attr-defined]
        container = info.container or driver.default_container  # type: ignore[attr-defined]
        return store.list_objects(container, f"volume_{info.volume_id}/")

    def test_check_for_setup_error_passes(self, driver: BackupDriver) -> None:
        driver.check_for_setup_error()

    def test_full_backup_restores_byte_identical_and_sparse(self, driver: BackupDriver, vols: volumes.VolumeMaker,
                                                            tmp_path: object) -> None:
        path = vols.mixed("src.img", self.volume_size, seed=1, sparse=True)
        info = self._backup(driver, path)
        out = os.path.join(str(tmp_path), "out.img")
        assert self._restore(driver, info, out) == _sha(path)
        assert os.stat(out).st_blocks * 512 < 0.8 * self.volume_size

    def test_restore_over_existing_volume(self, driver: BackupDriver, vols: volumes.VolumeMaker,
                                          tmp_path: object) -> None:
        path = vols.mixed("src.img", self.volume_size, seed=2)
        info = self._backup(driver, path)
        other = vols.random("other.img", self.volume_size, seed=3)
        assert self._restore(driver, info, other, new=False) == _sha(path)

    def test_incremental_chain_and_deleting_any_member(self, driver: BackupDriver, vols: volumes.VolumeMaker,
                                                       tmp_path: object) -> None:
        if not driver.capabilities.incremental:
            path = vols.mixed("src.img", self.volume_size, seed=4)
            full = self._backup(driver, path)
            with pytest.raises(exceptions.NotSupported):
                self._backup(driver, path, parent=full)
            return
        path = vols.mixed("src.img", self.volume_size, seed=4)
        full = self._backup(driver, path)
        volumes.mutate(path, percent=2, seed=5)
        inc1 = self._backup(driver, path, parent=full)
        want1 = _sha(path)
        volumes.mutate(path, percent=2, seed=6)
        inc2 = self._backup(driver, path, parent=inc1)
        want2 = _sha(path)
        driver.delete_backup(full, JobContext())
        assert self._restore(driver, inc1, os.path.join(str(tmp_path), "r1.img")) == want1
        assert self._restore(driver, inc2, os.path.join(str(tmp_path), "r2.img")) == want2
        driver.delete_backup(inc2, JobContext())
        assert self._restore(driver, inc1, os.path.join(str(tmp_path), "r3.img")) == want1

    def test_delete_leaves_nothing_and_is_idempotent(self, driver: BackupDriver, vols: volumes.VolumeMaker) -> None:
        path = vols.mixed("src.img", self.volume_size, seed=7)
        full = self._backup(driver, path)
        volumes.mutate(path, percent=5, seed=8)
        inc = (self._backup(driver, path, parent=full) if driver.capabilities.incremental
               else self._backup(driver, path))
        driver.delete_backup(full, JobContext())
        driver.delete_backup(inc, JobContext())
        driver.delete_backup(inc, JobContext())
        assert self.leftovers(driver, inc) == []

    def test_export_import_round_trip(self, driver: BackupDriver, vols: volumes.VolumeMaker) -> None:
        path = vols.mixed("src.img", self.volume_size, seed=9)
        info = self._backup(driver, path)
        driver_info = driver.export_record(info)
        driver.import_record(info, driver_info)
        missing = BackupInfo(id=str(uuid.uuid4()), volume_id=self.volume_id, container=info.container)
        with pytest.raises(exceptions.InvalidBackup):
            driver.import_record(missing, driver_info)

    def test_corruption_is_named_and_never_restored(self, driver: BackupDriver, vols: volumes.VolumeMaker,
                                                    tmp_path: object) -> None:
        path = vols.random("src.img", self.volume_size, seed=10)
        info = self._backup(driver, path)
        assert driver.verify(info, JobContext()).ok
        name = self.corrupt_one_object(driver, info)
        report = driver.verify(info, JobContext())
        assert [n for n, _why in report.corrupt] == [name]
        with pytest.raises(exceptions.IntegrityError) as err:
            self._restore(driver, info, os.path.join(str(tmp_path), "bad.img"))
        assert name in str(err.value) and info.id in str(err.value)

    def test_cancelled_restore_raises(self, driver: BackupDriver, vols: volumes.VolumeMaker,
                                      tmp_path: object) -> None:
        path = vols.random("src.img", self.volume_size, seed=11)
        info = self._backup(driver, path)
        out = os.path.join(str(tmp_path), "out.img")
        FileSource(driver.conf).create(out, info.size)
        ctx = JobContext(is_cancelled=_Cancelled(1), cancel_error=exceptions.RestoreCancelled)
        with FileSource(driver.conf).open_writer(out) as writer, pytest.raises(exceptions.RestoreCancelled):
            driver.restore(info, writer, ctx, volume_is_new=True)

    def test_cancelled_backup_is_cleaned_by_delete(self, driver: BackupDriver, vols: volumes.VolumeMaker) -> None:
        if not driver.capabilities.force_delete:
            pytest.skip("driver declares no cancel support (capabilities.force_delete)")
        path = vols.random("src.img", self.volume_size, seed=12)
        info = BackupInfo(id=str(uuid.uuid4()), volume_id=self.volume_id)
        ctx = JobContext(is_cancelled=_Cancelled(2), cancel_error=exceptions.BackupCancelled)
        with FileSource(driver.conf).open_reader(path) as reader, pytest.raises(exceptions.BackupCancelled):
            driver.backup(info, reader, ctx)
        driver.delete_backup(info, JobContext())
        assert self.leftovers(driver, info) == []
