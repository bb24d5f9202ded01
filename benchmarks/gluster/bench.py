"""Backup and restore throughput of a volume to a local GlusterFS volume: ashvault against ``dd ... conv=fsync``.

    .venv/bin/python benchmarks/gluster/bench.py [--size-mib 1024] [--repeat 1] [--data-dir DIR]

Starts its own glusterd and one-brick volume (plugins/posix_nfs_gluster/ci/servers.py; needs
plugins/posix_nfs_gluster/ci/install.sh) on 127.0.0.1, writes a volume of random bytes (incompressible and without
zeros, so both sides move exactly the same bytes), then in the same run and through the same FUSE mount (the
one the glusterfs driver mounts, ``mount -t glusterfs``):

- baseline backup: ``dd if=<volume> of=<mount>/dd.img bs=4M conv=fsync``;
- baseline restore: ``dd if=<mount>/dd.img of=<local file> bs=4M conv=fsync``;
- ashvault: ``ashvault backup create`` and ``ashvault backup restore`` (to a new volume file beside the volume)
  through the CLI, with the glusterfs driver's defaults (32 MiB objects, 8 at once, each fsynced with its
  directory, no O_DIRECT; zstd, which stores incompressible objects as they are); ``--option`` changes them.

Prints MiB/s for each and ashvault's ratio to the baseline; each figure is the best of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time
from types import ModuleType
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[2]
MiB = 1 << 20


def _load_servers() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "ashvault_posix_ci_servers", ROOT / "plugins" / "posix_nfs_gluster" / "ci" / "servers.py")
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


def dd(src: str, dst: str) -> float:
    start = time.perf_counter()
    subprocess.run(["dd", f"if={src}", f"of={dst}", "bs=4M", "conv=fsync"], check=True, capture_output=True)
    return time.perf_counter() - start


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
    parser.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                        help="a [backup_glusterfs] option for ashvault (repeatable), e.g. object_size=16777216")
    parser.add_argument("--data-dir", help="where the brick and the volumes go (default: a temporary directory)")
    args = parser.parse_args()
    size = args.size_mib * MiB
    work = pathlib.Path(tempfile.mkdtemp(prefix="ashvault-gluster-bench-", dir=args.data_dir))
    servers = _load_servers()
    gluster = servers.Gluster(str(work / "gluster"))
    base = work / "mnt"
    try:
        gluster.up()
        share = "127.0.0.1:/vol"
        vol = str(work / "volume.img")
        write_volume(vol, size)
        conf = work / "ashvault.conf"
        conf.write_text(f"[DEFAULT]\nashvault_state_path = {work / 'state'}\n"
                        "backup_driver = cinder.backup.drivers.glusterfs.GlusterfsBackupDriver\n"
                        f"glusterfs_backup_share = {share}\nglusterfs_backup_mount_point = {base}\n"
                        "[backup_glusterfs]\n" + "".join(f"{o.replace('=', ' = ', 1)}\n" for o in args.option))
        shown: dict[str, Any] = ashvault(conf, "driver", "show", "glusterfs", "--check")
        assert shown["check"] == "ok"
        mount = os.path.join(base, os.listdir(base)[0])
        ashvault(conf, "volume", "register", "bench", vol)
        best: dict[str, float] = {}
        runs: list[dict[str, float]] = []

        def keep(name: str, seconds: float) -> None:
            best[name] = min(best.get(name, seconds), seconds)
            runs[-1][name] = seconds
            print(f"  {name:<18} {seconds:7.2f} s  {size / MiB / seconds:7.1f} MiB/s", flush=True)

        for n in range(args.repeat):
            print(f"run {n + 1} of {args.repeat}, {args.size_mib} MiB", flush=True)
            runs.append({})
            on_share = os.path.join(mount, "dd.img")
            keep("dd to the mount", dd(vol, on_share))
            start = time.perf_counter()
            backup = ashvault(conf, "backup", "create", "bench")
            keep("ashvault backup", time.perf_counter() - start)
            local = str(work / "dd-restored.img")
            keep("dd from the mount", dd(on_share, local))
            os.unlink(local)
            os.unlink(on_share)
            start = time.perf_counter()
            restored = ashvault(conf, "backup", "restore", str(backup["id"]), "--name", f"restored{n}")
            keep("ashvault restore", time.perf_counter() - start)
            os.unlink(str(restored["volume_location"]))
            ashvault(conf, "backup", "delete", str(backup["id"]))

        opts = shown["options"]
        print(f"\nbest of {args.repeat}: {args.size_mib} MiB of random bytes, {opts['object_size'] // MiB} MiB "
              f"objects, {opts['max_transfers']} transfers, direct_io {opts['direct_io']}, same GlusterFS mount")
        for what, raw_name, av_name, goal in (
            ("backup", "dd to the mount", "ashvault backup", 0.8),
            ("restore", "dd from the mount", "ashvault restore", 0.8),
        ):
            each = " ".join(f"{r[raw_name] / r[av_name]:.2f}" for r in runs)
            print(f"{what:<8} ratio per run (same run's dd / ashvault time): {each}")
            raw, av = size / MiB / best[raw_name], size / MiB / best[av_name]
            print(f"{what:<8} vs {raw_name:<18} {raw:7.1f} MiB/s  ashvault {av:7.1f} MiB/s  ratio {av / raw:5.2f}"
                  f"  (goal >= {goal:.2f}: {'met' if av / raw >= goal else 'NOT met'})")
    finally:
        if base.is_dir():
            for entry in os.listdir(base):
                servers.umount(str(base / entry))
        gluster.down()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
