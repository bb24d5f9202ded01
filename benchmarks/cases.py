"""The benchmark cases: the tool comparison, and ashvault-only cases for the issue's other targets.

Every case appends plain-dict records to ``Bench.records``; a failing tool step becomes a record with ``error``
(the other tools go on), so the report always prints what was measured.
"""

from __future__ import annotations

import functools
import os
import shutil
import statistics
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ashvault.directio import aligned_buffer
from benchmarks import measure, tools, volumes
from benchmarks.volumes import GiB, MiB


@dataclass
class Bench:
    workdir: str
    size: int
    reps: int
    tool_names: list[str]
    seed: int = 1
    sparse_source: bool = False
    drop: bool = True
    log: Callable[[str], None] = print
    records: list[dict[str, Any]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    def path(self, *parts: str) -> str:
        p = os.path.join(self.workdir, *parts)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        return p

    def cold(self) -> None:
        if self.drop:
            measure.drop_caches()
        else:
            os.sync()

    def source(self) -> tuple[str, volumes.Layout]:
        """The generated volume (made once per size/seed/variant and kept in the workdir)."""
        kind = "sparse" if self.sparse_source else "dense"
        orig = self.path("volumes", f"mix-{self.size // MiB}M-s{self.seed}-{kind}.img")
        lay = volumes.layout(self.size, self.seed)
        if not (os.path.exists(orig) and os.path.getsize(orig) == self.size):
            self.log(f"generating {orig}")
            volumes.write_volume(orig + ".tmp", self.size, seed=self.seed, sparse=self.sparse_source)
            os.replace(orig + ".tmp", orig)
        return orig, lay

    def fresh_copy(self, orig: str) -> str:
        vol = self.path("volumes", "volume.img")
        mode = "always" if self.sparse_source else "never"
        subprocess.run(["cp", f"--sparse={mode}", orig, vol], check=True)
        return vol

    def add(self, **rec: Any) -> dict[str, Any]:
        self.records.append(rec)
        return rec


def compare(b: Bench) -> None:
    """Full, 1% incremental and restore for every tool, tool order rotating per repetition."""
    orig, lay = b.source()
    avail = [tools.ALL[n](b.workdir) for n in b.tool_names]
    b.info["tools"] = {}
    runnable = []
    for t in avail:
        why = t.unavailable()
        b.info["tools"][t.name] = {"version": t.version() if why is None else None, "unavailable": why}
        if why is None:
            runnable.append(t)
        else:
            b.log(f"{t.name}: {why}")
    b.info["data_bytes"] = lay.data_bytes
    for rep in range(b.reps):
        order = runnable[rep % len(runnable):] + runnable[:rep % len(runnable)] if runnable else []
        vol = b.fresh_copy(orig)
        failed: set[str] = set()
        for t in order:
            try:
                t.setup(vol)
            except measure.StepFailed as exc:
                failed.add(t.name)
                b.add(case="compare", rep=rep, tool=t.name, op="setup", error=str(exc))
        full_stored: dict[str, int] = {}
        want = ""
        for op in ("full", "incr", "restore"):
            if op == "incr":
                volumes.mutate(vol, percent=1.0, seed=7)
            if op == "restore":
                want = volumes.sha256_file(vol)
            for t in order:
                if t.name in failed:
                    continue
                b.cold()
                try:
                    rec = _step(b, t, op, vol, rep, want, lay, full_stored)
                except (measure.StepFailed, KeyError, ValueError, OSError) as exc:
                    failed.add(t.name)
                    b.add(case="compare", rep=rep, tool=t.name, op=op, error=str(exc)[:300])
                    continue
                b.log(f"rep {rep} {t.name:8s} {op:7s} {rec['seconds']:7.2f} s  rss {rec['rss_mib']:6.1f} MiB  "
                      f"stored {rec['stored_bytes'] / MiB:8.1f} MiB")
        for t in order:
            t.cleanup()
        os.unlink(vol)


def _step(b: Bench, t: tools.Tool, op: str, vol: str, rep: int, want: str, lay: volumes.Layout,
          full_stored: dict[str, int]) -> dict[str, Any]:
    rec: dict[str, Any] = {"case": "compare", "rep": rep, "tool": t.name, "op": op}
    if op == "restore":
        run, restored = t.restore(vol)
        rec["verified"] = volumes.sha256_file(restored) == want
        rec["restored_alloc_bytes"] = measure.allocated(restored)
        # Holes: nothing allocated beyond the data runs (plus 1% for file-system slack and mutated blocks).
        rec["holes"] = rec["restored_alloc_bytes"] <= lay.data_bytes + b.size // 100
        os.unlink(restored)
    else:
        run = t.full(vol) if op == "full" else t.incr(vol)
    rec.update(seconds=run.seconds, cpu_s=run.cpu_s, rss_mib=run.rss_kib / 1024, stored_bytes=t.stored())
    if op == "full":
        full_stored[t.name] = rec["stored_bytes"]
        if isinstance(t, tools.Ashvault):
            rec["metadata_bytes"] = t.metadata_bytes("full")
    elif op == "incr":
        rec["added_bytes"] = rec["stored_bytes"] - full_stored[t.name]
    return b.add(**rec)


def metadata(b: Bench) -> None:
    """Manifest + index bytes of a full backup per GiB of volume (reuses the comparison's backups when run)."""
    got = [r["metadata_bytes"] for r in b.records if r.get("case") == "compare" and "metadata_bytes" in r]
    if not got:
        orig, _lay = b.source()
        t = tools.Ashvault(b.workdir)
        vol = b.fresh_copy(orig)
        t.setup(vol)
        t.full(vol)
        got = [t.metadata_bytes("full")]
        t.cleanup()
        os.unlink(vol)
    per_gib = statistics.median(got) / (b.size / GiB)
    b.add(case="metadata", tool="ashvault", op="full", bytes_per_gib=per_gib, volume_bytes=b.size)
    b.log(f"metadata: {per_gib / 1024:.1f} KiB per GiB")


def workers(b: Bench) -> None:
    """Full backup with backup_pipeline_threads = 1 and = 2, alternating, on the comparison's volume.

    Each repetition also measures what no pipeline can go below (the report turns them into floors): the
    command's start-up (``backup list``, page cache dropped first as before every step); reading the volume with
    ``O_DIRECT`` as a full backup does and storing objects of the sizes it stored as the posix driver does, each alone
    and the two at once, with the CPU the whole machine spends on the two; for a restore, reading the backup's files
    and writing the volume's data, alone and at once; how far compression and hashing alone scale on two threads;
    and the engine's CPU work on the volume's data on one thread and on two.
    """
    orig, lay = b.source()
    vol = b.fresh_copy(orig)
    for rep in range(b.reps):
        for threads in ((1, 2) if rep % 2 == 0 else (2, 1)):
            t = tools.Ashvault(b.workdir, threads=threads, label=f"ashvault-{threads}t")
            t.setup(vol)
            b.cold()
            run = t.full(vol)
            b.add(case="workers", rep=rep, tool=t.name, threads=threads, op="full", seconds=run.seconds,
                  cpu_s=run.cpu_s, rss_mib=run.rss_kib / 1024, volume_bytes=b.size)
            b.log(f"workers rep {rep} threads {threads}: {run.seconds:.2f} s")
            if threads == 2:
                stored = t.stored()
                objects_sizes = tree_sizes(t.repo)
                b.cold()
                objects = overlapped_seconds(functools.partial(read_tree, t.repo))
                b.add(case="workers", rep=rep, tool="python", variant="restore floor: read", op="the backup's files",
                      seconds=objects, rss_mib=0.0, volume_bytes=stored)
                b.cold()
                both = overlapped_seconds(functools.partial(read_tree, t.repo),
                                          direct_writer(b.path("restore-floor.bin"), lay.data_bytes))
                b.add(case="workers", rep=rep, tool="python", variant="restore floor: read + write at once",
                      op="of the files and the data", seconds=both, rss_mib=0.0, volume_bytes=lay.data_bytes)
                b.cold()
                start = t.cli("backup", "list", "-f", "value")
                b.add(case="workers", rep=rep, tool=t.name, variant="floor: start-up", op="(backup list)",
                      seconds=start.seconds, cpu_s=start.cpu_s, rss_mib=start.rss_kib / 1024)
            t.cleanup()
        b.cold()
        read, _ = overlapped(functools.partial(direct_read, vol))
        b.add(case="workers", rep=rep, tool="python", variant="floor: O_DIRECT read", op="of the volume",
              seconds=read, rss_mib=0.0, volume_bytes=b.size)
        b.cold()
        store_objects = object_writer(b.path("repo-floor"), objects_sizes)
        write, _ = overlapped(store_objects)
        b.add(case="workers", rep=rep, tool="python", variant="floor: O_DIRECT write",
              op="of the stored objects, as the posix driver writes them", seconds=write, rss_mib=0.0,
              volume_bytes=stored)
        b.cold()
        both, io_cpu = overlapped(functools.partial(direct_read, vol), store_objects)
        b.add(case="workers", rep=rep, tool="python", variant="floor: read + write at once",
              op="of the volume and the stored objects", seconds=both, cpu_s=io_cpu, rss_mib=0.0,
              volume_bytes=b.size)
        b.cold()
        data = overlapped_seconds(direct_writer(b.path("restore-floor.bin"), lay.data_bytes))
        b.add(case="workers", rep=rep, tool="python", variant="restore floor: O_DIRECT write", op="of the data",
              seconds=data, rss_mib=0.0, volume_bytes=lay.data_bytes)
        b.log(f"workers rep {rep} floors: start-up {start.seconds:.2f} s; backup: read {read:.2f} s, "
              f"write {write:.2f} s, both at once {both:.2f} s ({io_cpu:.2f} CPU s); restore: read {objects:.2f} s, "
              f"write {data:.2f} s")
        scaling = cpu_scaling()
        b.add(case="cpu-scaling", rep=rep, ratio=scaling)
        b.log(f"workers rep {rep} compression and hashing alone, 2 threads / 1: {scaling:.2f}")
        one, two = engine_work(vol, lay)
        b.add(case="workers", rep=rep, tool="python", variant="floor: engine CPU work, 1 thread",
              op="of the volume's data", seconds=one, rss_mib=0.0, volume_bytes=lay.data_bytes)
        b.add(case="workers", rep=rep, tool="python", variant="floor: engine CPU work, 2 threads",
              op="of the volume's data", seconds=two, rss_mib=0.0, volume_bytes=lay.data_bytes)
        b.log(f"workers rep {rep} the engine's CPU work on the volume's data: {one:.2f} s on 1 thread, "
              f"{two:.2f} s on 2")
    os.unlink(vol)


def read_tree(top: str) -> None:
    """Read every file under ``top`` with ``O_DIRECT``, one after the other, as a restore reads objects."""
    buf = aligned_buffer(8 * MiB)
    for d, _sub, files in os.walk(top):
        for name in files:
            direct_read(os.path.join(d, name), buf)


def direct_read(path: str, buf: memoryview | None = None) -> None:
    """Read ``path`` with ``O_DIRECT`` into huge-page memory (4 MiB requests unless ``buf`` says otherwise), as a
    full backup reads a volume."""
    buf = aligned_buffer(4 * MiB) if buf is None else buf
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    try:
        off = 0
        while n := os.preadv(fd, [buf], off):
            off += n
    finally:
        os.close(fd)


def tree_sizes(top: str) -> list[int]:
    """Sizes of the files under ``top``."""
    return [os.path.getsize(os.path.join(d, n)) for d, _sub, files in os.walk(top) for n in files]


def object_writer(top: str, sizes: list[int]) -> Callable[[], None]:
    """A job storing objects of ``sizes`` under ``top`` the way the posix driver stores a backup's objects (temporary
    name, ``O_DIRECT``, fsync, rename, directory fsync), ``max_transfers`` of them at once, then removing them."""
    from ashvault_posix.objectstore import PosixObjectStore

    opts = posix_defaults()
    data = aligned_buffer(max(sizes, default=0) or 4096)
    data[:] = os.urandom(len(data))

    def write() -> None:
        store = PosixObjectStore(top, fsync=opts.fsync, direct_io=opts.direct_io)
        store.put_container("floor")
        names = iter(enumerate(sizes))
        lock = threading.Lock()

        def put() -> None:
            while True:
                with lock:
                    item = next(names, None)
                if item is None:
                    return
                store.put_object("floor", f"o{item[0]:06d}", data[: item[1]])

        try:
            overlapped_seconds(*([put] * opts.max_transfers))
        finally:
            shutil.rmtree(top, ignore_errors=True)

    return write


def direct_writer(path: str, nbytes: int) -> Callable[[], None]:
    """A job writing ``nbytes`` of random data to a new file with ``O_DIRECT`` in 4 MiB writes, fsync, unlink."""
    buf = aligned_buffer(4 * MiB)
    buf[:] = os.urandom(4 * MiB)

    def write() -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_DIRECT, 0o600)
        try:
            for off in range(0, nbytes, 4 * MiB):
                os.pwrite(fd, buf, off)
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(path)

    return write


