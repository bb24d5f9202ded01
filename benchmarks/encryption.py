"""What encryption at rest costs: full backup and restore of the benchmark's volume to posix, with and without
encryption, alternating in the same run, page cache dropped before each step when run as root.

    .venv/bin/python -m benchmarks.encryption --size 2G --reps 3 [--cipher aes-256-gcm] [--workdir DIR] [--json F]

Prints the median seconds (and CPU seconds) of each variant and the ratio encrypted/plain; the target is a full
backup at most 15% slower. The key comes from a key file (HKDF); the scrypt derivation a passphrase costs instead is
timed apart, as it is paid once per process and key object, not per byte.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import sys
import time
import uuid
from typing import Any

from ashvault import formats, keys
from ashvault.driver import BackupInfo, JobContext
from ashvault.sources.file import FileSource
from benchmarks import measure, volumes
from benchmarks.main import size_arg
from benchmarks.volumes import MiB


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _driver(workdir: str, cipher: str | None) -> Any:
    from ashvault import plugins
    from ashvault.conf import make_config, register_group

    conf = make_config([], config_files=[])
    posix = plugins.load_class(plugins.DRIVERS, "posix", kind="backup driver")
    register_group(conf, posix.option_group, posix.get_driver_options())
    conf.set_override("ashvault_state_path", os.path.join(workdir, "state"))
    conf.set_override("path", os.path.join(workdir, "backups"), group=posix.option_group)
    if cipher:
        key = os.path.join(workdir, "bench.key")
        if not os.path.exists(key):
            with open(key, "wb") as f:
                f.write(os.urandom(32))
        conf.set_override("encryption", cipher)
        conf.set_override("encryption_key_file", key)
    return posix(conf)


def _timed(fn: Any, drop: bool) -> tuple[float, float]:
    if drop:
        measure.drop_caches()
    else:
        os.sync()
    c0, t0 = _cpu(), time.perf_counter()
    fn()
    return time.perf_counter() - t0, _cpu() - c0


def one(workdir: str, vol: str, cipher: str | None, drop: bool, check: str | None) -> dict[str, float]:
    shutil.rmtree(os.path.join(workdir, "backups"), ignore_errors=True)
    driver = _driver(workdir, cipher)
    info = BackupInfo(id=str(uuid.uuid4()), volume_id="bench")

    def backup() -> None:
        with FileSource(driver.conf).open_reader(vol) as reader:
            res = formats.handler(driver, info.format).backup(info, reader, JobContext())
        info.container, info.service_metadata, info.size = res.container, res.service_metadata, res.size

    out = os.path.join(workdir, "restored.img")

    def restore() -> None:
        if os.path.exists(out):
            os.unlink(out)
        FileSource(driver.conf).create(out, info.size)
        with FileSource(driver.conf).open_writer(out) as writer:
            formats.handler(driver, info.format).restore(info, writer, JobContext(), volume_is_new=True)

    b_s, b_cpu = _timed(backup, drop)
    r_s, r_cpu = _timed(restore, drop)
    if check is not None and volumes_sha(out) != check:
        raise SystemExit(f"restore of the {'encrypted' if cipher else 'plain'} backup differs from the volume")
    driver.close()
    return {"backup_s": b_s, "backup_cpu_s": b_cpu, "restore_s": r_s, "restore_cpu_s": r_cpu}


def cipher_cpu(cipher: str, nbytes: int) -> float:
    """CPU seconds one thread takes to seal ``nbytes`` in 4 MiB objects, as the encryption wrapper does."""
    aead = keys.CIPHERS[cipher](os.urandom(32))
    data = os.urandom(4 * MiB)
    out = bytearray(len(data) + 16)
    c0 = time.thread_time()
    for _ in range(max(1, -(-nbytes // len(data)))):
        aead.encrypt_into(os.urandom(12), data, b"name", out)
    return time.thread_time() - c0


def volumes_sha(path: str) -> str:
    from ashvault.testing.volumes import sha256_file

    return sha256_file(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.encryption", description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=size_arg, default=2 << 30, help="volume size (default 2G)")
    ap.add_argument("--reps", type=int, default=3, help="pairs of runs, the order alternating (default 3)")
    ap.add_argument("--cipher", default="aes-256-gcm", choices=sorted(keys.CIPHERS))
    ap.add_argument("--workdir", default=os.path.join(os.path.dirname(__file__), "work", "encryption"))
    ap.add_argument("--no-drop-caches", action="store_true", help="sync only, do not drop the page cache")
    ap.add_argument("--json", help="write the records here")
    args = ap.parse_args(argv)
    drop = not args.no_drop_caches and measure.can_drop_caches()
    os.makedirs(args.workdir, exist_ok=True)
    vol = os.path.join(args.workdir, f"mix-{args.size // MiB}M.img")
    if not (os.path.exists(vol) and os.path.getsize(vol) == args.size):
        print(f"generating {vol}", file=sys.stderr)
        volumes.write_volume(vol + ".tmp", args.size, seed=1)
        os.replace(vol + ".tmp", vol)
    want = volumes_sha(vol)
    runs: dict[str, list[dict[str, float]]] = {"plain": [], args.cipher: []}
    for rep in range(args.reps):
        order = [None, args.cipher] if rep % 2 == 0 else [args.cipher, None]
        for cipher in order:
            rec = one(args.workdir, vol, cipher, drop, want if rep == 0 else None)
            runs[cipher or "plain"].append(rec)
            print(f"rep {rep + 1} {cipher or 'plain':18} backup {rec['backup_s']:.2f} s (CPU {rec['backup_cpu_s']:.2f})"
                  f"  restore {rec['restore_s']:.2f} s (CPU {rec['restore_cpu_s']:.2f})", file=sys.stderr)
    stored = measure.tree_bytes(os.path.join(args.workdir, "backups"))
    seal_cpu = cipher_cpu(args.cipher, stored)
    t0 = time.perf_counter()
    keys._scrypt(b"benchmark passphrase", os.urandom(16), keys.SCRYPT_N, 8, 1)
    scrypt_s = time.perf_counter() - t0
    med = {name: {k: statistics.median(r[k] for r in recs) for k in recs[0]} for name, recs in runs.items()}
    size = f"{args.size / (1 << 30):g} GiB" if args.size >= 1 << 30 else f"{args.size // MiB} MiB"
    print(f"\nencryption cost, {size} volume, {args.reps} alternating pairs, medians"
          f"{'' if drop else ' (page cache not dropped)'}:")
    print(f"{'':20}{'backup s':>10}{'CPU s':>8}{'restore s':>11}{'CPU s':>8}")
    for name, m in med.items():
        print(f"{name:20}{m['backup_s']:10.2f}{m['backup_cpu_s']:8.2f}{m['restore_s']:11.2f}{m['restore_cpu_s']:8.2f}")
    ratio_b = med[args.cipher]["backup_s"] / med["plain"]["backup_s"]
    ratio_r = med[args.cipher]["restore_s"] / med["plain"]["restore_s"]
    print(f"{'ratio':20}{ratio_b:9.2f}x{'':8}{ratio_r:10.2f}x   (target: full backup at most 1.15x)")
    print(f"{args.cipher} alone: sealing the {stored // MiB} MiB a full backup stores takes {seal_cpu:.2f} CPU s on "
          f"one thread, {100 * seal_cpu / med['plain']['backup_cpu_s']:.0f}% of the plain full backup's CPU")
    print(f"scrypt (n=2^{keys.SCRYPT_N.bit_length() - 1}, r=8) for a passphrase: {scrypt_s:.2f} s once per process")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"size": args.size, "reps": args.reps, "cipher": args.cipher, "runs": runs, "medians": med,
                       "backup_ratio": ratio_b, "restore_ratio": ratio_r, "scrypt_s": scrypt_s,
                       "stored_bytes": stored, "seal_cpu_s": seal_cpu,
                       "dropped_caches": drop}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
