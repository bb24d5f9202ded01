"""Backup and restore throughput to a GCS emulator: ashvault against raw google-cloud-storage uploads and downloads.

    .venv/bin/python benchmarks/google/bench.py [--size-mib 1024] [--repeat 1] [--writer-chunk-mib -1]

Starts gcp-storage-emulator in memory on 127.0.0.1 (plugins/google/ci/emulators.py; requirements-test.txt installs
it), writes a volume of random bytes, then in the same run, each side on a fresh emulator (it spends more CPU per
upload the more it already holds: five 50 MiB uploads cost it 0.6 s of CPU when empty and 1.3 s after twenty more,
so the side that went second used to pay for the first side's objects):

- baseline: google-cloud-storage uploads the volume's bytes, read from the volume file, as 50 MiB objects, one
  after the other (``upload_from_string`` with ``if_generation_match=0`` and ``checksum="crc32c"``: the client
  computes the CRC32C and checks the server's; the blob's chunk_size as ashvault's ``writer_chunk_size``), and
  downloads them (``download_as_bytes`` with the CRC32C checked); the download is timed twice: discarding the
  bytes, and writing them into a volume file that is fsynced at the end (what a restore has to do); and once more
  discarding them but read in one piece (``single_shot_download``, as the google driver reads, where the
  client's default reads 8 KiB at a time);
- ashvault: ``ashvault backup create`` and ``ashvault backup restore`` (to a new volume file) through the CLI, with
  the google driver's defaults (50 MiB objects, zstd, ``max_transfers`` 4) and the same ``writer_chunk_size``.

What is compared: the same bytes go up on both sides. Random bytes do not compress, so zstd's probe stores every
object as it is, and the backup stores the volume's bytes in the same number of 50 MiB objects, plus its manifest
and index (about 130 KiB per GiB; the report prints what the backup stored). Both sides send a CRC32C-checked
upload per object, and the emulator computes CRC32C and MD5 of every object either way. What ashvault does on
top, and the baseline does not, is its own work: fingerprints of every block, the compression probe and a BLAKE3
hash of every object (the core's work, about 1.4 CPU s per GiB on the posix driver, docs/performance.md), reading
the volume with O_DIRECT where the baseline reads the page cache, and the start of a CLI process (imports,
catalog: about 0.75 CPU s, once per command). Its client CPU figure includes all of that; the baseline's is this
process's.

The emulator serves one request at a time, so ashvault's parallel transfers cannot beat the baseline by
concurrency: the ratio shows what the engine costs on top of the client. On a machine whose CPUs are busy (this
one is shared), wall time follows the CPU both sides and the emulator need, so compare the CPU columns too. Prints
MiB/s for each and ashvault's ratio to the baseline; each figure is the best of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import pathlib
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from types import ModuleType

from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

ROOT = pathlib.Path(__file__).resolve().parents[2]
MiB = 1 << 20
OBJECT = 50 * MiB


def _load_emulators() -> ModuleType:
    path = ROOT / "plugins" / "google" / "ci" / "emulators.py"
    spec = importlib.util.spec_from_file_location("gcs_emulators", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["gcs_emulators"] = module
    spec.loader.exec_module(module)
    return module


def write_volume(path: str, size: int) -> None:
    with open(path, "wb") as f:
        for off in range(0, size, 16 * MiB):
            f.write(os.urandom(min(16 * MiB, size - off)))
        f.flush()
        os.fsync(f.fileno())


def cpu_of(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far."""
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu() -> float:
    """CPU seconds of this process and of its finished children (the ashvault commands)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def raw_upload(client: storage.Client, path: str, bucket_name: str, chunk_size: int | None) -> None:
    bucket = client.create_bucket(bucket_name)
    with open(path, "rb") as f:
        i = 0
        while data := f.read(OBJECT):
            blob = bucket.blob(f"raw-{i:05d}", chunk_size=chunk_size)
            blob.upload_from_string(data, content_type="application/octet-stream", if_generation_match=0,
                                    checksum="crc32c")
            i += 1


def raw_download(client: storage.Client, bucket_name: str, out: str | None = None, *, single_shot: bool = False
                 ) -> None:
    """Download every object, CRC32C-checked; into the file ``out`` (then fsynced) when given."""
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600) if out else None
    try:
        for blob in client.list_blobs(bucket_name, prefix="raw-"):
            data = blob.download_as_bytes(checksum="crc32c", single_shot_download=single_shot)
            if fd is not None:
                os.write(fd, data)
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
    parser.add_argument("--writer-chunk-mib", type=int, default=-1,
                        help="resumable upload piece for both sides, in MiB; -1 (default) sends each object in one "
                             "piece (gcp-storage-emulator rewrites the whole partial upload for every piece)")
    parser.add_argument("--set", action="append", default=[], metavar="OPTION=VALUE",
                        help="an extra [backup_google] option for ashvault, e.g. max_transfers=1")
    parser.add_argument("--data-dir", help="where the volumes go (default: a temporary directory)")
    args = parser.parse_args()
    size = args.size_mib * MiB
    chunk = None if args.writer_chunk_mib == -1 else args.writer_chunk_mib * MiB
    work = pathlib.Path(tempfile.mkdtemp(prefix="ashvault-google-bench-", dir=args.data_dir))
    emulators = _load_emulators()
    port = emulators.free_port()
    emulator = emulators.StorageEmulator(port=port)
    try:
        emulator.start()
        vol = str(work / "volume.img")
        write_volume(vol, size)
        conf = work / "ashvault.conf"
        conf.write_text(f"[DEFAULT]\nashvault_state_path = {work / 'state'}\nbackup_driver = google\n\n"
                        "[backup_google]\n"
                        f"anonymous = true\nendpoint = {emulator.url}\nproject_id = bench\ncontainer = bench\n"
                        f"writer_chunk_size = {chunk or -1}\n"
                        + "".join(f"{kv.replace('=', ' = ', 1)}\n" for kv in args.set))
        ashvault(conf, "volume", "register", "bench", vol)
        best: dict[str, float] = {}

        def fresh_emulator() -> storage.Client:
            # The emulator spends more CPU per upload the more it holds, so each side starts on an empty one.
            nonlocal emulator
            emulator.stop()
            emulator = emulators.StorageEmulator(port=port)
            emulator.start()
            return storage.Client(project="bench", credentials=AnonymousCredentials(),
                                  client_options={"api_endpoint": emulator.url})

        def keep(name: str, fn: Callable[[], object]) -> object:
            cpu, server, start = own_cpu(), cpu_of(emulator.proc.pid), time.perf_counter()
            result = fn()
            seconds = time.perf_counter() - start
            cpu, server = own_cpu() - cpu, cpu_of(emulator.proc.pid) - server
            best[name] = min(best.get(name, seconds), seconds)
            print(f"  {name:<18} {seconds:7.2f} s  {size / MiB / seconds:7.1f} MiB/s   CPU: client {cpu:5.1f} s, "
                  f"emulator {server:5.1f} s", flush=True)
            return result

        for n in range(args.repeat):
            print(f"run {n + 1} of {args.repeat}, {args.size_mib} MiB", flush=True)
            c = fresh_emulator()
            keep("raw upload", lambda c=c: raw_upload(c, vol, "raw", chunk))
            keep("raw download", lambda c=c: raw_download(c, "raw"))
            keep("raw download+write", lambda c=c: raw_download(c, "raw", str(work / "raw.img")))
            keep("raw single-shot", lambda c=c: raw_download(c, "raw", single_shot=True))
            fresh_emulator()
            backup = keep("ashvault backup", lambda: ashvault(conf, "backup", "create", "bench"))
            stored = backup.get("stored_bytes") if isinstance(backup, dict) else None
            if stored is not None:
                print(f"  (the backup stored {int(stored) / MiB:.1f} MiB for the volume's {size / MiB:.0f} MiB)")
            restored = keep("ashvault restore", lambda b=backup, n=n: ashvault(  # type: ignore[index]
                conf, "backup", "restore", str(b["id"]), "--name", f"restored{n}"))
            os.unlink(str(restored["volume_location"]))  # type: ignore[index]
        piece = "one piece" if chunk is None else f"{args.writer_chunk_mib} MiB pieces"
        print(f"\nload average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        print(f"best of {args.repeat}: {args.size_mib} MiB of random bytes, 50 MiB objects ({piece}), same "
              "gcp-storage-emulator (in memory, a fresh one for each side)")
        for what, raw_name, av_name, goal in (
            ("backup", "raw upload", "ashvault backup", 0.8),
            ("restore", "raw download", "ashvault restore", 0.8),
            ("restore", "raw download+write", "ashvault restore", 0.8),
            ("restore", "raw single-shot", "ashvault restore", 0.8),
        ):
            raw, av = size / MiB / best[raw_name], size / MiB / best[av_name]
            print(f"{what:<8} vs {raw_name:<19} {raw:7.1f} MiB/s  ashvault {av:7.1f} MiB/s  ratio {av / raw:5.2f}"
                  f"  (goal >= {goal:.2f}: {'met' if av / raw >= goal else 'NOT met'})")
    finally:
        emulator.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