def overlapped_seconds(*jobs: Callable[[], object]) -> float:
    """Seconds until every job, each on its own thread and all started at once, has finished."""
    return overlapped(*jobs)[0]


def overlapped(*jobs: Callable[[], object]) -> tuple[float, float]:
    """Seconds until every job, each on its own thread and all started at once, has finished, and the CPU seconds the
    whole machine was busy meanwhile (kernel threads and interrupts included, from ``/proc/stat``; 0 elsewhere)."""
    errors: list[BaseException] = []

    def guard(job: Callable[[], object]) -> None:
        try:
            job()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=guard, args=(job,)) for job in jobs]
    busy = busy_cpu_seconds()
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    busy = busy_cpu_seconds() - busy
    if errors:
        raise errors[0]
    return seconds, busy


def busy_cpu_seconds() -> float:
    """CPU seconds this machine has spent working since boot: not idling, not waiting for I/O, and not stolen by the
    hypervisor for other guests (0 without ``/proc``)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:9]]
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, _steal = fields
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def cpu_scaling(runs: int = 16) -> float:
    """Throughput of the engine's own compression and hashing on two threads over one, with no I/O and no pipeline.

    zstd and BLAKE3 release the GIL, so this is how far two CPUs of this machine scale on the backup's CPU work:
    the ceiling for the workers ratio.
    """
    from ashvault.engine.compression import get_compressor
    from ashvault.engine.layout import content_hash

    vocab = volumes._vocabulary(1)
    data = [volumes.run_bytes(1, i, "t", volumes.RUN, vocab) for i in range(runs)]
    comp = get_compressor("zstd")

    def work() -> None:
        for run in data:
            content_hash(comp.compress(run))

    rate = {}
    for n in (1, 2, 2, 1):
        threads = [threading.Thread(target=work) for _ in range(n)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        rate.setdefault(n, []).append(n / (time.perf_counter() - start))
    return statistics.median(rate[2]) / statistics.median(rate[1])


@dataclass
class PosixDefaults:
    conf: Any
    block_size: int
    max_transfers: int
    fsync: bool
    direct_io: bool


def posix_defaults() -> PosixDefaults:
    """The posix driver's default settings, as a backup with no configuration file uses them."""
    from ashvault import plugins
    from ashvault.conf import make_config, register_group

    conf = make_config([], config_files=[])
    posix = plugins.load_class(plugins.DRIVERS, "posix", kind="backup driver")
    register_group(conf, posix.option_group, posix.get_driver_options())
    group = conf[posix.option_group]
    return PosixDefaults(conf, group.block_size, group.max_transfers, group.fsync, group.direct_io)


