"""Back up and restore a sample volume with the ashvault command, and say what happened."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

from ashvault.testing import volumes

MiB = 1 << 20
EXE = str(pathlib.Path(sys.executable).parent / "ashvault")


sha = volumes.sha256_file


def main() -> int:
    work = tempfile.mkdtemp(prefix="ashvault-demo-")
    conf = os.path.join(work, "ashvault.conf")
    with open(conf, "w") as f:
        f.write(f"[DEFAULT]\nashvault_state_path = {work}/state\n")

    def av(*args: str) -> dict:  # type: ignore[type-arg]
        cmd = [EXE, "--config-file", conf, *args, "-f", "json"]
        print("$ ashvault " + " ".join(args))
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode:
            sys.stderr.write(proc.stderr)
            raise SystemExit(proc.returncode)
        return json.loads(proc.stdout)  # type: ignore[no-any-return]

    try:
        vol = av("volume", "create", "volume1", "--size", "1")
        seed = os.path.join(work, "seed.img")
        volumes.write_mixed(seed, 256 * MiB, seed=1)
        with open(seed, "rb") as src, open(vol["location"], "r+b") as dst:
            shutil.copyfileobj(src, dst, 8 * MiB)
        os.unlink(seed)
        print(f"  volume1: 1 GiB sparse file, 256 MiB of mixed data written ({vol['location']})")
        full = av("backup", "create", "volume1", "--name", "full")
        print(f"  full backup {full['id']}: {full['status']}, {full['stored_bytes'] / MiB:.1f} MiB stored")
        volumes.mutate(vol["location"], percent=1, seed=2)
        print("  overwrote 1% of volume1's 64 KiB blocks")
        inc = av("backup", "create", "volume1", "--name", "incremental", "--incremental")
        print(f"  incremental {inc['id']}: {inc['status']}, {inc['stored_bytes'] / MiB:.1f} MiB stored")
        verified = av("backup", "verify", "incremental")
        print(f"  verify: {verified['result']}, {verified['objects_checked']} objects checked")
        restored = av("backup", "restore", "incremental")
        print(f"  restored to new volume {restored['volume_name']} ({restored['volume_location']})")
        same = sha(restored["volume_location"]) == sha(vol["location"])
        allocated = os.stat(restored["volume_location"]).st_blocks * 512
        print(f"  restored bytes match volume1: {same}; allocated {allocated / MiB:.0f} MiB of 1024 (sparse)")
        return 0 if same else 1
    finally:
        if os.environ.get("KEEP"):
            print(f"state kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
