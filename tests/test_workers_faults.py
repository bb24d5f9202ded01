"""Backup workers at load and under faults: three worker processes serving fifty jobs sent at once from many
``ashvault`` processes, a RabbitMQ restart with jobs queued, a PostgreSQL restart with a job running."""

from __future__ import annotations

import collections
import contextlib
import json
import os
import pathlib
import signal
import subprocess
from collections.abc import Iterator

import pytest
from clitools import BIN, Ashvault, MiB, sha256
from workertools import PrivatePostgreSQL, Site, rabbit_vhost, rabbitmqctl, wait_for

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


def run_all(commands: list[tuple[Ashvault, list[str]]], per_process: int = 5) -> list[dict[str, object]]:
    """Run ``commands`` from several ``ashvault`` processes started at once, each an interactive shell fed up to
    ``per_process`` consecutive commands of one host (a Python start-up per command would cost more than the jobs);
    their JSON outputs, in order."""
    batches: list[tuple[Ashvault, list[list[str]]]] = []
    for av, args in commands:
        if not batches or batches[-1][0] is not av or len(batches[-1][1]) == per_process:
            batches.append((av, []))
        batches[-1][1].append(args)
    procs = []
    for av, lines in batches:
        proc = subprocess.Popen([str(BIN / "ashvault"), "--config-file", str(av.conf)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        procs.append((proc, "".join(" ".join([*args, "-f", "json"]) + "\n" for args in lines), len(lines)))
    out: list[dict[str, object]] = []
    decoder = json.JSONDecoder()
    for proc, script, count in procs:
        stdout, stderr = proc.communicate(script, timeout=600)
        assert proc.returncode == 0 and not stderr.strip(), stderr
        docs, at = [], 0
        while stdout[at:].strip():
            at += len(stdout[at:]) - len(stdout[at:].lstrip())
            doc, at = decoder.raw_decode(stdout, at)
            docs.append(doc)
        assert len(docs) == count, stdout
        out += docs
    return out


def test_three_workers_serve_fifty_jobs_sent_at_once_each_once(site: Site, tmp_path: pathlib.Path) -> None:
    # Fifty commands starting at once on two cores can hold a heartbeat back for seconds: no takeovers here.
    a, b = site.host("hostA", backup_workers=2, service_down_time=60), site.host("hostB", service_down_time=60)
    site.start(a)
    site.start(b)
    hosts = [a] * 15 + [b] * 15
    paths = [volumes.write_mixed(str(tmp_path / f"v{n}.img"), 8 * MiB, seed=100 + n, run=MiB) for n in range(30)]
    site.register(a, {f"v{n}": paths[n] for n in range(15)})
    site.register(b, {f"v{n}": paths[n] for n in range(15, 30)})
    site.wait_up(a, 3)
    first = run_all([(hosts[n], ["backup", "create", f"v{n}", "--no-wait"]) for n in range(20)])
    catalog = site.catalog()
    ids = [str(x["id"]) for x in first]
    wait_for("the first backups", lambda: all(catalog.backup_status(i) == "available" for i in ids), 300, 0.2)

    wave = [(hosts[n], ["backup", "create", f"v{n}", "--no-wait"]) for n in range(30)]
    wave += [(hosts[n], ["backup", "restore", ids[n], "--no-wait"]) for n in range(20)]
    sent = run_all(wave)
    new_ids = [str(x["id"]) for x in sent[:30]]
    restores = sent[30:]
    wait_for("fifty jobs", lambda: not catalog.list_jobs(state=["queued", "running"]), 300, 0.2)

    assert [catalog.backup_status(i) for i in ids + new_ids] == ["available"] * 50
    for n, r in enumerate(restores):
        vol = catalog.get_volume(str(r["volume_id"]))
        assert vol.status == "available" and vol.host == hosts[n].tmp.name
        assert sha256(vol.location) == sha256(paths[n]), f"restore {n} differs"
    jobs = catalog.list_jobs()
    assert len(jobs) == 70 and {j.state for j in jobs} == {"done"}
    per_backup = collections.Counter((j.backup_id, j.kind) for j in jobs)
    assert max(per_backup.values()) == 1
    claims = site.claims()
    assert sorted(claims[i] for i in ids) == [["backup", "restore"]] * 20, "each job claimed once, in order"
    assert all(claims[i] == ["backup"] for i in new_ids)
    assert sum(len(v) for v in claims.values()) == 70
    workers = {j.worker for j in jobs}
    assert len(workers) == 3, "all three worker processes took jobs"
    catalog.close()


def test_jobs_queued_across_a_rabbitmq_restart_run_once(site: Site, tmp_path: pathlib.Path) -> None:
    a = site.host("hostA")
    worker = site.start(a)
    for n in range(4):
        a.j("volume", "register", f"v{n}", volumes.write_mixed(str(tmp_path / f"v{n}.img"), 8 * MiB, seed=n))
    site.wait_up(a, 1)
    worker.send_signal(signal.SIGSTOP)  # jobs wait in the broker's queue
    try:
        ids = [str(x["id"]) for x in run_all([(a, ["backup", "create", f"v{n}", "--no-wait"]) for n in range(4)])]
        stopped = rabbitmqctl("stop_app")
        assert stopped.returncode == 0, stopped.stderr
    finally:
        started = rabbitmqctl("start_app")
        worker.send_signal(signal.SIGCONT)
    assert started.returncode == 0, started.stderr
    catalog = site.catalog()
    wait_for("the queued jobs", lambda: all(catalog.backup_status(i) == "available" for i in ids), 120, 0.5)
    claims = site.claims()
    assert all(claims[i] == ["backup"] for i in ids)
    assert "sent again" in site.log_text(), "the catalog re-sent what the restart lost"
    catalog.close()


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgreSQL]:
    pg = PrivatePostgreSQL()
    try:
        yield pg
    finally:
        pg.close()


def test_a_postgresql_restart_fails_the_running_job_cleanly(tmp_path: pathlib.Path, rabbit_url: str,
                                                            private_pg: PrivatePostgreSQL) -> None:
    site = Site(tmp_path, private_pg.url, rabbit_url)
    try:
        a = site.host("hostA", backup_bandwidth_limit=MiB)
        site.start(a)
        path = volumes.write_mixed(str(tmp_path / "v0.img"), 16 * MiB, seed=7, run=MiB)
        a.j("volume", "register", "v0", path)
        site.wait_up(a, 1)
        running = a.j("backup", "create", "v0", "--no-wait")
        catalog = site.catalog()
        wait_for("the job to run", lambda: catalog.list_jobs(backup_id=running["id"], state="running"), 60, 0.05)
        catalog.close()
        private_pg.stop()
        subprocess.run(["sleep", "2"], check=True)
        private_pg.start()
        catalog = site.catalog()
        ended = wait_for("the job's end", lambda: catalog.list_jobs(backup_id=running["id"], state=["done", "error"]),
                         120, 0.5)[0]
        record = catalog.get_backup(running["id"])
        # Either the job rode out the restart and its backup is whole, or it ended in error with nothing kept.
        if ended.state == "error":
            assert record.status == "error" and record.fail_reason
            assert record.object_count == 0 and record.stored_bytes == 0, "nothing of a half backup is recorded"
            assert not [p for p in site.backups.rglob("*") if p.is_file()], "what it wrote is removed"
        else:
            assert record.status == "available" and record.object_count > 0
            assert sha256(a.j("backup", "restore", record.id)["volume_location"]) == sha256(path)
        assert catalog.get_volume("v0").status == "available"
        assert "the catalog did not answer" in site.log_text(), "the worker met the restart"
        catalog.close()
        after = a.j("backup", "create", "v0")  # the worker reconnected
        assert after["status"] == "available"
        assert sha256(a.j("backup", "restore", after["id"])["volume_location"]) == sha256(path)
    finally:
        site.close()


@contextlib.contextmanager
def catalog_outage(pg_url: str) -> Iterator[None]:
    """The catalog's database refuses every connection, and those open are cut, until the block ends: what a
    PostgreSQL restart does to its clients, without restarting a server other tests may share."""
    import psycopg

    server, name = pg_url.rsplit("/", 1)
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
        try:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
            yield
        finally:
            admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')


def test_a_job_caught_in_a_catalog_outage_ends_error_and_the_worker_runs_the_next(
    site: Site, pg_url: str, tmp_path: pathlib.Path
) -> None:
    a = site.host("hostA", backup_bandwidth_limit=MiB, backup_file_size=MiB)
    site.start(a)
    path = tmp_path / "v0.img"
    path.write_bytes(os.urandom(4 * MiB))
    a.j("volume", "register", "v0", str(path))
    site.wait_up(a, 1)
    running = a.j("backup", "create", "v0", "--no-wait")
    catalog = site.catalog()
    job = wait_for("the job to run", lambda: catalog.list_jobs(backup_id=running["id"], state="running"), 60, 0.05)[0]
    catalog.close()
    wait_for("its first objects", lambda: any(p.is_file() for p in site.backups.rglob("d*")), 60, 0.05)

    # The catalog stays away until the job has failed on it, wherever that happens (a cancellation check, its final
    # record): the job cannot ride the outage out, so its end is the branch where the catalog failed under it.
    with catalog_outage(pg_url):
        wait_for("the job to fail", lambda: f"job {job.id}: failed" in site.log_text(), 60, 0.05)

    catalog = site.catalog()
    ended = wait_for("the job's end", lambda: catalog.list_jobs(backup_id=running["id"], state=["done", "error"]),
                     60, 0.1)[0]
    record = catalog.get_backup(running["id"])
    assert ended.state == "error" and record.status == "error"
    assert record.fail_reason and "catalog" in record.fail_reason, record.fail_reason
    assert record.object_count == 0 and record.stored_bytes == 0, "nothing of a half backup is recorded"
    assert not [p for p in site.backups.rglob("*") if p.is_file()], "what it wrote is removed"
    assert catalog.get_volume("v0").status == "available"
    assert "the catalog did not answer" in site.log_text(), "the worker's heartbeat met the outage"
    catalog.close()

    after = a.j("backup", "create", "v0")  # the same worker, on new connections
    assert after["status"] == "available"
    assert sha256(a.j("backup", "restore", after["id"])["volume_location"]) == sha256(str(path))
    assert site.claims()[after["id"]] == ["backup", "restore"]