def engine_work(vol: str, lay: volumes.Layout, batch: int = 32) -> tuple[float, float]:
    """Seconds the engine's CPU work on the volume's own data takes on one thread and on two: per data run, the
    block fingerprints, the compression probe (and compression where it pays) and the object's hash, with the posix
    driver's default settings, no I/O and no pipeline. Runs are read ``batch`` at a time, untimed.

    A full backup with one worker does all of this in its one CPU slot, so it takes at least the first figure plus
    its start-up, however well its I/O overlaps.
    """
    from ashvault.engine.compression import get_compressor
    from ashvault.engine.layout import content_hash, fingerprint

    opts = posix_defaults()
    comp = get_compressor(opts.conf.backup_compression_algorithm, opts.conf.backup_compression_level)
    block = opts.block_size

    def work(runs: list[bytes]) -> None:
        for run in runs:
            view = memoryview(run)
            for j in range(0, len(run), block):
                fingerprint(view[j : j + block])
            packed = comp.pack(run)
            content_hash(run if packed is None else packed)

    index = [i for i, k in enumerate(lay.kinds) if k != "z"]
    totals = [0.0, 0.0]
    with open(vol, "rb", buffering=0) as f:
        for start in range(0, len(index), batch):
            runs = [os.pread(f.fileno(), volumes.RUN, i * volumes.RUN) for i in index[start : start + batch]]
            for n, slot in ((1, 0), (2, 1)):
                totals[slot] += overlapped_seconds(*(functools.partial(work, runs[k::n]) for k in range(n)))
    return totals[0], totals[1]


