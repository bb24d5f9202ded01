"""Backup workers on RabbitMQ and a shared PostgreSQL catalog: real ``ashvault-backup`` processes serve the jobs the
``ashvault`` command sends when ashvault_transport_url is set."""

from __future__ import annotations

import json
import pathlib
import signal
import time
from collections.abc import Iterator

import pytest
from clitools import MiB, sha256
from workertools import Site, rabbit_vhost, wait_for

from ashvault.testing import volumes


@pytest.fixture
def rabbit_url() -> Iterator[str]:
    yield from rabbit_vhost()


@pytest.fixture
def site(tmp_path: pathlib.Path, pg_url: str, rabbit_url: str) -> Iterator[Site]:
    s = Site(tmp_path, pg_url, rabbit_url)
    try:
        yield s
    finally:
        s.close()


def test_a_worker_runs_each_job_once_and_stops_gracefully(site: Site, tmp_path: pathlib.Path) -> None:
    a = site.host("hostA")
    worker = site.start(a)
    path = volumes.write_mixed(str(tmp_path / "v0.img"), 16 * MiB, seed=1, run=MiB)
    a.j("volume", "register", "v0", path)
    site.wait_up(a, 1)
    b = a.j("backup", "create", "v0")
    assert b["status"] == "available"
    restored = a.j("backup", "restore", b["id"])
    assert sha256(restored["volume_location"]) == sha256(path)
    a("backup", "verify", b["id"])
    assert site.claims()[b["id"]] == ["backup", "restore", "verify"], "the jobs ran in the worker"

    # The same message delivered again (as RabbitMQ may) is claimed by nobody: the catalog says it ran.
    from ashvault.conf import make_config
    from ashvault.workers import messaging

    catalog = site.catalog()
    first = catalog.list_jobs(backup_id=b["id"])[0]
    conf = make_config([], [str(a.conf)])
    transport = messaging.transport(conf)
    try:
        assert messaging.Sender(transport).cast(first.id, "hostA")
    finally:
        transport.cleanup()
    wait_for("the repeated message", lambda: f"job {first.id}: already claimed" in site.log_text(), 30)
    assert site.claims()[b["id"]] == ["backup", "restore", "verify"]
    assert catalog.get_job(first.id).state == "done"
    catalog.close()

    # SIGTERM while a backup runs: the worker takes no more jobs, finishes it and exits cleanly.
    slow = site.host("hostA", backup_bandwidth_limit=MiB)
    slow_worker = site.start(slow)
    site.stop(worker)
    site.wait_up(slow, 1)
    running = slow.j("backup", "create", "v0", "--no-wait")
    assert running["status"] == "creating"
    catalog = site.catalog()
    wait_for("the job to start", lambda: catalog.list_jobs(backup_id=running["id"], state="running"), poll=0.05)
    catalog.close()
    assert slow.j("backup", "show", running["id"])["progress"].endswith("%")
    assert site.stop(slow_worker) == 0
    assert slow.j("backup", "show", running["id"])["status"] == "available"
    assert [s["status"] for s in site.services(slow)] == ["stopped", "stopped"]


