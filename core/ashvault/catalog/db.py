"""Catalog access. Status changes are conditional updates, so two workers never both win a transition."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable, Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from ashvault import exceptions
from ashvault.catalog.models import Backup, BackupStatus, Volume, utcnow
from ashvault.jobs.locks import FileLock

HEAD = "0001"
"""The newest migration; a catalog at this revision needs no alembic run."""

_MIGRATIONS = os.path.join(os.path.dirname(__file__), "migrations")


def _sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA busy_timeout = 60000")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        # Writers queue on the database lock instead of failing on a read-to-write upgrade.
        conn.exec_driver_sql("BEGIN IMMEDIATE")


class Catalog:
    def __init__(self, url: str, *, lock_dir: str) -> None:
        self.url = url
        try:
            self.engine = sa.create_engine(url, future=True, pool_pre_ping=not url.startswith("sqlite"))
        except (sa.exc.ArgumentError, ImportError) as exc:
            raise exceptions.ConfigurationError(reason=f"[database] connection is not usable: {exc}") from exc
        if self.engine.dialect.name == "sqlite":
            _sqlite_pragmas(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._lock_dir = lock_dir
        self.migrate()

    def _revision(self) -> str | None:
        try:
            with self.engine.connect() as conn:
                return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
        except sa.exc.OperationalError:
            return None
        except sa.exc.ProgrammingError:
            return None

    def migrate(self) -> None:
        """Bring the schema to the newest revision (alembic), once, under a lock."""
        try:
            if self._revision() == HEAD:
                return
            with FileLock(os.path.join(self._lock_dir, "catalog-migrate.lock")):
                if self._revision() == HEAD:
                    return
                logging.getLogger("alembic").setLevel(logging.WARNING)
                from alembic import command
                from alembic.config import Config

                cfg = Config()
                cfg.set_main_option("script_location", _MIGRATIONS)
                with self.engine.begin() as conn:
                    cfg.attributes["connection"] = conn
                    command.upgrade(cfg, "head")
        except sa.exc.OperationalError as exc:
            raise exceptions.ConfigurationError(reason=f"cannot open the catalog: {exc.orig}") from exc

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions() as session, session.begin():
            yield session

    # volumes

    def add(self, record: Volume | Backup) -> None:
        with self.session() as s:
            s.add(record)

    def get_volume(self, ident: str) -> Volume:
        with self.session() as s:
            vol = s.get(Volume, ident)
            if vol is not None:
                return vol
            found = s.scalars(sa.select(Volume).where(Volume.name == ident)).all()
        if not found:
            raise exceptions.VolumeNotFound(volume=ident)
        if len(found) > 1:
            raise exceptions.AmbiguousName(kind="volume", name=ident)
        return found[0]

    def find_volume(self, volume_id: str) -> Volume | None:
        with self.session() as s:
            return s.get(Volume, volume_id)

    def list_volumes(self) -> list[Volume]:
        with self.session() as s:
            return list(s.scalars(sa.select(Volume).order_by(Volume.created_at, Volume.name)))

    def set_volume_status(self, volume_id: str, expected: Iterable[str] | None, status: str) -> bool:
        stmt = sa.update(Volume).where(Volume.id == volume_id)
        if expected is not None:
            stmt = stmt.where(Volume.status.in_(list(expected)))
        with self.session() as s:
            return s.execute(stmt.values(status=status, updated_at=utcnow())).rowcount == 1  # type: ignore[attr-defined]

    def delete_volume(self, volume_id: str) -> None:
        with self.session() as s:
            s.execute(sa.delete(Volume).where(Volume.id == volume_id))

    # backups

    def get_backup(self, ident: str, *, deleted: bool = False) -> Backup:
        with self.session() as s:
            b = s.get(Backup, ident)
            if b is not None and (deleted or not b.deleted):
                return b
            found = s.scalars(sa.select(Backup).where(Backup.name == ident, Backup.deleted.is_(False))).all()
        if not found:
            raise exceptions.BackupNotFound(backup=ident)
        if len(found) > 1:
            raise exceptions.AmbiguousName(kind="backup", name=ident)
        return found[0]

    def find_backup(self, backup_id: str) -> Backup | None:
        with self.session() as s:
            return s.get(Backup, backup_id)

    def list_backups(self, *, volume_id: str | None = None, status: str | None = None,
                     deleted: bool = False) -> list[Backup]:
        stmt = sa.select(Backup)
        if not deleted:
            stmt = stmt.where(Backup.deleted.is_(False))
        if volume_id:
            stmt = stmt.where(Backup.volume_id == volume_id)
        if status:
            stmt = stmt.where(Backup.status == status)
        with self.session() as s:
            return list(s.scalars(stmt.order_by(Backup.created_at, Backup.id)))

    def latest_available(self, volume_id: str) -> Backup | None:
        stmt = (sa.select(Backup)
                .where(Backup.volume_id == volume_id, Backup.status == BackupStatus.AVAILABLE,
                       Backup.deleted.is_(False))
                .order_by(Backup.data_timestamp.desc(), Backup.created_at.desc()).limit(1))
        with self.session() as s:
            return s.scalars(stmt).first()

    def children(self, backup_id: str, statuses: Iterable[str]) -> list[Backup]:
        stmt = sa.select(Backup).where(Backup.parent_id == backup_id, Backup.status.in_(list(statuses)),
                                       Backup.deleted.is_(False))
        with self.session() as s:
            return list(s.scalars(stmt))

    def incomplete(self, host: str) -> list[Backup]:
        busy = [BackupStatus.CREATING, BackupStatus.RESTORING, BackupStatus.DELETING]
        stmt = sa.select(Backup).where(Backup.status.in_(busy), Backup.host == host, Backup.deleted.is_(False))
        with self.session() as s:
            return list(s.scalars(stmt))

    def update_backup(self, backup_id: str, expected: Iterable[str] | None, **fields: Any) -> bool:
        """Set ``fields`` if the backup's status is one of ``expected`` (any when None); True when it was."""
        stmt = sa.update(Backup).where(Backup.id == backup_id)
        if expected is not None:
            stmt = stmt.where(Backup.status.in_(list(expected)))
        fields.setdefault("updated_at", utcnow())
        if fields.get("status") == BackupStatus.DELETED:
            fields.update(deleted=True, deleted_at=utcnow())
        with self.session() as s:
            return s.execute(stmt.values(**fields)).rowcount == 1  # type: ignore[attr-defined]

    def backup_status(self, backup_id: str) -> str | None:
        with self.session() as s:
            return s.scalar(sa.select(Backup.status).where(Backup.id == backup_id))

    def purge_backup(self, backup_id: str) -> None:
        with self.session() as s:
            s.execute(sa.delete(Backup).where(Backup.id == backup_id))