def sparse(b: Bench, big: int = 64 * GiB, data: int = GiB) -> None:
    """Full backup of a ``big`` sparse file holding ``data`` bytes against a dense file of the same data."""
    dense = b.path("volumes", f"dense-{data // MiB}M.img")
    holey = b.path("volumes", f"sparse-{big // GiB}G-{data // MiB}M.img")
    if not os.path.exists(dense) or os.path.getsize(dense) != data:
        volumes.write_spread(dense, data, data, seed=b.seed)
    if not os.path.exists(holey) or os.path.getsize(holey) != big:
        volumes.write_spread(holey, big, data, seed=b.seed)
    for rep in range(b.reps):
        for kind, vol in ((("dense", dense), ("sparse", holey)) if rep % 2 == 0 else
                          (("sparse", holey), ("dense", dense))):
            t = tools.Ashvault(b.workdir, label="ashvault-sparse")
            t.setup(vol)
            b.cold()
            run = t.full(vol)
            b.add(case="sparse", rep=rep, tool="ashvault", kind=kind, op="full", seconds=run.seconds, cpu_s=run.cpu_s,
                  rss_mib=run.rss_kib / 1024, volume_bytes=os.path.getsize(vol), data_bytes=data)
            b.log(f"sparse rep {rep} {kind}: {run.seconds:.2f} s")
            t.cleanup()


