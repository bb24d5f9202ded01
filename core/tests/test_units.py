"""Small pieces: extent arithmetic, names, driver names, wrappers, locks, plugin discovery."""

from __future__ import annotations

import configparser
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

from ashvault import exceptions, plugins
from ashvault.engine import extents
from ashvault.locks import FileLock, SlotSemaphore, owner_alive
from ashvault.objectstore import check_name
from ashvault.testing.fakes import FaultyObjectStore, MemoryObjectStore
from ashvault.wrappers import RetryingObjectStore
from ashvault.wrappers.throttle import TokenBucket

MiB = 1 << 20


def test_subtract_and_merge() -> None:
    base = [(0, 100, 0, 0), (200, 100, 1, 0)]
    cut = [(50, 10), (90, 130), (280, 5)]
    assert list(extents.subtract(base, cut)) == [(0, 50, 0, 0), (60, 30, 0, 60), (220, 60, 1, 20),
                                                 (285, 15, 1, 85)]
    merged = extents.merge([(0, 10, 0, 0)], [(10, 10, 0, 10), (30, 5, 1, 0)])
    assert merged == [(0, 20, 0, 0), (30, 5, 1, 0)]
    assert list(extents.gaps(merged, 40)) == [(20, 10), (35, 5)]
    assert list(extents.truncate(merged, 15)) == [(0, 15, 0, 0)]


