"""Fixtures for the cross-distribution tests."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
from clitools import ROOT, Ashvault

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


@pytest.fixture
def av(tmp_path: pathlib.Path) -> Ashvault:
    return Ashvault(tmp_path)


@pytest.fixture(scope="session")
def core_only_venv(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """A virtualenv holding ashvault and ashvault-cli only, installed with pip as a user would."""
    venv = tmp_path_factory.mktemp("core-only") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    proc = subprocess.run([*pip, str(ROOT / "core"), str(ROOT / "cli")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return venv
