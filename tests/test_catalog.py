"""The catalog on SQLite and on a real PostgreSQL: records round-trip, transitions are conditional, timestamps stay
UTC and readable by catalogs written before, bad URLs give one-line errors, and opening a catalog that needs no
migration imports no SQLAlchemy."""

from __future__ import annotations

import concurrent.futures
import datetime
import pathlib
import sqlite3
import subprocess
import sys
import threading
import time
import uuid

import pytest

from ashvault import exceptions
from ashvault.catalog import Backup, BackupStatus, Catalog, Volume

UTC = datetime.UTC


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Catalog:
    url = f"sqlite:///{tmp_path / 'c.sqlite'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    cat = Catalog(url, lock_dir=str(tmp_path / "locks"))
    request.addfinalizer(cat.close)
    return cat


def _vol(name: str = "v", **kw: object) -> Volume:
    return Volume(id=str(uuid.uuid4()), name=name, location=f"/dev/{name}", **kw)  # type: ignore[arg-type]


def _backup(vol: Volume, when: datetime.datetime, **kw: object) -> Backup:
    fields: dict[str, object] = {"status": BackupStatus.AVAILABLE, "host": "h1", "data_timestamp": when,
                                 "created_at": when}
    fields.update(kw)
    return Backup(id=str(uuid.uuid4()), volume_id=vol.id, **fields)  # type: ignore[arg-type]


def test_records_round_trip_with_utc_timestamps(catalog: Catalog) -> None:
    when = datetime.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    vol = _vol(managed=True, size=1 << 40, created_at=when)
    catalog.add(vol)
    got = catalog.get_volume("v")
    assert (got.id, got.location, got.managed, got.size, got.created_at) == (vol.id, "/dev/v", True, 1 << 40, when)
    assert got.created_at.tzinfo is not None
    b = _backup(vol, when, name="b1", description="first", stored_bytes=123)
    catalog.add(b)
    got_b = catalog.get_backup("b1")
    assert (got_b.id, got_b.description, got_b.stored_bytes, got_b.deleted) == (b.id, "first", 123, False)
    assert got_b.data_timestamp == when and got_b.deleted_at is None
    assert catalog.find_backup("nope") is None and catalog.find_volume("nope") is None
    with pytest.raises(exceptions.VolumeNotFound):
        catalog.get_volume("missing")


def test_names_may_repeat_but_then_must_be_ids(catalog: Catalog) -> None:
    a, b = _vol("same"), _vol("same")
    catalog.add(a)
    catalog.add(b)
    with pytest.raises(exceptions.AmbiguousName):
        catalog.get_volume("same")
    assert catalog.get_volume(b.id).id == b.id
    assert [v.id for v in catalog.list_volumes()] == [a.id, b.id]


def test_a_transition_is_won_once(catalog: Catalog) -> None:
    vol = _vol()
    catalog.add(vol)
    b = _backup(vol, datetime.datetime.now(UTC), status=BackupStatus.CREATING)
    catalog.add(b)
    wins = []
    barrier = threading.Barrier(4)

    def race() -> None:
        barrier.wait()
        wins.append(catalog.update_backup(b.id, [BackupStatus.CREATING], status=BackupStatus.AVAILABLE))

    threads = [threading.Thread(target=race) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(wins) == [False, False, False, True]
    assert catalog.backup_status(b.id) == BackupStatus.AVAILABLE
    assert not catalog.set_volume_status(vol.id, ["backing-up"], "available")
    assert catalog.set_volume_status(vol.id, None, "backing-up")
    assert catalog.get_volume(vol.id).status == "backing-up"
    with pytest.raises(TypeError, match="no such backups column"):
        catalog.update_backup(b.id, None, bogus=1)


def test_deleted_backups_leave_the_lists_but_stay_findable(catalog: Catalog) -> None:
    vol = _vol()
    catalog.add(vol)
    t0 = datetime.datetime(2026, 5, 1, tzinfo=UTC)
    full = _backup(vol, t0, name="full")
    incr = _backup(vol, t0 + datetime.timedelta(hours=1), name="incr", parent_id=full.id)
    catalog.add(full)
    catalog.add(incr)
    assert catalog.latest_available(vol.id).id == incr.id  # type: ignore[union-attr]
    assert [c.id for c in catalog.children(full.id, [BackupStatus.AVAILABLE])] == [incr.id]
    assert catalog.update_backup(incr.id, [BackupStatus.AVAILABLE], status=BackupStatus.DELETED)
    gone = catalog.get_backup(incr.id, deleted=True)
    assert gone.deleted and gone.deleted_at is not None
    with pytest.raises(exceptions.BackupNotFound):
        catalog.get_backup("incr")
    assert catalog.latest_available(vol.id).id == full.id  # type: ignore[union-attr]
    assert [b.id for b in catalog.list_backups(volume_id=vol.id)] == [full.id]
    assert {b.id for b in catalog.list_backups(deleted=True)} == {full.id, incr.id}
    catalog.purge_backup(incr.id)
    assert catalog.find_backup(incr.id) is None


def test_incomplete_lists_only_this_hosts_busy_backups(catalog: Catalog) -> None:
    vol = _vol()
    catalog.add(vol)
    now = datetime.datetime.now(UTC)
    busy = _backup(vol, now, status=BackupStatus.CREATING)
    other_host = _backup(vol, now, status=BackupStatus.RESTORING, host="h2")
    done = _backup(vol, now)
    for b in (busy, other_host, done):
        catalog.add(b)
    assert [b.id for b in catalog.incomplete("h1")] == [busy.id]


def test_sqlite_timestamps_keep_the_format_catalogs_were_written_in(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "c.sqlite"
    cat = Catalog(f"sqlite:///{path}", lock_dir=str(tmp_path))
    plus2 = datetime.timezone(datetime.timedelta(hours=2))
    vol = _vol(created_at=datetime.datetime(2026, 3, 4, 5, 6, 7, 8, tzinfo=plus2))
    cat.add(vol)
    with sqlite3.connect(path) as raw:
        stored = raw.execute("SELECT created_at FROM volumes").fetchone()[0]
        assert stored == "2026-03-04 03:06:07.000008"
        raw.execute("UPDATE volumes SET created_at = '2025-12-31 23:59:59.500000'")
    assert cat.get_volume(vol.id).created_at == datetime.datetime(2025, 12, 31, 23, 59, 59, 500000, tzinfo=UTC)
    cat.close()


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("sqlite://", "in-memory"),
        ("mysql://u@h/db", "unsupported database 'mysql'"),
        ("not a url", "not a URL"),
        ("sqlite:////nonexistent-dir/sub/c.sqlite", "cannot open the catalog"),
    ],
)
def test_unusable_urls_are_one_line_errors(tmp_path: pathlib.Path, url: str, error: str) -> None:
    with pytest.raises(exceptions.ConfigurationError, match=error) as info:
        Catalog(url, lock_dir=str(tmp_path))
    assert "\n" not in str(info.value)


