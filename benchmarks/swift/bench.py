"""Backup and restore throughput of a 1 GiB volume to a local Swift: ashvault against raw python-swiftclient.

    .venv/bin/python benchmarks/swift/bench.py [--size-mib 1024] [--repeat 1] [--data-dir DIR]

Starts its own Swift all-in-one (plugins/swift/ci/swift_aio.py; needs plugins/swift/ci/install.sh) on 127.0.0.1,
writes a volume of random bytes (incompressible and without zeros, so both sides move exactly the same bytes), then
in the same run and against the same Swift:

- baseline: python-swiftclient uploads the volume as 50 MiB objects, one after the other (BytesIO body with
  content_length, etag checked), and downloads them (resp_chunk_size 4 MiB, MD5 checked), as in
  shared/reference/services.md D.1; the download is timed twice: discarding the bytes, and writing them into a
  volume file that is fsynced at the end (what a restore has to do);
- ashvault: ``ashvault backup create`` and ``ashvault backup restore`` (to a new volume file) through the CLI, with
  the swift driver's defaults (50 MiB objects, zstd, which stores incompressible objects as they are).

Prints MiB/s for each and ashvault's ratio to the baseline; each figure is the best of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import io
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from types import ModuleType

from swiftclient import client as swift_client

ROOT = pathlib.Path(__file__).resolve().parents[2]
MiB = 1 << 20
OBJECT = 50 * MiB


def _load_aio() -> ModuleType:
    spec = importlib.util.spec_from_file_location("swift_aio", ROOT / "plugins" / "swift" / "ci" / "swift_aio.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_volume(path: str, size: int) -> None:
    with open(path, "wb") as f:
        for off in range(0, size, 16 * MiB):
            f.write(os.urandom(min(16 * MiB, size - off)))
        f.flush()
        os.fsync(f.fileno())


def timed(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def raw_upload(conn: swift_client.Connection, path: str, container: str) -> None:
    conn.put_container(container)
    with open(path, "rb") as f:
        i = 0
        while data := f.read(OBJECT):
            md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
            etag = conn.put_object(container, f"raw-{i:05d}", io.BytesIO(data), content_length=len(data))
            if etag != md5:
                raise RuntimeError(f"raw upload: etag {etag} != md5 {md5}")
            i += 1


def raw_download(conn: swift_client.Connection, container: str, out: str | None = None) -> None:
    """Download every object, MD5-checked; into the file ``out`` (written in place, then fsynced) when given."""
    _headers, listing = conn.get_container(container, prefix="raw-", full_listing=True)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600) if out else None
    try:
        for entry in listing:
            headers, body = conn.get_object(container, entry["name"], resp_chunk_size=4 * MiB)
            md5 = hashlib.md5(usedforsecurity=False)
            for chunk in body:
                md5.update(chunk)
                if fd is not None:
                    os.write(fd, chunk)
            if md5.hexdigest() != headers["etag"]:
                raise RuntimeError(f"raw download of {entry['name']}: md5 mismatch")
        if fd is not None:
            os.fsync(fd)
    finally:
        if fd is not None:
            os.close(fd)
            os.unlink(str(out))


def ashvault(conf: pathlib.Path, *args: str) -> dict[str, object]:
    exe = pathlib.Path(sys.executable).parent / "ashvault"
    proc = subprocess.run([str(exe), "--config-file", str(conf), *args, "-f", "json"], capture_output=True,
                          text=True, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise RuntimeError(f"ashvault {' '.join(args)} failed: {proc.stderr.strip()}")
    result: dict[str, object] = json.loads(proc.stdout)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--data-dir", help="where Swift's data and the volumes go (default: a temporary directory)")
    args = parser.parse_args()
    size = args.size_mib * MiB
    work = pathlib.Path(tempfile.mkdtemp(prefix="ashvault-swift-bench-", dir=args.data_dir))
    aio = _load_aio().SwiftAIO(str(work / "swift"))
    try:
        env = aio.up()
        conn = swift_client.Connection(authurl=env["SWIFT_AUTH_URL"], user=env["SWIFT_USER"], key=env["SWIFT_KEY"],
                                       auth_version="1")
        vol = str(work / "volume.img")
        write_volume(vol, size)
        conf = work / "ashvault.conf"
        conf.write_text(f"[DEFAULT]\nashvault_state_path = {work / 'state'}\nbackup_driver = swift\n\n[backup_swift]\n"
                        f"auth = single_user\nauth_version = 1\nauth_url = {env['SWIFT_AUTH_URL']}\n"
                        f"user = {env['SWIFT_USER']}\nkey = {env['SWIFT_KEY']}\n")
        ashvault(conf, "volume", "register", "bench", vol)
        best: dict[str, float] = {}

        def keep(name: str, seconds: float) -> None:
            best[name] = min(best.get(name, seconds), seconds)
            print(f"  {name:<18} {seconds:7.2f} s  {size / MiB / seconds:7.1f} MiB/s", flush=True)

        for n in range(args.repeat):
            print(f"run {n + 1} of {args.repeat}, {args.size_mib} MiB", flush=True)
            container = f"raw{n}"
            keep("raw upload", timed(lambda c=container: raw_upload(conn, vol, c)))
            start = time.perf_counter()
            backup = ashvault(conf, "backup", "create", "bench")
            keep("ashvault backup", time.perf_counter() - start)
            keep("raw download", timed(lambda c=container: raw_download(conn, c)))
            keep("raw download+write", timed(lambda c=container: raw_download(conn, c, str(work / "raw.img"))))
            start = time.perf_counter()
            restored = ashvault(conf, "backup", "restore", str(backup["id"]), "--name", f"restored{n}")
            keep("ashvault restore", time.perf_counter() - start)
            os.unlink(str(restored["volume_location"]))
        print(f"\nbest of {args.repeat}: {args.size_mib} MiB of random bytes, 50 MiB objects, same Swift")
        for what, raw_name, av_name, goal in (
            ("backup", "raw upload", "ashvault backup", 0.8),
            ("restore", "raw download", "ashvault restore", 0.9),
            ("restore", "raw download+write", "ashvault restore", 0.9),
        ):
            raw, av = size / MiB / best[raw_name], size / MiB / best[av_name]
            print(f"{what:<8} vs {raw_name:<19} {raw:7.1f} MiB/s  ashvault {av:7.1f} MiB/s  ratio {av / raw:5.2f}"
                  f"  (goal >= {goal:.2f}: {'met' if av / raw >= goal else 'NOT met'})")
    finally:
        aio.down()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
