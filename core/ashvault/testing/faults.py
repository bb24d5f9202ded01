"""A fault-injecting object store, and the suite any driver that offers an object store runs through it.

:class:`FaultInjectingObjectStore` sits between the core's wrappers (:func:`ashvault.wrappers.wrap`: retries,
encryption) and a driver's own store, so what it injects meets the code path a real failure would. It can fail calls
transiently or for good, add latency, write part of an object (then fail, as a store may on a dropped connection, or
report success, breaking the store's contract), hold writes back and apply them out of order (and lose the ones held
at a "crash"), and flip a bit of what a read returns. Every injection is counted in
:attr:`FaultInjectingObjectStore.injected`.

Use it on any driver with ``capabilities.object_store`` (a :class:`~ashvault.chunked.ChunkedBackupDriver`, or a
Tier 1 driver that also offers a store) with :func:`inject`, or run :class:`FaultContract`, which backs up file
volumes as ``chunked/1`` through the core's routing, as the manager does::

    class TestMyDriverFaults(FaultContract):
        @pytest.fixture
        def driver(self, ...): return make_driver(...)   # as for DriverContract
"""

from __future__ import annotations

import collections
import dataclasses
import os
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from ashvault import exceptions, formats
from ashvault.driver import BackupDriver, BackupInfo, JobContext
from ashvault.objectstore import ObjectStore, ObjectStoreWrapper
from ashvault.sources.file import FileSource
from ashvault.testing import volumes
from ashvault.testing.contract import route

MiB = 1 << 20


@dataclasses.dataclass
class FaultPlan:
    """What to inject, each as the share of eligible calls it hits (0 to 1), drawn from a seeded generator."""

    seed: int = 0
    transient: float = 0.0
    """Any call raises ``TransientDriverError`` before reaching the store."""
    permanent: float = 0.0
    """Any call raises ``permanent_error()`` before reaching the store."""
    permanent_error: Callable[[], exceptions.DriverError] = lambda: exceptions.QuotaExceeded(reason="injected")
    latency: float = 0.0
    """Every call first sleeps up to this many seconds."""
    partial_write: float = 0.0
    """A put stores a prefix of its data, then raises ``TransientDriverError``."""
    torn_write: float = 0.0
    """A put stores a prefix of its data and returns as if it had succeeded."""
    reorder_window: int = 0
    """Puts are held back and applied in random order once more than this many wait (0: in order, at once)."""
    corrupt_read: float = 0.0
    """A get returns its data with one bit flipped."""
    names: Callable[[str], bool] = lambda _name: True
    """Only objects (or list prefixes) for which this is true are hit."""


