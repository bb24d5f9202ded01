"""The catalog on a real PostgreSQL (scripts/services/postgresql.sh brings it up): the same commands work, and
concurrent commands on one catalog never both win a transition."""

from __future__ import annotations

import os
import pathlib
import uuid
from collections.abc import Iterator

import pytest
from clitools import Ashvault, MiB, register_volumes, sha256

from ashvault.testing import volumes

ADMIN_URL = os.environ.get("ASHVAULT_TEST_PG", "postgresql://ashvault_test:ashvault_test@127.0.0.1:5432/postgres")


@pytest.fixture
def pg_url() -> Iterator[str]:
    psycopg = pytest.importorskip("psycopg") if os.environ.get("CI") != "true" else __import__("psycopg")
    try:
        admin = psycopg.connect(ADMIN_URL, connect_timeout=5, autocommit=True)
    except psycopg.OperationalError as exc:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"PostgreSQL is not reachable ({exc}); run scripts/services/postgresql.sh")
    name = f"ashvault_{uuid.uuid4().hex[:12]}"
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    try:
        yield ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


def test_catalog_on_postgresql(tmp_path: pathlib.Path, pg_url: str) -> None:
    av = Ashvault(tmp_path, f"[database]\nconnection = {pg_url}\n")
    paths = register_volumes(av, tmp_path, 2, 24 * MiB, seed=80)
    assert not (av.state / "ashvault.sqlite").exists(), "the catalog went to PostgreSQL"
    procs = [av.popen("backup", "create", f"v{n}") for n in range(2)]
    for proc in procs:
        _out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    volumes.mutate(paths[0], percent=5, seed=90)
    inc = av.j("backup", "create", "v0", "--incremental")
    assert inc["is_incremental"] and inc["status"] == "available"
    assert sha256(av.j("backup", "restore", inc["id"])["volume_location"]) == sha256(paths[0])
    statuses = sorted(b["status"] for b in av.j("backup", "list"))
    assert statuses == ["available"] * 3
    shown = av.j("driver", "show", "posix")
    assert "ashvault_test:" not in str(shown)
