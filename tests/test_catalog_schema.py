"""The catalog's two views of its schema agree: a SQLite and a PostgreSQL catalog migrated by alembic have, column by
column, the names, types and nullability of the record dataclasses, and the head revision the code reads from the
migration scripts is the one alembic computes."""

from __future__ import annotations

import dataclasses
import datetime
import pathlib
import shutil
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory

from ashvault import exceptions
from ashvault.catalog import Backup, Catalog, schema
from ashvault.catalog.sql import Dialect


@pytest.fixture(params=["sqlite", "postgresql"])
def migrated(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Any:
    url = f"sqlite:///{tmp_path / 'c.sqlite'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    Catalog(url, lock_dir=str(tmp_path)).close()
    engine = sa.create_engine(url)
    request.addfinalizer(engine.dispose)
    return engine


def differences(engine: sa.Engine, tables: list[schema.Table]) -> list[str]:
    """Every way the database's tables differ from ``tables``, one line each."""
    inspector = sa.inspect(engine)
    found = []
    for table in tables:
        columns = {c["name"]: c for c in inspector.get_columns(table.name)}
        for name in sorted(set(columns) - set(table.names)):
            found.append(f"{table.name}.{name}: in the database, not in {table.record.__name__}")
        for column in table.columns:
            actual = columns.get(column.name)
            if actual is None:
                found.append(f"{table.name}.{column.name}: in {table.record.__name__}, not in the database")
                continue
            kind = actual["type"].python_type
            if kind is not column.type:
                found.append(f"{table.name}.{column.name}: holds {kind.__name__}, the code {column.type.__name__}")
            if actual["nullable"] != column.nullable:
                found.append(f"{table.name}.{column.name}: nullable {actual['nullable']}, the code {column.nullable}")
        key = inspector.get_pk_constraint(table.name)["constrained_columns"]
        if key != ["id"]:
            found.append(f"{table.name}: primary key {key}, the code ['id']")
    return found


def test_the_migrated_schema_matches_the_records(migrated: sa.Engine) -> None:
    tables = {t.name for t in schema.TABLES.values()}
    assert set(sa.inspect(migrated).get_table_names()) == {*tables, "alembic_version"}
    assert differences(migrated, list(schema.TABLES.values())) == []


def test_a_record_that_drifts_from_the_migrations_is_caught(tmp_path: pathlib.Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'c.sqlite'}")
    Catalog(str(engine.url), lock_dir=str(tmp_path)).close()
    fields = [(f.name, f.type, f) for f in dataclasses.fields(Backup) if f.name != "host"]
    retyped = {"size": str, "fail_reason": str, "object_count": int | None}
    fields = [(name, retyped.get(name, kind), f) for name, kind, f in fields]
    drifted = dataclasses.make_dataclass("Drifted", [*fields, ("tier", str | None, dataclasses.field(default=None))],
                                         kw_only=True)
    found = differences(engine, [schema._table("backups", drifted)])
    engine.dispose()
    assert found == [
        "backups.host: in the database, not in Drifted",
        "backups.fail_reason: nullable True, the code False",
        "backups.size: holds int, the code str",
        "backups.object_count: nullable False, the code True",
        "backups.tier: in Drifted, not in the database",
    ]


def test_the_code_reads_types_and_nullability_from_the_fields() -> None:
    columns = schema.BACKUPS.by_name
    assert columns["deleted"] == schema.Column("deleted", bool, nullable=False)
    assert columns["deleted_at"] == schema.Column("deleted_at", datetime.datetime, nullable=True)
    assert columns["size"].type is int and columns["name"] == schema.Column("name", str, nullable=True)
    assert schema.BACKUPS.of(datetime.datetime) == {"data_timestamp", "created_at", "updated_at", "deleted_at"}
    assert schema.VOLUMES.of(bool) == {"managed"}


def test_the_head_is_alembics_and_a_migrated_catalog_is_at_it(tmp_path: pathlib.Path) -> None:
    assert schema.head() == ScriptDirectory(schema.MIGRATIONS).get_current_head()
    cat = Catalog(f"sqlite:///{tmp_path / 'c.sqlite'}", lock_dir=str(tmp_path))
    assert cat.revision() == schema.head()
    cat.close()


def test_a_new_migration_is_the_new_head(tmp_path: pathlib.Path) -> None:
    current = schema.head()
    ahead, forked = tmp_path / "ahead", tmp_path / "forked"
    for versions in (ahead, forked):
        shutil.copytree(schema.VERSIONS, versions, ignore=shutil.ignore_patterns("__pycache__"))
        (versions / "0099_next.py").write_text(f'revision = "0099"\ndown_revision = {current!r}\n')
    assert schema.head(str(ahead)) == "0099"
    (forked / "0100_fork.py").write_text(f'revision: str = "0100"\ndown_revision = ({current!r},)\n')
    with pytest.raises(exceptions.ConfigurationError, match="one revision, not 0099, 0100"):
        schema.head(str(forked))


@pytest.mark.parametrize(("kind", "mark"), [("sqlite", ":p{}"), ("postgresql", "%(p{})s")])
def test_a_statement_is_written_once_for_both_drivers(kind: str, mark: str) -> None:
    sql = Dialect(kind)
    st = sql.update(schema.BACKUPS, {"status": "deleted"}, {"id": "b1", "status": ["creating", "error"]})
    p = [mark.format(n) for n in range(4)]
    assert st.text == f"UPDATE backups SET status = {p[0]} WHERE id = {p[1]} AND status IN ({p[2]}, {p[3]})"
    assert st.params == {"p0": "deleted", "p1": "b1", "p2": "creating", "p3": "error"}
    assert sql.select(schema.VOLUMES, {"status": []}, columns=["id"]).text == "SELECT id FROM volumes WHERE 1 = 0"
    with pytest.raises(TypeError, match="no such volumes column: nmae"):
        sql.select(schema.VOLUMES, {"nmae": "v"})
    with pytest.raises(TypeError, match="no such backups column: when"):
        sql.select(schema.BACKUPS, {}, order=["when DESC"])
