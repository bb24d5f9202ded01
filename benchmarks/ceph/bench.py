"""Incremental backups of an RBD image after 1% scattered writes, against a full re-read of the image, same run.

    .venv/bin/python benchmarks/ceph/bench.py [--size-mib 2048] [--percent 1] [--objectstore memstore|bluestore]
                                             [--data-dir DIR]

Starts its own single-node cluster (plugins/ceph/ci/cluster.py; needs plugins/ceph/ci/install.sh), creates an RBD
image of ``--size-mib`` filled with random bytes, and times, in the same run and against the same cluster:

- baseline: reading the whole image once, sequentially in 8 MiB reads through librbd (what any backup that cannot
  ask the image what changed must at least do);
- posix, diff path: ``backup create --incremental`` of the ``rbd:`` volume to the posix driver after 1% of its 64 KiB
  blocks were rewritten at scattered offsets; the engine reads only the extents ``diff_iterate`` reports;
- posix, hash path: the same after removing the parent's snapshot from the image, so the engine must read the whole
  image and compare block hashes (what the core does for sources without a change list);
- ceph, diff path: the ceph driver's RBD-to-RBD incremental (diff since the parent's snapshot copied into the
  backup image), after another 1% of writes;
- and, for scale, the full backup of each driver.

Prints seconds, bytes read from the image, and each incremental's time as a ratio of the full re-read.
"""

from __future__ import annotations

import argparse
import importlib.util
import pathlib
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[2]
MiB = 1 << 20
BLOCK = 64 * 1024


def _load(path: pathlib.Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def scatter_writes(img: Any, size: int, percent: float, rnd: random.Random) -> int:
    """Rewrite ``percent`` % of the 64 KiB blocks at scattered offsets; returns the bytes written."""
    nblocks = size // BLOCK
    picked = sorted(rnd.sample(range(nblocks), max(1, int(nblocks * percent / 100))))
    for b in picked:
        img.write(rnd.randbytes(BLOCK), b * BLOCK)
    img.flush()
    return len(picked) * BLOCK


def full_read(img: Any, size: int) -> int:
    done = 0
    for off in range(0, size, 8 * MiB):
        done += len(img.read(off, min(8 * MiB, size - off)))
    return done


def make_api(cluster: Any, state: pathlib.Path, driver: str) -> Any:
    from ashvault.api import API
    from ashvault.conf import make_config, register_group
    from ashvault_ceph import opts

    conf = make_config([], config_files=[])
    conf.set_override("ashvault_state_path", str(state))
    conf.set_override("backup_driver", driver)
    register_group(conf, opts.GROUP, opts.ceph_opts)
    register_group(conf, opts.SOURCE_GROUP, opts.rbd_opts)
    for group, key in ((opts.GROUP, "conf"), (opts.SOURCE_GROUP, "ceph_conf")):
        conf.set_override(key, cluster.conf, group=group)
        conf.set_override("user", "admin", group=group)
    return API(conf)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=2048)
    parser.add_argument("--percent", type=float, default=1.0)
    parser.add_argument("--objectstore", default="memstore", choices=["memstore", "bluestore"])
    parser.add_argument("--data-dir", default=None, help="where the cluster and the posix backups live")
    args = parser.parse_args(argv)
    size = args.size_mib * MiB

    import rbd

    from ashvault_ceph.client import Connection

    cluster_mod = _load(ROOT / "plugins" / "ceph" / "ci" / "cluster.py", "ceph_cluster")
    work = pathlib.Path(tempfile.mkdtemp(prefix="ashvault-ceph-bench-", dir=args.data_dir))
    # memstore keeps everything in OSD RAM: the image, the backup image and the clones snapshots keep.
    cluster = cluster_mod.Cluster(str(work / "cluster"), objectstore=args.objectstore, osd_bytes=6 * size + (2 << 30))
    rows: list[tuple[str, float, int]] = []
    try:
        t_up, _ = timed(cluster.start)
        print(f"cluster up ({args.objectstore}) in {t_up:.1f}s; image {args.size_mib} MiB, "
              f"{args.percent}% scattered 64 KiB writes before each incremental", flush=True)
        admin = Connection(cluster.conf, "admin")
        vols = admin.ioctx("volumes")
        rbd.RBD().create(vols, "bench", size, old_format=False,
                         features=rbd.RBD_FEATURE_LAYERING | rbd.RBD_FEATURE_EXCLUSIVE_LOCK
                         | rbd.RBD_FEATURE_OBJECT_MAP | rbd.RBD_FEATURE_FAST_DIFF)
        rnd = random.Random(1)
        with rbd.Image(vols, "bench") as img:
            for off in range(0, size, 8 * MiB):
                img.write(rnd.randbytes(8 * MiB), off)
            img.flush()
            t_read, n_read = timed(lambda: full_read(img, size))
        rows.append(("full re-read of the image (baseline)", t_read, n_read))

        posix = make_api(cluster, work / "posix-state", "posix")
        posix.volume_register("vp", "rbd:volumes/bench")
        t, b = timed(lambda: posix.backup_create("vp"))
        rows.append(("posix: full backup", t, b.read_bytes))
        with rbd.Image(vols, "bench") as img:
            scatter_writes(img, size, args.percent, rnd)
        t, b = timed(lambda: posix.backup_create("vp", incremental=True))
        rows.append(("posix: incremental, diff path", t, b.read_bytes))
        posix_diff = t
        with rbd.Image(vols, "bench") as img:
            scatter_writes(img, size, args.percent, rnd)
            for s in list(img.list_snaps()):
                img.remove_snap(s["name"])  # no parent snapshot: the engine must re-read and hash everything
        t, b = timed(lambda: posix.backup_create("vp", incremental=True))
        rows.append(("posix: incremental, hash path (full re-read)", t, b.read_bytes))
        posix_hash = t
        posix.close()
        with rbd.Image(vols, "bench") as img:
            for s in list(img.list_snaps()):
                img.remove_snap(s["name"])

        ceph = make_api(cluster, work / "ceph-state", "ceph")
        ceph.volume_register("vc", "rbd:volumes/bench")
        t, b = timed(lambda: ceph.backup_create("vc"))
        rows.append(("ceph: full backup (RBD to RBD)", t, b.read_bytes))
        with rbd.Image(vols, "bench") as img:
            scatter_writes(img, size, args.percent, rnd)
        t, b = timed(lambda: ceph.backup_create("vc", incremental=True))
        rows.append(("ceph: incremental, diff path (RBD to RBD)", t, b.read_bytes))
        ceph_diff = t
        ceph.close()
        admin.close()

        print(f"\n{'case':48} {'seconds':>8} {'MiB read':>9} {'vs re-read':>10}")
        for name, secs, nbytes in rows:
            print(f"{name:48} {secs:8.2f} {nbytes / MiB:9.1f} {secs / t_read:9.3f}x")
        print(f"\nposix incremental: diff path {posix_diff:.2f}s, hash path {posix_hash:.2f}s "
              f"(diff path = {posix_diff / posix_hash:.3f} of the hash path), bare re-read {t_read:.2f}s "
              f"(diff path = {posix_diff / t_read:.3f} of it)")
        print(f"ceph incremental: diff path {ceph_diff:.2f}s, bare re-read {t_read:.2f}s "
              f"(diff path = {ceph_diff / t_read:.3f} of it)")
    finally:
        cluster.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