@pytest.mark.parametrize("name", ["ok", "a/b/c", "volume_1/backup_2/d00000001", "x.y-z_1"])
def test_good_names(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", "/a", "a/", "a//b", "..", "a/../b", ".", "a b", "-x", "a/.hidden"])
def test_bad_names(name: str) -> None:
    with pytest.raises(exceptions.InvalidInput):
        check_name(name)


@pytest.mark.parametrize(("value", "name"), [
    ("posix", "posix"),
    ("cinder.backup.drivers.posix.PosixBackupDriver", "posix"),
    ("cinder.backup.drivers.swift", "swift"),
    ("cinder.backup.drivers.gcs.GoogleBackupDriver", "google"),
    ("gcs", "google"),
    ("cinder.backup.drivers.ceph.CephBackupDriver", "ceph"),
    ("cinder.backup.drivers.tsm.TSMBackupDriver", "tsm"),
])
def test_driver_names(value: str, name: str) -> None:
    assert plugins.driver_name(value) == name


def test_unknown_driver_says_what_to_install() -> None:
    assert plugins.install_hint(plugins.DRIVERS, "swift") == (
        "install ashvault-swift: pip install ./plugins/swift from a clone of the ashvault repository")
    assert plugins.install_hint(plugins.SOURCES, "rbd").startswith("install ashvault-ceph: pip install ./plugins/ceph ")
    with pytest.raises(exceptions.PluginNotFound, match="install the plugin that provides it") as err:
        plugins.load_class(plugins.DRIVERS, "s3", kind="backup driver")
    assert "pip install" not in str(err.value)


def test_install_hints_name_only_distributions_of_this_repository() -> None:
    provided = {}
    for path in pathlib.Path(__file__).resolve().parents[2].glob("plugins/*/setup.cfg"):
        setup = configparser.ConfigParser()
        setup.read(path)
        for line in setup.get("options.entry_points", plugins.DRIVERS, fallback="").splitlines():
            if "=" in line:
                provided[line.split("=")[0].strip()] = setup.get("metadata", "name")
        assert plugins.FOLDERS[setup.get("metadata", "name")] == str(path.parent.relative_to(path.parents[2]))
    hints = plugins.DISTRIBUTIONS[plugins.DRIVERS]
    assert hints and all(provided.get(name) == dist for name, dist in hints.items()), (hints, provided)


def test_retry_gives_up_after_the_attempts() -> None:
    store = MemoryObjectStore()
    store.put_container("c")
    faulty = FaultyObjectStore(store, lambda m, n: exceptions.TransientDriverError(reason="reset"))
    sleeps: list[float] = []
    retrying = RetryingObjectStore(faulty, attempts=4, backoff=0.5, sleep=sleeps.append)
    with pytest.raises(exceptions.TransientDriverError):
        retrying.put_object("c", "x", b"1")
    assert len(faulty.calls) == 4 and len(sleeps) == 3
    assert sleeps[0] < sleeps[1] < sleeps[2]


def test_token_bucket_holds_the_rate() -> None:
    import time

    bucket = TokenBucket(10 * 1024 * 1024)
    start = time.monotonic()
    for _ in range(15):
        bucket.take(1024 * 1024)
    assert time.monotonic() - start >= 0.35


def test_locks_tell_a_live_owner_from_a_dead_one(tmp_path: pathlib.Path) -> None:
    path = str(tmp_path / "job.lock")
    assert not owner_alive(path)
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from ashvault.locks import FileLock
        FileLock({path!r}).acquire()
        print("held", flush=True)
        time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    assert owner_alive(path)
    assert not FileLock(path).acquire(blocking=False)
    holder.kill()
    holder.wait()
    assert not owner_alive(path)


def test_slot_semaphore_limits_holders(tmp_path: pathlib.Path) -> None:
    a, b = SlotSemaphore(str(tmp_path), 1), SlotSemaphore(str(tmp_path), 1)
    a.acquire()
    waited: list[bool] = []

    def on_wait() -> None:
        waited.append(True)
        a.release()

    b.acquire(on_wait, poll=0.01)
    assert waited == [True]
    b.release()


def test_broken_plugin_is_listed_with_its_reason(tmp_path: pathlib.Path) -> None:
    dist = tmp_path / "ashvault_broken-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ashvault-broken\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[ashvault.drivers]\nbroken = ashvault_broken_mod:Driver\n")
    (tmp_path / "ashvault_broken_mod.py").write_text("import some_missing_sdk\n")
    code = ("from ashvault import plugins\n"
            "for p in plugins.discover(plugins.DRIVERS):\n"
            "    print(p.name, p.distribution, p.available, p.error)\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env).stdout
    assert "broken ashvault-broken False Python module 'some_missing_sdk' is missing" in out


@pytest.mark.parametrize("where", ["disk", "tmpfs"])
def test_direct_writer_writes_every_byte_aligned_or_not(tmp_path: pathlib.Path, where: str) -> None:
    from ashvault.directio import ALIGN, STAGE, DirectWriter

    base = tmp_path if where == "disk" else pathlib.Path("/dev/shm")
    path = base / f"direct-{os.getpid()}-{where}.bin"
    size = 3 * STAGE + 5 * ALIGN + 123
    want = bytearray(os.urandom(size))
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        os.ftruncate(fd, size)
        out = DirectWriter(fd, str(path))
        assert out.direct, "ext4 and tmpfs (Linux 6.6 and later) both take O_DIRECT"
        # aligned and long, unaligned offset, unaligned length, tail
        out.pwrite(0, memoryview(want)[: 2 * STAGE + ALIGN])
        out.pwrite(2 * STAGE + ALIGN + 7, memoryview(want)[2 * STAGE + ALIGN + 7 : 2 * STAGE + 3 * ALIGN])
        out.pwrite(2 * STAGE + ALIGN, bytes(want[2 * STAGE + ALIGN : 2 * STAGE + ALIGN + 7]))
        out.pwrite(2 * STAGE + 3 * ALIGN, memoryview(want)[2 * STAGE + 3 * ALIGN :])
        out.close()
        os.fsync(fd)
        os.close(fd)
        assert path.read_bytes() == want
    finally:
        path.unlink(missing_ok=True)


def test_buffer_pool_reuses_a_buffer_only_once_nothing_refers_to_it() -> None:
    from ashvault.directio import HUGE, BufferPool, address

    for length in (4 * MiB, 8192):
        pool = BufferPool(keep=2)
        first = pool.get(length)
        first[:] = b"x" * length
        where = address(first)
        assert where is not None and where % (HUGE if length >= MiB else 4096) == 0
        second = pool.get(length)
        assert address(second) != where, "a buffer in use is not handed out again"
        piece = first[10:20]
        del first
        assert address(pool.get(length)) not in (where, address(second)), "a slice keeps its buffer in use"
        del piece
        again = pool.get(length)
        assert address(again) == where and len(again) == length, "a buffer nothing refers to is reused"
        assert len(pool.get(length // 2)) == length // 2, "other lengths get buffers of their own"
        del again
        half = pool.get(length // 2)
        assert address(half) != where and len(pool._held) == 2, "and take the place of a free one"
        del half
        kept = address(second)
        del second
        assert address(pool.get(length)) == kept, "the one in use was kept"


def test_direct_writer_writes_aligned_memory_without_staging(tmp_path: pathlib.Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from ashvault import directio

    def staged(*_args: object) -> None:
        raise AssertionError("aligned memory was copied to a staging buffer")

    monkeypatch.setattr(directio.DirectWriter, "_staged", staged)
    data = directio.aligned_buffer(4 * MiB + 100)
    data[:] = os.urandom(len(data))
    path = tmp_path / "aligned.bin"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    out = directio.DirectWriter(fd, str(path))
    assert out.direct
    out.pwrite(0, data)
    out.close()
    os.close(fd)
    assert path.read_bytes() == bytes(data)


@pytest.mark.parametrize("where", ["disk", "tmpfs"])
def test_direct_reader_reads_any_range_as_ordinary_reads_do(tmp_path: pathlib.Path, where: str) -> None:
    from ashvault.directio import ALIGN, DirectReader, address

    base = tmp_path if where == "disk" else pathlib.Path("/dev/shm")
    path = base / f"direct-read-{os.getpid()}-{where}.bin"
    size = 4 * ALIGN * 16 + 123
    want = os.urandom(size)
    path.write_bytes(want)
    try:
        fd = os.open(path, os.O_RDONLY)
        reader = DirectReader(fd, str(path))
        assert reader.direct
        ranges = [(0, 8 * ALIGN), (ALIGN, 3 * ALIGN), (5, 100), (ALIGN - 1, ALIGN + 2), (size - 200, 200),
                  (size - 200, 5000), (size, 10), (size + ALIGN, ALIGN), (3 * ALIGN, 0)]
        for offset, length in ranges:
            got = reader.pread(offset, length)
            assert bytes(got) == want[offset : offset + length], (offset, length)
        aligned = reader.pread(2 * ALIGN, 4 * ALIGN)
        assert address(aligned) is not None and address(aligned) % ALIGN == 0
        reader.close()
        os.close(fd)
    finally:
        path.unlink(missing_ok=True)


def test_is_zero_sees_one_byte_anywhere() -> None:
    from ashvault.directio import aligned_buffer, is_zero

    size = (1 << 20) * 2 + 4097
    for make in (bytes, lambda n: aligned_buffer(n), lambda n: memoryview(bytes(n)), bytearray):
        assert is_zero(make(size)) and is_zero(make(0))
        for pos in (0, 4096, (1 << 20) + 1, size - 1):
            buf = bytearray(size)
            buf[pos] = 1
            data = make(size)
            if isinstance(data, bytes):
                data = bytes(buf)
            elif isinstance(data, memoryview) and data.readonly:
                data = memoryview(bytes(buf))
            else:
                data[:] = buf
            assert not is_zero(data), (make, pos)
            assert is_zero(data, 0, pos) and is_zero(data, pos + 1) and is_zero(data, pos, 0), (make, pos)
            assert not is_zero(data, pos, 1) and not is_zero(data, max(0, pos - 5), 6), (make, pos)


def test_compression_probe_skips_random_data_only() -> None:
    from ashvault.engine.compression import get_compressor

    comp = get_compressor("zstd")
    words = [b"alpha ", b"beta ", b"gamma ", b"delta ", b"epsilon "]
    text = b"".join(words[b % 5] for b in os.urandom(1 << 20))[: 1 << 20]
    noise = os.urandom(1 << 20)
    assert comp.worth_compressing(text)
    assert not comp.worth_compressing(noise)
    assert comp.worth_compressing(noise[:1000]), "too small to judge: compressed as before"
    # Half noise, half text: a sample lands in the text, so the object is compressed.
    assert comp.worth_compressing(noise[: 1 << 19] + text[: 1 << 19])


def test_file_reader_goes_around_the_page_cache_for_full_and_incremental_backups(tmp_path: pathlib.Path) -> None:
    from ashvault.directio import ALIGN, HUGE, address
    from ashvault.sources.file import FileReader

    path = tmp_path / "volume.img"
    data = os.urandom(4 << 20)
    path.write_bytes(data)
    reader = FileReader(str(path))
    try:
        for incremental in (False, True):
            reader.advise(incremental=incremental)
            small = reader.pread(ALIGN, 1 << 16)
            assert isinstance(small, memoryview) and address(small) % ALIGN == 0  # type: ignore[operator]
            segment = reader.pread(0, 4 << 20)
            assert isinstance(segment, memoryview) and address(segment) % HUGE == 0  # type: ignore[operator]
            assert bytes(small) == data[ALIGN : ALIGN + (1 << 16)] and bytes(segment) == data
    finally:
        reader.close()


def test_file_writer_reserves_space_that_still_reads_as_zeros(tmp_path: pathlib.Path) -> None:
    from ashvault.sources.file import FileWriter

    path = tmp_path / "target.img"
    with open(path, "wb") as f:
        f.truncate(8 << 20)
    writer = FileWriter(str(path))
    try:
        before = os.stat(path).st_blocks
        writer.reserve(1 << 20, 2 << 20)
        writer.pwrite(1 << 20, b"x" * 4096)
    finally:
        writer.close()
    st = os.stat(path)
    assert st.st_size == 8 << 20
    assert (st.st_blocks - before) * 512 >= 2 << 20, "the reserved region is allocated"
    data = path.read_bytes()
    assert data[(1 << 20) : (1 << 20) + 4096] == b"x" * 4096
    assert data.count(0) == len(data) - 4096


def test_large_buffers_are_huge_page_aligned_zeroed_and_writable() -> None:
    from ashvault.directio import ALIGN, HUGE, address, aligned_buffer

    for size, align in ((HUGE // 2, HUGE), (4 << 20, HUGE), (HUGE // 2 - 1, ALIGN), (100, ALIGN)):
        buf = aligned_buffer(size)
        assert len(buf) == size and not buf.readonly
        assert address(buf) % align == 0, (size, align)  # type: ignore[operator]
        assert buf.tobytes() == bytes(size)
        buf[-1] = 7
        assert buf[-1] == 7