class FaultInjectingObjectStore(ObjectStoreWrapper):
    """Injects the faults of a :class:`FaultPlan` into the calls it passes on."""

    def __init__(self, inner: ObjectStore, plan: FaultPlan) -> None:
        super().__init__(inner)
        self.plan = plan
        self.injected: collections.Counter[str] = collections.Counter()
        self.hit: dict[str, list[str]] = collections.defaultdict(list)
        """Names each kind of fault touched, in order: ``torn_write``, ``corrupt_read``, ``lost_write``..."""
        self._rnd = random.Random(plan.seed)
        self._lock = threading.Lock()
        self._pending: list[tuple[str, str, bytes]] = []

    @property
    def accepts_buffers(self) -> bool:  # type: ignore[override]
        return True

    def _roll(self, kind: str, rate: float, name: str) -> bool:
        if rate <= 0 or not self.plan.names(name):
            return False
        with self._lock:
            hit = self._rnd.random() < rate
            if hit:
                self.injected[kind] += 1
                self.hit[kind].append(name)
        return hit

    def _before(self, method: str, name: str) -> None:
        if self.plan.latency:
            with self._lock:
                wait = self._rnd.random() * self.plan.latency
            time.sleep(wait)
        if self._roll("transient", self.plan.transient, name):
            raise exceptions.TransientDriverError(reason=f"injected: {method} {name}")
        if self._roll("permanent", self.plan.permanent, name):
            raise self.plan.permanent_error()

    def _cut(self, data: bytes) -> bytes:
        with self._lock:
            return data[: self._rnd.randrange(len(data))] if data else b""

    def put_container(self, container: str) -> None:
        self._before("put_container", container)
        self.inner.put_container(container)

    def list_objects(self, container: str, prefix: str = "") -> list[str]:
        self._before("list_objects", prefix)
        return self.inner.list_objects(container, prefix)

    def put_object(self, container: str, name: str, data: bytes) -> None:
        self._before("put_object", name)
        data = bytes(data)
        if self._roll("partial_write", self.plan.partial_write, name):
            self._store(container, name, self._cut(data))
            raise exceptions.TransientDriverError(reason=f"injected: connection lost writing {name}")
        if self._roll("torn_write", self.plan.torn_write, name):
            data = self._cut(data)
        self._store(container, name, data)

    def _store(self, container: str, name: str, data: bytes) -> None:
        if self.plan.reorder_window <= 0:
            self.inner.put_object(container, name, data)
            return
        with self._lock:
            self._pending.append((container, name, data))
            due = []
            while len(self._pending) > self.plan.reorder_window:
                due.append(self._pending.pop(self._rnd.randrange(len(self._pending))))
        for c, n, d in due:
            self.inner.put_object(c, n, d)

    def get_object(self, container: str, name: str) -> bytes | memoryview:
        self._before("get_object", name)
        data = self.inner.get_object(container, name)
        if data and self._roll("corrupt_read", self.plan.corrupt_read, name):
            flipped = bytearray(data)
            with self._lock:
                bit = self._rnd.randrange(8 * len(flipped))
            flipped[bit // 8] ^= 1 << (bit % 8)
            return bytes(flipped)
        return data

    def delete_object(self, container: str, name: str) -> None:
        self._before("delete_object", name)
        self.inner.delete_object(container, name)

    def settle(self) -> None:
        """Apply every held-back write, in random order."""
        with self._lock:
            due, self._pending = self._pending, []
            self._rnd.shuffle(due)
        for c, n, d in due:
            self.inner.put_object(c, n, d)

    def crash(self) -> list[str]:
        """Lose every held-back write, as a crash of the backend would; returns their names."""
        with self._lock:
            lost, self._pending = [n for _c, n, _d in self._pending], []
        self.injected["lost_write"] += len(lost)
        self.hit["lost_write"].extend(lost)
        return lost


def first_time() -> Callable[[str], bool]:
    """A :attr:`FaultPlan.names` that is true once per name: each object's first try is hit, its retry is not."""
    seen: set[str] = set()
    lock = threading.Lock()

    def first(name: str) -> bool:
        with lock:
            new = name not in seen
            seen.add(name)
        return new

    return first


def inject(driver: BackupDriver, plan: FaultPlan, *, attempts: int = 8) -> FaultInjectingObjectStore:
    """Put a fault-injecting store under ``driver``'s retries and encryption, retried ``attempts`` times, at once.

    The store the driver makes is wrapped where it is made, so the base class's ``store`` puts the core's wrappers
    (:func:`ashvault.wrappers.wrap`) around the fault store, as around the real one."""
    if not driver.capabilities.object_store:
        raise exceptions.NotSupported(reason=f"driver '{driver.name}' offers no object store to inject faults into")
    driver.close()
    make = driver.make_object_store
    made: list[FaultInjectingObjectStore] = []

    def faulty() -> ObjectStore:
        made.append(FaultInjectingObjectStore(make(), plan))
        return made[-1]

    setattr(driver, "make_object_store", faulty)  # noqa: B010 (an instance attribute over the method, on purpose)
    driver.conf.set_override("retry_attempts", attempts, group=driver.option_group)
    driver.conf.set_override("retry_backoff", 0, group=driver.option_group)
    driver.store.list_objects(driver.default_container or "volumebackups", "none/")  # makes the store now
    return made[-1]


class FaultContract:
    """A driver's store under injected faults: transient ones retried to success, permanent ones reported, and no
    wrong byte ever restored. Needs a ``driver`` fixture as :class:`~ashvault.testing.contract.DriverContract`.

    Its backups are ``chunked/1`` (the formats kept in the driver's store, where the faults are) of file volumes,
    and every operation goes to the handler the core routes that tag to."""

    volume_size = 8 * MiB

    @pytest.fixture(autouse=True)
    def _offers_a_store(self, driver: BackupDriver) -> None:
        if not driver.capabilities.object_store:
            pytest.skip(f"driver '{driver.name}' offers no object store (capabilities.object_store)")

    @pytest.fixture
    def vols(self, tmp_path: object) -> Iterator[volumes.VolumeMaker]:
        yield volumes.VolumeMaker(str(tmp_path))

    @pytest.fixture(autouse=True)
    def _volume_id(self) -> None:
        self.volume_id = str(uuid.uuid4())

    def _backup(self, driver: BackupDriver, path: str, parent: BackupInfo | None = None) -> BackupInfo:
        info = BackupInfo(id=str(uuid.uuid4()), volume_id=self.volume_id, parent=parent,
                          parent_id=parent.id if parent else None, format=formats.CHUNKED)
        with FileSource(driver.conf).open_reader(path) as reader:
            res = route(driver, info).backup(info, reader, JobContext())
        info.container, info.service_metadata, info.size = res.container, res.service_metadata, res.size
        return info

    def _restore(self, driver: BackupDriver, info: BackupInfo, path: str) -> str:
        src = FileSource(driver.conf)
        if os.path.exists(path):
            os.unlink(path)
        src.create(path, info.size)
        with src.open_writer(path) as writer:
            route(driver, info).restore(info, writer, JobContext(), volume_is_new=True)
        return volumes.sha256_file(path)

    def test_transient_faults_are_retried_to_success(self, driver: BackupDriver, vols: volumes.VolumeMaker,
                                                     tmp_path: object, capsys: pytest.CaptureFixture[str]) -> None:
        path = vols.mixed("src.img", self.volume_size, seed=21)
        faulty = inject(driver, FaultPlan(seed=1, transient=0.15, partial_write=0.1, latency=0.002))
        full = self._backup(driver, path)
        want_full = volumes.sha256_file(path)
        volumes.mutate(path, percent=10, seed=22)
        inc = self._backup(driver, path, parent=full)
        want_inc = volumes.sha256_file(path)
        # Seeded rates hit a varying set of calls (threads draw in any order): make partial writes certain here.
        faulty.plan = FaultPlan(partial_write=1.0, names=first_time())
        partial_before = faulty.injected["partial_write"]
        volumes.mutate(path, percent=10, seed=29)
        inc2 = self._backup(driver, path, parent=inc)
        want_inc2 = volumes.sha256_file(path)
        assert faulty.injected["partial_write"] - partial_before >= 3  # a data object, the index, the manifest
        faulty.plan = FaultPlan(seed=2, transient=0.15, latency=0.002)
        for info in (full, inc, inc2):
            assert route(driver, info).verify(info, JobContext()).ok
        out = os.path.join(str(tmp_path), "out.img")
        assert self._restore(driver, full, out) == want_full
        assert self._restore(driver, inc, out) == want_inc
        route(driver, full).delete_backup(full, JobContext())
        assert self._restore(driver, inc, out) == want_inc
        assert self._restore(driver, inc2, out) == want_inc2
        assert faulty.injected["transient"] > 0, faulty.injected
        with capsys.disabled():
            print(f"\nfaults injected and retried ({type(driver).__name__}): {dict(faulty.injected)}")

    def test_permanent_faults_are_reported_and_harm_nothing(self, driver: BackupDriver,
                                                            vols: volumes.VolumeMaker, tmp_path: object) -> None:
        path = vols.mixed("src.img", self.volume_size, seed=23)
        faulty = inject(driver, FaultPlan())
        good = self._backup(driver, path)
        want = volumes.sha256_file(path)
        volumes.mutate(path, percent=10, seed=24)
        faulty.plan.permanent = 1.0
        faulty.plan.names = lambda name: "/d0" in name
        puts_before = len(faulty.hit["permanent"])
        with pytest.raises(exceptions.QuotaExceeded):
            self._backup(driver, path, parent=good)
        assert len(faulty.hit["permanent"]) > puts_before
        faulty.plan.permanent = 0.0
        assert route(driver, good).verify(good, JobContext()).ok
        assert self._restore(driver, good, os.path.join(str(tmp_path), "out.img")) == want

    def test_silent_read_corruption_is_never_restored(self, driver: BackupDriver, vols: volumes.VolumeMaker,
                                                      tmp_path: object, capsys: pytest.CaptureFixture[str]) -> None:
        path = vols.mixed("src.img", self.volume_size, seed=25)
        want = volumes.sha256_file(path)
        faulty = inject(driver, FaultPlan(seed=3))
        info = self._backup(driver, path)
        faulty.plan.corrupt_read = 0.25
        out = os.path.join(str(tmp_path), "out.img")
        outcomes: collections.Counter[str] = collections.Counter()
        for _ in range(8):
            before = len(faulty.hit["corrupt_read"])
            try:
                got = self._restore(driver, info, out)
            except exceptions.IntegrityError as exc:
                named = {n for n in faulty.hit["corrupt_read"][before:] if n in str(exc)}
                assert named, f"the error names no corrupted object: {exc}"
                outcomes["refused, object named"] += 1
                continue
            except exceptions.EncryptionKeyError as exc:
                assert any("ashvault-keys/" in n for n in faulty.hit["corrupt_read"][before:]), exc
                outcomes["refused, key object"] += 1
                continue
            assert got == want, "a restore that succeeded wrote wrong bytes"
            outcomes["restored intact"] += 1
        assert outcomes["refused, object named"] > 0
        with capsys.disabled():
            print(f"\nrestores under bit flips on read ({type(driver).__name__}): {dict(outcomes)}")

    def test_torn_and_lost_writes_are_found(self, driver: BackupDriver, vols: volumes.VolumeMaker,
                                            tmp_path: object) -> None:
        path = vols.mixed("src.img", self.volume_size, seed=27)
        faulty = inject(driver, FaultPlan(seed=5, torn_write=1.0, names=lambda n: n.endswith("/d00000001")))
        info = self._backup(driver, path)
        torn = set(faulty.hit["torn_write"])
        assert torn
        report = route(driver, info).verify(info, JobContext())
        assert {n for n, _why in report.corrupt} == torn
        with pytest.raises(exceptions.IntegrityError) as err:
            self._restore(driver, info, os.path.join(str(tmp_path), "out.img"))
        assert any(n in str(err.value) for n in torn) and info.id in str(err.value)

        faulty = inject(driver, FaultPlan(seed=6, reorder_window=4))
        volumes.mutate(path, percent=20, seed=28)
        lost_info = self._backup(driver, path)
        lost = set(faulty.crash())
        assert lost
        manifest = f"{lost_info.service_metadata}/manifest"
        if manifest in lost:
            with pytest.raises(exceptions.InvalidBackup):
                route(driver, lost_info).verify(lost_info, JobContext())
        else:
            report = route(driver, lost_info).verify(lost_info, JobContext())
            assert {n for n, _why in report.corrupt} == lost
            assert all(why == "object is missing" for _n, why in report.corrupt)
        with pytest.raises((exceptions.IntegrityError, exceptions.InvalidBackup)):
            self._restore(driver, lost_info, os.path.join(str(tmp_path), "lost.img"))