def big(b: Bench, size: int = 16 * GiB) -> None:
    """Peak RSS of a full backup and a restore of a ``size`` volume (the mix, zero runs as holes)."""
    vol = b.path("volumes", f"big-{size // GiB}G.img")
    if not os.path.exists(vol) or os.path.getsize(vol) != size:
        b.log(f"generating {vol}")
        volumes.write_volume(vol + ".tmp", size, seed=b.seed, sparse=True)
        os.replace(vol + ".tmp", vol)
    t = tools.Ashvault(b.workdir, label="ashvault-big")
    t.setup(vol)
    try:
        for op in ("full", "restore"):
            b.cold()
            if op == "full":
                run = t.full(vol)
            else:
                t.backups["incr"] = t.backups["full"]
                run, restored = t.restore(vol)
                os.unlink(restored)
            b.add(case="big", tool="ashvault", op=op, seconds=run.seconds, cpu_s=run.cpu_s, rss_mib=run.rss_kib / 1024,
                  volume_bytes=size)
            b.log(f"big {op}: {run.seconds:.2f} s, peak RSS {run.rss_kib / 1024:.1f} MiB")
    finally:
        t.cleanup()
        if not os.environ.get("BENCH_KEEP_BIG"):
            os.unlink(vol)


CASES: dict[str, Callable[[Bench], None]] = {
    "compare": compare, "metadata": metadata, "workers": workers, "sparse": sparse, "big": big,
}


def clear(workdir: str) -> None:
    """Remove the tools' directories an interrupted run left (only those; generated volumes are kept)."""
    for name in os.listdir(workdir) if os.path.isdir(workdir) else []:
        if name in tools.ALL or name.startswith("ashvault-"):
            shutil.rmtree(os.path.join(workdir, name), ignore_errors=True)
