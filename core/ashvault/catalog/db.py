"""Catalog access. Status changes are conditional updates, so two workers never both win a transition.

Queries go straight to the database's DB-API driver (``sqlite3``, or ``psycopg`` for PostgreSQL), each transaction
on a connection borrowed from a few kept idle, with statements built from the schema (``schema.py``, ``sql.py``).
SQLAlchemy and alembic are imported only when the schema must be migrated: every command opens the catalog, and
importing them would be most of its start-up.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from ashvault import exceptions
from ashvault.catalog import schema
from ashvault.catalog.models import Backup, BackupStatus, JobRecord, JobState, Service, Volume, utcnow
from ashvault.catalog.schema import BACKUPS, TABLES, VOLUMES
from ashvault.catalog.sql import Dialect, Statement, Where
from ashvault.locks import FileLock

LOG = logging.getLogger(__name__)
_IDLE = 4
"""Connections kept open between transactions."""
_TIMES = {cls: table.of(datetime.datetime) for cls, table in TABLES.items()}
_BOOLS = {cls: table.of(bool) for cls, table in TABLES.items()}
_INTS = {cls: table.of(int) for cls, table in TABLES.items()}
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)

R = TypeVar("R", Volume, Backup, JobRecord, Service)


def _driver(url: str) -> tuple[str, str]:
    """('sqlite', file path) or ('postgresql', libpq URL) for a SQLAlchemy-style URL."""
    scheme, sep, rest = url.partition("://")
    kind = scheme.split("+", 1)[0].lower()
    if not sep:
        raise exceptions.ConfigurationError(reason="[ashvault_database] connection is not usable: it is not a URL")
    if kind == "sqlite":
        path = rest.split("?", 1)[0][1:]
        if not path or path == ":memory:":
            raise exceptions.ConfigurationError(
                reason="[ashvault_database] connection is not usable: an in-memory SQLite catalog would be lost on exit"
            )
        return kind, path
    if kind in ("postgresql", "postgres"):
        return "postgresql", f"postgresql://{rest}"
    raise exceptions.ConfigurationError(
        reason=f"[ashvault_database] connection is not usable: unsupported database '{kind}' (use sqlite or postgresql)"
    )


class Catalog:
    def __init__(self, url: str, *, lock_dir: str) -> None:
        self.url = url
        self.kind, self._target = _driver(url)
        self._sql = Dialect(self.kind)
        if self.kind == "postgresql":
            try:
                import psycopg
            except ImportError as exc:
                raise exceptions.ConfigurationError(
                    reason="[ashvault_database] connection is not usable: PostgreSQL needs psycopg "
                    "(pip install 'ashvault[postgresql]')"
                ) from exc
            self._errors: tuple[type[Exception], ...] = (psycopg.Error,)
        else:
            self._errors = (sqlite3.Error,)
        self._idle: list[Any] = []
        self._idle_lock = threading.Lock()
        self._closed = False
        self._lock_dir = lock_dir
        self._opened = False
        self.migrate()

    # connections

    def _connect(self) -> Any:
        try:
            if self.kind == "postgresql":
                import psycopg

                conn = psycopg.connect(self._target, autocommit=True, connect_timeout=10)
                self._opened = True
                return conn
            conn = sqlite3.connect(self._target, timeout=60, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout = 60000")
            conn.execute("PRAGMA journal_mode = WAL")
            return conn
        except self._errors as exc:
            if self._opened:  # it answered before: the database is away, not misconfigured
                raise exceptions.CatalogError(reason=f"cannot reach the catalog: {_message(exc)}") from exc
            raise exceptions.ConfigurationError(reason=f"cannot open the catalog: {_message(exc)}") from exc

    @contextlib.contextmanager
    def _borrow(self) -> Iterator[Any]:
        """A connection from the idle ones (or a new one), given back afterwards unless it broke.

        At most ``_IDLE`` connections wait between transactions, so many job threads, and many hosts on one
        PostgreSQL, hold few connections.
        """
        with self._idle_lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self._connect()
        try:
            yield conn
        finally:
            if self.kind == "postgresql":
                broken = conn.closed or conn.broken
            else:
                broken = conn.in_transaction
            with self._idle_lock:
                keep = not broken and not self._closed and len(self._idle) < _IDLE
                if keep:
                    self._idle.append(conn)
            if not keep:
                with contextlib.suppress(Exception):
                    conn.close()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[Any]:
        """A cursor in a transaction, committed on return and rolled back on any error.

        On SQLite the transaction starts ``IMMEDIATE``, so writers queue on the database lock instead of failing on
        a read-to-write upgrade. Driver errors come out as ``CatalogError``.
        """
        with self._borrow() as conn:
            try:
                if self.kind == "postgresql":
                    with conn.transaction(), conn.cursor() as cur:
                        yield cur
                    return
                cur = conn.cursor()
                try:
                    cur.execute("BEGIN IMMEDIATE")
                    try:
                        yield cur
                    except BaseException:
                        if conn.in_transaction:
                            cur.execute("ROLLBACK")
                        raise
                    cur.execute("COMMIT")
                finally:
                    cur.close()
            except self._errors as exc:
                raise exceptions.CatalogError(reason=_message(exc)) from exc

    def _record(self, cls: type[R], row: Iterable[Any]) -> R:
        """A row as its record. A value of the wrong type (SQLite stores what it is given: an older import wrote
        ``size = "big"``) does not break the listing of the others: a backup row is read with that value zeroed,
        and an available one shown as ``error`` naming the column (it can be deleted); another record raises
        ``CatalogError``."""
        table = TABLES[cls]
        values = dict(zip(table.names, row, strict=True))
        unreadable = []
        for name in _TIMES[cls]:
            value = values[name]
            try:
                if isinstance(value, str):
                    value = datetime.datetime.fromisoformat(value)
                if isinstance(value, datetime.datetime) and value.tzinfo is None:
                    value = value.replace(tzinfo=datetime.UTC)
            except ValueError:
                value = None
            if value is not None and not isinstance(value, datetime.datetime):
                value = None
            if value is None and not table.by_name[name].nullable:
                unreadable.append(name)
                value = _EPOCH
            elif value is None and values[name] is not None:
                unreadable.append(name)
            values[name] = value
        for name in _BOOLS[cls]:
            values[name] = bool(values[name])
        for name in _INTS[cls]:
            value = values[name]
            if isinstance(value, bool) or not isinstance(value, int | None):
                unreadable.append(name)
                values[name] = None if table.by_name[name].nullable else 0
        if unreadable:
            what = f"{table.name} row {str(values.get('id'))[:36]!r}: unreadable {', '.join(unreadable)}"
            if cls is not Backup:
                raise exceptions.CatalogError(reason=what)
            if values["status"] != BackupStatus.AVAILABLE:  # a job moving it on reads its real status
                return cls(**values)
            LOG.warning("%s; shown as error", what)
            values["status"] = BackupStatus.ERROR
            values["fail_reason"] = f"catalog row unreadable: {', '.join(unreadable)} (repair or delete it)"
        return cls(**values)

    def _run(self, statement: Statement) -> tuple[list[Any], int]:
        """The statement's rows (none unless it returns some) and its row count."""
        with self._tx() as cur:
            cur.execute(statement.text, statement.params)
            return (list(cur.fetchall()) if cur.description is not None else []), cur.rowcount

    def _select(self, cls: type[R], where: Where, *, order: Iterable[str] = (), limit: int | None = None) -> list[R]:
        rows, _ = self._run(self._sql.select(TABLES[cls], where, order=order, limit=limit))
        return [self._record(cls, row) for row in rows]

    def _update(self, cls: type, ident: str, expected: Iterable[str] | None, fields: dict[str, Any]) -> bool:
        where: dict[str, Any] = {"id": ident}
        if expected is not None:
            where["status"] = list(expected)
        _, count = self._run(self._sql.update(TABLES[cls], fields, where))
        return bool(count == 1)

    def close(self) -> None:
        """Close the idle connections; one in use is closed when its transaction ends."""
        with self._idle_lock:
            idle, self._idle, self._closed = self._idle, [], True
        for conn in idle:
            with contextlib.suppress(Exception):
                conn.close()

    # schema

    def revision(self) -> str | None:
        """The revision the catalog's schema is at; None before the first migration."""
        try:
            with self._tx() as cur:
                cur.execute("SELECT version_num FROM alembic_version")
                row = cur.fetchone()
        except exceptions.CatalogError:
            return None
        return row[0] if row else None

    def migrate(self) -> None:
        """Bring the schema to the newest revision (alembic), once, under a lock."""
        head = schema.head()
        if self.revision() == head:
            return
        with FileLock(os.path.join(self._lock_dir, "catalog-migrate.lock")):
            if self.revision() == head:
                return
            logging.getLogger("alembic").setLevel(logging.WARNING)
            import sqlalchemy as sa
            from alembic import command
            from alembic.config import Config

            cfg = Config()
            cfg.set_main_option("script_location", schema.MIGRATIONS)
            engine = sa.create_engine(self.url)
            try:
                with engine.begin() as conn:
                    if self.kind == "postgresql":
                        # Hosts share the database, not the lock directory: alembic then reads the revision the
                        # first of them left.
                        conn.execute(sa.text("SELECT pg_advisory_xact_lock(7406110017)"))
                    cfg.attributes["connection"] = conn
                    command.upgrade(cfg, "head")
            except sa.exc.SQLAlchemyError as exc:
                raise exceptions.ConfigurationError(reason=f"cannot migrate the catalog: {_message(exc)}") from exc
            finally:
                engine.dispose()

    # volumes

    def add(self, record: Volume | Backup | JobRecord | Service) -> None:
        table = TABLES[type(record)]
        self._run(self._sql.insert(table, {name: getattr(record, name) for name in table.names}))

    def get_volume(self, ident: str) -> Volume:
        found = self._select(Volume, {"id": ident}) or self._select(Volume, {"name": ident})
        if not found:
            raise exceptions.VolumeNotFound(volume=ident)
        if len(found) > 1:
            raise exceptions.AmbiguousName(kind="volume", name=ident)
        return found[0]

    def find_volume(self, volume_id: str) -> Volume | None:
        found = self._select(Volume, {"id": volume_id})
        return found[0] if found else None

    def list_volumes(self) -> list[Volume]:
        return self._select(Volume, {}, order=["created_at", "name"])

    def set_volume_status(self, volume_id: str, expected: Iterable[str] | None, status: str) -> bool:
        return self._update(Volume, volume_id, expected, {"status": status, "updated_at": utcnow()})

    def delete_volume(self, volume_id: str) -> None:
        self._run(self._sql.delete(VOLUMES, {"id": volume_id}))

    # backups

    def get_backup(self, ident: str, *, deleted: bool = False) -> Backup:
        by_id = self._select(Backup, {"id": ident})
        if by_id and (deleted or not by_id[0].deleted):
            return by_id[0]
        found = self._select(Backup, {"name": ident, "deleted": False})
        if not found:
            raise exceptions.BackupNotFound(backup=ident)
        if len(found) > 1:
            raise exceptions.AmbiguousName(kind="backup", name=ident)
        return found[0]

    def find_backup(self, backup_id: str) -> Backup | None:
        found = self._select(Backup, {"id": backup_id})
        return found[0] if found else None

    def list_backups(
        self, *, volume_id: str | None = None, status: str | None = None, deleted: bool = False
    ) -> list[Backup]:
        where: dict[str, Any] = {}
        if not deleted:
            where["deleted"] = False
        if volume_id:
            where["volume_id"] = volume_id
        if status:
            where["status"] = status
        return self._select(Backup, where, order=["created_at", "id"])

    def latest_available(self, volume_id: str) -> Backup | None:
        found = self._select(
            Backup,
            {"volume_id": volume_id, "status": BackupStatus.AVAILABLE, "deleted": False},
            order=["data_timestamp DESC", "created_at DESC"],
            limit=1,
        )
        return found[0] if found else None

    def children(self, backup_id: str, statuses: Iterable[str]) -> list[Backup]:
        states = list(statuses)
        if not states:
            return []
        return self._select(Backup, {"parent_id": backup_id, "status": states, "deleted": False})

    def incomplete(self, host: str) -> list[Backup]:
        busy = [BackupStatus.CREATING, BackupStatus.RESTORING, BackupStatus.DELETING]
        return self._select(Backup, {"status": busy, "host": host, "deleted": False})

    def update_backup(self, backup_id: str, expected: Iterable[str] | None, **fields: Any) -> bool:
        """Set ``fields`` if the backup's status is one of ``expected`` (any when None); True when it was."""
        fields.setdefault("updated_at", utcnow())
        if fields.get("status") == BackupStatus.DELETED:
            fields.update(deleted=True, deleted_at=utcnow())
        return self._update(Backup, backup_id, expected, fields)

    def backup_status(self, backup_id: str) -> str | None:
        rows, _ = self._run(self._sql.select(BACKUPS, {"id": backup_id}, columns=["status"]))
        return rows[0][0] if rows else None

    def purge_backup(self, backup_id: str) -> None:
        self._run(self._sql.delete(BACKUPS, {"id": backup_id}))

    # jobs sent to workers, and the workers' services

    def _set(self, cls: type, fields: dict[str, Any], where: Where) -> bool:
        _, count = self._run(self._sql.update(TABLES[cls], fields, where))
        return bool(count == 1)

    def get_job(self, job_id: str) -> JobRecord:
        found = self._select(JobRecord, {"id": job_id})
        if not found:
            raise exceptions.NotFound(what=f"job '{job_id}'")
        return found[0]

    def list_jobs(self, *, state: str | Iterable[str] | None = None, backup_id: str | None = None,
                  worker: str | None = None) -> list[JobRecord]:
        where: dict[str, Any] = {}
        if state is not None:
            where["state"] = state if isinstance(state, str) else list(state)
        if backup_id is not None:
            where["backup_id"] = backup_id
        if worker is not None:
            where["worker"] = worker
        return self._select(JobRecord, where, order=["created_at", "id"])

    def claim_job(self, job_id: str, worker: str) -> bool:
        """Move a queued job to running under ``worker``; False when another worker (or a copy) got it first."""
        return self._set(JobRecord, {"state": JobState.RUNNING, "worker": worker, "claimed_at": utcnow()},
                         {"id": job_id, "state": JobState.QUEUED})

    def end_job(self, job_id: str, worker: str | None, state: str, result: str | None) -> bool:
        """Finish a running job; with ``worker`` only if that worker still owns it."""
        where: dict[str, Any] = {"id": job_id, "state": JobState.RUNNING}
        if worker is not None:
            where["worker"] = worker
        return self._set(JobRecord, {"state": state, "result": result, "finished_at": utcnow()}, where)

    def job_progress(self, job_id: str, done: int, total: int) -> None:
        self._set(JobRecord, {"done_bytes": done, "total_bytes": total}, {"id": job_id})

    def resend_job(self, job_id: str, sent_at: datetime.datetime) -> bool:
        """Take the right to send a still-queued job again (one of the workers that saw it stale wins)."""
        return self._set(JobRecord, {"sent_at": utcnow()}, {"id": job_id, "state": JobState.QUEUED,
                                                              "sent_at": sent_at})

    def heartbeat(self, service_id: str, **fields: Any) -> bool:
        fields.setdefault("heartbeat_at", utcnow())
        return self._set(Service, fields, {"id": service_id})

    def list_services(self) -> list[Service]:
        return self._select(Service, {}, order=["host", "created_at"])


def _message(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
