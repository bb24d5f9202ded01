"""Checks and recovery with a shared catalog: verify --all served by backup workers (which mark what they find),
and a lost PostgreSQL catalog rebuilt from the backend."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest
from clitools import Ashvault, MiB, sha256
from workertools import Site, rabbit_vhost

from ashvault.testing import volumes


@pytest.fixture
def rabbit_url() -> Iterator[str]:
    yield from rabbit_vhost()


def test_verify_all_runs_in_the_workers_and_marks_damage(tmp_path: pathlib.Path, pg_url: str,
                                                         rabbit_url: str) -> None:
    site = Site(tmp_path, pg_url, rabbit_url)
    try:
        a = site.host("hostA")
        site.start(a)
        path = volumes.write_mixed(str(tmp_path / "v.img"), 4 * MiB, seed=7, run=MiB, zero=0, text=0)
        a.j("volume", "register", "v", path)
        site.wait_up(a, 1)
        full = a.j("backup", "create", "v")
        volumes.mutate(path, percent=10, seed=8)
        inc = a.j("backup", "create", "v", "--incremental")
        rows = a.j("backup", "verify", "--all", "--sample", "50", "--seed", "1")
        assert [r["result"] for r in rows] == ["ok", "ok"]
        assert site.claims()[inc["id"]] == ["backup", "verify"], "the verify ran in the worker"
        manifest = next(site.backups.rglob(f"backup_{full['id']}/manifest"))
        manifest.write_bytes(manifest.read_bytes()[:-3])
        res = a("backup", "verify", "--all", "--metadata-only", "-f", "json", ok=False)
        got = {r["backup_id"]: r for r in res.json()}
        assert res.rc == 4 and got[full["id"]]["result"] == "failed" and got[inc["id"]]["result"] == "ok"
        shown = a.j("backup", "show", full["id"])
        assert shown["status"] == "error" and shown["fail_reason"].startswith("verify failed: ")
        assert "manifest" in shown["fail_reason"]
    finally:
        site.close()


def test_a_lost_postgresql_catalog_is_rebuilt(tmp_path: pathlib.Path, pg_url: str) -> None:
    psycopg = pytest.importorskip("psycopg")
    av = Ashvault(tmp_path, f"[ashvault_database]\nconnection = {pg_url}\n")
    path = volumes.write_mixed(str(tmp_path / "v.img"), 4 * MiB, seed=9, run=MiB)
    av.j("volume", "register", "v", path)
    want = {}
    for step in range(3):
        if step:
            volumes.mutate(path, percent=5, seed=step)
        b = av.j("backup", "create", "v", *(["--incremental"] if step else []), "--name", f"s{step}")
        want[b["id"]] = sha256(path)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
    assert av.j("backup", "list") == []
    rows = av.j("backup", "rebuild")
    assert sorted(r["action"] for r in rows) == ["created"] * 4
    listed = av.j("backup", "list")
    assert [b["name"] for b in listed] == ["s0", "s1", "s2"]
    assert [b["parent_id"] for b in listed] == [None, listed[0]["id"], listed[1]["id"]]
    for bid, digest in want.items():
        assert sha256(av.j("backup", "restore", bid, f"r{bid[:6]}")["volume_location"]) == digest