def test_a_dead_workers_job_is_marked_error_by_another(site: Site, tmp_path: pathlib.Path) -> None:
    # 1 MiB objects at 1 MiB/s: the first lands within a second or two, and the rest take seconds more.
    a = site.host("hostA", backup_bandwidth_limit=MiB, backup_file_size=MiB)
    b_host = site.host("hostB")
    doomed = site.start(a)
    site.start(b_host)
    path = volumes.write_mixed(str(tmp_path / "v0.img"), 16 * MiB, seed=3, run=MiB)
    a.j("volume", "register", "v0", path)
    site.wait_up(a, 2)
    earlier = a.j("backup", "create", "v0")
    def stored() -> set[str]:
        return {str(p.relative_to(site.backups)) for p in site.backups.rglob("*") if p.is_file()}

    before = stored()
    running = a.j("backup", "create", "v0", "--no-wait")
    wait_for("objects of the running backup", poll=0.05,
             check=lambda: {p for p in stored() - before if "/.tmp-" not in p})
    doomed.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    doomed.wait(timeout=30)
    # service_down_time 4 s plus a heartbeat of 1 s (plus the time a check itself takes).
    catalog = site.catalog()
    wait_for("the job marked error", lambda: catalog.backup_status(running["id"]) == "error", timeout=30, poll=0.1)
    assert time.monotonic() - killed_at <= 4 + 1 + 1.5
    catalog.close()
    shown = a.j("backup", "show", running["id"])
    assert "no heartbeat" in shown["fail_reason"] and "hostA" in shown["fail_reason"]
    assert stored() == before, "what it wrote is removed"
    assert a.j("volume", "show", "v0")["status"] == "available"
    statuses = {s["host"]: s["status"] for s in site.services(a)}
    assert statuses == {"hostA": "down", "hostB": "up"}
    listing = json.loads(a("service", "list", "-f", "json").out)
    assert {"host", "binary", "status", "last_heartbeat", "jobs_running"} <= set(listing[0])
    # The earlier backup still restores (by hostA's new worker: the volume files live there).
    site.start(site.host("hostA"))
    restored = a.j("backup", "restore", earlier["id"])
    assert sha256(restored["volume_location"]) == sha256(path)


def test_file_volumes_go_to_their_hosts_workers_and_others_to_any(site: Site, tmp_path: pathlib.Path) -> None:
    a, b = site.host("hostA"), site.host("hostB")
    site.start(a)
    worker_b = site.start(b)
    pa = [volumes.write_mixed(str(tmp_path / f"a{n}.img"), 8 * MiB, seed=10 + n, run=MiB) for n in range(3)]
    pb = [volumes.write_mixed(str(tmp_path / f"b{n}.img"), 8 * MiB, seed=20 + n, run=MiB) for n in range(3)]
    site.register(a, {f"a{n}": pa[n] for n in range(3)})
    site.register(b, {f"b{n}": pb[n] for n in range(3)})
    site.wait_up(a, 2)
    ids_a = [a.j("backup", "create", f"a{n}", "--no-wait")["id"] for n in range(3)]
    ids_b = [b.j("backup", "create", f"b{n}", "--no-wait")["id"] for n in range(3)]
    catalog = site.catalog()
    wait_for("the backups", lambda: all(catalog.backup_status(bid) == "available" for bid in ids_a + ids_b))
    catalog.close()
    logs = {proc.pid: log.read_text() for proc, log in site.workers}
    log_a, log_b = logs[site.workers[0][0].pid], logs[worker_b.pid]
    assert all(f"of backup {bid}" in log_a and f"of backup {bid}" not in log_b for bid in ids_a)
    assert all(f"of backup {bid}" in log_b and f"of backup {bid}" not in log_a for bid in ids_b)
    # A verify needs no volume: any worker serves it, here B's for a backup made on A once A's workers stop.
    site.stop(site.workers[0][0])
    b.j("backup", "verify", ids_a[0])
    assert f"verify of backup {ids_a[0]}" in site.workers[1][1].read_text()


def test_a_job_is_claimed_by_exactly_one_of_many_racing_workers(pg_url: str, tmp_path: pathlib.Path) -> None:
    import threading

    from ashvault.catalog import Catalog, JobRecord

    catalogs = [Catalog(pg_url, lock_dir=str(tmp_path)) for _ in range(8)]
    try:
        for n in range(5):
            catalogs[0].add(JobRecord(id=f"job-{n}", kind="verify", backup_id=f"b{n}", body="{}"))
            start = threading.Barrier(len(catalogs))
            won: list[int] = []

            def claim(i: int, n: int = n, start: threading.Barrier = start, won: list[int] = won) -> None:
                start.wait()
                if catalogs[i].claim_job(f"job-{n}", f"worker-{i}"):
                    won.append(i)

            threads = [threading.Thread(target=claim, args=(i,)) for i in range(len(catalogs))]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert len(won) == 1
            assert catalogs[0].get_job(f"job-{n}").worker == f"worker-{won[0]}"
    finally:
        for c in catalogs:
            c.close()
