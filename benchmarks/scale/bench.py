"""Backup workers on RabbitMQ and PostgreSQL: what the RPC path costs and what a second worker buys.

    .venv/bin/python benchmarks/scale/bench.py [--jobs 20] [--volumes 8] [--size-mib 32]

Uses the local RabbitMQ (a vhost of its own) and PostgreSQL (a database of its own, through $ASHVAULT_TEST_PG or the
test role), both dropped at the end. In the same run:

- per-job overhead: ``--jobs`` backups of a 1 MiB volume one after another through the API with the local
  dispatcher (baseline), then with ``ashvault_transport_url`` set and one ``ashvault-backup`` worker; the difference
  of the
  mean times is what the RPC path adds to a job (the aim is under 50 ms);
- aggregate throughput: ``--volumes`` volumes of ``--size-mib`` MiB (random and text, as real volumes), all sent at
  once (no wait), with one worker process and then two (``backup_workers = 2``); MiB/s of volume data backed up,
  and the ratio of two workers to one;
- per backup, the catalog transactions (PostgreSQL's commit count, heartbeats included) and the messages sent.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
MiB = 1 << 20
ADMIN = os.environ.get("ASHVAULT_TEST_PG", "postgresql://ashvault_test:ashvault_test@127.0.0.1:5432/postgres")


def ctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=120)


def commits(url: str) -> int:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()").fetchone()
        return int(row[0]) if row else 0


class Bench:
    def __init__(self, tmp: pathlib.Path, pg: str, bus: str) -> None:
        self.tmp, self.pg, self.bus = tmp, pg, bus
        self.workers: list[subprocess.Popen[bytes]] = []

    def conf(self, name: str, *, remote: bool, workers: int = 1) -> pathlib.Path:
        path = self.tmp / f"{name}.conf"
        text = (f"[DEFAULT]\nashvault_state_path = {self.tmp / 'state'}\nhost = bench\nbackup_driver = posix\n"
                f"backup_workers = {workers}\nreport_interval = 2\nservice_down_time = 60\n")
        if remote:
            text += f"ashvault_transport_url = {self.bus}\n"
        text += f"[database]\nconnection = {self.pg}\n[backup_posix]\npath = {self.tmp / 'backups'}\n"
        path.write_text(text)
        return path

    def api(self, conf: pathlib.Path) -> Any:
        from ashvault.api import API
        from ashvault.conf import make_config

        return API(make_config([], [str(conf)]))

    def start(self, conf: pathlib.Path, processes: int) -> None:
        log = open(self.tmp / f"worker-{len(self.workers)}.log", "wb")  # noqa: SIM115
        self.workers.append(subprocess.Popen([str(pathlib.Path(sys.executable).parent / "ashvault-backup"),
                                              "--config-file", str(conf)], stdout=log, stderr=subprocess.STDOUT))
        api = self.api(conf)
        try:
            while sum(s["status"] == "up" for s in api.service_list()) < processes:
                time.sleep(0.2)
        finally:
            api.close()

    def stop(self) -> None:
        for proc in self.workers:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=120)
        self.workers.clear()


def per_job(api: Any, volume: str, jobs: int) -> float:
    times = []
    for _ in range(jobs):
        start = time.perf_counter()
        b = api.backup_create(volume)
        times.append(time.perf_counter() - start)
        assert b.status == "available", b.fail_reason
    return statistics.mean(times)


def throughput(api: Any, names: list[str], size: int) -> float:
    start = time.perf_counter()
    ids = [api.backup_create(n, wait=False).id for n in names]
    while any(api.catalog.backup_status(i) == "creating" for i in ids):
        time.sleep(0.05)
    elapsed = time.perf_counter() - start
    assert all(api.catalog.backup_status(i) == "available" for i in ids)
    return len(names) * size / MiB / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--volumes", type=int, default=8)
    parser.add_argument("--size-mib", type=int, default=32)
    args = parser.parse_args()

    import psycopg

    from ashvault.testing import volumes

    vhost, db = f"bench_{uuid.uuid4().hex[:8]}", f"bench_{uuid.uuid4().hex[:8]}"
    ctl("add_vhost", vhost)
    ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    admin = psycopg.connect(ADMIN, autocommit=True)
    admin.execute(f"CREATE DATABASE {db}")
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="ashvault-bench-scale-"))
    bench = Bench(tmp, ADMIN.rsplit("/", 1)[0] + "/" + db, f"rabbit://guest:guest@127.0.0.1:5672/{vhost}")
    try:
        local_conf, remote_conf = bench.conf("local", remote=False), bench.conf("remote", remote=True)
        local = bench.api(local_conf)
        small = str(tmp / "small.img")
        volumes.write_mixed(small, MiB, seed=1, run=MiB // 4)
        local.volume_register("small", small)
        names = []
        for n in range(args.volumes):
            path = str(tmp / f"v{n}.img")
            volumes.write_mixed(path, args.size_mib * MiB, seed=10 + n, run=MiB)
            local.volume_register(f"v{n}", path)
            names.append(f"v{n}")
        per_job(local, "small", 2)
        local_mean = per_job(local, "small", args.jobs)
        local.close()

        bench.start(remote_conf, 1)
        remote = bench.api(remote_conf)
        per_job(remote, "small", 2)
        before = commits(bench.pg)
        rpc_mean = per_job(remote, "small", args.jobs)
        per_backup_tx = (commits(bench.pg) - before) / args.jobs
        one = throughput(remote, names, args.size_mib * MiB)
        remote.close()
        bench.stop()

        bench.start(bench.conf("two", remote=True, workers=2), 2)
        remote = bench.api(remote_conf)
        two = throughput(remote, names, args.size_mib * MiB)
        remote.close()
        bench.stop()
        resent = sum(p.read_text().count("sent again") for p in tmp.glob("worker-*.log"))

        print(f"per-job time, {args.jobs} backups of a 1 MiB volume one after another:")
        print(f"  local dispatcher   {local_mean * 1000:7.1f} ms")
        print(f"  RPC, one worker    {rpc_mean * 1000:7.1f} ms   overhead {(rpc_mean - local_mean) * 1000:+.1f} ms "
              f"(ratio {rpc_mean / local_mean:.2f})")
        print(f"aggregate backup throughput, {args.volumes} x {args.size_mib} MiB sent at once:")
        print(f"  one worker         {one:7.1f} MiB/s")
        print(f"  two workers        {two:7.1f} MiB/s   ratio {two / one:.2f}")
        print(f"per backup: catalog transactions {per_backup_tx:.1f} (heartbeats of the run included), "
              f"catalog rows written 2 (backup, job), messages sent 1 (+{resent} re-sent in the whole run)")
    finally:
        bench.stop()
        shutil.rmtree(tmp, ignore_errors=True)
        admin.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        admin.close()
        ctl("delete_vhost", vhost)
    return 0


if __name__ == "__main__":
    sys.exit(main())