def test_opening_a_current_catalog_imports_no_sqlalchemy(tmp_path: pathlib.Path) -> None:
    script = (
        "import sys\nfrom ashvault.catalog import Catalog\n"
        f"Catalog({f'sqlite:///{tmp_path}/c.sqlite'!r}, lock_dir={str(tmp_path)!r}).list_volumes()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sqlalchemy', 'alembic'))[:1])\n"
    )

    def run() -> str:
        proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
        return proc.stdout.strip()

    assert run() != "[]", "the first open migrates with alembic"
    assert run() == "[]"


def test_many_threads_leave_few_connections_open(catalog: Catalog, request: pytest.FixtureRequest) -> None:
    def connections() -> int:
        if catalog.kind == "sqlite":
            return sum(1 for fd in pathlib.Path("/proc/self/fd").iterdir() if "c.sqlite" in str(fd.resolve()))
        import psycopg

        dbname = catalog.url.rsplit("/", 1)[1]
        with psycopg.connect(catalog.url, autocommit=True) as admin:
            row = admin.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [dbname]).fetchone()
        return int(row[0]) - 1 if row else 0

    def settled(limit: int) -> int:
        # A PostgreSQL backend leaves pg_stat_activity a moment after its client hangs up.
        deadline = time.monotonic() + 10
        while (count := connections()) > limit and time.monotonic() < deadline:
            time.sleep(0.05)
        return count

    barrier = threading.Barrier(16)

    def work() -> None:
        barrier.wait()
        for _ in range(5):
            catalog.list_volumes()

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        for fut in [pool.submit(work) for _ in range(16)]:
            fut.result()
        # The pool's threads are still alive, as a service's job threads are.
        if catalog.kind == "postgresql":
            assert settled(4) <= 4
        else:
            # SQLite keeps a closed connection's descriptors while another connection to the file is open, so the
            # process's descriptors say nothing until the last one closes: count the idle connections instead.
            assert len(catalog._idle) <= 4
    catalog.close()
    assert settled(0) == 0


def test_listing_backups_loads_neither_the_engine_nor_the_ciphers(tmp_path: pathlib.Path) -> None:
    conf = tmp_path / "ashvault.conf"
    conf.write_text(f"[DEFAULT]\nashvault_state_path = {tmp_path / 'state'}\n")
    script = (
        "import sys\nfrom ashvault_cli.shell import main\n"
        f"main(['--config-file', {str(conf)!r}, 'backup', 'list', '-f', 'json'])\n"
        "heavy = ('sqlalchemy', 'alembic', 'cryptography', 'blake3', 'zstandard', 'ashvault.engine',\n"
        "         'ashvault.chunked')\n"
        "print(sorted(m for m in sys.modules if m.startswith(heavy))[:3], file=sys.stderr)\n"
    )

    def run() -> str:
        proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
        return proc.stderr.strip().splitlines()[-1]

    run()  # the first command migrates the new catalog
    assert run() == "[]", "every command starts by listing; what it does not need must not load"
